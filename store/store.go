// Package store opens segmentd's database, SQLite (the embedded default) or
// PostgreSQL, and migrates its schema. Both are reached through the same ent
// client; Dialect tells the few places that need store-specific SQL which one
// they talk to.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"
	_ "github.com/lib/pq"  // PostgreSQL driver
	_ "modernc.org/sqlite" // SQLite driver, pure Go: `go run` needs no C toolchain

	"github.com/segmentd/segmentd/changelog"
	"github.com/segmentd/segmentd/ent"
	"github.com/segmentd/segmentd/ent/migrate"
)

// Store is an open database with its ent client.
type Store struct {
	Client *ent.Client
	// DB is the pool for statements outside ent. On SQLite it is the
	// pool of readers (writes through it work, queueing on SQLite's lock);
	// the ent client writes through a writer connection of its own.
	DB      *sql.DB
	Dialect string // dialect.SQLite or dialect.Postgres
	// DSN is the driver's data source name (for PostgreSQL LISTEN connections).
	DSN string

	statements *atomic.Int64
	path       string   // SQLite: the database file
	lock       *os.File // SQLite: the server's lock file, see LockForServer
}

// ErrInUse is returned by LockForServer when another process serves the
// same SQLite file.
var ErrInUse = errors.New("database in use by another segmentd server")

// LockForServer makes this process the only server of a SQLite database:
// it holds an exclusive lock (flock) on the file "<database>.lock" until
// Close or the process ends, and fails with ErrInUse if another process
// holds it. Two servers on one file would take each other's running
// imports for interrupted ones. On PostgreSQL, where several replicas may
// serve one database, it does nothing.
func (s *Store) LockForServer() error {
	if s.Dialect == dialect.Postgres || s.path == "" || s.lock != nil {
		return nil
	}
	lockPath := s.path + ".lock"
	f, busy, err := lockFile(lockPath)
	if err != nil {
		return fmt.Errorf("store.LockForServer: %w", err)
	}
	if busy {
		return fmt.Errorf("store.LockForServer: %w: %s is served by another process (it holds %s); stop it first, or use PostgreSQL to run several servers on one database", ErrInUse, s.path, lockPath)
	}
	s.lock = f
	return nil
}

// Statements returns how many statements the ent client has run (reads,
// writes, transaction starts): for tests that check how a request's
// statements grow.
func (s *Store) Statements() int64 { return s.statements.Load() }

// SQLiteReaders is the number of reader connections on SQLite: reads run
// beside each other and beside the writer (WAL); more would only share
// the same cores.
const SQLiteReaders = 4

// Open opens the database that url names: "postgres://..." or
// "postgresql://..." for PostgreSQL; "sqlite:///abs/path.db",
// "sqlite://rel/path.db" or a plain file path for SQLite.
func Open(ctx context.Context, url string) (*Store, error) {
	drv, dsn, err := driverFor(url)
	if err != nil {
		return nil, err
	}
	db, err := sql.Open(drv, dsn)
	if err != nil {
		return nil, fmt.Errorf("store.Open: %w", err)
	}
	d := dialect.SQLite
	var read *sql.DB
	if drv == "postgres" {
		d = dialect.Postgres
		// The default of 2 idle connections makes every burst reconnect.
		db.SetMaxOpenConns(32)
		db.SetMaxIdleConns(32)
	} else {
		// SQLite has one writer: one connection writes, and writers queue
		// for it in Go rather than polling SQLite's lock. Readers, in WAL
		// mode, run beside it on connections of their own, which they take
		// deferred transactions on, so that no reader holds the write lock
		// or takes the writer's connection.
		db.SetMaxOpenConns(1)
		db.SetMaxIdleConns(1)
		if read, err = sql.Open(drv, strings.Replace(dsn, "_txlock=immediate", "_txlock=deferred", 1)); err != nil {
			db.Close()
			return nil, fmt.Errorf("store.Open: %w", err)
		}
		read.SetMaxOpenConns(SQLiteReaders)
		read.SetMaxIdleConns(SQLiteReaders)
		read.SetConnMaxIdleTime(5 * time.Minute)
	}
	db.SetConnMaxIdleTime(5 * time.Minute)
	closeAll := func() {
		db.Close()
		if read != nil {
			read.Close()
		}
	}
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := db.PingContext(pingCtx); err != nil {
		closeAll()
		return nil, fmt.Errorf("store.Open: connect to %s: %w", redact(url), err)
	}
	st := &Store{DB: db, Dialect: d, DSN: dsn, statements: new(atomic.Int64)}
	if read != nil {
		if err := read.PingContext(pingCtx); err != nil {
			closeAll()
			return nil, fmt.Errorf("store.Open: connect to %s: %w", redact(url), err)
		}
		st.DB = read
	}
	entDrv := &driver{Driver: entsql.OpenDB(d, db), read: read, n: st.statements}
	if d == dialect.Postgres {
		entDrv.announce = changelog.PostgresAnnounceWriter
	}
	st.Client = ent.NewClient(ent.Driver(entDrv))
	if d == dialect.SQLite {
		st.path = sqlitePath(dsn)
	}
	return st, nil
}

