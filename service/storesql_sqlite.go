package service

import (
	"context"
	"database/sql"
	"time"

	entsql "entgo.io/ent/dialect/sql"

	"github.com/segmentd/segmentd/ent"
	"github.com/segmentd/segmentd/ent/predicate"
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
