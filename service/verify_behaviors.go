package service

import (
	"fmt"
	"time"

	"github.com/segmentd/segmentd/behavior"
	"github.com/segmentd/segmentd/ent"
	"github.com/segmentd/segmentd/ent/behaviorstate"
	"github.com/segmentd/segmentd/ent/event"
	"github.com/segmentd/segmentd/trigger"
)

// checkBehaviorStates compares every stored behaviour state with a
// recomputation from its user's stored events at the verifier's clock (at
// the state's floor if that is later): the answer and, when the state
// knows it exactly, the figure (behavior-state-mismatch). A state that
// does not decode is behavior-state-unreadable; one under a key no
// segment's condition has is orphan-behavior-state (dropUnusedBehaviorStates
// deletes those with the segment change that leaves them). The membership
// checks read the recomputation alone, so a wrong state would otherwise
// only show after the user's next events.
func (v *verifier) checkBehaviorStates() error {
	byKey := map[string]trigger.Behavior{}
	for _, si := range v.segByID {
		// The condition's behaviours and the exit condition's.
		prog, err := stateProgram(v.ctx, v.c, si.seg)
		if err != nil {
			return err
		}
		for _, b := range prog.Behaviors() {
			byKey[b.Key()] = b
		}
	}
	err := eachPage(func(after int64) ([]*ent.BehaviorState, error) {
		return v.c.BehaviorState.Query().Where(behaviorstate.IDGT(after)).
			Order(ent.Asc(behaviorstate.FieldID)).Limit(verifyPage).All(v.ctx)
	}, func(r *ent.BehaviorState) int64 { return r.ID }, func(r *ent.BehaviorState) {
		b, ok := byKey[r.Key]
		if !ok {
			v.rep.add("orphan-behavior-state", "user %s has a behaviour state under key %s, which no segment's condition or exit condition has", v.userName(r.UserRef), r.Key)
			return
		}
		st, err := behavior.New(b.Spec)
		if err == nil {
			err = st.UnmarshalBinary(r.State)
		}
		if err != nil {
			v.rep.add("behavior-state-unreadable", "user %s: the state of %s: %v", v.userName(r.UserRef), b.Text, err)
			return
		}
		at := v.now
		if f, ok := st.Floor(); ok && at.Before(f) {
			at = f
		}
		got, err := st.Eval(at)
		if err != nil {
			v.rep.add("behavior-state-unreadable", "user %s: the state of %s at %s: %v", v.userName(r.UserRef), b.Text, at, err)
			return
		}
		want := recomputeBehavior(&b, v.byUser[r.UserRef], at)
		if got.Matched != want.Matched || got.Defined != want.Defined || (!got.AtLeast && got.Figure != want.Figure) {
			v.rep.add("behavior-state-mismatch", "user %s: the stored state of %s says %s (matched %v), the stored events %s (matched %v)",
				v.userName(r.UserRef), b.Text, trigger.FigureText(got), got.Matched, trigger.FigureText(want), want.Matched)
		}
	})
	if err != nil {
		return fmt.Errorf("behaviour states: %w", err)
	}
	return nil
}

// recomputeBehavior is b's answer at at from the events evs, from scratch.
func recomputeBehavior(b *trigger.Behavior, evs []*verifyEvent, at time.Time) behavior.Result {
	st, err := oracleState(b, evs)
	if err != nil {
		return behavior.Result{}
	}
	r, _ := st.Eval(at)
	return r
}

// oracleState is b's state built from the events evs, never pruned: it
// answers for any instant.
func oracleState(b *trigger.Behavior, evs []*verifyEvent) (*behavior.State, error) {
	st, err := behavior.New(b.Spec)
	if err != nil {
		return nil, err
	}
	for _, e := range evs {
		if e.typ != event.TypeTRACK || !b.Counts(e.name, e.props, e.timestamp) {
			continue
		}
		v, ok := b.Value(e.props)
		if b.Property != "" && !ok {
			continue
		}
		st.Add(e.timestamp, v, ok)
	}
	return st, nil
}
