package ledger

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"entgo.io/ent/dialect"
	"entgo.io/ent/dialect/sql"
	"github.com/lib/pq"

	"github.com/segmentd/segmentd/changelog"
	"github.com/segmentd/segmentd/ent"
	"github.com/segmentd/segmentd/ent/schema/pulid"
	"github.com/segmentd/segmentd/ent/segment"
)

// postgres is the ledger's SQL for PostgreSQL: concurrent writers, so row
// locks where reads must stay true, and counters spread over shards.
type postgres struct{}

// counterLock is the advisory lock key that makes replicas rebuild or
// compact the counters one at a time.
const counterLock = 0x5e6d_0002

func (postgres) dialect() string          { return dialect.Postgres }
func (postgres) serialized() bool         { return false }
func (postgres) shard() int               { return rand.IntN(int(shardsInUse.Load())) }
func (postgres) shards() bool             { return true }
func (postgres) lockRows(s *sql.Selector) { s.For(sql.LockNoKeyUpdate) }
func (postgres) lockSkipping(s *sql.Selector, strength sql.LockStrength) {
	s.For(strength, sql.WithLockAction(sql.SkipLocked))
}

func (postgres) lockKeys(s *sql.Selector) { s.For(sql.LockKeyShare) }

// guardTrigger is the name of the log writers' guard trigger on each log
// table (changelog.Log.PostgresGuard).
const guardTrigger = "segmentd_log_writer"

// withoutForeignKeyChecks sets session_replication_role to replica for f,
// which skips triggers, and with them the foreign key checks: a staged
// entry's rows cost about twice as much with them (two to four lookups and
// a row lock per row, in SQL run row by row). A role that may not set it
// (neither a superuser nor granted SET on the parameter) gets "permission
// denied": the savepoint undoes that and f runs with the checks.
//
// Skipping triggers would skip every trigger on the tables f writes, not
// only the foreign key checks and the log writers' guard (which has
// nothing to do: the transaction announced itself first). So the checks
// stay on whenever those tables have any other trigger (one an operator
// added, or a test's): they run, and f is slower.
func (postgres) withoutForeignKeyChecks(ctx context.Context, tx *ent.Tx, f func() error) error {
	others, err := countRows(ctx, tx, `SELECT count(*) FROM pg_trigger
WHERE tgrelid IN (to_regclass('memberships'), to_regclass('membership_changes'), to_regclass('campaign_activations'), to_regclass('membership_deadlines'))
AND NOT tgisinternal AND tgname <> $1`, guardTrigger)
	if err != nil {
		return fmt.Errorf("find triggers: %w", err)
	}
	if others > 0 {
		return f()
	}
	if _, err := tx.ExecContext(ctx, "SAVEPOINT ledger_replica_role"); err != nil {
		return fmt.Errorf("savepoint: %w", err)
	}
	if _, err := tx.ExecContext(ctx, "SET LOCAL session_replication_role = replica"); err != nil {
		if _, rerr := tx.ExecContext(ctx, "ROLLBACK TO SAVEPOINT ledger_replica_role"); rerr != nil {
			return fmt.Errorf("session_replication_role: %w (and rolling back to the savepoint: %v)", err, rerr)
		}
		return f()
	}
	if _, err := tx.ExecContext(ctx, "RELEASE SAVEPOINT ledger_replica_role"); err != nil {
		return fmt.Errorf("release savepoint: %w", err)
	}
	if err := f(); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, "SET LOCAL session_replication_role = origin"); err != nil {
		return fmt.Errorf("session_replication_role: %w", err)
	}
	return nil
}

