package changelog

import "fmt"

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
