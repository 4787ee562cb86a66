package service

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"entgo.io/ent/dialect/sql"

	"github.com/segmentd/segmentd/changelog"
	"github.com/segmentd/segmentd/ent"
	"github.com/segmentd/segmentd/ent/condition"
	"github.com/segmentd/segmentd/ent/event"
	"github.com/segmentd/segmentd/ent/schema"
	"github.com/segmentd/segmentd/ent/schema/pulid"
	"github.com/segmentd/segmentd/ent/segment"
	"github.com/segmentd/segmentd/ledger"
	"github.com/segmentd/segmentd/trigger"
)

// exitSegment is a segment whose members can leave, or (DYNAMIC) whose
// membership follows its condition, compiled for ingestion.
type exitSegment struct {
	segment *ent.Segment
	// program is the segment's condition.
	program *trigger.Program
	// traitProgram is the condition as a trait change alone can decide it:
	// EVENT-scope predicates count as whatever lets the condition hold, so
	// a member leaves on a trait change only when no event could make the
	// condition hold with the new traits. For DYNAMIC it is program.
	traitProgram *trigger.Program
	// exitEvent is the condition of the exit events (nil: none).
	exitEvent *trigger.Program
	onEvents  map[string]bool
	// timeDependent: the condition has a WITHIN_LAST, so its answer can
	// change with no trait change.
	timeDependent bool
	// traitNames are the USER-scope properties the condition reads: a
	// trait change that sets none of them cannot change its answer.
	traitNames map[string]bool
	// behaviors are the behaviour predicates (performed) of the condition
	// and of the exit condition, whose states ingestion keeps, and counts
	// the indexes of those that count each event name.
	behaviors []trigger.Behavior
	counts    map[string][]int
}

// readsAny reports whether the condition reads one of the traits an event
// sets (a nested trait "address.city" is read through "address").
func (x *exitSegment) readsAny(traits map[string]any) bool {
	for k := range traits {
		if x.traitNames[k] {
			return true
		}
		for name := range x.traitNames {
			if strings.HasPrefix(name, k+".") {
				return true
			}
		}
	}
	return false
}

func (x *exitSegment) dynamic() bool { return x.segment.Kind == segment.KindDYNAMIC }

// exitCache keeps the compiled exit segments. The list is valid while the
// segments' count and latest updated_at stay the same: every create,
// update and delete changes one of them, also on another replica, so a
// batch checks them with one aggregate query instead of loading segments.
type exitCache struct {
	mu       sync.Mutex
	count    int
	latest   string
	loaded   bool
	segments []*exitSegment
}

// exitSegments returns the DYNAMIC segments and the segments with exit
// rules, in creation order.
func (s *Service) exitSegments(ctx context.Context, tx *ent.Tx) ([]*exitSegment, error) {
	// The version is compared as the database renders it, so no time
	// parsing (or precision) can differ between reads.
	var v []struct {
		Count  int     `json:"count"`
		Latest *string `json:"latest"`
	}
	err := tx.Segment.Query().Aggregate(ent.Count(), ent.As(ent.Max(segment.FieldUpdatedAt), "latest")).Scan(ctx, &v)
	if err != nil {
		return nil, fmt.Errorf("segments version: %w", err)
	}
	count, latest := 0, ""
	if len(v) > 0 {
		count = v[0].Count
		if v[0].Latest != nil {
			latest = *v[0].Latest
		}
	}
	c := &s.exits
	c.mu.Lock()
	if c.loaded && c.count == count && c.latest == latest {
		list := c.segments
		c.mu.Unlock()
		return list, nil
	}
	c.mu.Unlock()
	segs, err := tx.Segment.Query().
		Where(func(sel *sql.Selector) {
			sel.Where(sql.Or(
				sql.EQ(sel.C(segment.FieldKind), segment.KindDYNAMIC.String()),
				sql.EQ(sel.C(segment.FieldExitWhenConditionFails), true),
				sql.NotNull(sel.C(segment.FieldExitAfter)),
				sql.And(sql.NotNull(sel.C(segment.FieldExitOnEvents)), sql.NEQ(sel.C(segment.FieldExitOnEvents), "[]")),
				// Segments with behaviour predicates: their states count
				// every event of the names they count.
				sql.In(sel.C(segment.FieldID), sql.Select(condition.FieldSegmentRef).From(sql.Table(condition.Table)).
					Where(sql.And(sql.EQ(condition.FieldKind, string(trigger.KindPerformed)), sql.EQ(condition.FieldTree, condition.TreeENTRY.String())))),
			))
		}).
		Order(ent.Asc(segment.FieldCreatedAt), ent.Asc(segment.FieldID)).All(ctx)
	if err != nil {
		return nil, fmt.Errorf("load exit segments: %w", err)
	}
	list := make([]*exitSegment, 0, len(segs))
	for _, seg := range segs {
		x, err := compileExitSegment(ctx, tx.Client(), seg.Unwrap())
		if err != nil {
			return nil, err
		}
		list = append(list, x)
	}
	c.mu.Lock()
	c.count, c.latest, c.loaded, c.segments = count, latest, true, list
	c.mu.Unlock()
	return list, nil
}

