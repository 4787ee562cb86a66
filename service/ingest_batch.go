package service

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/segmentd/segmentd/changelog"
	"github.com/segmentd/segmentd/ent"
	"github.com/segmentd/segmentd/ent/event"
	"github.com/segmentd/segmentd/ent/membership"
	"github.com/segmentd/segmentd/ent/schema"
	"github.com/segmentd/segmentd/ent/schema/pulid"
	"github.com/segmentd/segmentd/ent/user"
	"github.com/segmentd/segmentd/ledger"
	"github.com/segmentd/segmentd/trigger"
)

// bulkRows is how many rows one multi-row INSERT writes.
const bulkRows = 1000

type memberKey struct{ segment, user pulid.ID }

// applyBatch stores fresh events (each messageId once) and their
// consequences with a fixed number of statements per batch, not per event:
// it reads the memberships that the batch's users hold in the candidate
// segments once, evaluates every event in memory, in order (so that a
// user's second Sign Up in a batch finds them already a member), then
// writes events, memberships, changes, activations and users in multi-row
// statements. The users are locked (lockUsers), so the memberships read
// stay true until commit.
func (s *Service) applyBatch(ctx context.Context, st *batchState, evs []*incoming) ([]*TrackResult, error) {
	plan, err := s.planBatch(ctx, st, evs)
	if err != nil {
		return nil, err
	}
	ch, err := plan.loadMembers(ctx, st.tx)
	if err != nil {
		return nil, err
	}
	if st.behaviors, err = loadBehaviorStates(ctx, st.tx.BehaviorState, st.now, keysOf(segmentKeys(plan.exitSegs, "")), plan.userRefs); err != nil {
		return nil, err
	}
	results := make([]*TrackResult, len(evs))
	eventRows := make([]*ent.EventCreate, len(evs))
	for i, ev := range evs {
		results[i], eventRows[i] = s.applyEvent(st, plan, ch, ev, i)
	}
	if err := storeEvents(ctx, st.tx, evs, eventRows, results); err != nil {
		return nil, err
	}
	// The entries (memberships, changes, counters) and the activations
	// they call for, in multi-row statements.
	w := s.ledger().Writer(st.tx)
	err = ch.write(ctx, w, func(result int, c *ent.Campaign) {
		results[result].ActivatedCampaigns = append(results[result].ActivatedCampaigns, c)
	})
	if err != nil {
		return nil, err
	}
	if err := ch.writeReevaluations(ctx, w); err != nil {
		return nil, err
	}
	if err := st.behaviors.save(ctx, st.tx); err != nil {
		return nil, err
	}
	if st.topics, err = w.Flush(ctx); err != nil {
		return nil, err
	}
	if err := s.applyGroups(ctx, st, evs); err != nil {
		return nil, err
	}
	if err := st.saveUsers(ctx); err != nil {
		return nil, err
	}
	return results, nil
}

// batchPlan is what a batch's events can change: the triggered segments
// of each event name, the segments whose members can leave or that follow
// their condition (exitSegs), and the batch's users.
type batchPlan struct {
	candidates map[string][]*compiledSegment
	exitSegs   []*exitSegment
	segIDs     map[pulid.ID]bool
	userRefs   []pulid.ID
}

func (s *Service) planBatch(ctx context.Context, st *batchState, evs []*incoming) (*batchPlan, error) {
	p := &batchPlan{candidates: map[string][]*compiledSegment{}, segIDs: map[pulid.ID]bool{}}
	seenUser := map[pulid.ID]bool{}
	for _, ev := range evs {
		if ev.userID == "" {
			continue
		}
		u := st.users[ev.userID]
		if !seenUser[u.ID] {
			seenUser[u.ID] = true
			p.userRefs = append(p.userRefs, u.ID)
		}
		if ev.typ != event.TypeTRACK {
			continue
		}
		if _, ok := p.candidates[ev.name]; ok {
			continue
		}
		cs, err := s.segmentsFor(ctx, st, ev.name)
		if err != nil {
			return nil, err
		}
		p.candidates[ev.name] = cs
		for _, c := range cs {
			p.segIDs[c.segment.ID] = true
		}
	}
	// Segments whose members can leave, and DYNAMIC segments: loaded once
	// per batch (cached across batches while no segment changes).
	if len(p.userRefs) > 0 {
		var err error
		if p.exitSegs, err = s.exitSegments(ctx, st.tx); err != nil {
			return nil, err
		}
		for _, x := range p.exitSegs {
			p.segIDs[x.segment.ID] = true
		}
	}
	return p, nil
}

