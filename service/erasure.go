package service

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	entsql "entgo.io/ent/dialect/sql"

	"github.com/segmentd/segmentd"
	"github.com/segmentd/segmentd/changelog"
	"github.com/segmentd/segmentd/ent"
	"github.com/segmentd/segmentd/ent/behaviorstate"
	"github.com/segmentd/segmentd/ent/event"
	"github.com/segmentd/segmentd/ent/membership"
	"github.com/segmentd/segmentd/ent/predicate"
	"github.com/segmentd/segmentd/ent/schema/jsonmap"
	"github.com/segmentd/segmentd/ent/schema/pulid"
	"github.com/segmentd/segmentd/ent/user"
	"github.com/segmentd/segmentd/ent/webhookdelivery"
	"github.com/segmentd/segmentd/ledger"
)

// erasedPrefix starts the user_id of an erased user's tombstone. It begins
// with a control character, which every way in (events, identify, manual
// adds, imports) refuses in a user ID, so that no later call can name a
// tombstone: the same user ID again creates a new user.
const erasedPrefix = "\x7ferased:"

// ErasedReason is the reason of the exits an erasure makes.
const ErasedReason = "left: the user was erased"

// IsErased reports whether u is the tombstone of an erased user: a row
// kept, with an opaque user ID and no traits, so that the change log, the
// activations and the counters keep their references and totals. Reads
// that show users leave tombstones out (or show null in their place).
func IsErased(u *ent.User) bool { return u != nil && strings.HasPrefix(u.UserID, erasedPrefix) }

// NotErased is a user predicate that leaves tombstones out of a query.
func NotErased() predicate.User { return user.Not(Erased()) }

// Erased is a user predicate that selects tombstones only.
func Erased() predicate.User { return user.UserIDHasPrefix(erasedPrefix) }

// DeleteUserResult is what DeleteUser removed.
type DeleteUserResult struct {
	// UserID is the user ID erased.
	UserID string
	// Events is how many stored events of the user were deleted.
	Events int
	// Memberships is how many memberships the user left.
	Memberships int
}

// DeleteUser erases a user (the right to erasure), in one transaction that
// holds the user's row lock, so that an event, identify call or import of
// the same user waits for it and then creates a new user:
//   - every membership exits through the ledger (source ERASURE, reason
//     ErasedReason): logged, counted and streamed like any exit;
//   - the user's events (and the outcomes they hold) are deleted, after
//     the ledger unlinks its rows from them;
//   - the user leaves their groups;
//   - the user row becomes a tombstone: its user_id an opaque marker (see
//     erasedPrefix), its traits empty. The row stays because the change
//     log and the activations refer to it: deleting it would cascade into
//     them and rewrite past figures (growth, membersAt, activation counts).
//
// An unknown user ID is NOT_FOUND naming userId; an empty or malformed one
// BAD_USER_INPUT.
func (s *Service) DeleteUser(ctx context.Context, userID string) (*DeleteUserResult, error) {
	id := segmentd.NormalizeID(userID)
	if err := checkID("userId", id, true); err != nil {
		return nil, err
	}
	res := &DeleteUserResult{UserID: id}
	var topics ledger.Topics
	err := s.inTx(ctx, func(tx *ent.Tx) error {
		// Imports being applied first (see storeSQL.lockAgainstErasure).
		if err := s.sql.lockAgainstErasure(ctx, tx, true); err != nil {
			return err
		}
		// FOR UPDATE, not NO KEY UPDATE: the user_id (a key) changes, and
		// inserts that refer to the row (an entry, an activation) must wait
		// until the erasure commits, then see the tombstone's state.
		u, err := tx.User.Query().Where(user.UserID(id), s.sql.lockForUpdate).Only(ctx)
		if ent.IsNotFound(err) {
			return &segmentd.Error{Code: segmentd.CodeNotFound, Field: "userId", Message: fmt.Sprintf("no user with userId %q", id)}
		}
		if err != nil {
			return fmt.Errorf("lock user: %w", err)
		}
		now := s.now()
		members, err := tx.Membership.Query().Where(membership.UserRef(u.ID)).
			Order(ent.Asc(membership.FieldID)).All(ctx)
		if err != nil {
			return fmt.Errorf("find memberships: %w", err)
		}
		exits := make([]ledger.Exit, len(members))
		for i, m := range members {
			exits[i] = ledger.ExitOf(m, changelog.SourceErasure, ErasedReason, now)
		}
		w := s.ledger().Writer(tx)
		if _, err := w.ExitMany(ctx, exits); err != nil {
			return err
		}
		res.Memberships = len(exits)
		if err := w.ForgetEvents(ctx, u.ID); err != nil {
			return err
		}
		if err := w.ClearReevaluations(ctx, "", u.ID); err != nil {
			return err
		}
		if _, err := tx.BehaviorState.Delete().Where(behaviorstate.UserRef(u.ID)).Exec(ctx); err != nil {
			return fmt.Errorf("delete behaviour states: %w", err)
		}
		if err := s.scrubWebhookDeliveries(ctx, tx, u.ID); err != nil {
			return err
		}
		n, err := tx.Event.Delete().Where(event.Or(event.UserRef(u.ID), event.UserID(id))).Exec(ctx)
		if err != nil {
			return fmt.Errorf("delete events: %w", err)
		}
		res.Events = n
		if err := tx.User.UpdateOneID(u.ID).ClearGroups().SetTraits(jsonmap.Map{}).Exec(ctx); err != nil {
			return fmt.Errorf("clear traits and groups: %w", err)
		}
		// user_id is immutable in ent's schema (no other code may rename
		// a user): the tombstone's marker is the one rewrite.
		q, args := entsql.Dialect(s.dialect).Update(user.Table).
			Set(user.FieldUserID, erasedPrefix+pulid.NewULID()).
			Where(entsql.EQ(user.FieldID, string(u.ID))).Query()
		if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			return fmt.Errorf("mark the tombstone: %w", err)
		}
		topics, err = w.Flush(ctx)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("service.DeleteUser: %w", err)
	}
	s.publish(topics)
	s.log.Info("user erased", "events", res.Events, "memberships", res.Memberships)
	return res, nil
}

// scrubWebhookDeliveries takes the user out of the payloads of the webhook
// deliveries that name them (delivered or still to send): "user" becomes
// null, as in a message queued after the erasure, so that no query of
// WebhookEndpoint.deliveries and no later attempt shows their ID or traits.
// The payload is immutable to every other writer; this is its one rewrite.
func (s *Service) scrubWebhookDeliveries(ctx context.Context, tx *ent.Tx, user pulid.ID) error {
	rows, err := tx.WebhookDelivery.Query().Where(webhookdelivery.UserRef(user)).
		Select(webhookdelivery.FieldID, webhookdelivery.FieldPayload).All(ctx)
	if err != nil {
		return fmt.Errorf("find webhook deliveries: %w", err)
	}
	for _, r := range rows {
		data, _ := r.Payload["data"].(map[string]any)
		if data == nil {
			continue
		}
		data["user"] = nil
		b, err := json.Marshal(r.Payload)
		if err != nil {
			return fmt.Errorf("scrub webhook delivery %s: %w", r.ID, err)
		}
		if _, err := tx.ExecContext(ctx, s.sql.rebind("UPDATE webhook_deliveries SET payload = ? WHERE id = ?"), string(b), string(r.ID)); err != nil {
			return fmt.Errorf("scrub webhook delivery %s: %w", r.ID, err)
		}
	}
	return nil
}
