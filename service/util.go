package service

import (
	"database/sql"
	"errors"

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
