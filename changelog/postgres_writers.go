package changelog

import (
	"context"
	"fmt"
	"strings"
)

// On PostgreSQL a log row's position is (log_txid, seq), and a reader may
// deliver a row only when no transaction that can still commit a row
// sorting before it is running. The safe bound used to be the oldest
// transaction running anywhere on the cluster (pg_snapshot_xmin): a report
// or a psql session left open for a minute stopped every live subscriber
// for that minute. The bound is now the oldest running transaction that
// announced itself as a log writer:
//
//   - every segmentd transaction announces itself as its first statement
//     (PostgresAnnounceWriter: a shared advisory lock held to its end and
//     a transaction-local setting), before it has a transaction id, so any
//     id it gets later is newer than every snapshot taken before it;
//   - a statement trigger on each log table (PostgresGuardFunction) makes
//     the rule hold for every writer: a statement outside an announced
//     transaction announces itself if it has no transaction id yet (a
//     single INSERT), and fails if it has one (a transaction that wrote
//     elsewhere first and was never announced could hide behind a reader);
//   - the reader's bound (PostgresHorizonFunction) is its statement's
//     snapshot's xmax, lowered to every transaction in progress in that
//     snapshot except those that, just before it (PostgresSilentQuery),
//     ran with an id and without the lock: those can never write a log
//     row.
//
// The lock's key is PostgresWriterKey in the current database; shared
// locks never wait for each other. store.Migrate creates each function and
// trigger when missing and never replaces one: a changed definition needs
// a new name.

// PostgresWriterKey is the advisory lock key log writers hold shared. It
// must differ from every other advisory key segmentd takes in the
// single-bigint form: store's migrationLock (0x5e6d_0001), ledger's
// counterLock (0x5e6d_0002, taken exclusive by a transaction that holds
// this one shared) and service's erasureLock (0x5e6d_0003).
const PostgresWriterKey = 0x5e6d_0004

// postgresWriterSetting is the transaction-local setting an announced
// transaction carries, which the guard trigger reads (cheaper than
// looking itself up in pg_locks).
const postgresWriterSetting = "segmentd.log_writer"

// PostgresAnnounceWriter is the first statement of every segmentd
// transaction on PostgreSQL.
var PostgresAnnounceWriter = fmt.Sprintf(
	`SELECT pg_advisory_xact_lock_shared(%d), set_config('%s', 'on', true)`, PostgresWriterKey, postgresWriterSetting)

// PostgresSilentFunction creates segmentd_log_silent(): the transactions
// running now that cannot write a log row, because their backend does not
// hold the writers' lock and they already have an id (a writer takes the
// lock before it has one), as a bigint[] literal of their 32-bit ids.
var PostgresSilentFunction = fmt.Sprintf(`CREATE OR REPLACE FUNCTION segmentd_log_silent() RETURNS text
LANGUAGE sql VOLATILE AS $fn$
	WITH locks AS MATERIALIZED (SELECT locktype, transactionid::text::bigint AS xid32, pid, mode, granted, classid, objid, objsubid, database FROM pg_locks)
	SELECT COALESCE(array_agg(t.xid32)::text, '{}') FROM locks t
	WHERE t.locktype = 'transactionid' AND t.mode = 'ExclusiveLock' AND t.granted
	AND NOT EXISTS (SELECT 1 FROM locks a WHERE a.pid = t.pid AND a.locktype = 'advisory' AND a.granted
		AND a.classid = 0 AND a.objid = %d AND a.objsubid = 1
		AND a.database = (SELECT oid FROM pg_database WHERE datname = current_database()))
$fn$`, PostgresWriterKey)

