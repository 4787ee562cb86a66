package service

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"

	"github.com/segmentd/segmentd/ent"
	"github.com/segmentd/segmentd/ent/predicate"
	"github.com/segmentd/segmentd/ent/schema/pulid"
)

// storeSQL is what differs between the stores in the service's own SQL:
// one implementation per store, side by side (storesql_sqlite.go,
// storesql_postgres.go), so that the callers never ask which store they
// talk to and a third store is one new file and one case in storeSQLFor.
type storeSQL interface {
	// rebind turns a query written with ? placeholders into the store's
	// placeholder syntax.
	rebind(query string) string

	// lockForUpdate, as an ent query predicate (q.Where(x.lockForUpdate)),
	// locks the selected rows against other writers until the
	// transaction ends. The queries it serves have no edge path, so ent's
	// DISTINCT (which PostgreSQL refuses with FOR UPDATE) is never on.
	lockForUpdate(*entsql.Selector)

	// lockForNoKeyUpdate is lockForUpdate for rows that other
	// transactions insert references to: it excludes the rows' other
	// writers but not the foreign key checks of inserts that refer to
	// them. Users are locked so: a campaign's backfill, which holds its
	// segment and inserts activations that refer to users, would
	// otherwise deadlock with an entry that holds its users and waits
	// for the segment (see ledger.CampaignForChange).
	lockForNoKeyUpdate(*entsql.Selector)

	// claimImportOwner takes an owner key that says, for as long as conn
	// stays open, that this server is alive (see
	// Service.ClaimImportOwner). A nil conn with a nil error means the
	// store needs no owner: its server is alone on the database.
	claimImportOwner(ctx context.Context, db *sql.DB) (conn *sql.Conn, key int64, err error)

	// lockAgainstErasure makes an import's apply transaction (shared: many
	// at once) and an erasure (exclusive) take turns until tx ends: the
	// apply's INSERT ... SELECT joins users by user_id in its snapshot,
	// so an erasure committing meanwhile would see the import make its
	// tombstone a member. Row locks cannot say it: the apply reads users
	// it never locks.
	lockAgainstErasure(ctx context.Context, tx *ent.Tx, erasure bool) error

	// writersTakeTurns says whether the service's write transactions must
	// queue in the process (Service.writeMu) before they begin: see inTx.
	writersTakeTurns() bool

	// importsNeedHeartbeats says whether a running import renews its
	// job's heartbeat, by which other servers judge it alive.
	importsNeedHeartbeats() bool

	// staleImport selects, among unfinished import jobs found at start,
	// those whose server stopped; nil means every one of them.
	staleImport(now time.Time) predicate.ImportJob

	// stageImport loads an import file's IDs into the staging table the
	// store's fastest way.
	stageImport(ctx context.Context, st *stager) error

	// lockEventNames takes, until tx ends, a lock per event name: shared
	// by an ingest transaction for the names it stores, exclusive by a
	// segment change that builds behaviour states counting them, so that
	// no event of those names commits beside the build unseen by it (it
	// would be counted by neither). Nothing on SQLite, whose writers take
	// turns.
	lockEventNames(ctx context.Context, tx *ent.Tx, names []string, exclusive bool) error

	// eventsPosition is the events log's last position (SQLite: its
	// log_seq counter), for prebuildBehaviorStates; ok false where
	// behaviour states are built inside the segment's transaction instead.
	eventsPosition(ctx context.Context, db *sql.DB) (pos int64, ok bool, err error)
	// usersWithEventsAfter are the users of the events named names stored
	// after position pos.
	usersWithEventsAfter(ctx context.Context, tx *ent.Tx, pos int64, names []string) ([]pulid.ID, error)
}

// storeSQLFor returns the store-specific SQL for an ent dialect name
// (dialect.SQLite, dialect.Postgres). Any other name is an error: SQL
// written for one store is not a safe guess for another.
func storeSQLFor(dialectName string) (storeSQL, error) {
	switch dialectName {
	case dialect.SQLite:
		return sqliteSQL{}, nil
	case dialect.Postgres:
		return postgresSQL{}, nil
	default:
		return nil, fmt.Errorf("no store-specific SQL for dialect %q (want %q or %q)", dialectName, dialect.SQLite, dialect.Postgres)
	}
}
