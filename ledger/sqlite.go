package ledger

import (
	"context"
	"fmt"
	"strings"
	"time"

	"entgo.io/ent/dialect"
	"entgo.io/ent/dialect/sql"

	"github.com/segmentd/segmentd/changelog"
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

// lockKeys adds nothing: the one writer is this transaction.
func (sqlite) lockKeys(*sql.Selector) {}

// withoutForeignKeyChecks runs f with the checks: SQLite cannot turn them
// off inside a transaction (PRAGMA foreign_keys is a no-op there), and
// they are cheap beside the inserts.
func (sqlite) withoutForeignKeyChecks(_ context.Context, _ *ent.Tx, f func() error) error { return f() }

// enterStaged has no single statement: SQLite has no INSERT in a WITH.
func (sqlite) enterStaged(context.Context, *ent.Tx, StagedSet, []pulid.ID) (int, []int, bool, error) {
	return 0, nil, false, nil
}

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

func (sqlite) takeDue(ctx context.Context, tx *ent.Tx, now time.Time, limit int) ([]dueDeadline, error) {
	// One writer, this transaction: nothing to lock, and a deadline
	// without a membership has none.
	rows, err := tx.QueryContext(ctx, `SELECT d.id, d.segment_ref, d.user_ref, d.due_at, m.id, m.entered_at
FROM membership_deadlines d LEFT JOIN memberships m ON m.segment_ref = d.segment_ref AND m.user_ref = d.user_ref
WHERE d.why = 'EXPIRE' AND d.due_at <= ? ORDER BY d.due_at LIMIT ?`, now, limit)
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
		if err := rows.Scan(&d.id, &d.segment, &d.user, &d.due, &mem, &entered); err != nil {
			return nil, err
		}
		d.membership, d.enteredAt, d.gone = pulid.ID(mem.String), entered.Time, !mem.Valid
		out = append(out, d)
	}
	return out, rows.Err()
}

func (sqlite) exitExpired(ctx context.Context, tx *ent.Tx, exits []Exit, deadlines []int64) error {
	err := bulk(exits, func(chunk []Exit) error {
		ids := make([]any, len(chunk))
		for i, x := range chunk {
			ids[i] = string(x.Membership)
		}
		n, err := execCount(ctx, tx, "DELETE FROM memberships WHERE id IN ("+marks(len(ids), 1)+")", ids...)
		if err == nil && n != len(ids) {
			err = fmt.Errorf("deleted %d of %d", n, len(ids))
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("delete memberships: %w", err)
	}
	err = bulk(deadlines, func(chunk []int64) error {
		ids := make([]any, len(chunk))
		for i, id := range chunk {
			ids[i] = id
		}
		_, err := tx.ExecContext(ctx, "DELETE FROM membership_deadlines WHERE id IN ("+marks(len(ids), 1)+")", ids...)
		return err
	})
	if err != nil {
		return fmt.Errorf("delete deadlines: %w", err)
	}
	err = bulk(exits, func(chunk []Exit) error {
		args := make([]any, 0, 6*len(chunk))
		for _, x := range chunk {
			args = append(args, string(x.Segment), string(x.User), string(changelog.KindExited), string(x.Source), x.At, x.Reason)
		}
		_, err := tx.ExecContext(ctx, "INSERT INTO membership_changes (segment_ref, user_ref, kind, source, at, reason) VALUES "+marks(len(chunk), 6), args...)
		return err
	})
	if err != nil {
		return fmt.Errorf("store membership changes: %w", err)
	}
	return nil
}

// marks is rows comma-separated groups of cols placeholders: "(?, ?), (?, ?)"
// for 2, 2; with cols 1, "?, ?".
func marks(rows, cols int) string {
	group := strings.TrimSuffix(strings.Repeat("?, ", cols), ", ")
	if cols > 1 {
		group = "(" + group + ")"
	}
	return strings.TrimSuffix(strings.Repeat(group+", ", rows), ", ")
}