// PostgresHorizonFunction creates segmentd_log_horizon(silent): the
// position (transaction id) below which every log row that will ever exist
// is committed or rolled back, as of the calling statement's snapshot,
// given segmentd_log_silent() read by an earlier statement. The order
// matters: a transaction silent before the snapshot is silent for good
// (it has an id and no lock, so it can never write a log), and a writer
// missing from the list (it took the lock or its id after that read) is
// in the snapshot or newer than it. Read the other way round, a writer
// that ended in between would count as silent. So the answer never goes
// down from one call to the next (readers may take a position they once
// passed as final). STABLE: pg_current_snapshot() inside is the caller's.
// Transaction ids in pg_locks are 32-bit; they are matched against the
// snapshot's 64-bit ids by their low 32 bits.
const PostgresHorizonFunction = `CREATE OR REPLACE FUNCTION segmentd_log_horizon(silent bigint[]) RETURNS xid8
LANGUAGE sql STABLE AS $fn$
	SELECT LEAST(pg_snapshot_xmax(snap.s), (
		SELECT min(x) FROM pg_snapshot_xip(snap.s) AS x
		WHERE (x::text::numeric % 4294967296)::bigint <> ALL (silent)))
	FROM (SELECT pg_current_snapshot() AS s) AS snap
$fn$`

// PostgresSilentQuery reads the list PostgresHorizonFunction takes.
const PostgresSilentQuery = `SELECT segmentd_log_silent()`

// PostgresGuardFunction creates the trigger function of PostgresGuard.
var PostgresGuardFunction = fmt.Sprintf(`CREATE OR REPLACE FUNCTION segmentd_log_writer_guard() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
	IF current_setting('%[1]s', true) IS DISTINCT FROM 'on' THEN
		IF pg_current_xact_id_if_assigned() IS NOT NULL THEN
			RAISE EXCEPTION 'segmentd: %% written by a transaction that did not announce itself as a log writer before its first write', TG_TABLE_NAME;
		END IF;
		PERFORM pg_advisory_xact_lock_shared(%[2]d);
		PERFORM set_config('%[1]s', 'on', true);
	END IF;
	RETURN NULL;
END
$fn$`, postgresWriterSetting, PostgresWriterKey)

// PostgresGuard is the statement that installs the guard trigger on the
// log table.
func (l Log) PostgresGuard() string {
	return l.SQL(`CREATE OR REPLACE TRIGGER segmentd_log_writer BEFORE INSERT ON {table}
		FOR EACH STATEMENT EXECUTE FUNCTION segmentd_log_writer_guard()`)
}

// A writer whose rows are known before it starts (an import writes one
// segment's entries and exits, and activations) may announce a narrower
// scope than every log: a WriterScope. A reader that follows only some keys
// of a log then waits for the writers of every log (the shared
// PostgresWriterKey) and for the scoped writers of its keys, and no other:
// a 1M-row import into one segment holds back neither the subscribers of
// other segments nor the events stream. A reader of every key of a log
// waits for every scoped writer of that log too.
//
// A scoped lock is the two-int advisory lock (log's WriterSpace, key hash):
// in pg_locks, classid = WriterSpace, objid = the hash as an unsigned 32-bit
// number, objsubid = 2. Hash 0 (scopeEveryKey) stands for every key of the
// log; a key that hashes to 0, or two keys that collide, only make a reader
// wait for a writer it need not wait for.
//
// The protocol's rule holds for scoped writers too: the announcement is the
// transaction's first statement, before it has an id. A scoped transaction
// must write log rows of its scope only: the guard trigger cannot see the
// rows (it is a statement trigger) and accepts them, so the one way in is
// WithWriterScope, whose callers name what they write.

// scopeEveryKey is the key hash of a scoped lock on every key of a log.
const scopeEveryKey = 0

// KeyHash is the 32-bit hash (FNV-1a) of a log key in scoped writer locks.
func KeyHash(key string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(key); i++ {
		h ^= uint32(key[i])
		h *= 16777619
	}
	return h
}

// ScopedLog is one log a scoped writer writes: the rows with Keys, or
// every row if Keys is nil.
type ScopedLog struct {
	Log  Log
	Keys []string
}

// WriterScope is what a scoped writer may write: its logs, with their keys.
type WriterScope []ScopedLog