// enterStaged writes a staged set's entries in one statement: the
// memberships' RETURNING feeds the log rows, the deadlines and the
// activations, so that import_ids is read and joined once, and every table
// is written in the order of k (the file's), which keeps their indexes'
// inserts at the end of each index instead of at random pages (a hash
// join's batches would scatter them).
func (postgres) enterStaged(ctx context.Context, tx *ent.Tx, set StagedSet, camps []pulid.ID) (int, []int, bool, error) {
	args := []any{string(set.Job), string(set.Segment), set.At, set.Reason}
	var q strings.Builder
	q.WriteString(`WITH m AS (
  INSERT INTO memberships (id, segment_ref, user_ref, entered_at, source, reason)
  SELECT 'mem_' || i.k, CAST($2 AS TEXT), u.id, $3, 'IMPORT', CAST($4 AS TEXT)
  FROM import_ids i JOIN users u ON u.user_id = i.user_id
  WHERE i.job_ref = CAST($1 AS TEXT)
  ORDER BY i.k
  ON CONFLICT (segment_ref, user_ref) DO NOTHING
  RETURNING id, user_ref
), logged AS (
  INSERT INTO membership_changes (segment_ref, user_ref, kind, source, at, reason)
  SELECT CAST($2 AS TEXT), m.user_ref, 'ENTERED', 'IMPORT', $3, CAST($4 AS TEXT) FROM m
)`)
	if set.ExpiresAt != nil {
		args = append(args, *set.ExpiresAt)
		fmt.Fprintf(&q, `, deadlines AS (
  INSERT INTO membership_deadlines (segment_ref, user_ref, due_at, why)
  SELECT CAST($2 AS TEXT), m.user_ref, $%d, 'EXPIRE' FROM m
  ON CONFLICT (segment_ref, user_ref, why) DO UPDATE SET due_at = excluded.due_at
)`, len(args))
	}
	// ONCE: entry 1, which a user who activated the campaign before has.
	for n, c := range camps {
		args = append(args, string(c), activationSuffix(n))
		fmt.Fprintf(&q, `, a%d AS (
  INSERT INTO campaign_activations (id, campaign_ref, user_ref, segment_ref, activated_at, entry, membership_ref)
  SELECT 'act_' || substr(m.id, 5) || CAST($%d AS TEXT), CAST($%d AS TEXT), m.user_ref, CAST($2 AS TEXT), $3, 1, m.id FROM m
  ON CONFLICT (campaign_ref, user_ref, entry) DO NOTHING
  RETURNING 1
)`, n, len(args), len(args)-1)
	}
	q.WriteString("\nSELECT (SELECT count(*) FROM m)")
	for n := range camps {
		fmt.Fprintf(&q, ", (SELECT count(*) FROM a%d)", n)
	}
	defer timed(ctx, "enter staged (memberships, log, activations)")()
	counts := make([]int, 1+len(camps))
	dst := make([]any, len(counts))
	for i := range counts {
		dst[i] = &counts[i]
	}
	rows, err := tx.QueryContext(ctx, q.String(), args...)
	if err != nil {
		return 0, nil, false, fmt.Errorf("add members: %w", err)
	}
	defer rows.Close()
	if !rows.Next() {
		return 0, nil, false, fmt.Errorf("add members: no counts: %w", rows.Err())
	}
	if err := rows.Scan(dst...); err != nil {
		return 0, nil, false, fmt.Errorf("add members: %w", err)
	}
	if err := rows.Close(); err != nil {
		return 0, nil, false, fmt.Errorf("add members: %w", err)
	}
	return counts[0], counts[1:], true, nil
}

func (postgres) lockSegment(ctx context.Context, tx *ent.Tx, id pulid.ID) (bool, error) {
	ids, err := tx.Segment.Query().Where(segment.ID(id)).ForUpdate().IDs(ctx)
	if err != nil {
		return false, err
	}
	return len(ids) > 0, nil
}

func (postgres) lockCounterRebuilds(ctx context.Context, tx *ent.Tx) error {
	_, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock($1)", counterLock)
	return err
}

func (postgres) lockMembershipWriters(ctx context.Context, tx *ent.Tx) error {
	_, err := tx.ExecContext(ctx, "LOCK TABLE memberships, membership_changes IN SHARE MODE")
	return err
}

func (postgres) compactCounters(ctx context.Context, client *ent.Client, bucket, day int64) (int64, error) {
	res, err := client.ExecContext(ctx, `
WITH moved AS (
  DELETE FROM segment_counters
  WHERE shard > 0 AND ((bucket >= 0 AND bucket < $1) OR bucket < $2)
  RETURNING segment_ref, bucket, entered, exited, members
)
INSERT INTO segment_counters (segment_ref, bucket, shard, entered, exited, members)
SELECT segment_ref, bucket, 0, SUM(entered), SUM(exited), SUM(members) FROM moved GROUP BY segment_ref, bucket
ON CONFLICT (segment_ref, bucket, shard) DO UPDATE SET
  entered = segment_counters.entered + excluded.entered,
  exited = segment_counters.exited + excluded.exited,
  members = segment_counters.members + excluded.members`, bucket, day)
	if err != nil {
		return 0, err
	}
	n, _ := res.RowsAffected()
	return n, nil
}

func (postgres) exitStaged(ctx context.Context, tx *ent.Tx, where string, job, seg string, at time.Time, reason string) ([]enteredCount, error) {
	// One statement, so that the rows deleted are exactly the rows
	// logged, whatever commits meanwhile.
	counts, err := scanEnteredCounts(tx.QueryContext(ctx, `WITH gone AS (
  DELETE FROM memberships m WHERE `+where+` RETURNING m.segment_ref, m.user_ref, m.entered_at
), cleared AS (
  DELETE FROM membership_deadlines d USING gone
  WHERE d.segment_ref = gone.segment_ref AND d.user_ref = gone.user_ref AND d.why = 'EXPIRE'
), logged AS (
  INSERT INTO membership_changes (segment_ref, user_ref, kind, source, at, reason)
  SELECT segment_ref, user_ref, 'EXITED', 'IMPORT', $3, CAST($4 AS TEXT) FROM gone
)
SELECT entered_at, count(*) FROM gone GROUP BY entered_at`, job, seg, at, reason))
	if err != nil {
		return nil, fmt.Errorf("remove members: %w", err)
	}
	return counts, nil
}

