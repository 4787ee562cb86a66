package service

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/segmentd/segmentd/behavior"
	"github.com/segmentd/segmentd/ent"
	"github.com/segmentd/segmentd/ent/behaviorstate"
	"github.com/segmentd/segmentd/ent/event"
	"github.com/segmentd/segmentd/ent/schema/pulid"
	"github.com/segmentd/segmentd/ent/user"
	"github.com/segmentd/segmentd/trigger"
)

// Behaviour predicates (performed): each (user, predicate key) has a
// behavior.State in behavior_states, shared by every segment with that
// predicate, which the ingest transaction that stores an event updates
// when the event counts, and which a segment whose predicate no other
// segment keeps builds from the stored events (statesForPage). Evaluation
// reads the state, never the history: envFor puts each predicate's answer
// and next change into the trigger.Env.

// behaviorGrace is how late an event may arrive and still be evaluated at
// its own timestamp: a state promises answers from the ingest clock less
// the grace on (behavior.State.Prune), so that client clocks that lag a
// little are exact. An event later than that counts in every window that
// still ends at or after the floor, and is evaluated at the floor.
const behaviorGrace = time.Minute

type stateKey struct {
	user pulid.ID
	key  string
}

// behaviorStates are the states one transaction reads and writes. A state
// belongs to (user, predicate key), not to a segment: segments with the
// same predicate share it (trigger.Behavior.Key tells them apart), so 100
// segments that count "Sign Up" keep one state per user, not 100.
type behaviorStates struct {
	// floor is what countEvent prunes the states to; zero: nothing (a
	// replay's states answer for any instant of the history).
	floor  time.Time
	states map[stateKey]*behaviorEntry
	// touched are the (segment, user) pairs whose predicates the current
	// event counted in; countEvent resets it.
	touched map[memberKey]bool
	err     error // the first decoding error; the transaction fails with it
}

type behaviorEntry struct {
	raw   []byte // as stored, decoded on first use
	state *behavior.State
	dirty bool
}

func newBehaviorStates(now time.Time) *behaviorStates {
	return &behaviorStates{floor: now.Add(-behaviorGrace), states: map[stateKey]*behaviorEntry{}, touched: map[memberKey]bool{}}
}

// loadBehaviorStates reads the stored states of users under keys.
func loadBehaviorStates(ctx context.Context, states *ent.BehaviorStateClient, now time.Time, keys []string, users []pulid.ID) (*behaviorStates, error) {
	bs := newBehaviorStates(now)
	if len(keys) == 0 || len(users) == 0 {
		return bs, nil
	}
	for start := 0; start < len(users); start += bulkRows {
		chunk := users[start:min(start+bulkRows, len(users))]
		rows, err := states.Query().
			Where(behaviorstate.UserRefIn(chunk...), behaviorstate.KeyIn(keys...)).All(ctx)
		if err != nil {
			return nil, fmt.Errorf("load behaviour states: %w", err)
		}
		for _, r := range rows {
			bs.states[stateKey{r.UserRef, r.Key}] = &behaviorEntry{raw: r.State}
		}
	}
	return bs, nil
}

// state is the state of b for user: the stored one, or an empty one (a
// user none of whose events counted yet).
func (bs *behaviorStates) state(user pulid.ID, b *trigger.Behavior) *behaviorEntry {
	k := stateKey{user, b.Key()}
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
				bs.err = fmt.Errorf("behaviour state of %q for user %s: %w", b.Text, user, err)
			}
			st, _ = behavior.New(b.Spec)
		}
		e.state = st
	}
	return e
}

// countEvent adds a tracked event of user to the state of every behaviour
// of segs that counts it, once per key however many segments share it,
// and records the segments it changed (touched).
func (bs *behaviorStates) countEvent(segs []*exitSegment, user pulid.ID, name string, props map[string]any, ts time.Time) {
	clear(bs.touched)
	decided := map[string]bool{} // key: counted
	for _, x := range segs {
		for _, i := range x.counts[name] {
			b := &x.behaviors[i]
			counted, done := decided[b.Key()]
			if !done {
				counted = bs.add(user, b, name, props, ts)
				decided[b.Key()] = counted
			}
			if counted {
				bs.touched[memberKey{x.segment.ID, user}] = true
			}
		}
	}
}

