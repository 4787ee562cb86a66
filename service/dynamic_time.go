package service

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/segmentd/segmentd/changelog"
	"github.com/segmentd/segmentd/ent"
	"github.com/segmentd/segmentd/ent/membership"
	"github.com/segmentd/segmentd/ent/schema/pulid"
	"github.com/segmentd/segmentd/ent/user"
	"github.com/segmentd/segmentd/ledger"
	"github.com/segmentd/segmentd/trigger"
)

// Time-driven changes of conditions with a clock in them (WITHIN_LAST on a
// trait): a DYNAMIC segment's users enter and leave, and the members of a
// segment that leave when their condition fails leave, at the instant the
// clock changes the answer, with no event. Whenever the service evaluates
// such a condition for a user (an event, a trait change, a fill), it writes
// the next instant the clock can change the answer as a REEVALUATE
// deadline (ledger.ScheduleReevaluations); the sweeper takes the due ones
// (SweepReevaluations), evaluates again at its clock, makes the change with
// source TIME, and writes the next instant.

// clockDriven reports whether the clock alone can change a user's place
// in the segment: its condition has a WITHIN_LAST and the segment follows
// its condition (DYNAMIC) or lets members leave when it fails.
func (x *exitSegment) clockDriven() bool {
	return x.timeDependent && (x.dynamic() || x.segment.ExitWhenConditionFails)
}

// heldBy is the condition that decides a user's place with no event: the
// condition of a DYNAMIC segment, the trait part of another's.
func (x *exitSegment) heldBy() *trigger.Program {
	if x.dynamic() {
		return x.program
	}
	return x.traitProgram
}

// nextReevaluation is the deadline to write for a user evaluated in env
// (traits, behaviours and instant; see behaviorStates.envFor): the next
// instant the clock can change the answer, rounded up to the microsecond
// the stores keep, or nil.
func (x *exitSegment) nextReevaluation(env trigger.Env) *time.Time {
	next, ok := x.heldBy().NextChange(env)
	if !ok {
		return nil
	}
	if r := next.Truncate(time.Microsecond); !r.Equal(next) {
		next = r.Add(time.Microsecond)
	}
	return &next
}

// reevaluate records the next re-evaluation deadline of k (nil: none).
func (c *changes) reevaluate(k memberKey, at *time.Time) {
	if c.reevals == nil {
		c.reevals = map[memberKey]*time.Time{}
	}
	c.reevals[k] = at
}

// writeReevaluations writes the batch's re-evaluation deadlines.
func (c *changes) writeReevaluations(ctx context.Context, w *ledger.Writer) error {
	if len(c.reevals) == 0 {
		return nil
	}
	rs := make([]ledger.Reevaluation, 0, len(c.reevals))
	for k, at := range c.reevals {
		rs = append(rs, ledger.Reevaluation{Segment: k.segment, User: k.user, At: at})
	}
	return w.ScheduleReevaluations(ctx, rs)
}

// SweepReevaluations makes the time-driven changes due by the service's
// clock, SweepBatch deadlines a transaction, and returns how many
// memberships it changed.
func (s *Service) SweepReevaluations(ctx context.Context) (int, error) {
	now := s.now()
	n, err := s.sweepInBatches(ctx, func(tx *ent.Tx, w *ledger.Writer) (made, taken, settled int, err error) {
		return s.reevaluateDue(ctx, tx, w, now)
	})
	if err != nil {
		return n, fmt.Errorf("service.SweepReevaluations: %w", err)
	}
	return n, nil
}