// loadMembers reads the memberships the batch's users hold in the segments
// the batch can change, in one query per bulkRows users.
func (p *batchPlan) loadMembers(ctx context.Context, tx *ent.Tx) (*changes, error) {
	ch := &changes{members: map[memberKey]*memberRow{}}
	if len(p.segIDs) == 0 {
		return ch, nil
	}
	segs := make([]pulid.ID, 0, len(p.segIDs))
	for id := range p.segIDs {
		segs = append(segs, id)
	}
	for start := 0; start < len(p.userRefs); start += bulkRows {
		chunk := p.userRefs[start:min(start+bulkRows, len(p.userRefs))]
		rows, err := tx.Membership.Query().
			Where(membership.UserRefIn(chunk...), membership.SegmentRefIn(segs...)).
			Select(membership.FieldID, membership.FieldSegmentRef, membership.FieldUserRef, membership.FieldEnteredAt).All(ctx)
		if err != nil {
			return nil, fmt.Errorf("find memberships: %w", err)
		}
		for _, m := range rows {
			ch.members[memberKey{m.SegmentRef, m.UserRef}] = &memberRow{id: m.ID, enteredAt: m.EnteredAt}
		}
	}
	return ch, nil
}

// applyEvent evaluates event i of the batch in memory, in order: the user's
// traits, the triggered segments, the exit rules and DYNAMIC segments. It
// records the changes in ch and returns the event's result and its row.
func (s *Service) applyEvent(st *batchState, plan *batchPlan, ch *changes, ev *incoming, i int) (*TrackResult, *ent.EventCreate) {
	res := &TrackResult{EnteredSegments: []*ent.Segment{}, ActivatedCampaigns: []*ent.Campaign{}}
	outcomes := []schema.Outcome{}
	var (
		u             *ent.User
		oldTraits     map[string]any
		traitsChanged bool
	)
	if ev.userID != "" {
		u = st.users[ev.userID]
		oldTraits = u.Traits
		// A group call's traits are the group's (applyGroups).
		if carriesUserTraits(ev.typ) {
			if merged, changed := mergeTraits(u.Traits, ev.traits); changed {
				u.Traits = merged
				traitsChanged = true
			}
		}
		if st.now.After(u.LastSeenAt) {
			u.LastSeenAt = st.now
		}
		st.dirty[u.ID] = true
	}
	evaluated := map[pulid.ID]bool{}
	if u != nil && ev.typ == event.TypeTRACK {
		// The event counts in its own behaviour predicates.
		st.behaviors.countEvent(plan.exitSegs, u.ID, ev.name, ev.props, ev.timestamp)
	} else {
		clear(st.behaviors.touched)
	}
	if u != nil && ev.typ == event.TypeTRACK {
		outcomes = applyTriggers(st, ch, plan.candidates[ev.name], ev, u, oldTraits, traitsChanged, evaluated, outcomes, res, i)
	}
	if u != nil {
		outcomes = s.applyExits(st, ch, plan.exitSegs, ev, u, traitsChanged, evaluated, outcomes, res, i)
	}
	create := st.tx.Event.Create().
		SetID(ev.id).
		SetMessageID(ev.messageID).
		SetType(ev.typ).
		SetProperties(ev.props).
		SetTraits(ev.traits).
		SetContext(ev.context).
		SetTimestamp(ev.timestamp).
		SetReceivedAt(st.now).
		SetOutcomes(outcomes).
		SetNillableAnonymousID(ev.anonID)
	if ev.name != "" {
		create.SetName(ev.name)
	}
	if u != nil {
		create.SetUserID(ev.userID).SetUserRef(u.ID)
	}
	return res, create
}

