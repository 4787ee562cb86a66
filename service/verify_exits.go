package service

import (
	"fmt"
	"sort"
	"time"

	"github.com/segmentd/segmentd/behavior"
	"github.com/segmentd/segmentd/changelog"
	"github.com/segmentd/segmentd/ent"
	"github.com/segmentd/segmentd/ent/event"
	"github.com/segmentd/segmentd/ent/membershipdeadline"
	"github.com/segmentd/segmentd/ent/segment"
	"github.com/segmentd/segmentd/trigger"
)

// checkExits recomputes the exits that the exit rules and DYNAMIC
// segments call for from the stored events (see Verify): missed-exit and
// dynamic-mismatch. It runs after checkOutcomes, which sorted each user's
// events in arrival order.
func (v *verifier) checkExits() error {
	var exitSegs []*exitSegment
	for _, si := range v.segByID {
		sg := si.seg
		if sg.Kind != segment.KindDYNAMIC && !sg.ExitWhenConditionFails && len(sg.ExitOnEvents) == 0 {
			continue
		}
		x, err := compileExitSegment(v.ctx, v.c, sg)
		if err != nil {
			return err
		}
		exitSegs = append(exitSegs, x)
	}
	if len(exitSegs) == 0 {
		return nil
	}
	sort.Slice(exitSegs, func(i, j int) bool { return exitSegs[i].segment.ID < exitSegs[j].segment.ID })
	reevals, err := v.reevaluationDeadlines()
	if err != nil {
		return err
	}
	// The clock's answer is checked at one instant; a change due by then
	// that the sweeper has not made yet is not a finding (its deadline
	// says it will be).
	now := v.now
	pending := func(k segUser) bool {
		at, ok := reevals[k]
		return ok && !at.After(now)
	}
	for userRef, evs := range v.byUser {
		// The traits now.
		var traits map[string]any
		for _, e := range evs {
			if carriesUserTraits(e.typ) {
				traits, _ = mergeTraits(traits, e.traits)
			}
		}
		// lastChanged is when the user's events last set a trait x reads.
		lastChanged := func(x *exitSegment) time.Time {
			var at time.Time
			for _, e := range evs {
				if carriesUserTraits(e.typ) && len(e.traits) > 0 && x.readsAny(e.traits) {
					at = e.receivedAt
				}
			}
			return at
		}
		for _, x := range exitSegs {
			k := segUser{x.segment.ID, userRef}
			m := v.members[k]
			env := trigger.Env{User: traits, Now: now}
			if len(x.behaviors) > 0 {
				env = oracleEnv(x.program, evs, traits, now)
			}
			if x.clockDriven() {
				v.checkClock(x, k, m, env, reevals)
			}
			if x.dynamic() {
				r := x.program.Eval(env)
				switch {
				case x.timeDependent && pending(k):
				case r.Matched && m == nil:
					v.rep.add("dynamic-mismatch", "user %s meets the condition of DYNAMIC segment %s but is not a member", v.userName(userRef), v.segmentName(k.seg))
				case !r.Matched && m != nil:
					v.rep.add("dynamic-mismatch", "user %s is a member of DYNAMIC segment %s but %s", v.userName(userRef), v.segmentName(k.seg), r.Reason)
				}
				continue
			}
			if m == nil || m.Source == changelog.SourceManual || m.Source == changelog.SourceImport {
				continue
			}
			since := x.segment.UpdatedAt
			if m.EnteredAt.After(since) {
				since = m.EnteredAt
			}
			if changed := lastChanged(x); x.segment.ExitWhenConditionFails && changed.After(since) {
				env := trigger.Env{User: traits, Now: changed}
				if len(x.behaviors) > 0 {
					// The behaviours as the trait change found them: the
					// events received by then.
					env = oracleEnv(x.traitProgram, receivedBy(evs, changed), traits, changed)
				}
				if r := x.traitProgram.Eval(env); !r.Matched {
					v.rep.add("missed-exit", "user %s is still a member of segment %s, but after their trait change their %s", v.userName(userRef), v.segmentName(k.seg), r.Reason)
					continue
				}
			}
			for i, e := range evs {
				if e.typ != event.TypeTRACK || !x.onEvents[e.name] || !e.receivedAt.After(since) {
					continue
				}
				env := trigger.Env{Event: e.props, User: traits, Now: e.timestamp}
				if len(x.exitEvent.Behaviors()) > 0 {
					if e.timestamp.Before(e.receivedAt.Add(-behaviorGrace)) {
						// A late event's behaviours were judged at their
						// states' floor, which the stored events do not tell.
						continue
					}
					// The behaviours as the exit event found them: the
					// events received until it, it included.
					env = oracleEnv(x.exitEvent, evs[:i+1], traits, e.timestamp)
					env.Event = e.props
				}
				if x.exitEvent == nil || x.exitEvent.Eval(env).Matched {
					v.rep.add("missed-exit", "user %s is still a member of segment %s after exit event %s (%q)", v.userName(userRef), v.segmentName(k.seg), e.id, e.name)
					break
				}
			}
		}
	}
	// DYNAMIC members with no stored event (and so no traits) at all.
	for k := range v.members {
		if _, ok := v.byUser[k.user]; ok {
			continue
		}
		for _, x := range exitSegs {
			if x.segment.ID == k.seg && x.dynamic() && !pending(k) {
				// No events: every behaviour counts none.
				if r := x.program.Eval(oracleEnv(x.program, nil, nil, now)); !r.Matched {
					v.rep.add("dynamic-mismatch", "user %s is a member of DYNAMIC segment %s but %s", v.userName(k.user), v.segmentName(k.seg), r.Reason)
				}
			}
		}
	}
	return nil
}