// add counts one event in user's state of b, if b counts it.
func (bs *behaviorStates) add(user pulid.ID, b *trigger.Behavior, name string, props map[string]any, ts time.Time) bool {
	if !b.Counts(name, props, ts) {
		return false
	}
	v, ok := b.Value(props)
	if b.Property != "" && !ok {
		return false // an aggregate's event without a number changes nothing
	}
	e := bs.state(user, b)
	if !bs.floor.IsZero() {
		e.state.Prune(bs.floor)
	}
	e.state.Add(ts, v, ok)
	e.dirty = true
	return true
}

// envFor is the environment to evaluate prog for user with traits at
// instant at: the traits, and each behaviour's answer at at and next
// change after it. A state asked about an instant before its floor
// answers at the floor, the earliest instant it knows exactly.
func (bs *behaviorStates) envFor(user pulid.ID, prog *trigger.Program, traits map[string]any, at time.Time) trigger.Env {
	env := trigger.Env{User: traits, Now: at}
	bh := prog.Behaviors()
	if len(bh) == 0 || bs == nil {
		return env
	}
	env.Behaviors = make([]behavior.Result, len(bh))
	env.BehaviorNext = make([]time.Time, len(bh))
	for i := range bh {
		st := bs.state(user, &bh[i]).state
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

// timeNote says, for a change the clock made at at (a re-evaluation
// deadline, which is rounded up to the microsecond), which behaviours'
// figures moved at that instant and how: "; it was 1 until the last one
// fell out of the window at 2026-12-01T09:00:00Z" ("it" the predicate the
// reason names, or the predicate's text when there are several). A reason
// without it would say what holds now but not what time did. "" when no
// figure moved there.
func (bs *behaviorStates) timeNote(user pulid.ID, prog *trigger.Program, at time.Time) string {
	if bs == nil {
		return ""
	}
	var b strings.Builder
	seen := map[string]bool{}
	before := at.Add(-time.Microsecond)
	// With one measurement the reason already names it: "it" is enough.
	single := len(programKeys(prog)) == 1
	for _, bh := range prog.Behaviors() {
		if seen[bh.Key()] {
			continue
		}
		seen[bh.Key()] = true
		st := bs.state(user, &bh).state
		was, err1 := st.Eval(before)
		now, err2 := st.Eval(at)
		if err1 != nil || err2 != nil || was.Figure == now.Figure && was.Defined == now.Defined {
			continue
		}
		// An event that left was last in the window just before at; one
		// that came in (future-dated) is in from at.
		how, when := "one fell out of the window", before
		switch {
		case bh.Property == "" && now.Figure > was.Figure, now.Defined && !was.Defined:
			how, when = "one came into the window", at
		case bh.Property == "" && now.Figure == 0, !now.Defined:
			how = "the last one fell out of the window"
		}
		what := bh.Text
		if single {
			what = "it"
		}
		fmt.Fprintf(&b, "; %s was %s until %s at %s", what, trigger.FigureText(was), how, when.UTC().Format(time.RFC3339Nano))
	}
	return b.String()
}

// exitEnv is the environment of an exit event's condition: the event's
// properties, the user's traits and, when the condition has behaviours,
// their answers with the event counted.
func (bs *behaviorStates) exitEnv(user pulid.ID, prog *trigger.Program, props, traits map[string]any, at time.Time) trigger.Env {
	env := bs.envFor(user, prog, traits, at)
	env.Event = props
	return env
}

// exitHistoryEnv is the environment in which ingestion judged exit event
// e of a user whose counted events, in arrival order, are history: the
// behaviours of prog as of e's arrival (e counted, later arrivals not), at
// e's timestamp, or at its states' floor for a late event.
func exitHistoryEnv(prog *trigger.Program, history []*ent.Event, e *ent.Event, traits map[string]any) trigger.Env {
	at := e.Timestamp
	if floor := e.ReceivedAt.Add(-behaviorGrace); at.Before(floor) {
		at = floor
	}
	if len(prog.Behaviors()) == 0 {
		return trigger.Env{Event: e.Properties, User: traits, Now: e.Timestamp}
	}
	var received []*verifyEvent
	for _, h := range history {
		received = append(received, &verifyEvent{id: h.ID, typ: h.Type, name: *h.Name, props: h.Properties,
			timestamp: h.Timestamp, receivedAt: h.ReceivedAt})
		if h.ID == e.ID {
			break
		}
	}
	env := oracleEnv(prog, received, traits, at)
	env.Event = e.Properties
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
		rows = append(rows, tx.BehaviorState.Create().SetUserRef(k.user).SetKey(k.key).SetState(b))
		e.dirty = false
	}
	err := bulk(ctx, rows, func(b []*ent.BehaviorStateCreate) error {
		return tx.BehaviorState.CreateBulk(b...).
			OnConflictColumns(behaviorstate.FieldUserRef, behaviorstate.FieldKey).
			UpdateState().Exec(ctx)
	})
	if err != nil {
		return fmt.Errorf("save behaviour states: %w", err)
	}
	return nil
}

// errOrNil is the first decoding error, nil for a nil set.
func (bs *behaviorStates) errOrNil() error {
	if bs == nil {
		return nil
	}
	return bs.err
}

// countStoredEvents adds the stored events of users to bs's states of
// prog's behaviours (only those whose keys are in only; nil: all). It
// reads only the events of the names counted, and only users' (by the
// index on user_id).
func countStoredEvents(ctx context.Context, events *ent.EventClient, bs *behaviorStates, prog *trigger.Program, users []*ent.User, only map[string]bool) error {
	x := &exitSegment{segment: &ent.Segment{}}
	x.setBehaviors(prog)
	if only != nil {
		kept := x.behaviors[:0:0]
		for _, b := range x.behaviors {
			if only[b.Key()] {
				kept = append(kept, b)
			}
		}
		x.setBehaviorList(kept)
	}
	if len(x.behaviors) == 0 || len(users) == 0 {
		return nil
	}
	ids := make([]string, len(users))
	refs := make(map[string]pulid.ID, len(users))
	for i, u := range users {
		ids[i], refs[u.UserID] = u.UserID, u.ID
	}
	segs := []*exitSegment{x}
	for start := 0; start < len(ids); start += bulkRows {
		// By user alone, the type and name tested here: with them in the
		// WHERE clause both stores' planners (SQLite's without statistics
		// above all) took the index on (type, name, id) and read every
		// event of the name for each page of users, 100 times over for
		// 100,000 users.
		evs, err := events.Query().
			Where(event.UserIDIn(ids[start:min(start+bulkRows, len(ids))]...)).
			Select(event.FieldType, event.FieldUserID, event.FieldName, event.FieldProperties, event.FieldTimestamp).All(ctx)
		if err != nil {
			return fmt.Errorf("load counted events: %w", err)
		}
		for _, e := range evs {
			if e.Type != event.TypeTRACK || e.UserID == nil || e.Name == nil || x.counts[*e.Name] == nil {
				continue
			}
			bs.countEvent(segs, refs[*e.UserID], *e.Name, e.Properties, e.Timestamp)
		}
	}
	return nil
}

// statesForPage are the states of prog's behaviours for a page of users:
// those under keys other segments keep up to date as stored, and those
// under the keys in build made anew from the users' stored events (and
// written), since nothing kept them while no segment had them.
func statesForPage(ctx context.Context, tx *ent.Tx, now time.Time, prog *trigger.Program, page []*ent.User, build map[string]bool) (*behaviorStates, error) {
	keys := programKeys(prog)
	refs := make([]pulid.ID, len(page))
	for i, u := range page {
		refs[i] = u.ID
	}
	bs, err := loadBehaviorStates(ctx, tx.BehaviorState, now, keys, refs)
	if err != nil || len(build) == 0 {
		return bs, err
	}
	buildKeys := make([]string, 0, len(build))
	for k := range build {
		buildKeys = append(buildKeys, k)
	}
	if _, err := tx.BehaviorState.Delete().
		Where(behaviorstate.UserRefIn(refs...), behaviorstate.KeyIn(buildKeys...)).Exec(ctx); err != nil {
		return nil, fmt.Errorf("drop stale behaviour states: %w", err)
	}
	for k := range bs.states {
		if build[k.key] {
			delete(bs.states, k)
		}
	}
	if err := countStoredEvents(ctx, tx.Event, bs, prog, page, build); err != nil {
		return nil, err
	}
	return bs, bs.save(ctx, tx)
}

// programKeys are the distinct keys of prog's behaviours.
func programKeys(prog *trigger.Program) []string {
	seen := map[string]bool{}
	var out []string
	for _, b := range prog.Behaviors() {
		if !seen[b.Key()] {
			seen[b.Key()] = true
			out = append(out, b.Key())
		}
	}
	return out
}

// segmentKeys are the distinct keys of the behaviours of segs.
func segmentKeys(segs []*exitSegment, except pulid.ID) map[string]bool {
	out := map[string]bool{}
	for _, x := range segs {
		if x.segment.ID == except {
			continue
		}
		for _, b := range x.behaviors {
			out[b.Key()] = true
		}
	}
	return out
}

// keysToBuild are the keys of prog (seg's new condition) that no other
// segment keeps up to date: their states must be built from the stored
// events.
func (s *Service) keysToBuild(ctx context.Context, tx *ent.Tx, seg pulid.ID, prog *trigger.Program) (map[string]bool, error) {
	keys := programKeys(prog)
	if len(keys) == 0 {
		return nil, nil
	}
	segs, err := s.exitSegments(ctx, tx)
	if err != nil {
		return nil, err
	}
	kept := segmentKeys(segs, seg)
	build := map[string]bool{}
	for _, k := range keys {
		if !kept[k] {
			build[k] = true
		}
	}
	if st := s.staged; st != nil {
		// Kept up to date until this change (by this segment itself,
		// before its update): nothing to build. Built ahead of this
		// transaction: only the users whose events arrived meanwhile.
		caught := map[string]bool{}
		for k := range build {
			switch {
			case st.kept[k]:
				delete(build, k)
			case st.keys[k]:
				caught[k] = true
				delete(build, k)
			}
		}
		if err := s.catchUpStagedStates(ctx, tx, st, prog, caught); err != nil {
			return nil, err
		}
	}
	return build, nil
}

// stagedBuild is a build of behaviour states made ahead of a segment
// change's transaction by prebuildBehaviorStates, which keysToBuild, in
// that transaction, completes.
type stagedBuild struct {
	// kept are the keys some segment kept up to date before the change
	// (the changed segment included); keys those built ahead.
	kept map[string]bool
	keys map[string]bool
	// after is the events log's position when the build began: users
	// with events after it are built again inside the transaction.
	after int64
}

// prebuildBehaviorStates builds, ahead of a segment change's transaction,
// the states of the keys of prog that no segment keeps, every user's, a
// page per short transaction of its own, and leaves them in s.staged for
// keysToBuild. On SQLite, whose one write lock the change's transaction
// holds from its start, building inside it (1,000,000 stored events take
// about 16 s) stopped all ingestion for as long; this way ingestion goes
// on between pages. Nothing reads the staged states until the change
// commits: no segment has their keys. A change that fails leaves them to
// the next change's dropUnusedBehaviorStates, and a crash to the next
// start's (StartSweeper). The caller holds s.defsMu from before this call
// until its transaction ends, and clears s.staged.
func (s *Service) prebuildBehaviorStates(ctx context.Context, segID pulid.ID, name string, node *trigger.Node) error {
	if !hasBehaviors(node) {
		return nil
	}
	prog, err := trigger.Compile(node)
	if err != nil {
		return nil // the transaction reports it, naming the field
	}
	after, ahead, err := s.sql.eventsPosition(ctx, s.db)
	if err != nil {
		return err
	}
	// The keys kept so far, this segment's own included: an update that
	// keeps a predicate need not build it again.
	var kept map[string]bool
	if err := s.inTx(ctx, func(tx *ent.Tx) error {
		segs, err := s.exitSegments(ctx, tx)
		kept = segmentKeys(segs, "")
		return err
	}); err != nil {
		return err
	}
	build := map[string]bool{}
	for _, k := range programKeys(prog) {
		if !kept[k] {
			build[k] = true
		}
	}
	// Staged from the first page on, so that a build that fails midway is
	// dropped too (unstage).
	s.staged = &stagedBuild{kept: kept}
	if !ahead || len(build) == 0 {
		return nil // PostgreSQL builds inside the transaction
	}
	s.staged.keys, s.staged.after = build, after
	now := s.now()
	return s.eachUserPageWithProgress(ctx, s.client, &ent.Segment{ID: segID, Name: name}, func(page []*ent.User) error {
		// The page's events are read outside the write lock.
		bs := newBehaviorStates(now)
		if err := countStoredEvents(ctx, s.client.Event, bs, prog, page, build); err != nil {
			return err
		}
		return s.inTx(ctx, func(tx *ent.Tx) error {
			refs := make([]pulid.ID, len(page))
			for i, u := range page {
				refs[i] = u.ID
			}
			// A user erased since the page was read keeps no state.
			live, err := tx.User.Query().Where(user.IDIn(refs...), NotErased()).IDs(ctx)
			if err != nil {
				return fmt.Errorf("stage behaviour states: %w", err)
			}
			alive := make(map[pulid.ID]bool, len(live))
			for _, id := range live {
				alive[id] = true
			}
			for k := range bs.states {
				if !alive[k.user] {
					delete(bs.states, k)
				}
			}
			if _, err := tx.BehaviorState.Delete().Where(behaviorstate.UserRefIn(refs...), behaviorstate.KeyIn(keysOf(build)...)).Exec(ctx); err != nil {
				return fmt.Errorf("stage behaviour states: %w", err)
			}
			return bs.save(ctx, tx)
		})
	})
}

// unstage ends a segment change's staged build (the caller holds
// s.defsMu): after a change that failed, the staged states are deleted at
// once, as no segment will keep them up to date.
func (s *Service) unstage(failed bool) {
	st := s.staged
	s.staged = nil
	if st == nil || !failed {
		return
	}
	// The change's own context may be what ended it.
	ctx, cancel := context.WithTimeout(s.background, time.Minute)
	defer cancel()
	if err := s.inTx(ctx, func(tx *ent.Tx) error { return s.dropUnusedBehaviorStates(ctx, tx) }); err != nil {
		s.log.Warn("dropping staged behaviour states", "err", err)
	}
}

// catchUpStagedStates builds the states under keys again for the users
// whose events of the names they count were stored after the staged build
// began (new users among them): the pages built before their events came
// did not count them, and no segment kept those keys up to date meanwhile.
func (s *Service) catchUpStagedStates(ctx context.Context, tx *ent.Tx, st *stagedBuild, prog *trigger.Program, keys map[string]bool) error {
	if len(keys) == 0 {
		return nil
	}
	var names []string
	for _, b := range prog.Behaviors() {
		if keys[b.Key()] && !slices.Contains(names, b.Event) {
			names = append(names, b.Event)
		}
	}
	refs, err := s.sql.usersWithEventsAfter(ctx, tx, st.after, names)
	if err != nil {
		return err
	}
	now := s.now()
	for start := 0; start < len(refs); start += bulkRows {
		page, err := tx.User.Query().Where(user.IDIn(refs[start:min(start+bulkRows, len(refs))]...), NotErased()).All(ctx)
		if err != nil {
			return fmt.Errorf("catch up behaviour states: %w", err)
		}
		if _, err := statesForPage(ctx, tx, now, prog, page, keys); err != nil {
			return err
		}
	}
	return nil
}

// rebuildBehaviorStates builds the states an EVENT_TRIGGERED segment's new
// condition and exit condition need and no other segment keeps (a DYNAMIC segment's fill does
// it as it goes), every user's, a page at a time, after a create or an
// update; then it drops the states no segment uses any more.
func (s *Service) rebuildBehaviorStates(ctx context.Context, tx *ent.Tx, seg *ent.Segment) error {
	prog, err := stateProgram(ctx, tx.Client(), seg)
	if err != nil {
		return err
	}
	build, err := s.keysToBuild(ctx, tx, seg.ID, prog)
	if err != nil {
		return err
	}
	if len(build) > 0 {
		now := s.now()
		err = s.eachUserPageWithProgress(ctx, tx.Client(), seg, func(page []*ent.User) error {
			_, err := statesForPage(ctx, tx, now, prog, page, build)
			return err
		})
		if err != nil {
			return err
		}
	}
	return s.dropUnusedBehaviorStates(ctx, tx)
}

// dropUnusedBehaviorStates deletes the states of keys no segment has (a
// deleted segment's, or an edited one's old predicates): nothing keeps
// them up to date any more, and a segment that takes such a predicate
// again builds it anew.
func (s *Service) dropUnusedBehaviorStates(ctx context.Context, tx *ent.Tx) error {
	segs, err := s.exitSegments(ctx, tx)
	if err != nil {
		return err
	}
	inUse := segmentKeys(segs, "")
	q := tx.BehaviorState.Delete()
	if len(inUse) > 0 {
		keys := make([]string, 0, len(inUse))
		for k := range inUse {
			keys = append(keys, k)
		}
		q.Where(behaviorstate.KeyNotIn(keys...))
	}
	if _, err := q.Exec(ctx); err != nil {
		return fmt.Errorf("drop unused behaviour states: %w", err)
	}
	return nil
}

// setBehaviors lists prog's behaviours on x, with the event names they
// count.
func (x *exitSegment) setBehaviors(prog *trigger.Program) { x.setBehaviorList(prog.Behaviors()) }

func (x *exitSegment) setBehaviorList(bh []trigger.Behavior) {
	x.behaviors = bh
	x.counts = map[string][]int{}
	for i, b := range x.behaviors {
		x.counts[b.Event] = append(x.counts[b.Event], i)
	}
}

// countPerformed counts the tree's performed predicates.
func countPerformed(n *trigger.Node) int {
	if n == nil {
		return 0
	}
	if n.Kind == trigger.KindPerformed {
		return 1
	}
	total := 0
	for _, c := range n.Children {
		total += countPerformed(c)
	}
	return total
}

// stateProgram is what a segment keeps behaviour states for: its
// condition's performed predicates and its exit condition's, as one
// program (the AND of the two trees; only its Behaviors are read).
func stateProgram(ctx context.Context, client *ent.Client, seg *ent.Segment) (*trigger.Program, error) {
	root, err := ConditionTree(ctx, client, seg.ID)
	if err != nil {
		return nil, err
	}
	node := TriggerNode(root)
	if len(seg.ExitOnEvents) > 0 {
		exitRoot, err := ExitConditionTree(ctx, client, seg.ID)
		if err != nil {
			return nil, err
		}
		if exitNode := TriggerNode(exitRoot); hasBehaviors(exitNode) {
			if node == nil {
				node = exitNode
			} else {
				node = &trigger.Node{Kind: trigger.KindAnd, Children: []*trigger.Node{node, exitNode}}
			}
		}
	}
	prog, err := trigger.Compile(node)
	if err != nil {
		return nil, fmt.Errorf("compile behaviours of segment %s: %w", seg.ID, err)
	}
	return prog, nil
}

// hasBehaviors reports whether the tree has a performed predicate.
func hasBehaviors(n *trigger.Node) bool { return countPerformed(n) > 0 }