// reevaluateDue takes one batch of due re-evaluation deadlines in tx and makes the changes they call for: it returns the changes
// made, the deadlines read, and those settled (re-evaluated; the rest were
// held by other transactions).
func (s *Service) reevaluateDue(ctx context.Context, tx *ent.Tx, w *ledger.Writer, now time.Time) (changed, taken, settled int, err error) {
	due, taken, err := w.DueReevaluations(ctx, now, SweepBatch)
	if err != nil || len(due) == 0 {
		return 0, taken, 0, err
	}
	segs, err := s.exitSegments(ctx, tx)
	if err != nil {
		return 0, taken, 0, err
	}
	byID := make(map[pulid.ID]*exitSegment, len(segs))
	for _, x := range segs {
		byID[x.segment.ID] = x
	}
	userSet := map[pulid.ID]bool{}
	bySeg := map[pulid.ID][]pulid.ID{}
	for _, d := range due {
		userSet[d.User] = true
		bySeg[d.Segment] = append(bySeg[d.Segment], d.User)
	}
	users, err := tx.User.Query().Where(user.IDIn(keysOf(userSet)...), NotErased()).All(ctx)
	if err != nil {
		return 0, taken, 0, fmt.Errorf("load users: %w", err)
	}
	traits := make(map[pulid.ID]map[string]any, len(users))
	live := make(map[pulid.ID]bool, len(users))
	for _, u := range users {
		traits[u.ID], live[u.ID] = u.Traits, true
	}
	members := map[memberKey]*ent.Membership{}
	for seg, us := range bySeg {
		ms, err := tx.Membership.Query().Where(membership.SegmentRef(seg), membership.UserRefIn(us...)).All(ctx)
		if err != nil {
			return 0, taken, 0, fmt.Errorf("load memberships: %w", err)
		}
		for _, m := range ms {
			members[memberKey{m.SegmentRef, m.UserRef}] = m
		}
	}
	var withBehaviors []*exitSegment
	for seg := range bySeg {
		if x := byID[seg]; x != nil && len(x.behaviors) > 0 {
			withBehaviors = append(withBehaviors, x)
		}
	}
	bs, err := loadBehaviorStates(ctx, tx.BehaviorState, now, keysOf(segmentKeys(withBehaviors, "")), keysOf(userSet))
	if err != nil {
		return 0, taken, 0, err
	}
	var (
		entries []ledger.Entry
		exits   []ledger.Exit
		next    []ledger.Reevaluation
	)
	for _, d := range due {
		k := memberKey{d.Segment, d.User}
		x := byID[d.Segment]
		m := members[k]
		if x == nil || !x.clockDriven() || !live[d.User] || (!x.dynamic() && m == nil) {
			// The segment is gone or no longer reads the clock, the user
			// was erased, or a member who could only leave has left.
			next = append(next, ledger.Reevaluation{Segment: d.Segment, User: d.User})
			continue
		}
		env := bs.envFor(d.User, x.heldBy(), traits[d.User], now)
		r := x.heldBy().Eval(env)
		// The change is dated at the instant the clock changed the answer
		// (as an expiry is), never before the membership it ends.
		at := d.At
		switch {
		case r.Matched && m == nil:
			entries = append(entries, ledger.Entry{Segment: d.Segment, User: d.User, Source: changelog.SourceTime, At: at,
				Reason:    "entered as time passed: " + strings.TrimPrefix(r.Reason, "matched: ") + bs.timeNote(d.User, x.heldBy(), d.At),
				ExpiresAt: expiresAt(x.segment, at)})
		case !r.Matched && m != nil:
			if at.Before(m.EnteredAt) {
				at = m.EnteredAt
			}
			exits = append(exits, ledger.ExitOf(m, changelog.SourceTime, "left: "+r.Reason+bs.timeNote(d.User, x.heldBy(), d.At), at))
		}
		if !x.dynamic() && !r.Matched {
			next = append(next, ledger.Reevaluation{Segment: d.Segment, User: d.User})
			continue
		}
		next = append(next, ledger.Reevaluation{Segment: d.Segment, User: d.User, At: x.nextReevaluation(env)})
	}
	if bs.err != nil {
		return 0, taken, 0, bs.err
	}
	if _, err := w.ExitMany(ctx, exits); err != nil {
		return 0, taken, 0, err
	}
	if _, err := w.EnterMany(ctx, entries); err != nil {
		return 0, taken, 0, err
	}
	if err := w.ScheduleReevaluations(ctx, next); err != nil {
		return 0, taken, 0, err
	}
	return len(entries) + len(exits), taken, len(due), nil
}

// rescheduleReevaluations rewrites the re-evaluation deadlines of seg's
// members after its rules changed (a DYNAMIC segment's are rewritten by
// syncDynamic, for every user): none when the clock can no longer change
// a member's place, otherwise the next instant from each member's traits.
func (s *Service) rescheduleReevaluations(ctx context.Context, tx *ent.Tx, seg *ent.Segment, topics *ledger.Topics) error {
	w := s.ledger().Writer(tx)
	defer func() { topics.Merge(w.Topics()) }()
	if err := w.ClearReevaluations(ctx, seg.ID, ""); err != nil {
		return err
	}
	x, err := compileExitSegment(ctx, tx.Client(), seg)
	if err != nil {
		return err
	}
	if x.dynamic() || !x.clockDriven() {
		return nil
	}
	now := s.now()
	var after pulid.ID
	for {
		q := tx.Membership.Query().Where(membership.SegmentRef(seg.ID)).Order(ent.Asc(membership.FieldID)).Limit(dynamicPage)
		if after != "" {
			q.Where(membership.IDGT(after))
		}
		ms, err := q.All(ctx)
		if err != nil {
			return fmt.Errorf("load members: %w", err)
		}
		if len(ms) == 0 {
			return nil
		}
		after = ms[len(ms)-1].ID
		refs := make([]pulid.ID, len(ms))
		for i, m := range ms {
			refs[i] = m.UserRef
		}
		users, err := tx.User.Query().Where(user.IDIn(refs...)).All(ctx)
		if err != nil {
			return fmt.Errorf("load members' users: %w", err)
		}
		bs, err := loadBehaviorStates(ctx, tx.BehaviorState, now, programKeys(x.heldBy()), refs)
		if err != nil {
			return err
		}
		rs := make([]ledger.Reevaluation, 0, len(users))
		for _, u := range users {
			if at := x.nextReevaluation(bs.envFor(u.ID, x.heldBy(), u.Traits, now)); at != nil {
				rs = append(rs, ledger.Reevaluation{Segment: seg.ID, User: u.ID, At: at})
			}
		}
		if err := w.ScheduleReevaluations(ctx, rs); err != nil {
			return err
		}
	}
}

func keysOf[K comparable](m map[K]bool) []K {
	out := make([]K, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