func compileExitSegment(ctx context.Context, client *ent.Client, seg *ent.Segment) (*exitSegment, error) {
	root, err := ConditionTree(ctx, client, seg.ID)
	if err != nil {
		return nil, err
	}
	node := TriggerNode(root)
	x := &exitSegment{segment: seg, onEvents: map[string]bool{}}
	if x.program, err = trigger.Compile(node); err != nil {
		return nil, fmt.Errorf("compile conditions of segment %s: %w", seg.ID, err)
	}
	x.traitProgram = x.program
	if !x.dynamic() && node != nil {
		if x.traitProgram, err = trigger.Compile(traitsOnly(node, true)); err != nil {
			return nil, fmt.Errorf("compile trait conditions of segment %s: %w", seg.ID, err)
		}
	}
	// A behaviour's window slides with the clock (the exit condition's
	// are judged only when an exit event arrives).
	x.timeDependent = hasOperator(node, trigger.OpWithinLast) || len(x.program.Behaviors()) > 0
	x.traitNames = map[string]bool{}
	collectTraitNames(node, x.traitNames)
	for _, e := range seg.ExitOnEvents {
		x.onEvents[e] = true
	}
	if len(seg.ExitOnEvents) > 0 {
		exitRoot, err := ExitConditionTree(ctx, client, seg.ID)
		if err != nil {
			return nil, err
		}
		if exitRoot != nil {
			if x.exitEvent, err = trigger.Compile(TriggerNode(exitRoot)); err != nil {
				return nil, fmt.Errorf("compile exit condition of segment %s: %w", seg.ID, err)
			}
		}
	}
	// The states kept for the segment: its condition's behaviours, then
	// its exit condition's.
	x.setBehaviorList(append(x.program.Behaviors(), x.exitEvent.Behaviors()...))
	return x, nil
}

// traitsOnly rewrites n for evaluation without an event (Env.Event empty):
// each EVENT-scope predicate becomes a constant that favours the condition
// (true where it counts positively, false under an odd number of NOTs), so
// the result fails only when the traits alone make it fail.
func traitsOnly(n *trigger.Node, positive bool) *trigger.Node {
	switch n.Kind {
	case trigger.KindPredicate:
		if n.Scope != trigger.ScopeEvent {
			return n
		}
		// With no event, "event.p exists" is false and its NOT true.
		exists := &trigger.Node{Kind: trigger.KindPredicate, Scope: trigger.ScopeEvent, Property: n.Property, Operator: trigger.OpExists}
		if positive {
			return &trigger.Node{Kind: trigger.KindNot, Children: []*trigger.Node{exists}}
		}
		return exists
	case trigger.KindNot:
		return &trigger.Node{Kind: trigger.KindNot, Children: []*trigger.Node{traitsOnly(n.Children[0], !positive)}}
	case trigger.KindPerformed:
		// A behaviour reads the user's events, not the triggering one:
		// its answer stands without an event.
		return n
	}
	out := &trigger.Node{Kind: n.Kind, Children: make([]*trigger.Node, len(n.Children))}
	for i, ch := range n.Children {
		out.Children[i] = traitsOnly(ch, positive)
	}
	return out
}

