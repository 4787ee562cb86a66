package ledger

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/segmentd/segmentd/changelog"
	"github.com/segmentd/segmentd/ent"
	"github.com/segmentd/segmentd/ent/membership"
	"github.com/segmentd/segmentd/ent/membershipdeadline"
	"github.com/segmentd/segmentd/ent/schema/pulid"
)

// The deadline index (membership_deadlines): the next instant at which time
// alone changes a membership. The ledger writes a member's expiry deadline
// in the transaction that makes them a member, and deletes it in the one
// that removes them, so that a deadline exists exactly while its
// membership does; ExpireDue makes the changes that came due.

// writeExpiries upserts the expiry deadlines of the entries that have one,
// BulkRows rows a statement (an entry's deadline replaces a stale one left
// for the same member).
func (w *Writer) writeExpiries(ctx context.Context, entries []Entry, topics *Topics) error {
	var rows []*ent.MembershipDeadlineCreate
	for _, e := range entries {
		if e.ExpiresAt == nil {
			continue
		}
		rows = append(rows, w.tx.MembershipDeadline.Create().
			SetSegmentRef(e.Segment).SetUserRef(e.User).SetDueAt(*e.ExpiresAt).
			SetWhy(membershipdeadline.WhyEXPIRE))
		topics.deadline(*e.ExpiresAt)
	}
	err := bulk(rows, func(b []*ent.MembershipDeadlineCreate) error {
		return w.tx.MembershipDeadline.CreateBulk(b...).
			OnConflictColumns(membershipdeadline.FieldSegmentRef, membershipdeadline.FieldUserRef, membershipdeadline.FieldWhy).
			UpdateDueAt().Exec(ctx)
	})
	if err != nil {
		return fmt.Errorf("store deadlines: %w", err)
	}
	return nil
}

// clearExpiries deletes the expiry deadlines of the exits' memberships:
// one DELETE per segment and BulkRows users.
func (w *Writer) clearExpiries(ctx context.Context, exits []Exit) error {
	bySeg := map[pulid.ID][]pulid.ID{}
	for _, x := range exits {
		bySeg[x.Segment] = append(bySeg[x.Segment], x.User)
	}
	for seg, users := range bySeg {
		err := bulk(users, func(chunk []pulid.ID) error {
			_, err := w.tx.MembershipDeadline.Delete().Where(
				membershipdeadline.SegmentRef(seg), membershipdeadline.UserRefIn(chunk...),
				membershipdeadline.WhyEQ(membershipdeadline.WhyEXPIRE)).Exec(ctx)
			return err
		})
		if err != nil {
			return fmt.Errorf("delete deadlines: %w", err)
		}
	}
	return nil
}

// Swept says what one ExpireDue call did.
type Swept struct {
	// Taken is how many due deadlines the call locked.
	Taken int
	// Exited are the memberships that expired.
	Exited []Exit
	// Dropped is how many deadlines had no membership any more (a
	// deleted segment) and were deleted.
	Dropped int
	// Skipped is how many were left because another transaction holds
	// their user or membership (it is changing them now); a later sweep
	// takes them.
	Skipped int
}

// ExpiryReason is the reason logged when a membership that entered at
// enteredAt expires at dueAt: "left: expired 30d after entry".
func ExpiryReason(enteredAt, dueAt time.Time) string {
	return "left: expired " + FormatDuration(dueAt.Sub(enteredAt)) + " after entry"
}

// FormatDuration writes d in the units of exit rule durations (d, h, m, s,
// largest first, e.g. "30d", "1h30m", "2s"); a remainder under a second
// is written in Go's notation.
func FormatDuration(d time.Duration) string {
	if d <= 0 {
		return "0s"
	}
	var b strings.Builder
	for _, u := range []struct {
		unit time.Duration
		name string
	}{{24 * time.Hour, "d"}, {time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}} {
		if n := d / u.unit; n > 0 {
			fmt.Fprintf(&b, "%d%s", n, u.name)
			d -= n * u.unit
		}
	}
	if d > 0 {
		b.WriteString(d.String())
	}
	return b.String()
}