// reevaluationDeadlines reads the REEVALUATE deadlines.
func (v *verifier) reevaluationDeadlines() (map[segUser]time.Time, error) {
	out := map[segUser]time.Time{}
	err := eachPage(func(after int64) ([]*ent.MembershipDeadline, error) {
		return v.c.MembershipDeadline.Query().
			Where(membershipdeadline.IDGT(after), membershipdeadline.WhyEQ(membershipdeadline.WhyREEVALUATE)).
			Order(ent.Asc(membershipdeadline.FieldID)).Limit(verifyPage).All(v.ctx)
	}, func(d *ent.MembershipDeadline) int64 { return d.ID }, func(d *ent.MembershipDeadline) {
		out[segUser{d.SegmentRef, d.UserRef}] = d.DueAt
	})
	if err != nil {
		return nil, fmt.Errorf("re-evaluation deadlines: %w", err)
	}
	return out, nil
}

// checkClock checks a clock-driven segment's answer for one user at now:
// when the clock can still change it, a REEVALUATE deadline must come no
// later than that instant (missing-deadline); a member of a segment that
// leaves when its condition fails, whose traits fail it by now, must have
// left or be due to (missed-exit). DYNAMIC answers are checked by the
// caller.
func (v *verifier) checkClock(x *exitSegment, k segUser, m *ent.Membership, env trigger.Env, reevals map[segUser]time.Time) {
	now := env.Now
	if !x.dynamic() && (m == nil || m.Source == changelog.SourceManual || m.Source == changelog.SourceImport) {
		return
	}
	at, scheduled := reevals[k]
	if next := x.nextReevaluation(env); next != nil && (!scheduled || at.After(*next)) {
		v.rep.add("missing-deadline", "the clock changes whether user %s meets the condition of segment %s at %s, but no re-evaluation is due by then",
			v.userName(k.user), v.segmentName(k.seg), next.Format(time.RFC3339Nano))
	}
	if x.dynamic() || (scheduled && !at.After(now)) {
		return
	}
	if r := x.traitProgram.Eval(env); !r.Matched {
		v.rep.add("missed-exit", "user %s is still a member of segment %s, but by the clock their %s", v.userName(k.user), v.segmentName(k.seg), r.Reason)
	}
}

// oracleEnv recomputes prog's behaviours for a user from the stored events
// evs, as of instant at: the verifier's answer, from scratch, with no
// stored state and no floor, against which the incremental states are
// checked.
func oracleEnv(prog *trigger.Program, evs []*verifyEvent, traits map[string]any, at time.Time) trigger.Env {
	env := trigger.Env{User: traits, Now: at}
	bh := prog.Behaviors()
	env.Behaviors = make([]behavior.Result, len(bh))
	env.BehaviorNext = make([]time.Time, len(bh))
	for i := range bh {
		st, err := oracleState(&bh[i], evs)
		if err != nil {
			continue
		}
		if r, err := st.Eval(at); err == nil {
			env.Behaviors[i] = r
		}
		if next, ok, err := st.NextChange(at); err == nil && ok {
			env.BehaviorNext[i] = next
		}
	}
	return env
}

// receivedBy are the events of evs (in arrival order) received at or
// before t.
func receivedBy(evs []*verifyEvent, t time.Time) []*verifyEvent {
	for i, e := range evs {
		if e.receivedAt.After(t) {
			return evs[:i]
		}
	}
	return evs
}
