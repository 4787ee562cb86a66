package service

import (
	"context"
	"fmt"
	"time"

	"github.com/segmentd/segmentd/behavior"
	"github.com/segmentd/segmentd/ent"
	"github.com/segmentd/segmentd/ent/behaviorstate"
	"github.com/segmentd/segmentd/ent/event"
	"github.com/segmentd/segmentd/ent/schema/pulid"
	"github.com/segmentd/segmentd/trigger"
)

// Behaviour predicates (performed): each (segment, user, predicate) has a
// behavior.State in behavior_states, which the ingest transaction that
// stores an event updates when the event counts, and which a new or edited
// segment builds from the stored events (buildBehaviorStates). Evaluation
// reads the state, never the history: envFor puts each predicate's answer
// and next change into the trigger.Env.

// behaviorGrace is how late an event may arrive and still be evaluated at
// its own timestamp: a state promises answers from the ingest clock less
// the grace on (behavior.State.Prune), so that client clocks that lag a
// little are exact. An event later than that counts in every window that
// still ends at or after the floor, and is evaluated at the floor.
const behaviorGrace = time.Minute

type stateKey struct {
	segment, user pulid.ID
	key           string
}

// behaviorStates are the states one transaction reads and writes.
type behaviorStates struct {
	// floor is what countEvent prunes the states to; zero: nothing (a
	// replay's states answer for any instant of the history).
	floor  time.Time
	states map[stateKey]*behaviorEntry
	// touched are the (segment, user) pairs whose states the current
	// event counted in; countEvent resets it.
	touched map[memberKey]bool
	err     error // the first decoding error; the transaction fails with it
}

type behaviorEntry struct {
	raw   []byte // as stored, decoded on first use
	state *behavior.State
	dirty bool
	saved bool // a row exists
}

func newBehaviorStates(now time.Time) *behaviorStates {
	return &behaviorStates{floor: now.Add(-behaviorGrace), states: map[stateKey]*behaviorEntry{}, touched: map[memberKey]bool{}}
}

// loadBehaviorStates reads the stored states of users in segs.
func loadBehaviorStates(ctx context.Context, states *ent.BehaviorStateClient, now time.Time, segs, users []pulid.ID) (*behaviorStates, error) {
	bs := newBehaviorStates(now)
	if len(segs) == 0 || len(users) == 0 {
		return bs, nil
	}
	for start := 0; start < len(users); start += bulkRows {
		chunk := users[start:min(start+bulkRows, len(users))]
		rows, err := states.Query().
			Where(behaviorstate.UserRefIn(chunk...), behaviorstate.SegmentRefIn(segs...)).All(ctx)
		if err != nil {
			return nil, fmt.Errorf("load behaviour states: %w", err)
		}
		for _, r := range rows {
			bs.states[stateKey{r.SegmentRef, r.UserRef, r.Key}] = &behaviorEntry{raw: r.State, saved: true}
		}
	}
	return bs, nil
}

// state is the state of b for (seg, user): the stored one, or an empty one
// (a user none of whose events counted yet).
func (bs *behaviorStates) state(seg, user pulid.ID, b *trigger.Behavior) *behaviorEntry {
	k := stateKey{seg, user, b.Key()}
	e := bs.states[k]
	if e == nil {
		e = &behaviorEntry{}
		bs.states[k] = e
	}
	if e.state == nil {
		st, err := behavior.New(b.Spec)
		if err == nil && e.raw != nil {
			err = st.UnmarshalBinary(e.raw)
		}
		if err != nil {
			if bs.err == nil {
				bs.err = fmt.Errorf("behaviour state of %q for segment %s, user %s: %w", b.Text, seg, user, err)
			}
			st, _ = behavior.New(b.Spec)
		}
		e.state = st
	}
	return e
}

// countEvent adds a tracked event of user to the states of every
// behaviour that counts it, in the segments given, and records which
// segments it changed (touched).
func (bs *behaviorStates) countEvent(segs []*exitSegment, user pulid.ID, name string, props map[string]any, ts time.Time) {
	clear(bs.touched)
	for _, x := range segs {
		for _, i := range x.counts[name] {
			b := &x.behaviors[i]
			if !b.Counts(name, props, ts) {
				continue
			}
			v, ok := b.Value(props)
			if b.Property != "" && !ok {
				continue // an aggregate's event without a number changes nothing
			}
			e := bs.state(x.segment.ID, user, b)
			if !bs.floor.IsZero() {
				e.state.Prune(bs.floor)
			}
			e.state.Add(ts, v, ok)
			e.dirty = true
			bs.touched[memberKey{x.segment.ID, user}] = true
		}
	}
}

// envFor is the environment to evaluate prog (of segment seg) for user
// with traits at instant at: the traits, and each behaviour's answer at
// at and next change after it. A state asked about an instant before its
// floor answers at the floor, the earliest instant it knows exactly.
func (bs *behaviorStates) envFor(seg, user pulid.ID, prog *trigger.Program, traits map[string]any, at time.Time) trigger.Env {
	env := trigger.Env{User: traits, Now: at}
	bh := prog.Behaviors()
	if len(bh) == 0 || bs == nil {
		return env
	}
	env.Behaviors = make([]behavior.Result, len(bh))
	env.BehaviorNext = make([]time.Time, len(bh))
	for i := range bh {
		st := bs.state(seg, user, &bh[i]).state
		when := at
		if f, ok := st.Floor(); ok && when.Before(f) {
			when = f
		}
		r, err := st.Eval(when)
		if err != nil {
			continue // false, as a predicate without a result is
		}
		env.Behaviors[i] = r
		if next, ok, err := st.NextChange(when); err == nil && ok {
			env.BehaviorNext[i] = next
		}
	}
	return env
}