// Migrate brings the schema up to date. It adds tables, columns and indexes
// and never drops any, so that data written by a newer or older version
// survives.
//
// On PostgreSQL, replicas starting together take turns (an advisory lock),
// and the log tables get the columns that live streaming orders by (see
// package live): log_txid, the writing transaction's id, and log_seq.
func (s *Store) Migrate(ctx context.Context) error {
	migrateMu.Lock()
	defer migrateMu.Unlock()
	if s.Dialect == dialect.Postgres {
		conn, err := s.DB.Conn(ctx)
		if err != nil {
			return fmt.Errorf("store.Migrate: %w", err)
		}
		defer conn.Close()
		if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock($1)", migrationLock); err != nil {
			return fmt.Errorf("store.Migrate: lock: %w", err)
		}
		defer conn.ExecContext(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", migrationLock) //nolint:errcheck // released with the session anyway
	}
	if err := s.Client.Schema.Create(ctx,
		migrate.WithDropColumn(false),
		migrate.WithDropIndex(false),
		migrate.WithForeignKeys(true),
	); err != nil {
		return fmt.Errorf("store.Migrate: %w", err)
	}
	// Migrations never drop indexes, except those retired here on purpose.
	for _, stmt := range retiredIndexes {
		if _, err := s.DB.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("store.Migrate: %s: %w", stmt, err)
		}
	}
	staging := sqliteImportTables
	if s.Dialect == dialect.Postgres {
		staging = postgresImportTables
	}
	for _, stmt := range staging {
		if _, err := s.DB.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("store.Migrate: %s: %w", stmt, err)
		}
	}
	if s.Dialect == dialect.Postgres {
		for _, stmt := range postgresLogColumns() {
			if _, err := s.DB.ExecContext(ctx, stmt); err != nil {
				return fmt.Errorf("store.Migrate: %s: %w", stmt, err)
			}
		}
		for _, g := range postgresLogWriters() {
			var exists bool
			if err := s.DB.QueryRowContext(ctx, g.exists).Scan(&exists); err != nil {
				return fmt.Errorf("store.Migrate: %s: %w", g.exists, err)
			}
			if exists {
				continue
			}
			if _, err := s.DB.ExecContext(ctx, g.create); err != nil {
				return fmt.Errorf("store.Migrate: %s: %w", g.create, err)
			}
		}
	} else if err := s.sqliteLogPositions(ctx); err != nil {
		return fmt.Errorf("store.Migrate: %w", err)
	}
	return nil
}

// SQLiteLogTables are the log tables whose live position on SQLite is the
// log_seq column (changelog.SeqColumn) that sqliteLogPositions maintains.
// (membership_changes is the third log; its integer id is AUTOINCREMENT,
// never reused.)
var SQLiteLogTables = sqliteLogTables()

