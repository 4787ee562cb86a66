package live

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/segmentd/segmentd/changelog"
)

// logStore is what differs between the stores in reading a log: how a
// position is read and compared. One implementation per store, side by
// side (sqlite.go, postgres.go), so that a third store, or a new cursor
// design, is one new file and one case in logStoreFor.
type logStore interface {
	// horizon reads what the next headQuery or readQuery needs to know,
	// before it runs, to tell which rows may be delivered (on PostgreSQL,
	// the running transactions that cannot write a log); "" on SQLite.
	horizon(ctx context.Context, db *sql.DB) (string, error)
	// headQuery selects the position (transaction text, sequence) of the
	// last row a reader may deliver now: one row, or none for an empty
	// log; its arguments are (horizon).
	headQuery(src Source, horizon string) (string, []any)
	// readQuery selects up to limit rows after `after` (and not after
	// upTo, if given), with key if not empty, in log order, as columns
	// (transaction text, sequence, id text, key, stable), where stable is
	// false for a row that must wait for older transactions to end.
	readQuery(src Source, horizon string, after changelog.Cursor, upTo *changelog.Cursor, key string, limit int) (string, []any)
	// within reports whether c is a position the log has handed out.
	within(ctx context.Context, db *sql.DB, src Source, c changelog.Cursor) (bool, error)
	// cursorOf reads the position of the row with id.
	cursorOf(ctx context.Context, db *sql.DB, src Source, id string) (changelog.Cursor, error)
}

// logStoreFor returns the log reader of the store with the ent dialect
// name given; any other name is an error, not a guess.
func logStoreFor(dialect string) (logStore, error) {
	switch dialect {
	case SQLite:
		return sqliteLog{}, nil
	case Postgres:
		return postgresLog{}, nil
	default:
		return nil, fmt.Errorf("no log reader for dialect %q (want %q or %q)", dialect, SQLite, Postgres)
	}
}