func (postgres) takeDue(ctx context.Context, tx *ent.Tx, now time.Time, limit int) ([]dueDeadline, error) {
	// One statement: the deadlines, then their users (as every writer of
	// memberships locks them first), then the memberships, each with SKIP
	// LOCKED so that sweepers of several replicas take different rows and
	// never wait. A deadline whose user we hold but whose membership is
	// not there at all is gone (a deleted segment's); one whose user or
	// membership another transaction holds is left for a later sweep.
	// Earliest first by the due_at index alone: a tie-breaker would sort
	// every deadline due at one instant, each batch.
	rows, err := tx.QueryContext(ctx, `WITH due AS MATERIALIZED (
  SELECT id, segment_ref, user_ref, due_at FROM membership_deadlines
  WHERE why = 'EXPIRE' AND due_at <= $1 ORDER BY due_at LIMIT $2
  FOR UPDATE SKIP LOCKED
), locked_users AS MATERIALIZED (
  SELECT u.id FROM users u WHERE u.id IN (SELECT user_ref FROM due)
  FOR NO KEY UPDATE SKIP LOCKED
), locked_members AS MATERIALIZED (
  SELECT m.id, m.segment_ref, m.user_ref, m.entered_at FROM memberships m
  JOIN due ON due.segment_ref = m.segment_ref AND due.user_ref = m.user_ref
  JOIN locked_users lu ON lu.id = m.user_ref
  FOR UPDATE OF m SKIP LOCKED
)
SELECT due.id, due.segment_ref, due.user_ref, due.due_at, lm.id, lm.entered_at,
  lu.id IS NOT NULL AND lm.id IS NULL AND NOT EXISTS (
    SELECT 1 FROM memberships x WHERE x.segment_ref = due.segment_ref AND x.user_ref = due.user_ref)
FROM due
LEFT JOIN locked_users lu ON lu.id = due.user_ref
LEFT JOIN locked_members lm ON lm.segment_ref = due.segment_ref AND lm.user_ref = due.user_ref
ORDER BY due.due_at`, now, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []dueDeadline
	for rows.Next() {
		var (
			d       dueDeadline
			mem     sql.NullString
			entered sql.NullTime
		)
		if err := rows.Scan(&d.id, &d.segment, &d.user, &d.due, &mem, &entered, &d.gone); err != nil {
			return nil, err
		}
		d.membership, d.enteredAt = pulid.ID(mem.String), entered.Time
		out = append(out, d)
	}
	return out, rows.Err()
}

func (postgres) exitExpired(ctx context.Context, tx *ent.Tx, exits []Exit, deadlines []int64) error {
	mems, segs, users, ats, reasons := make([]string, len(exits)), make([]string, len(exits)),
		make([]string, len(exits)), make([]string, len(exits)), make([]string, len(exits))
	for i, x := range exits {
		mems[i], segs[i], users[i], reasons[i] = string(x.Membership), string(x.Segment), string(x.User), x.Reason
		ats[i] = x.At.UTC().Format("2006-01-02T15:04:05.999999Z07:00")
	}
	// One statement: the change log gets a row for exactly each
	// membership deleted.
	logged, err := countRows(ctx, tx, `WITH x AS MATERIALIZED (
  SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::text[]) AS x(mem, seg, usr, at, reason)
), gone AS (
  DELETE FROM memberships m USING x WHERE m.id = x.mem RETURNING m.id
), cleared AS (
  DELETE FROM membership_deadlines WHERE id = ANY($6::bigint[])
), logged AS (
  INSERT INTO membership_changes (segment_ref, user_ref, kind, source, at, reason)
  SELECT x.seg, x.usr, $7, $8, x.at, x.reason FROM x JOIN gone ON gone.id = x.mem
  RETURNING 1
)
SELECT count(*) FROM logged`, pq.Array(mems), pq.Array(segs), pq.Array(users), pq.Array(ats), pq.Array(reasons),
		pq.Array(deadlines), string(changelog.KindExited), string(changelog.SourceTime))
	if err != nil {
		return fmt.Errorf("exit memberships: %w", err)
	}
	if logged != len(exits) {
		return fmt.Errorf("exit memberships: logged %d of %d", logged, len(exits))
	}
	return nil
}
