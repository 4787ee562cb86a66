package ledger

import (
	"context"
	"fmt"
	"time"

	"entgo.io/ent/dialect"
	"entgo.io/ent/dialect/sql"

	"github.com/segmentd/segmentd/ent"
	"github.com/segmentd/segmentd/ent/schema/pulid"
	"github.com/segmentd/segmentd/ent/segment"
)

// sqlite is the ledger's SQL for SQLite: one writer at a time (the
// service's transactions begin IMMEDIATE and take turns), so no row locks
// and one counter shard.
type sqlite struct{}

func (sqlite) dialect() string          { return dialect.SQLite }
func (sqlite) serialized() bool         { return true }
func (sqlite) shard() int               { return 0 }
func (sqlite) shards() bool             { return false }
func (sqlite) lockRows(s *sql.Selector) {}

// lockSkipping adds nothing: the one writer is this transaction.
func (sqlite) lockSkipping(*sql.Selector, sql.LockStrength) {}

func (sqlite) lockSegment(ctx context.Context, tx *ent.Tx, id pulid.ID) (bool, error) {
	return tx.Segment.Query().Where(segment.ID(id)).Exist(ctx)
}

func (sqlite) lockCounterRebuilds(context.Context, *ent.Tx) error   { return nil }
func (sqlite) lockMembershipWriters(context.Context, *ent.Tx) error { return nil }

func (sqlite) compactCounters(context.Context, *ent.Client, int64, int64) (int64, error) {
	return 0, nil
}

func (sqlite) exitStaged(ctx context.Context, tx *ent.Tx, where string, job, seg string, at time.Time, reason string) ([]enteredCount, error) {
	// SQLite has one writer, this transaction: the three statements
	// see the same rows.
	_, err := tx.ExecContext(ctx, `INSERT INTO membership_changes (segment_ref, user_ref, kind, source, at, reason)
SELECT m.segment_ref, m.user_ref, 'EXITED', 'IMPORT', $3, CAST($4 AS TEXT) FROM memberships m WHERE `+where, job, seg, at, reason)
	if err != nil {
		return nil, fmt.Errorf("log exits: %w", err)
	}
	_, err = tx.ExecContext(ctx, `DELETE FROM membership_deadlines WHERE why = 'EXPIRE' AND segment_ref = CAST($2 AS TEXT)
AND user_ref IN (SELECT m.user_ref FROM memberships m WHERE `+where+`)`, job, seg)
	if err != nil {
		return nil, fmt.Errorf("delete deadlines: %w", err)
	}
	counts, err := scanEnteredCounts(tx.QueryContext(ctx, "SELECT m.entered_at, count(*) FROM memberships m WHERE "+where+" GROUP BY m.entered_at", job, seg))
	if err != nil {
		return nil, err
	}
	deleted, err := execCount(ctx, tx, "DELETE FROM memberships AS m WHERE "+where, job, seg)
	if err != nil {
		return nil, fmt.Errorf("remove members: %w", err)
	}
	removed := 0
	for _, c := range counts {
		removed += c.n
	}
	if deleted != removed {
		return nil, fmt.Errorf("remove members: deleted %d, logged %d", deleted, removed)
	}
	return counts, nil
}
