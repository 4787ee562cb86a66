// Package service holds segmentd's use cases: define segments and campaigns,
// track events, move users in and out of segments, activate campaigns. It ties
// the data model (ent), the condition language (trigger) and the live broker
// together; the GraphQL resolvers and HTTP handlers call it and nothing else.
package service

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentd/segmentd/changelog"
	"github.com/segmentd/segmentd/ent"
	"github.com/segmentd/segmentd/ledger"
	"github.com/segmentd/segmentd/pubsub"
	"github.com/segmentd/segmentd/store"
)

// Service runs the use cases against one database. New builds it whole: it
// has no field to fill in afterwards.
type Service struct {
	client *ent.Client
	// dialect is dialect.SQLite or dialect.Postgres.
	dialect string
	// sql is the store-specific SQL of the service's store.
	sql storeSQL
	// db is the database under client, for what ent cannot say: COPY into
	// PostgreSQL (imports) and the import owner's advisory lock.
	db  *sql.DB
	log *slog.Logger
	// clock is the clock; tests inject their own.
	clock func() time.Time
	// broker is signalled after commits that write the logs.
	broker pubsub.Broker
	// background is the context of background work (imports); the server
	// cancels it when it stops.
	background context.Context
	// uploadDir is where imports keep their copies of uploaded files.
	uploadDir string

	jobs sync.WaitGroup // running imports
	// sweepers is the running expiry sweeper (StartSweeper); nextSweep is
	// when it means to look at the deadlines next (Unix nanoseconds, real
	// time).
	sweepers  sync.WaitGroup
	nextSweep atomic.Int64
	// ownerConn holds the advisory lock of ownerKey, the owner of this
	// server's import jobs (PostgreSQL; see ClaimImportOwner).
	ownerConn *sql.Conn
	ownerKey  int64

	programs programCache
	exits    exitCache
	// backfills are the behaviour-state builds running on this replica
	// (BehaviorBackfills).
	backfills backfillRegistry
	userPage  int        // users a fill reads at a time; 0: dynamicPage (tests set it)
	writeMu   sync.Mutex // SQLite: one write transaction at a time
	// defsMu: one segment create, update or delete at a time in this
	// process, with the behaviour states built ahead of its transaction
	// (staged, see prebuildBehaviorStates), which another change's
	// dropUnusedBehaviorStates would otherwise delete as unused.
	defsMu sync.Mutex
	staged *stagedBuild

	// led is the ledger of the store: the one writer of memberships,
	// their log, activations and counters.
	led *ledger.Ledger
	// metrics is told what committed (never nil).
	metrics Metrics
}

// Config is what a Service takes besides its store. Every field is
// optional: the zero Config gives a Service of one process that logs to
// slog.Default() and keeps uploads in os.TempDir().
type Config struct {
	// Log receives the service's logs; nil means slog.Default().
	Log *slog.Logger
	// Broker is signalled after commits that write the logs (membership
	// changes, events, activations, imports); nil means an in-process
	// pubsub.Memory, enough for one process. Replicas on one PostgreSQL
	// database need pubsub.NewPostgres to wake each other.
	Broker pubsub.Broker
	// Background is the context of background work (imports): cancelling
	// it stops them. Nil means context.Background().
	Background context.Context
	// UploadDir is where imports keep their copies of uploaded files;
	// empty means os.TempDir().
	UploadDir string
	// Now is the clock; nil means time.Now. Tests inject their own.
	Now func() time.Time
	// Metrics, if set, is told what each committed change did (see
	// Metrics); nil counts nothing.
	Metrics Metrics
}

// New returns a Service on st, which must be open (Client, DB and a known
// Dialect); it fails otherwise. The service does not own st: the caller
// closes it, and the broker, after the service's work has ended.
func New(st *store.Store, cfg Config) (*Service, error) {
	switch {
	case st == nil:
		return nil, errors.New("service.New: no store")
	case st.Client == nil || st.DB == nil:
		return nil, errors.New("service.New: the store is not open")
	}
	sq, err := storeSQLFor(st.Dialect)
	if err != nil {
		return nil, fmt.Errorf("service.New: %w", err)
	}
	led, err := ledger.New(st.Dialect)
	if err != nil {
		return nil, fmt.Errorf("service.New: %w", err)
	}
	var metrics Metrics = noMetrics{}
	if cfg.Metrics != nil {
		metrics = cfg.Metrics
		led = led.WithObserver(metrics)
	}
	s := &Service{
		client:     st.Client,
		dialect:    st.Dialect,
		sql:        sq,
		db:         st.DB,
		log:        cfg.Log,
		clock:      cfg.Now,
		broker:     cfg.Broker,
		background: cfg.Background,
		uploadDir:  cfg.UploadDir,
		led:        led,
		metrics:    metrics,
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.clock == nil {
		s.clock = time.Now
	}
	if s.broker == nil {
		s.broker = pubsub.NewMemory()
	}
	if s.background == nil {
		s.background = context.Background()
	}
	if s.uploadDir == "" {
		s.uploadDir = os.TempDir()
	}
	return s, nil
}

// ledger is the one writer of memberships, their log, activations and
// counters, on the service's store.
func (s *Service) ledger() *ledger.Ledger { return s.led }

// publish signals the logs a committed transaction wrote, as the ledger
// reported them.
func (s *Service) publish(t ledger.Topics) {
	if t.Changes() {
		s.notify(changelog.MembershipChanges.Topic)
	}
	if t.Activations() {
		s.notify(changelog.CampaignActivations.Topic)
	}
	s.wakeSweeper(t.Deadline)
}

// now is the clock in UTC, to the microsecond: PostgreSQL keeps
// microseconds, so a time returned by a mutation reads back identically.
func (s *Service) now() time.Time { return s.clock().UTC().Truncate(time.Microsecond) }

// inTx runs fn in a transaction: committed if fn returns nil, rolled back
// otherwise. Work that must follow the commit (publishing to subscribers)
// registers with tx.OnCommit.
//
// On SQLite, transactions of this process take turns on a mutex before they
// ask SQLite for its write lock: SQLite's busy handler retries by sleeping,
// unfairly, so that under sustained concurrent writes one writer could wait
// past busy_timeout and fail; a Go mutex queues them instead.
func (s *Service) inTx(ctx context.Context, fn func(tx *ent.Tx) error) error {
	if s.sql.writersTakeTurns() {
		s.writeMu.Lock()
		defer s.writeMu.Unlock()
	}
	tx, err := s.client.Tx(ctx)
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
			s.log.Error("rollback failed", "err", rerr)
		}
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}