// ExpireDue takes up to limit expiry deadlines due at now, earliest first,
// and makes their members leave (source TIME, at the deadline itself, so
// that a membership lasts exactly its after; reason from ExpiryReason),
// through ExitMany in the writer's transaction. On PostgreSQL the
// deadlines, their users and their memberships are locked with SKIP LOCKED,
// so that replicas sweeping at once take different rows and never wait on
// each other or on a writer, and a member changed meanwhile by another
// transaction is left for a later sweep: no expiry is made twice, and one
// that a crash interrupts is made by the next sweep (the deadline goes
// only with its exit's commit).
func (w *Writer) ExpireDue(ctx context.Context, now time.Time, limit int) (*Swept, error) {
	// Set-based, in two statements (see takeDue and exitExpired of
	// sqlite.go and postgres.go): a sweep of 100,000 exits at one instant
	// spent most of its time in per-row query builders and in the round
	// trips of five statements a batch.
	due, err := w.l.st.takeDue(ctx, w.tx, now, limit)
	if err != nil {
		return nil, fmt.Errorf("ledger.ExpireDue: take due deadlines: %w", err)
	}
	out := &Swept{Taken: len(due)}
	if len(due) == 0 {
		return out, nil
	}
	var (
		exits   []Exit
		cleared []int64
	)
	for _, d := range due {
		switch {
		case d.membership != "":
			exits = append(exits, Exit{Membership: d.membership, Segment: d.segment, User: d.user,
				EnteredAt: d.enteredAt, Source: changelog.SourceTime, Reason: ExpiryReason(d.enteredAt, d.due), At: d.due})
			cleared = append(cleared, d.id)
		case d.gone:
			// No membership any more (a deleted segment): drop it.
			cleared = append(cleared, d.id)
			out.Dropped++
		}
	}
	if err := w.l.st.exitExpired(ctx, w.tx, exits, cleared); err != nil {
		return nil, fmt.Errorf("ledger.ExpireDue: %w", err)
	}
	for _, x := range exits {
		w.counts.exited(x.Segment, x.EnteredAt, x.At)
		w.topics.segment(x.Segment)
		w.changed(changelog.KindExited, x.Source, 1)
	}
	out.Exited = exits
	out.Skipped = out.Taken - len(exits) - out.Dropped
	return out, nil
}

// dueDeadline is a due expiry deadline that takeDue read, with the
// membership it ends.
type dueDeadline struct {
	id            int64
	segment, user pulid.ID
	due           time.Time
	// membership and enteredAt are the membership's, locked for this
	// transaction; membership is empty when there is none to exit now.
	membership pulid.ID
	enteredAt  time.Time
	// gone: no membership at all (not merely one that another
	// transaction holds), so the deadline is to be dropped.
	gone bool
}

// NextDeadline is the earliest deadline of any kind (ok false: none).
func (l *Ledger) NextDeadline(ctx context.Context, client *ent.Client) (time.Time, bool, error) {
	d, err := client.MembershipDeadline.Query().
		Order(ent.Asc(membershipdeadline.FieldDueAt)).Select(membershipdeadline.FieldDueAt).First(ctx)
	if ent.IsNotFound(err) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, fmt.Errorf("ledger.NextDeadline: %w", err)
	}
	return d.DueAt, true, nil
}

// RescheduleExpiries replaces the expiry deadlines of seg's members after
// the segment's exit rule after changed: with after nil, they have none;
// otherwise each member expires after from their entry, or at notBefore
// (the change's instant) if that has passed already, since an exit is never
// logged before the change that caused it. It reads the members BulkRows
// at a time and writes their deadlines as many rows a statement, and
// returns how many it wrote.
func (w *Writer) RescheduleExpiries(ctx context.Context, seg pulid.ID, after *time.Duration, notBefore time.Time) (int, error) {
	tx := w.tx
	if _, err := tx.MembershipDeadline.Delete().Where(membershipdeadline.SegmentRef(seg),
		membershipdeadline.WhyEQ(membershipdeadline.WhyEXPIRE)).Exec(ctx); err != nil {
		return 0, fmt.Errorf("ledger.RescheduleExpiries: delete deadlines: %w", err)
	}
	if after == nil {
		return 0, nil
	}
	written := 0
	var last pulid.ID
	for {
		q := tx.Membership.Query().Where(membership.SegmentRef(seg))
		if last != "" {
			q.Where(membership.IDGT(last))
		}
		ms, err := q.Order(ent.Asc(membership.FieldID)).Limit(BulkRows).
			Select(membership.FieldID, membership.FieldUserRef, membership.FieldEnteredAt).All(ctx)
		if err != nil {
			return written, fmt.Errorf("ledger.RescheduleExpiries: read members: %w", err)
		}
		if len(ms) == 0 {
			return written, nil
		}
		rows := make([]*ent.MembershipDeadlineCreate, len(ms))
		for i, m := range ms {
			due := m.EnteredAt.Add(*after)
			if due.Before(notBefore) {
				due = notBefore
			}
			rows[i] = tx.MembershipDeadline.Create().SetSegmentRef(seg).SetUserRef(m.UserRef).
				SetDueAt(due).SetWhy(membershipdeadline.WhyEXPIRE)
			w.topics.deadline(due)
		}
		if err := tx.MembershipDeadline.CreateBulk(rows...).Exec(ctx); err != nil {
			return written, fmt.Errorf("ledger.RescheduleExpiries: store deadlines: %w", err)
		}
		written += len(ms)
		last = ms[len(ms)-1].ID
	}
}

// MoveDeadline sets when the deadline with id comes due. The service's
// deadlines follow from entries and exit rules; this is for tools that
// need expiries at chosen instants (segbench's sustained-expiry scenario
// spreads an import's deadlines over time). The deadlines topic is in the
// writer's topics, so a sweeper that waits past the new instant wakes.
func (w *Writer) MoveDeadline(ctx context.Context, id int64, due time.Time) error {
	if err := w.tx.MembershipDeadline.UpdateOneID(id).SetDueAt(due).Exec(ctx); err != nil {
		return fmt.Errorf("ledger.MoveDeadline: %w", err)
	}
	w.topics.deadline(due)
	return nil
}
