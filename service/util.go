package service

import (
	"context"
	"database/sql"
	"errors"
	"time"

	entsql "entgo.io/ent/dialect/sql"
	"github.com/lib/pq"
)

// isNoRows reports the error ent returns for an upsert whose every row was a
// conflict (DO NOTHING inserts nothing and returns no row).
func isNoRows(err error) bool { return errors.Is(err, sql.ErrNoRows) }

// isRetryable reports PostgreSQL's deadlock and serialization failures:
// the transaction was rolled back whole and may simply run again.
func isRetryable(err error) bool {
	var pqErr *pq.Error
	return errors.As(err, &pqErr) && (pqErr.Code == "40P01" || pqErr.Code == "40001")
}

// every calls fn each interval until ctx ends.
func every(ctx context.Context, interval time.Duration, fn func()) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fn()
		}
	}
}

// forNoKeyUpdate, as a query predicate, locks the selected rows FOR NO KEY
// UPDATE (PostgreSQL): as exclusive as FOR UPDATE among writers of the
// rows, but it lets inserts that refer to them (a foreign key check takes
// FOR KEY SHARE) go on. Users are locked so: a campaign's backfill, which
// holds its segment and inserts activations that refer to users, would
// otherwise deadlock with an entry that holds its users and waits for the
// segment (see campaignForUpdate).
func forNoKeyUpdate(s *entsql.Selector) { s.For(entsql.LockNoKeyUpdate) }
