package service

import (
	"sort"
	"time"

	"github.com/segmentd/segmentd/changelog"
	"github.com/segmentd/segmentd/ent/event"
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
			if x.dynamic() {
				if x.timeDependent {
					continue // the clock, not only the events, decides it
				}
				r := x.program.Eval(trigger.Env{User: traits, Now: time.Now()})
				switch {
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
				if r := x.traitProgram.Eval(trigger.Env{User: traits, Now: changed}); !r.Matched {
					v.rep.add("missed-exit", "user %s is still a member of segment %s, but after their trait change their %s", v.userName(userRef), v.segmentName(k.seg), r.Reason)
					continue
				}
			}
			for _, e := range evs {
				if e.typ != event.TypeTRACK || !x.onEvents[e.name] || !e.receivedAt.After(since) {
					continue
				}
				if x.exitEvent == nil || x.exitEvent.Eval(trigger.Env{Event: e.props, User: traits, Now: e.timestamp}).Matched {
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
			if x.segment.ID == k.seg && x.dynamic() && !x.timeDependent {
				if r := x.program.Eval(trigger.Env{Now: time.Now()}); !r.Matched {
					v.rep.add("dynamic-mismatch", "user %s is a member of DYNAMIC segment %s but %s", v.userName(k.user), v.segmentName(k.seg), r.Reason)
				}
			}
		}
	}
	return nil
}
