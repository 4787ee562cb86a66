package store_test

import (
	"context"
	"strings"
	"testing"

	"github.com/segmentd/segmentd/changelog"
	"github.com/segmentd/segmentd/internal/testenv"
	"github.com/segmentd/segmentd/store"
)

// TestTransactionsAnnounceWhatTheyWrite: on PostgreSQL a transaction of
// the store's client holds the log writers' lock; one begun with
// changelog.WithWriterScope holds its scope's locks instead; one begun
// with changelog.WithNoLogWrites holds neither, and the log tables' guard
// refuses a log row from it once it has written elsewhere.
func TestTransactionsAnnounceWhatTheyWrite(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, testenv.DatabaseURL(t, "postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	locks := func(ctx context.Context) (writer, scoped int, quietWrite error) {
		t.Helper()
		tx, err := st.Client.Tx(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback() //nolint:errcheck
		rows, err := tx.QueryContext(ctx, `SELECT
			count(*) FILTER (WHERE classid = 0 AND objid = $1 AND objsubid = 1),
			count(*) FILTER (WHERE classid = $2 AND objid = $3 AND objsubid = 2)
			FROM pg_locks WHERE pid = pg_backend_pid() AND locktype = 'advisory' AND granted`,
			changelog.PostgresWriterKey, changelog.MembershipChanges.WriterSpace, int64(changelog.KeyHash("seg_scoped")))
		if err != nil {
			t.Fatal(err)
		}
		if !rows.Next() {
			t.Fatal(rows.Err())
		}
		if err := rows.Scan(&writer, &scoped); err != nil {
			t.Fatal(err)
		}
		rows.Close()
		// A write elsewhere gives the transaction its id.
		if _, err := tx.ExecContext(ctx, `CREATE TEMP TABLE announce_test (n int) ON COMMIT DROP`); err != nil {
			t.Fatal(err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO announce_test VALUES (1)`); err != nil {
			t.Fatal(err)
		}
		_, quietWrite = tx.ExecContext(ctx, `INSERT INTO membership_changes (segment_ref, user_ref, kind, source, at, reason)
			VALUES ('seg_scoped', 'usr_x', 'ENTERED', 'MANUAL', now(), 'test')`)
		return writer, scoped, quietWrite
	}
	if w, s, _ := locks(ctx); w != 1 || s != 0 {
		t.Errorf("a plain transaction holds %d writers' locks and %d scoped locks, want 1 and 0", w, s)
	}
	scoped := changelog.WithWriterScope(ctx, changelog.WriterScope{{Log: changelog.MembershipChanges, Keys: []string{"seg_scoped"}}})
	if w, s, _ := locks(scoped); w != 0 || s != 1 {
		t.Errorf("a scoped transaction holds %d writers' locks and %d scoped locks, want 0 and 1", w, s)
	}
	w, s, err := locks(changelog.WithNoLogWrites(ctx))
	if w != 0 || s != 0 {
		t.Errorf("a transaction that writes no log holds %d writers' locks and %d scoped locks, want none", w, s)
	}
	if err == nil || !strings.Contains(err.Error(), "did not announce itself") {
		t.Errorf("a transaction that writes no log wrote a log row after another write: %v", err)
	}
}