// PostgresAnnounce is the first statement of a transaction with scope s:
// the scoped locks, in one statement, and the setting the guard reads.
func (s WriterScope) PostgresAnnounce() string {
	var b strings.Builder
	b.WriteString("SELECT ")
	for _, sl := range s {
		hashes := []uint32{scopeEveryKey}
		if sl.Keys != nil {
			hashes = hashes[:0]
			for _, k := range sl.Keys {
				hashes = append(hashes, KeyHash(k))
			}
		}
		for _, h := range hashes {
			fmt.Fprintf(&b, "pg_advisory_xact_lock_shared(%d, %d), ", sl.Log.WriterSpace, int32(h))
		}
	}
	fmt.Fprintf(&b, "set_config('%s', 'on', true)", postgresWriterSetting)
	return b.String()
}

// PostgresSilentForFunction creates segmentd_log_silent_for(space, keys):
// segmentd_log_silent() for a reader of the log with WriterSpace space
// that follows the keys with the hashes in keys (NULL: every key), and
// which of those keys a scoped writer with a transaction id holds
// (contended). A transaction is silent for the reader unless it holds the
// writers' shared lock, or a scoped lock of that log on one of those keys
// or on every key (any scoped lock of that log, for keys NULL). A reader
// of many keys sets the contended ones aside (their subscribers wait on
// their own, see package live), so that one import holds back only the
// subscribers of its segment.
var PostgresSilentForFunction = fmt.Sprintf(`CREATE OR REPLACE FUNCTION segmentd_log_silent_for(space bigint, keys bigint[], OUT silent text, OUT contended bigint[])
LANGUAGE sql VOLATILE AS $fn$
	WITH locks AS MATERIALIZED (SELECT locktype, transactionid::text::bigint AS xid32, pid, mode, granted, classid, objid, objsubid, database FROM pg_locks),
	ids AS (SELECT pid, xid32 FROM locks WHERE locktype = 'transactionid' AND mode = 'ExclusiveLock' AND granted),
	advisory AS (SELECT pid, classid, objid::text::bigint AS objid, objsubid FROM locks
		WHERE locktype = 'advisory' AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database()))
	SELECT
		(SELECT COALESCE(array_agg(t.xid32)::text, '{}') FROM ids t
		WHERE NOT EXISTS (SELECT 1 FROM advisory a WHERE a.pid = t.pid
			AND ((a.classid = 0 AND a.objid = %[1]d AND a.objsubid = 1)
				OR (a.objsubid = 2 AND a.classid::text::bigint = space
					AND (keys IS NULL OR a.objid = %[2]d OR a.objid = ANY (keys)))))),
		(SELECT COALESCE(array_agg(DISTINCT a.objid), '{}') FROM advisory a JOIN ids t ON t.pid = a.pid
		WHERE a.objsubid = 2 AND a.classid::text::bigint = space AND a.objid <> %[2]d AND a.objid = ANY (keys))
$fn$`, PostgresWriterKey, scopeEveryKey)

// PostgresSilentFor is the query, and its arguments, of the transactions
// silent for a reader of l that follows keys (all of them if all is set),
// as (silent, contended): silent is what PostgresHorizonFunction takes,
// contended the hashes (KeyHash) of the keys a scoped writer holds.
func (l Log) PostgresSilentFor(all bool, keys []string) (string, []any) {
	if all {
		return `SELECT silent, '{}' FROM segmentd_log_silent_for($1, NULL)`, []any{int64(l.WriterSpace)}
	}
	var b strings.Builder
	b.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%d", KeyHash(k))
	}
	b.WriteByte('}')
	return `SELECT silent, contended::text FROM segmentd_log_silent_for($1, $2::bigint[])`, []any{int64(l.WriterSpace), b.String()}
}

type writerScopeKey struct{}

// WithWriterScope returns a context whose transactions (begun by the
// store's driver) announce themselves as writers of scope only.
func WithWriterScope(ctx context.Context, scope WriterScope) context.Context {
	return context.WithValue(ctx, writerScopeKey{}, scope)
}

// WriterScopeOf returns the scope WithWriterScope put in ctx, if any.
func WriterScopeOf(ctx context.Context) (WriterScope, bool) {
	s, ok := ctx.Value(writerScopeKey{}).(WriterScope)
	return s, ok && len(s) > 0
}
