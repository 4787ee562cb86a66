// Package service holds segmentd's use cases: define segments and campaigns,
// track events, move users in and out of segments, activate campaigns. It ties
// the data model (ent), the condition language (trigger) and the live broker
// together; the GraphQL resolvers and HTTP handlers call it and nothing else.
package service

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"entgo.io/ent/dialect"

	"github.com/segmentd/segmentd/ent"
	"github.com/segmentd/segmentd/ledger"
	"github.com/segmentd/segmentd/pubsub"
)

// Service runs the use cases against one database.
type Service struct {
	Client *ent.Client
	// Dialect is dialect.SQLite or dialect.Postgres.
	Dialect string
	Log     *slog.Logger
	// Now is the clock; tests inject their own.
	Now func() time.Time

	// Broker is signalled after commits that write the logs.
	Broker pubsub.Broker

	// DB is the database under Client, for what ent cannot say: COPY
	// into PostgreSQL (imports).
	DB *sql.DB
	// Background is the context of background work (imports); the server
	// cancels it when it stops. Nil means context.Background().
	Background context.Context
	// UploadDir is where imports keep their copies of uploaded files;
	// empty means os.TempDir().
	UploadDir string

	jobs sync.WaitGroup // running imports
	// ownerConn holds the advisory lock of ownerKey, the owner of this
	// server's import jobs (PostgreSQL; see ClaimImportOwner).
	ownerConn *sql.Conn
	ownerKey  int64

	programs programCache
	writeMu  sync.Mutex // SQLite: one write transaction at a time

	// led is the ledger of Dialect, the one writer of memberships, their
	// log, activations and counters (see ledgerFor).
	led *ledger.Ledger
}

// New returns a Service on client.
func New(client *ent.Client, dialect string, log *slog.Logger) *Service {
	if log == nil {
		log = slog.Default()
	}
	return &Service{Client: client, Dialect: dialect, Log: log, Now: time.Now, led: ledger.New(dialect)}
}

// ledger is the ledger of s.Dialect: the one New made, or a new one when
// the Service was built another way or its Dialect set later (ledger.New
// is cheap and stateless).
func (s *Service) ledger() *ledger.Ledger {
	if s.led != nil && s.led.Dialect() == s.Dialect {
		return s.led
	}
	return ledger.New(s.Dialect)
}

// publish signals the logs a committed transaction wrote, as the ledger
// reported them.
func (s *Service) publish(t ledger.Topics) {
	if t.Changes() {
		s.notify(TopicChanges)
	}
	if t.Activations() {
		s.notify(TopicActivations)
	}
}

// now is the clock in UTC, to the microsecond: PostgreSQL keeps
// microseconds, so a time returned by a mutation reads back identically.
func (s *Service) now() time.Time { return s.Now().UTC().Truncate(time.Microsecond) }

// inTx runs fn in a transaction: committed if fn returns nil, rolled back
// otherwise. Work that must follow the commit (publishing to subscribers)
// registers with tx.OnCommit.
//
// On SQLite, transactions of this process take turns on a mutex before they
// ask SQLite for its write lock: SQLite's busy handler retries by sleeping,
// unfairly, so that under sustained concurrent writes one writer could wait
// past busy_timeout and fail; a Go mutex queues them instead.
func (s *Service) inTx(ctx context.Context, fn func(tx *ent.Tx) error) error {
	if s.Dialect != dialect.Postgres {
		s.writeMu.Lock()
		defer s.writeMu.Unlock()
	}
	tx, err := s.Client.Tx(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer func() {
		if v := recover(); v != nil {
			_ = tx.Rollback()
			panic(v)
		}
	}()
	if err := fn(tx); err != nil {
		if rerr := tx.Rollback(); rerr != nil {
			s.Log.Error("rollback failed", "err", rerr)
		}
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}