func sqliteLogTables() []string {
	var tables []string
	for _, l := range changelog.Logs() {
		if l.Seq == changelog.SeqColumn {
			tables = append(tables, l.Table)
		}
	}
	return tables
}

// sqliteLogPositions gives the SQLite log tables with text ids a position
// that is never reused. Their rowid is not one: SQLite gives a new row the
// largest rowid + 1, so after the newest rows are deleted (a campaign with
// its activations) new rows take positions that live readers have passed,
// and are never delivered. Instead, a trigger numbers every inserted row
// from a counter in log_sequences, which deletes never lower. Rows from
// before this migration keep their rowid as their position (the order
// they were read in), and the counter starts after the largest.
func (s *Store) sqliteLogPositions(ctx context.Context) error {
	tx, err := s.DB.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("log positions: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit, a no-op
	if _, err := tx.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS "+changelog.SQLiteSequences+" (name TEXT PRIMARY KEY, seq INTEGER NOT NULL)"); err != nil {
		return fmt.Errorf("log positions: %w", err)
	}
	for _, l := range changelog.Logs() {
		if l.Seq != changelog.SeqColumn {
			continue
		}
		var has int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM pragma_table_info(?) WHERE name = ?`, l.Table, l.Seq).Scan(&has); err != nil {
			return fmt.Errorf("log positions: %s: %w", l.Table, err)
		}
		stmts := []string{
			l.SQL(`INSERT OR IGNORE INTO {sequences} (name, seq) VALUES ('{table}', 0)`),
			l.SQL(`UPDATE {table} SET {seq} = rowid WHERE {seq} IS NULL`),
			l.SQL(`UPDATE {sequences} SET seq = max(seq, (SELECT coalesce(max({seq}), 0) FROM {table})) WHERE name = '{table}'`),
			l.SQL(`CREATE UNIQUE INDEX IF NOT EXISTS {table}_{seq} ON {table} ({seq})`),
			l.SQL(`CREATE TRIGGER IF NOT EXISTS {table}_{seq} AFTER INSERT ON {table} FOR EACH ROW BEGIN
  UPDATE {sequences} SET seq = seq + 1 WHERE name = '{table}';
  UPDATE {table} SET {seq} = (SELECT seq FROM {sequences} WHERE name = '{table}') WHERE rowid = NEW.rowid;
END`),
		}
		if has == 0 {
			stmts = append([]string{l.SQL(`ALTER TABLE {table} ADD COLUMN {seq} INTEGER`)}, stmts...)
		}
		for _, stmt := range stmts {
			if _, err := tx.ExecContext(ctx, stmt); err != nil {
				return fmt.Errorf("log positions: %s: %w", stmt, err)
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("log positions: %w", err)
	}
	return nil
}

// retiredIndexes drop the indexes that newer rules contradict: the unique
// (campaign, user) index of activations made a user's second activation of
// a campaign impossible, which reentry EVERY_ENTRY needs; the unique
// (campaign, user, entry) and (campaign, membership) indexes replace it.
var retiredIndexes = []string{
	`DROP INDEX IF EXISTS campaignactivation_campaign_ref_user_ref`,
}

// migrateMu serializes migrations within the process: ent's migration
// mutates its package-level table definitions, so two stores migrating at
// once in one process (parallel tests, servers started by tests) would race.
var migrateMu sync.Mutex

// migrationLock is the advisory lock key of schema migrations.
const migrationLock = 0x5e6d_0001

// postgresLogWriters installs the log writers' protocol (see
// changelog/postgres_writers.go): the readers' horizon and the guard
// trigger on every log table.
//
// Each statement runs only when what it creates is missing: creating a
// trigger locks its table against writes, and a server restarting beside
// running replicas would queue behind their transactions and block every
// writer behind it. A changed definition therefore gets a new name.
func postgresLogWriters() []guardedStatement {
	stmts := []guardedStatement{
		{`SELECT to_regprocedure('segmentd_log_silent()') IS NOT NULL`, changelog.PostgresSilentFunction},
		{`SELECT to_regprocedure('segmentd_log_horizon(bigint[])') IS NOT NULL`, changelog.PostgresHorizonFunction},
		{`SELECT to_regprocedure('segmentd_log_writer_guard()') IS NOT NULL`, changelog.PostgresGuardFunction},
		{`SELECT to_regprocedure('segmentd_log_silent_for(bigint,bigint[])') IS NOT NULL`, changelog.PostgresSilentForFunction},
	}
	for _, l := range changelog.Logs() {
		stmts = append(stmts, guardedStatement{
			exists: `SELECT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'segmentd_log_writer' AND tgrelid = to_regclass('` + l.Table + `'))`,
			create: l.PostgresGuard(),
		})
	}
	return stmts
}

// guardedStatement is a migration statement (create) that runs unless the
// query exists answers true.
type guardedStatement struct{ exists, create string }

// postgresLogColumns order the log tables by writing transaction on
// PostgreSQL, where ids do not follow commit order: every log gets the
// transaction column, a log_seq position if its ids are text, and indexes
// on (transaction, position), and on (key, transaction, position) if it
// names one.
func postgresLogColumns() []string {
	var stmts []string
	for _, l := range changelog.Logs() {
		stmts = append(stmts, l.SQL(`ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {tx} xid8 NOT NULL DEFAULT pg_current_xact_id()`))
		if l.Seq == changelog.SeqColumn {
			stmts = append(stmts, l.SQL(`ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {seq} bigserial`))
		}
		stmts = append(stmts, l.SQL(`CREATE INDEX IF NOT EXISTS {table}_log ON {table} ({tx}, {seq})`))
		if l.KeyIndex != "" {
			stmts = append(stmts, l.SQL(`CREATE INDEX IF NOT EXISTS {key_index} ON {table} ({key}, {tx}, {seq})`))
		}
	}
	return stmts
}

// The tables of CSV imports (see service/import.go), outside ent because
// they are bulk-loaded with store-specific statements (COPY on PostgreSQL):
// import_ids stages a file's distinct user IDs, each with the ULID that
// names the user, membership and activations it may create (on
// PostgreSQL, COPY fills a temporary table first and import_ids is its
// distinct set). It is UNLOGGED on PostgreSQL: a crash fails the job
// anyway. import_row_errors keeps every bad row of every job.
var sqliteImportTables = []string{
	`CREATE TABLE IF NOT EXISTS import_ids (job_ref TEXT NOT NULL, user_id TEXT NOT NULL, k TEXT NOT NULL, PRIMARY KEY (job_ref, user_id)) WITHOUT ROWID`,
	`CREATE TABLE IF NOT EXISTS import_row_errors (job_ref TEXT NOT NULL REFERENCES import_jobs (id) ON DELETE CASCADE, line INTEGER NOT NULL, value TEXT NOT NULL, reason TEXT NOT NULL, PRIMARY KEY (job_ref, line))`,
}

var postgresImportTables = []string{
	`CREATE UNLOGGED TABLE IF NOT EXISTS import_ids (job_ref text NOT NULL, user_id text NOT NULL, k text NOT NULL, PRIMARY KEY (job_ref, user_id))`,
	`CREATE TABLE IF NOT EXISTS import_row_errors (job_ref varchar(40) NOT NULL REFERENCES import_jobs (id) ON DELETE CASCADE, line bigint NOT NULL, value text NOT NULL, reason text NOT NULL, PRIMARY KEY (job_ref, line))`,
	// The server that runs a job: it holds an advisory lock on the key
	// while it lives (service.ClaimImportOwner).
	`ALTER TABLE import_jobs ADD COLUMN IF NOT EXISTS owner_key bigint`,
}

// Close closes the database, and releases the server lock if held.
func (s *Store) Close() error {
	err := s.Client.Close()
	if s.lock != nil {
		s.lock.Close()
		s.lock = nil
	}
	return err
}

// sqlitePath is the file of a SQLite DSN ("file:path?options"), or "" for
// an in-memory database.
func sqlitePath(dsn string) string {
	p, _, _ := strings.Cut(strings.TrimPrefix(dsn, "file:"), "?")
	if p == "" || p == ":memory:" {
		return ""
	}
	return p
}

func driverFor(raw string) (driver, dsn string, err error) {
	switch {
	case strings.HasPrefix(raw, "postgres://"), strings.HasPrefix(raw, "postgresql://"):
		u, err := url.Parse(raw)
		if err != nil {
			// url.Parse's error quotes the URL, or the part of it at fault,
			// which may be the password: it is not repeated.
			return "", "", fmt.Errorf("database URL %s does not parse; escape special characters of the user name and password as %%XX", redact(raw))
		}
		q := u.Query()
		// lib/pq defaults to sslmode=require, which a local server without
		// TLS refuses; on loopback, plain connections are what people mean.
		if q.Get("sslmode") == "" && isLoopback(u.Hostname()) {
			q.Set("sslmode", "disable")
			u.RawQuery = q.Encode()
		}
		return "postgres", u.String(), nil
	case strings.HasPrefix(raw, "sqlite://"):
		return "sqlite", sqliteDSN(strings.TrimPrefix(raw, "sqlite://")), nil
	case strings.Contains(raw, "://"):
		return "", "", fmt.Errorf("database URL %q: unsupported scheme; use postgres:// or sqlite://", redact(raw))
	case raw == "":
		return "", "", fmt.Errorf("database URL is empty")
	default:
		return "sqlite", sqliteDSN(raw), nil
	}
}

// sqliteDSN turns a path into a modernc DSN. WAL lets readers run beside the
// writer; busy_timeout makes writers queue instead of failing; immediate
// transactions take the write lock up front so that read-then-write
// transactions cannot deadlock on lock upgrade (see STACK-NOTES.md);
// synchronous(FULL) makes every acknowledged commit durable;
// case_sensitive_like makes LIKE (ent's Contains filters) case-sensitive, as
// on PostgreSQL, so that a filter means the same on both stores.
func sqliteDSN(path string) string {
	if strings.HasPrefix(path, "file:") {
		return path
	}
	return "file:" + path + "?_pragma=foreign_keys(1)&_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)&_pragma=synchronous(FULL)&_pragma=case_sensitive_like(1)&_txlock=immediate"
}

func isLoopback(host string) bool {
	if host == "localhost" || host == "" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// redact hides the password of a database URL for logs and errors.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return redactUnparsed(raw)
	}
	if u.User == nil {
		return raw
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}

// redactUnparsed hides the user information of a URL that does not parse:
// everything between "://" and the last "@" (a password that makes a URL
// unparsable may hold "/", "?" or "@" itself).
func redactUnparsed(raw string) string {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return raw
	}
	at := strings.LastIndex(rest, "@")
	if at < 0 {
		return raw
	}
	return scheme + "://xxxxx" + rest[at:]
}

// Redact hides the password of a database URL for logs and errors.
func Redact(raw string) string { return redact(raw) }

// BeginWriter begins a transaction on db outside ent that may write the
// log tables (bulk loads, test fixtures): on PostgreSQL it announces itself
// as a log writer first (changelog.PostgresAnnounceWriter), which the log
// tables' guard trigger requires of a transaction that wrote anything else
// before its first log row.
func BeginWriter(ctx context.Context, db *sql.DB, dialectName string) (*sql.Tx, error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("store.BeginWriter: %w", err)
	}
	if dialectName == dialect.Postgres {
		if _, err := tx.ExecContext(ctx, changelog.PostgresAnnounceWriter); err != nil {
			_ = tx.Rollback()
			return nil, fmt.Errorf("store.BeginWriter: announce: %w", err)
		}
	}
	return tx, nil
}
