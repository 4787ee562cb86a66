package ledger

import (
	"context"
	"fmt"
	"time"

	"entgo.io/ent/dialect/sql"

	"github.com/segmentd/segmentd/ent"
	"github.com/segmentd/segmentd/ent/membershipdeadline"
	"github.com/segmentd/segmentd/ent/schema/pulid"
	"github.com/segmentd/segmentd/ent/user"
)

// Re-evaluation deadlines (why REEVALUATE): the next instant at which the
// clock alone may change whether a user meets a segment's condition (a
// WITHIN_LAST window that opens or ends), for DYNAMIC segments (members
// and candidates alike) and for the members of segments that leave when
// their condition fails. The service computes the instant from the user's
// traits whenever it evaluates them, and writes it here in the same
// transaction; the sweeper takes the due ones (DueReevaluations),
// evaluates again, makes the change through Enter/Exit and writes the next
// instant. Unlike an expiry, a re-evaluation deadline does not belong to a
// membership: a candidate has one too.

// Reevaluation sets when the clock may next change User's answer for
// Segment: At nil removes the deadline (nothing the clock can change).
type Reevaluation struct {
	Segment, User pulid.ID
	At            *time.Time
}

// ScheduleReevaluations writes the re-evaluation deadlines: upserts for
// those with an instant, BulkRows rows a statement, and one DELETE per
// segment and BulkRows users for those without.
func (w *Writer) ScheduleReevaluations(ctx context.Context, rs []Reevaluation) error {
	var (
		rows  []*ent.MembershipDeadlineCreate
		clear = map[pulid.ID][]pulid.ID{}
	)
	for _, r := range rs {
		if r.At == nil {
			clear[r.Segment] = append(clear[r.Segment], r.User)
			continue
		}
		rows = append(rows, w.tx.MembershipDeadline.Create().
			SetSegmentRef(r.Segment).SetUserRef(r.User).SetDueAt(*r.At).SetWhy(membershipdeadline.WhyREEVALUATE))
		w.topics.deadline(*r.At)
	}
	for seg, users := range clear {
		err := bulk(users, func(chunk []pulid.ID) error {
			_, err := w.tx.MembershipDeadline.Delete().Where(membershipdeadline.SegmentRef(seg),
				membershipdeadline.UserRefIn(chunk...), membershipdeadline.WhyEQ(membershipdeadline.WhyREEVALUATE)).Exec(ctx)
			return err
		})
		if err != nil {
			return fmt.Errorf("ledger.ScheduleReevaluations: delete: %w", err)
		}
	}
	err := bulk(rows, func(b []*ent.MembershipDeadlineCreate) error {
		return w.tx.MembershipDeadline.CreateBulk(b...).
			OnConflictColumns(membershipdeadline.FieldSegmentRef, membershipdeadline.FieldUserRef, membershipdeadline.FieldWhy).
			UpdateDueAt().Exec(ctx)
	})
	if err != nil {
		return fmt.Errorf("ledger.ScheduleReevaluations: store: %w", err)
	}
	return nil
}

// ClearReevaluations removes every re-evaluation deadline of seg (its
// condition changed: the service writes new ones) or, with seg empty, of
// user (an erasure).
func (w *Writer) ClearReevaluations(ctx context.Context, seg, usr pulid.ID) error {
	q := w.tx.MembershipDeadline.Delete().Where(membershipdeadline.WhyEQ(membershipdeadline.WhyREEVALUATE))
	if seg != "" {
		q.Where(membershipdeadline.SegmentRef(seg))
	}
	if usr != "" {
		q.Where(membershipdeadline.UserRef(usr))
	}
	if seg == "" && usr == "" {
		return fmt.Errorf("ledger.ClearReevaluations: neither a segment nor a user")
	}
	if _, err := q.Exec(ctx); err != nil {
		return fmt.Errorf("ledger.ClearReevaluations: %w", err)
	}
	return nil
}

// Due is a re-evaluation deadline that came due.
type Due struct {
	Segment, User pulid.ID
	At            time.Time
}

// DueReevaluations takes up to limit re-evaluation deadlines due at now,
// earliest first, and locks them and their users the way ExpireDue does
// (SKIP LOCKED on PostgreSQL, so that replicas sweeping at once take
// different users and never wait on a writer). It returns the deadlines
// whose users it locked, and taken, how many it read: fewer than limit
// means no more are due. The caller evaluates each and writes the outcome
// (Enter, Exit, ScheduleReevaluations) in the same transaction.
func (w *Writer) DueReevaluations(ctx context.Context, now time.Time, limit int) (due []Due, taken int, err error) {
	tx, st := w.tx, w.l.st
	rows, err := tx.MembershipDeadline.Query().
		Where(membershipdeadline.WhyEQ(membershipdeadline.WhyREEVALUATE), membershipdeadline.DueAtLTE(now),
			func(s *sql.Selector) { st.lockSkipping(s, sql.LockUpdate) }).
		Order(ent.Asc(membershipdeadline.FieldDueAt)).
		Limit(limit).All(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("ledger.DueReevaluations: find: %w", err)
	}
	if len(rows) == 0 {
		return nil, 0, nil
	}
	userSet := map[pulid.ID]bool{}
	for _, d := range rows {
		userSet[d.UserRef] = true
	}
	locked, err := tx.User.Query().
		Where(user.IDIn(keys(userSet)...), func(s *sql.Selector) { st.lockSkipping(s, sql.LockNoKeyUpdate) }).
		IDs(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("ledger.DueReevaluations: lock users: %w", err)
	}
	lockedUser := make(map[pulid.ID]bool, len(locked))
	for _, id := range locked {
		lockedUser[id] = true
	}
	// A user not locked is held by another transaction (user rows are
	// never deleted: an erasure leaves a tombstone): a later sweep takes it.
	for _, d := range rows {
		if lockedUser[d.UserRef] {
			due = append(due, Due{Segment: d.SegmentRef, User: d.UserRef, At: d.DueAt})
		}
	}
	return due, len(rows), nil
}

// DropSegmentDeadlines removes every deadline of seg, of either kind: the
// segment is being deleted (its memberships go with it by cascade; the
// deadline index has no foreign keys).
func (w *Writer) DropSegmentDeadlines(ctx context.Context, seg pulid.ID) error {
	if _, err := w.tx.MembershipDeadline.Delete().Where(membershipdeadline.SegmentRef(seg)).Exec(ctx); err != nil {
		return fmt.Errorf("ledger.DropSegmentDeadlines: %w", err)
	}
	return nil
}
