package service

import (
	"database/sql"
	"errors"
)

// isNoRows reports the error ent returns for an upsert whose every row was a
// conflict (DO NOTHING inserts nothing and returns no row).
func isNoRows(err error) bool { return errors.Is(err, sql.ErrNoRows) }