// applyTriggers evaluates a tracked event against the segments it
// triggers: a user who meets the condition enters; a member who no longer
// does leaves when the segment says whenConditionFails. evaluated records
// the segments it decided.
func applyTriggers(st *batchState, ch *changes, candidates []*compiledSegment, ev *incoming, u *ent.User, oldTraits map[string]any,
	traitsChanged bool, evaluated map[pulid.ID]bool, outcomes []schema.Outcome, res *TrackResult, i int) []schema.Outcome {
	for _, c := range candidates {
		env := st.behaviors.envFor(u.ID, c.program, u.Traits, ev.timestamp)
		env.Event = ev.props
		r := c.program.Eval(env)
		key := memberKey{c.segment.ID, u.ID}
		evaluated[c.segment.ID] = true
		switch {
		case !r.Matched && ch.isMember(key) && c.segment.ExitWhenConditionFails:
			// The member's later trigger event no longer meets the
			// condition. The trait change the event carried is the cause
			// when the condition held with the old traits.
			source := changelog.SourceEvent
			if traitsChanged && c.program.Eval(trigger.Env{Event: ev.props, User: oldTraits, Now: ev.timestamp,
				Behaviors: env.Behaviors, BehaviorNext: env.BehaviorNext}).Matched {
				source = changelog.SourceTraits
			}
			ch.exit(key, source, "left: "+r.Reason, st.now)
			outcomes = append(outcomes, schema.Outcome{SegmentID: c.segment.ID, Reason: "left: " + r.Reason})
		case !r.Matched:
			outcomes = append(outcomes, schema.Outcome{SegmentID: c.segment.ID, Reason: r.Reason})
		case ch.isMember(key):
			outcomes = append(outcomes, schema.Outcome{SegmentID: c.segment.ID, Reason: alreadyMember})
		default:
			outcomes = append(outcomes, schema.Outcome{SegmentID: c.segment.ID, Entered: true, Reason: "entered: " + r.Reason})
			reason := fmt.Sprintf("entered on event %q (%s): %s", ev.name, ev.id, strings.TrimPrefix(r.Reason, "matched: "))
			evID := ev.id
			ch.enter(ledger.Entry{Segment: c.segment.ID, User: u.ID, Event: &evID,
				Source: changelog.SourceEvent, Reason: reason, At: st.now, ExpiresAt: expiresAt(c.segment, st.now)}, i)
			res.EnteredSegments = append(res.EnteredSegments, c.segment)
		}
	}
	return outcomes
}

// storeEvents inserts the batch's events in messageId order (two batches
// that carry the same messageIds then wait on the unique index in the same
// order, instead of deadlocking) and sets each result's stored event.
func storeEvents(ctx context.Context, tx *ent.Tx, evs []*incoming, eventRows []*ent.EventCreate, results []*TrackResult) error {
	order := make([]int, len(evs))
	for i := range order {
		order[i] = i
	}
	sort.Slice(order, func(a, b int) bool { return evs[order[a]].messageID < evs[order[b]].messageID })
	sorted := make([]*ent.EventCreate, len(order))
	for k, i := range order {
		sorted[k] = eventRows[i]
	}
	for start := 0; start < len(sorted); start += bulkRows {
		end := min(start+bulkRows, len(sorted))
		stored, err := tx.Event.CreateBulk(sorted[start:end]...).Save(ctx)
		if err != nil {
			return fmt.Errorf("store events: %w", err)
		}
		for j, e := range stored {
			results[order[start+j]].Event = e.Unwrap()
		}
	}
	return nil
}

// saveUsers writes the traits and last-seen times of the batch's users in
// multi-row upserts.
func (st *batchState) saveUsers(ctx context.Context) error {
	var rows []*ent.UserCreate
	for _, u := range st.users {
		if !st.dirty[u.ID] {
			continue
		}
		rows = append(rows, st.tx.User.Create().SetID(u.ID).SetUserID(u.UserID).
			SetTraits(u.Traits).SetFirstSeenAt(u.FirstSeenAt).SetLastSeenAt(u.LastSeenAt))
	}
	err := bulk(ctx, rows, func(b []*ent.UserCreate) error {
		return st.tx.User.CreateBulk(b...).
			OnConflictColumns(user.FieldID).
			Update(func(u *ent.UserUpsert) { u.UpdateTraits(); u.UpdateLastSeenAt() }).
			Exec(ctx)
	})
	if err != nil {
		return fmt.Errorf("update users: %w", err)
	}
	return nil
}

// bulk runs write on rows in chunks of bulkRows.
func bulk[T any](_ context.Context, rows []T, write func([]T) error) error {
	for start := 0; start < len(rows); start += bulkRows {
		if err := write(rows[start:min(start+bulkRows, len(rows))]); err != nil {
			return err
		}
	}
	return nil
}