func collectTraitNames(n *trigger.Node, into map[string]bool) {
	if n == nil {
		return
	}
	if n.Kind == trigger.KindPredicate && n.Scope == trigger.ScopeUser {
		into[n.Property] = true
	}
	for _, ch := range n.Children {
		collectTraitNames(ch, into)
	}
}

func hasOperator(n *trigger.Node, op trigger.Operator) bool {
	if n == nil {
		return false
	}
	if n.Kind == trigger.KindPredicate {
		return n.Operator == op
	}
	for _, ch := range n.Children {
		if hasOperator(ch, op) {
			return true
		}
	}
	return false
}

// memberRow is what a batch knows of a current membership.
type memberRow struct {
	id        pulid.ID
	enteredAt time.Time
}

// ledgerOp is one entry or exit of a batch, in evaluation order.
type ledgerOp struct {
	key    memberKey
	entry  *ledger.Entry
	exit   *ledger.Exit
	result int // the index of the entry's event's result
}

// changes collects a batch's entries and exits in order and keeps the
// batch's view of who is a member.
type changes struct {
	members map[memberKey]*memberRow
	ops     []ledgerOp
	// reevals are the next re-evaluation deadlines of users whose place
	// the clock can change (see dynamic_time.go); nil: remove.
	reevals map[memberKey]*time.Time
}

func (c *changes) isMember(k memberKey) bool { return c.members[k] != nil }

func (c *changes) enter(e ledger.Entry, result int) {
	k := memberKey{e.Segment, e.User}
	e.Membership = pulid.New("mem")
	c.members[k] = &memberRow{id: e.Membership, enteredAt: e.At}
	c.ops = append(c.ops, ledgerOp{key: k, entry: &e, result: result})
}

func (c *changes) exit(k memberKey, source changelog.Source, reason string, at time.Time) {
	m := c.members[k]
	if m == nil {
		return
	}
	delete(c.members, k)
	x := ledger.Exit{Membership: m.id, Segment: k.segment, User: k.user, EnteredAt: m.enteredAt,
		Source: source, Reason: reason, At: at}
	c.ops = append(c.ops, ledgerOp{key: k, exit: &x})
}

// write hands the changes to the ledger in order: consecutive changes of
// distinct memberships go in one ExitMany and one EnterMany; a membership
// changed twice starts a new round, so that an exit and a re-entry of the
// same user keep their order. activated is called for every activation
// with the result index of its entry.
func (c *changes) write(ctx context.Context, w *ledger.Writer, activated func(result int, cmp *ent.Campaign)) error {
	for start := 0; start < len(c.ops); {
		seen := map[memberKey]bool{}
		end := start
		for end < len(c.ops) && !seen[c.ops[end].key] {
			seen[c.ops[end].key] = true
			end++
		}
		var (
			exits    []ledger.Exit
			entries  []ledger.Entry
			resultOf []int
		)
		for _, op := range c.ops[start:end] {
			if op.exit != nil {
				exits = append(exits, *op.exit)
			} else {
				entries = append(entries, *op.entry)
				resultOf = append(resultOf, op.result)
			}
		}
		if _, err := w.ExitMany(ctx, exits); err != nil {
			return err
		}
		res, err := w.EnterMany(ctx, entries)
		if err != nil {
			return err
		}
		for _, a := range res.Activations {
			activated(resultOf[a.Entry], a.Campaign)
		}
		start = end
	}
	return nil
}

