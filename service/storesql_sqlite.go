package service

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	entsql "entgo.io/ent/dialect/sql"

	"github.com/segmentd/segmentd/changelog"
	"github.com/segmentd/segmentd/ent"
	"github.com/segmentd/segmentd/ent/predicate"
	"github.com/segmentd/segmentd/ent/schema/pulid"
)

// sqliteSQL is the service's SQL on SQLite.
type sqliteSQL struct{}

// rebind keeps the query: SQLite takes ? placeholders.
func (sqliteSQL) rebind(query string) string { return query }

// lockForUpdate adds nothing: SQLite has no row locks (its SELECT has no
// FOR UPDATE), and it needs none, since the service's write transactions
// begin IMMEDIATE (the database's write lock) and take turns on
// Service.writeMu, so no other writer runs between a read and its write.
func (sqliteSQL) lockForUpdate(*entsql.Selector) {}

// lockForNoKeyUpdate adds nothing, for the reason of lockForUpdate.
func (sqliteSQL) lockForNoKeyUpdate(*entsql.Selector) {}

// claimImportOwner claims nothing: one server serves a SQLite file (it
// holds the file's lock, store.LockForServer), so an import job whose
// heartbeat stopped is its own server's, and nobody else's to judge.
func (sqliteSQL) claimImportOwner(context.Context, *sql.DB) (*sql.Conn, int64, error) {
	return nil, 0, nil
}

// writersTakeTurns is true: SQLite has one writer, and its busy handler
// retries by sleeping, unfairly, so that under sustained concurrent writes
// one writer could wait past busy_timeout and fail; a Go mutex queues them.
func (sqliteSQL) writersTakeTurns() bool { return true }

// importsNeedHeartbeats is false: a heartbeat would queue behind the
// import's own write transaction, and with one server per file
// (store.LockForServer) nobody else judges its jobs.
func (sqliteSQL) importsNeedHeartbeats() bool { return false }

// staleImport is nil: the one server of the file is starting, so every
// unfinished job was its own and was interrupted.
func (sqliteSQL) staleImport(time.Time) predicate.ImportJob { return nil }

// stageImport stages with multi-row INSERTs (SQLite has no COPY).
func (sqliteSQL) stageImport(ctx context.Context, st *stager) error { return st.insertSQLite(ctx) }

// lockAgainstErasure takes nothing: SQLite's writers take turns already
// (writersTakeTurns, and IMMEDIATE transactions).
func (sqliteSQL) lockAgainstErasure(context.Context, *ent.Tx, bool) error { return nil }

// eventsPosition reads the events log's counter (store.Migrate's
// log_sequences): every event stored later has a larger log_seq, and
// writers commit in that order.
func (sqliteSQL) eventsPosition(ctx context.Context, db *sql.DB) (int64, bool, error) {
	var pos int64
	err := db.QueryRowContext(ctx, `SELECT COALESCE((SELECT seq FROM `+changelog.SQLiteSequences+` WHERE name = ?), 0)`,
		changelog.Events.Table).Scan(&pos)
	if err != nil {
		return 0, false, fmt.Errorf("events position: %w", err)
	}
	return pos, true, nil
}

func (sqliteSQL) usersWithEventsAfter(ctx context.Context, tx *ent.Tx, pos int64, names []string) ([]pulid.ID, error) {
	if len(names) == 0 {
		return nil, nil
	}
	q := `SELECT DISTINCT user_ref FROM events WHERE log_seq > ? AND user_ref IS NOT NULL AND name IN (?` + strings.Repeat(", ?", len(names)-1) + `)`
	args := []any{pos}
	for _, n := range names {
		args = append(args, n)
	}
	rows, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("users with events since the build: %w", err)
	}
	defer rows.Close()
	var out []pulid.ID
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("users with events since the build: %w", err)
		}
		out = append(out, pulid.ID(id))
	}
	return out, rows.Err()
}

// lockEventNames takes nothing: SQLite's writers take turns already.
func (sqliteSQL) lockEventNames(context.Context, *ent.Tx, []string, bool) error { return nil }
