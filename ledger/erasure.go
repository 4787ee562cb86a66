package ledger

import (
	"context"
	"fmt"

	"entgo.io/ent/dialect/sql"

	"github.com/segmentd/segmentd/ent/schema/pulid"
)

// ForgetEvents unlinks a user's log rows (membership changes and campaign
// activations) from their events, so that the events can be deleted while
// the rows stay and keep the figures whole: the erasure of a user
// (service.DeleteUser) calls it after ExitMany. The event_ref columns are
// immutable in ent's schema (nothing else may rewrite history), hence the
// plain UPDATE, written here because the ledger is the one writer of these
// tables.
func (w *Writer) ForgetEvents(ctx context.Context, user pulid.ID) error {
	for _, table := range []string{"membership_changes", "campaign_activations", "memberships"} {
		q, args := sql.Dialect(w.l.st.dialect()).Update(table).SetNull("event_ref").
			Where(sql.And(sql.EQ("user_ref", string(user)), sql.NotNull("event_ref"))).Query()
		if _, err := w.tx.ExecContext(ctx, q, args...); err != nil {
			return fmt.Errorf("ledger.ForgetEvents: %s: %w", table, err)
		}
	}
	return nil
}