// applyExits applies the exit rules and DYNAMIC segments to one event of
// user u (its traits already merged): DYNAMIC segments are evaluated when
// the traits changed, the user is new or the condition depends on the
// clock; whenConditionFails on a trait change (for segments the event did
// not already evaluate as a trigger); onEvents on an exit event. It returns
// outcomes with one per change made.
func (s *Service) applyExits(st *batchState, ch *changes, exitSegs []*exitSegment, ev *incoming, u *ent.User,
	traitsChanged bool, evaluated map[pulid.ID]bool, outcomes []schema.Outcome, res *TrackResult, result int) []schema.Outcome {
	newUser := u.FirstSeenAt.Equal(st.now)
	for _, x := range exitSegs {
		key := memberKey{x.segment.ID, u.ID}
		counted := st.behaviors.touched[key] // the event changed a behaviour's state
		if x.dynamic() {
			if !newUser && !x.timeDependent && !(traitsChanged && x.readsAny(ev.traits)) {
				continue // nothing that the condition reads has changed
			}
			env := st.behaviors.envFor(u.ID, x.program, u.Traits, ev.timestamp)
			r := x.program.Eval(env)
			if x.timeDependent && (newUser || counted || traitsChanged && x.readsAny(ev.traits)) {
				// The traits and behaviours decide when the clock next can
				// change the answer (a DYNAMIC condition reads no event).
				ch.reevaluate(key, x.nextReevaluation(env))
			}
			source := changelog.SourceEvent
			byTraits := traitsChanged && x.readsAny(ev.traits)
			if byTraits {
				source = changelog.SourceTraits
			}
			switch member := ch.isMember(key); {
			case r.Matched && !member:
				held := strings.TrimPrefix(r.Reason, "matched: ")
				reason := fmt.Sprintf("entered on event %q (%s): %s", eventLabel(ev), ev.id, held)
				if byTraits {
					reason = fmt.Sprintf("entered: traits changed (%s): %s", ev.id, held)
				}
				evID := ev.id
				ch.enter(ledger.Entry{Segment: x.segment.ID, User: u.ID, Event: &evID, Source: source, Reason: reason, At: st.now, ExpiresAt: expiresAt(x.segment, st.now)}, result)
				res.EnteredSegments = append(res.EnteredSegments, x.segment)
				outcomes = append(outcomes, schema.Outcome{SegmentID: x.segment.ID, Entered: true, Reason: "entered: " + r.Reason})
			case !r.Matched && member:
				ch.exit(key, source, "left: "+r.Reason, st.now)
				outcomes = append(outcomes, schema.Outcome{SegmentID: x.segment.ID, Reason: "left: " + r.Reason})
			}
			continue
		}
		if !ch.isMember(key) {
			continue
		}
		heldEnv := func() trigger.Env {
			return st.behaviors.envFor(u.ID, x.traitProgram, u.Traits, ev.timestamp)
		}
		byTraits := traitsChanged && x.readsAny(ev.traits)
		if x.segment.ExitWhenConditionFails && (byTraits || counted) && !evaluated[x.segment.ID] {
			// A trait change, or an event counted by a behaviour, can fail
			// the condition.
			if r := x.traitProgram.Eval(heldEnv()); !r.Matched {
				source := changelog.SourceEvent
				if byTraits {
					source = changelog.SourceTraits
				}
				ch.exit(key, source, "left: "+r.Reason, st.now)
				outcomes = append(outcomes, schema.Outcome{SegmentID: x.segment.ID, Reason: "left: " + r.Reason})
				if x.clockDriven() {
					ch.reevaluate(key, nil)
				}
				continue
			}
		}
		if x.clockDriven() && (evaluated[x.segment.ID] || counted || byTraits) {
			// A member (who just entered, or whose traits or behaviours
			// changed) leaves when the clock fails the condition.
			ch.reevaluate(key, x.nextReevaluation(heldEnv()))
		}
		if ev.typ == event.TypeTRACK && x.onEvents[ev.name] {
			if x.exitEvent == nil || x.exitEvent.Eval(st.behaviors.exitEnv(u.ID, x.exitEvent, ev.props, u.Traits, ev.timestamp)).Matched {
				reason := fmt.Sprintf("left on event %q", ev.name)
				ch.exit(key, changelog.SourceEvent, reason, st.now)
				outcomes = append(outcomes, schema.Outcome{SegmentID: x.segment.ID, Reason: reason})
			}
		}
	}
	return outcomes
}

// eventLabel names an event in a reason: its name, or its type for calls
// without one (identify).
func eventLabel(ev *incoming) string {
	if ev.name != "" {
		return ev.name
	}
	return string(ev.typ)
}
