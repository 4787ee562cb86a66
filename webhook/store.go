package webhook

import (
	"context"
	"fmt"

	entsql "entgo.io/ent/dialect/sql"

	"github.com/segmentd/segmentd/ent"
	"github.com/segmentd/segmentd/ent/predicate"
	"github.com/segmentd/segmentd/ent/schema/pulid"
	"github.com/segmentd/segmentd/ent/webhookdelivery"
	"github.com/segmentd/segmentd/ent/webhookendpoint"
	"github.com/segmentd/segmentd/live"
)

// locker is what differs between the stores in taking work: PostgreSQL
// locks rows FOR UPDATE SKIP LOCKED, so that replicas pass each other's
// work by; SQLite has one writer (and one server per file), so its
// transactions already exclude each other.
type locker interface {
	// endpoint reads the endpoint in tx, locked; nil if another
	// transaction holds it (or it is gone).
	endpoint(ctx context.Context, tx *ent.Tx, id pulid.ID) (*ent.WebhookEndpoint, error)
	// endpointWait reads the endpoint in tx, locked, waiting for another
	// transaction that holds it; nil if it is gone.
	endpointWait(ctx context.Context, tx *ent.Tx, id pulid.ID) (*ent.WebhookEndpoint, error)
	// heads reads, locked, up to n of the endpoint's pending deliveries
	// after seq floor in order (skipping rows another transaction holds).
	heads(ctx context.Context, tx *ent.Tx, id pulid.ID, floor int64, n int) ([]*ent.WebhookDelivery, error)
}

func lockerFor(dialect string) (locker, error) {
	switch dialect {
	case live.SQLite:
		return sqliteLocks{}, nil
	case live.Postgres:
		return postgresLocks{}, nil
	}
	return nil, fmt.Errorf("no webhook store for dialect %q", dialect)
}

func enabledIs(v bool) predicate.WebhookEndpoint { return webhookendpoint.Enabled(v) }

// pendingAfter are the endpoint's pending deliveries after seq floor.
// The floor is a seq below which this process saw every delivery settled
// (no delivery becomes PENDING again, and new ones are numbered above
// every other): the index scan starts there instead of walking, on
// PostgreSQL, the dead index entries of every delivery sent before.
func pendingAfter(q *ent.WebhookDeliveryQuery, id pulid.ID, floor int64) *ent.WebhookDeliveryQuery {
	return q.Where(webhookdelivery.EndpointRef(id), webhookdelivery.StatusEQ(webhookdelivery.StatusPENDING),
		webhookdelivery.SeqGT(floor))
}

func headsQuery(tx *ent.Tx, id pulid.ID, floor int64, n int) *ent.WebhookDeliveryQuery {
	return pendingAfter(tx.WebhookDelivery.Query(), id, floor).
		Order(ent.Asc(webhookdelivery.FieldSeq)).Limit(n)
}

type sqliteLocks struct{}

func (sqliteLocks) endpoint(ctx context.Context, tx *ent.Tx, id pulid.ID) (*ent.WebhookEndpoint, error) {
	ep, err := tx.WebhookEndpoint.Get(ctx, id)
	if ent.IsNotFound(err) {
		return nil, nil
	}
	return ep, err
}

func (l sqliteLocks) endpointWait(ctx context.Context, tx *ent.Tx, id pulid.ID) (*ent.WebhookEndpoint, error) {
	return l.endpoint(ctx, tx, id)
}

func (sqliteLocks) heads(ctx context.Context, tx *ent.Tx, id pulid.ID, floor int64, n int) ([]*ent.WebhookDelivery, error) {
	return headsQuery(tx, id, floor, n).All(ctx)
}

type postgresLocks struct{}

func (postgresLocks) endpoint(ctx context.Context, tx *ent.Tx, id pulid.ID) (*ent.WebhookEndpoint, error) {
	ep, err := tx.WebhookEndpoint.Query().Where(webhookendpoint.ID(id)).
		ForUpdate(entsql.WithLockAction(entsql.SkipLocked)).Only(ctx)
	if ent.IsNotFound(err) {
		return nil, nil
	}
	return ep, err
}

func (postgresLocks) endpointWait(ctx context.Context, tx *ent.Tx, id pulid.ID) (*ent.WebhookEndpoint, error) {
	ep, err := tx.WebhookEndpoint.Query().Where(webhookendpoint.ID(id)).ForUpdate().Only(ctx)
	if ent.IsNotFound(err) {
		return nil, nil
	}
	return ep, err
}

func (postgresLocks) heads(ctx context.Context, tx *ent.Tx, id pulid.ID, floor int64, n int) ([]*ent.WebhookDelivery, error) {
	return headsQuery(tx, id, floor, n).ForUpdate(entsql.WithLockAction(entsql.SkipLocked)).All(ctx)
}
