package service

import (
	"context"
	"database/sql"
	"errors"
	"time"

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
