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
	// before it runs, to tell which rows may be delivered to a reader of
	// the keys ks (on PostgreSQL, the running transactions that cannot
	// write a log row with one of them; "" on SQLite), and which of those
	// keys a writer of only some keys is writing now (contended, by
	// changelog.KeyHash; none on SQLite).
	horizon(ctx context.Context, db *sql.DB, src Source, ks keySet) (silent string, contended map[uint32]bool, err error)
	// headQuery selects the position (transaction text, sequence) of the
	// last row a reader may deliver now: one row, or none for an empty
	// log; its arguments are (horizon).
	headQuery(src Source, horizon string) (string, []any)
	// readQuery selects up to limit rows after `after` (and not after
	// upTo, if given), with a key in ks, in log order, as columns
	// (transaction text, sequence, id text, key, stable, horizon text),
	// where stable is false for a row that must wait for older
	// transactions to end and horizon is NULL; then one more row with a
	// NULL id: the position of the last row of any key that may be
	// delivered now (NULLs for none), and the horizon as text (NULL on a
	// store where every committed row may be delivered).
	readQuery(src Source, horizon string, after changelog.Cursor, upTo *changelog.Cursor, ks keySet, limit int) (string, []any)
	// within reports whether c is a position the log has handed out.
	within(ctx context.Context, db *sql.DB, src Source, c changelog.Cursor) (bool, error)
	// cursorOf reads the position of the row with id.
	cursorOf(ctx context.Context, db *sql.DB, src Source, id string) (changelog.Cursor, error)
}

// keySet is the keys a read follows: all of them, or a list.
type keySet struct {
	all  bool
	keys []string
}

// allKeys follows every key.
var allKeys = keySet{all: true}

// oneKey follows key, or every key if key is empty.
func oneKey(key string) keySet {
	if key == "" {
		return allKeys
	}
	return keySet{keys: []string{key}}
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