// save writes the states changed in this transaction.
func (bs *behaviorStates) save(ctx context.Context, tx *ent.Tx) error {
	if bs == nil {
		return nil
	}
	if bs.err != nil {
		return bs.err
	}
	var rows []*ent.BehaviorStateCreate
	for k, e := range bs.states {
		if !e.dirty {
			continue
		}
		b, err := e.state.MarshalBinary()
		if err != nil {
			return fmt.Errorf("encode behaviour state: %w", err)
		}
		rows = append(rows, tx.BehaviorState.Create().SetSegmentRef(k.segment).SetUserRef(k.user).SetKey(k.key).SetState(b))
		e.dirty, e.saved = false, true
	}
	err := bulk(ctx, rows, func(b []*ent.BehaviorStateCreate) error {
		return tx.BehaviorState.CreateBulk(b...).
			OnConflictColumns(behaviorstate.FieldSegmentRef, behaviorstate.FieldUserRef, behaviorstate.FieldKey).
			UpdateState().Exec(ctx)
	})
	if err != nil {
		return fmt.Errorf("save behaviour states: %w", err)
	}
	return nil
}

// buildBehaviorStates makes the states of prog's behaviours for users (a
// page of a fill) from their stored events, replacing what seg kept for
// them: a new or edited segment counts what users did before it existed.
func buildBehaviorStates(ctx context.Context, tx *ent.Tx, now time.Time, seg pulid.ID, prog *trigger.Program, users []*ent.User) (*behaviorStates, error) {
	bs := newBehaviorStates(now)
	if len(prog.Behaviors()) == 0 || len(users) == 0 {
		return bs, nil
	}
	if err := countStoredEvents(ctx, tx.Event, bs, seg, prog, users); err != nil {
		return nil, err
	}
	refs := make([]pulid.ID, len(users))
	for i, u := range users {
		refs[i] = u.ID
	}
	if _, err := tx.BehaviorState.Delete().
		Where(behaviorstate.SegmentRef(seg), behaviorstate.UserRefIn(refs...)).Exec(ctx); err != nil {
		return nil, fmt.Errorf("drop old behaviour states: %w", err)
	}
	return bs, bs.save(ctx, tx)
}

// countStoredEvents adds the stored events of users to bs's states of
// prog's behaviours, under seg. It reads only the events of the names
// counted, and only users' (by the index on user_id).
func countStoredEvents(ctx context.Context, events *ent.EventClient, bs *behaviorStates, seg pulid.ID, prog *trigger.Program, users []*ent.User) error {
	x := &exitSegment{segment: &ent.Segment{ID: seg}}
	x.setBehaviors(prog)
	names := make([]string, 0, len(x.counts))
	for n := range x.counts {
		names = append(names, n)
	}
	ids := make([]string, len(users))
	refs := make(map[string]pulid.ID, len(users))
	for i, u := range users {
		ids[i], refs[u.UserID] = u.UserID, u.ID
	}
	segs := []*exitSegment{x}
	for start := 0; start < len(ids); start += bulkRows {
		evs, err := events.Query().
			Where(event.UserIDIn(ids[start:min(start+bulkRows, len(ids))]...), event.TypeEQ(event.TypeTRACK), event.NameIn(names...)).
			Select(event.FieldUserID, event.FieldName, event.FieldProperties, event.FieldTimestamp).All(ctx)
		if err != nil {
			return fmt.Errorf("load counted events: %w", err)
		}
		for _, e := range evs {
			if e.UserID == nil || e.Name == nil {
				continue
			}
			bs.countEvent(segs, refs[*e.UserID], *e.Name, e.Properties, e.Timestamp)
		}
	}
	return nil
}

// setBehaviors lists prog's behaviours on x, with the event names they
// count.
func (x *exitSegment) setBehaviors(prog *trigger.Program) {
	x.behaviors = prog.Behaviors()
	x.counts = map[string][]int{}
	for i, b := range x.behaviors {
		x.counts[b.Event] = append(x.counts[b.Event], i)
	}
}

// rebuildBehaviorStates makes an EVENT_TRIGGERED segment's behaviour
// states anew from the stored events, every user's, a page at a time
// (a DYNAMIC segment's fill does it as it goes): after a create, and after
// an update, whose predicates may have changed.
func (s *Service) rebuildBehaviorStates(ctx context.Context, tx *ent.Tx, seg *ent.Segment) error {
	if _, err := tx.BehaviorState.Delete().Where(behaviorstate.SegmentRef(seg.ID)).Exec(ctx); err != nil {
		return fmt.Errorf("drop behaviour states: %w", err)
	}
	root, err := ConditionTree(ctx, tx.Client(), seg.ID)
	if err != nil {
		return err
	}
	prog, err := trigger.Compile(TriggerNode(root))
	if err != nil {
		return fmt.Errorf("compile conditions of segment %s: %w", seg.ID, err)
	}
	if len(prog.Behaviors()) == 0 {
		return nil
	}
	now := s.now()
	return eachUserPage(ctx, tx.Client(), func(page []*ent.User) error {
		_, err := buildBehaviorStates(ctx, tx, now, seg.ID, prog, page)
		return err
	})
}

// errOrNil is the first decoding error, nil for a nil set.
func (bs *behaviorStates) errOrNil() error {
	if bs == nil {
		return nil
	}
	return bs.err
}
