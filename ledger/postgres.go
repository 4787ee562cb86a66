package ledger

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"entgo.io/ent/dialect"
	"entgo.io/ent/dialect/sql"

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
