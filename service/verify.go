package service

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/segmentd/segmentd/changelog"
	"github.com/segmentd/segmentd/ent"
	"github.com/segmentd/segmentd/ent/campaign"
	"github.com/segmentd/segmentd/ent/campaignactivation"
	"github.com/segmentd/segmentd/ent/event"
	"github.com/segmentd/segmentd/ent/membership"
	"github.com/segmentd/segmentd/ent/membershipchange"
	"github.com/segmentd/segmentd/ent/schema/pulid"
	"github.com/segmentd/segmentd/ent/segment"
	"github.com/segmentd/segmentd/ent/user"
	"github.com/segmentd/segmentd/trigger"
)

// VerifyReport is what Verify found: counts of what it read, and one
// Finding per discrepancy. No findings means the database is consistent
// with its own events and rules, as far as Verify can tell (see Verify).
type VerifyReport struct {
	Events, Users, Segments, Memberships, Changes, Activations int
	// Evaluated is how many (event, segment) pairs were re-evaluated.
	Evaluated int
	Findings  []Finding
}

// Finding is one discrepancy.
type Finding struct {
	// Kind names the check: duplicate-event, duplicate-membership,
	// duplicate-activation, missing-membership, unjustified-membership,
	// missing-entered-change, change-log-mismatch, missing-activation,
	// outcome-mismatch, half-written-event, missed-exit, dynamic-mismatch,
	// missing-deadline, stale-deadline.
	Kind   string
	Detail string
}

// OK reports whether there are no findings.
func (r *VerifyReport) OK() bool { return len(r.Findings) == 0 }

// Count returns how many findings are of kind.
func (r *VerifyReport) Count(kind string) int {
	n := 0
	for _, f := range r.Findings {
		if f.Kind == kind {
			n++
		}
	}
	return n
}

// Write prints the report for people: the counts, then the findings
// grouped by kind (at most limit per kind; 0 for all).
func (r *VerifyReport) Write(w io.Writer, limit int) {
	fmt.Fprintf(w, "checked %d events, %d users, %d segments, %d memberships, %d membership changes, %d campaign activations; re-evaluated %d (event, segment) pairs\n",
		r.Events, r.Users, r.Segments, r.Memberships, r.Changes, r.Activations, r.Evaluated)
	if r.OK() {
		fmt.Fprintln(w, "no discrepancies")
		return
	}
	byKind := map[string][]Finding{}
	var kinds []string
	for _, f := range r.Findings {
		if _, ok := byKind[f.Kind]; !ok {
			kinds = append(kinds, f.Kind)
		}
		byKind[f.Kind] = append(byKind[f.Kind], f)
	}
	sort.Strings(kinds)
	fmt.Fprintf(w, "%d discrepancies:\n", len(r.Findings))
	for _, k := range kinds {
		fs := byKind[k]
		fmt.Fprintf(w, "  %s: %d\n", k, len(fs))
		for i, f := range fs {
			if limit > 0 && i == limit {
				fmt.Fprintf(w, "    ... and %d more\n", len(fs)-limit)
				break
			}
			fmt.Fprintf(w, "    %s\n", f.Detail)
		}
	}
}

func (r *VerifyReport) add(kind, format string, args ...any) {
	r.Findings = append(r.Findings, Finding{Kind: kind, Detail: fmt.Sprintf(format, args...)})
}

// verifyPage is how many rows Verify reads at a time.
const verifyPage = 5000

// Verify is an oracle for ingestion: it recomputes from the stored events
// and the current rules what the memberships, the change log and the
// campaign activations must be, independently of the code that wrote them,
// and reports every discrepancy. It reads; it never writes. Run it on a
// quiet database (no ingestion at the same time): it reads table by table,
// not in one snapshot.
//
// Checks (each a step of a verifier, named after it, sharing what the
// earlier steps read; finding kinds in parentheses):
//   - no two events share a messageId, no user is twice in a segment, no
//     user activated a campaign twice (duplicate-*: checkEvents,
//     checkMemberships, checkActivations);
//   - every EVENT_TRIGGERED segment: every stored TRACK event of a trigger
//     name, received since the segment's rules last changed and since the
//     user last left the segment, whose condition holds, has its user in
//     the segment (missing-membership: checkMissingMemberships); a member
//     of source EVENT entered on a stored TRACK event of that user with a
//     trigger name, and if the rules are unchanged since, the condition
//     holds for that event (unjustified-membership: checkEventMemberships);
//   - the stored outcome of each such event agrees with the re-evaluation
//     (matched: "entered" or "already a member"; not matched: the failure
//     reason) (outcome-mismatch), and an event whose outcome says "entered"
//     has its ENTERED change in the log (half-written-event): checkOutcomes;
//   - every membership's latest change in the log is an ENTERED one, and a
//     user who is not a member has none or an EXITED one last
//     (missing-entered-change, change-log-mismatch: checkChangeLog);
//   - every member of a segment with an ACTIVE campaign has activated it
//     (missing-activation: checkActivations);
//   - exits: a member of a segment with whenConditionFails whose traits
//     (rebuilt from their events) fail the condition as a trait change
//     decides it, after a trait change since the rules last changed, or
//     with a matching exit event (onEvents) since they entered and since
//     the rules changed, should have left (missed-exit); a DYNAMIC
//     segment's members are exactly the users whose rebuilt traits meet its
//     condition, when it does not depend on the clock (dynamic-mismatch):
//     checkExits;
//   - behaviour states: each stored state answers as a recomputation from
//     its user's stored events does, at the verifier's clock
//     (behavior-state-mismatch, behavior-state-unreadable,
//     orphan-behavior-state: checkBehaviorStates).

//   - an erased user (DeleteUser's tombstone) has no traits, no membership
//     and no event (erased-user-data: loadUsers, checkMemberships,
//     checkEvents). Their change-log rows and activations stay, naming
//     no event, and are checked like any others: the exits of an erasure
//     are EXITED changes of source ERASURE.
//
// Approximations (documented, not hidden): the user's traits at the time of
// an event are reconstructed by merging the traits of the user's stored
// events (TRACK and IDENTIFY alike) in arrival order (received_at, then id),
// which is exact when every trait change arrives as a stored event (true of
// trackEvent(s), identify and /v1) and when one user's concurrent requests
// did not commit in another order than their arrival (an event and a
// removal of the same user racing each other may also be judged by their
// arrival times rather than their commit order). Members of source
// MANUAL, IMPORT or BACKFILL are never reported as unjustified (a
// reevaluation never removes the first two, and BACKFILL evaluated with the
// traits current at the time of the update). Events received before a
// segment's updated_at are not re-evaluated: they met older rules (the
// update policy FUTURE_ONLY keeps their result), so any change to a
// segment, even of its name, narrows the check to later events.
func (s *Service) Verify(ctx context.Context) (*VerifyReport, error) {
	v := newVerifier(ctx, s.client)
	v.now = s.now()
	// In this order: each step reads what the earlier ones loaded.
	steps := []func() error{
		v.loadSegments,
		v.loadUsers,
		v.checkMemberships,
		v.checkChangeLog,
		v.checkActivations,
		v.checkEvents,
		v.checkOutcomes,
		v.checkMissingMemberships,
		v.checkEventMemberships,
		v.checkExits,
		v.checkBehaviorStates,
		v.checkDeadlines,
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return nil, fmt.Errorf("service.Verify: %w", err)
		}
	}
	rep := v.rep
	sort.SliceStable(rep.Findings, func(i, j int) bool { return rep.Findings[i].Kind < rep.Findings[j].Kind })
	return rep, nil
}

// verifier is one run of Verify: the report, and what its steps have read
// from the database once and share (each map is filled by one step).
type verifier struct {
	ctx context.Context
	c   *ent.Client
	rep *VerifyReport
	// now is the service's clock at the start: the instant at which the
	// clock's answers (WITHIN_LAST) are checked.
	now time.Time

	// loadSegments
	segByID   map[pulid.ID]*verifySegment
	byTrigger map[string][]*verifySegment // EVENT_TRIGGERED segments by trigger name
	// loadUsers: users' own IDs, for a readable report, and the erased
	userIDs map[pulid.ID]string
	erased  map[pulid.ID]bool
	// checkMemberships
	members map[segUser]*ent.Membership
	// checkChangeLog: the latest change of each (segment, user), the last
	// exit, and the events that entered each (segment, user)
	latest    map[segUser]latestChange
	lastExit  map[segUser]time.Time
	enteredBy map[segUser]map[pulid.ID]bool
	// checkEvents: events by user, by id, and each event's user
	byUser map[pulid.ID][]*verifyEvent
	evByID map[pulid.ID]*verifyEvent
	evUser map[pulid.ID]pulid.ID
	// checkOutcomes: the first event that must have entered each
	// (segment, user), and whether each re-evaluated (event, segment)
	// matched
	shouldBe map[segUser]pulid.ID
	matched  map[eventSegment]bool
}

type verifySegment struct {
	seg  *ent.Segment
	prog *trigger.Program // EVENT_TRIGGERED segments only
}

type verifyEvent struct {
	id         pulid.ID
	typ        event.Type
	name       string
	props      map[string]any
	traits     map[string]any
	timestamp  time.Time
	receivedAt time.Time
	outcomes   map[pulid.ID]outcome
}

type segUser struct{ seg, user pulid.ID }

type campaignUser struct{ camp, user pulid.ID }

type eventSegment struct{ event, seg pulid.ID }

type latestChange struct {
	kind changelog.Kind
	id   int64
}

func newVerifier(ctx context.Context, c *ent.Client) *verifier {
	return &verifier{
		ctx: ctx, c: c, rep: &VerifyReport{},
		segByID:   map[pulid.ID]*verifySegment{},
		byTrigger: map[string][]*verifySegment{},
		userIDs:   map[pulid.ID]string{},
		erased:    map[pulid.ID]bool{},
		members:   map[segUser]*ent.Membership{},
		latest:    map[segUser]latestChange{},
		lastExit:  map[segUser]time.Time{},
		enteredBy: map[segUser]map[pulid.ID]bool{},
		byUser:    map[pulid.ID][]*verifyEvent{},
		evByID:    map[pulid.ID]*verifyEvent{},
		evUser:    map[pulid.ID]pulid.ID{},
		shouldBe:  map[segUser]pulid.ID{},
		matched:   map[eventSegment]bool{},
	}
}

// eachPage reads a table verifyPage rows at a time in id order: next
// returns the rows after the given id (the zero id: from the start).
func eachPage[T any, ID comparable](next func(after ID) ([]T, error), idOf func(T) ID, each func(T)) error {
	var after ID
	for {
		page, err := next(after)
		if err != nil {
			return err
		}
		if len(page) == 0 {
			return nil
		}
		after = idOf(page[len(page)-1])
		for _, r := range page {
			each(r)
		}
	}
}

// userName and segmentName name a user and a segment in findings.
func (v *verifier) userName(ref pulid.ID) string { return fmt.Sprintf("%q (%s)", v.userIDs[ref], ref) }

func (v *verifier) segmentName(ref pulid.ID) string {
	if si := v.segByID[ref]; si != nil {
		return fmt.Sprintf("%q (%s)", si.seg.Name, ref)
	}
	return string(ref)
}

// loadSegments reads the segments, their triggers and, for EVENT_TRIGGERED
// ones, their compiled conditions.
func (v *verifier) loadSegments() error {
	segs, err := v.c.Segment.Query().WithTriggers().All(v.ctx)
	if err != nil {
		return fmt.Errorf("segments: %w", err)
	}
	v.rep.Segments = len(segs)
	for _, sg := range segs {
		si := &verifySegment{seg: sg}
		v.segByID[sg.ID] = si
		if sg.Kind != segment.KindEVENT_TRIGGERED {
			continue
		}
		root, err := ConditionTree(v.ctx, v.c, sg.ID)
		if err != nil {
			return err
		}
		si.prog, err = trigger.Compile(TriggerNode(root))
		if err != nil {
			return fmt.Errorf("compile segment %s: %w", sg.ID, err)
		}
		for _, t := range sg.Edges.Triggers {
			v.byTrigger[t.EventName] = append(v.byTrigger[t.EventName], si)
		}
	}
	return nil
}

// loadUsers reads the users' own IDs, for a readable report.
func (v *verifier) loadUsers() error {
	err := eachPage(func(after pulid.ID) ([]*ent.User, error) {
		q := v.c.User.Query().Order(ent.Asc(user.FieldID)).Limit(verifyPage)
		if after != "" {
			q = q.Where(user.IDGT(after))
		}
		return q.Select(user.FieldID, user.FieldUserID, user.FieldTraits).All(v.ctx)
	}, func(u *ent.User) pulid.ID { return u.ID }, func(u *ent.User) {
		v.userIDs[u.ID] = u.UserID
		if IsErased(u) {
			v.erased[u.ID] = true
			if len(u.Traits) > 0 {
				v.rep.add("erased-user-data", "erased user %s still has %d traits", u.ID, len(u.Traits))
			}
		}
	})
	if err != nil {
		return fmt.Errorf("users: %w", err)
	}
	return nil
}

// checkMemberships reads the memberships: no user is twice in a segment
// (duplicate-membership).
func (v *verifier) checkMemberships() error {
	err := eachPage(func(after pulid.ID) ([]*ent.Membership, error) {
		q := v.c.Membership.Query().Order(ent.Asc(membership.FieldID)).Limit(verifyPage)
		if after != "" {
			q = q.Where(membership.IDGT(after))
		}
		return q.All(v.ctx)
	}, func(m *ent.Membership) pulid.ID { return m.ID }, func(m *ent.Membership) {
		v.rep.Memberships++
		if v.erased[m.UserRef] {
			v.rep.add("erased-user-data", "erased user %s is a member of segment %s (membership %s)", m.UserRef, v.segmentName(m.SegmentRef), m.ID)
		}
		k := segUser{m.SegmentRef, m.UserRef}
		if _, dup := v.members[k]; dup {
			v.rep.add("duplicate-membership", "user %s is in segment %s more than once", v.userName(m.UserRef), v.segmentName(m.SegmentRef))
			return
		}
		v.members[k] = m
	})
	if err != nil {
		return fmt.Errorf("memberships: %w", err)
	}
	return nil
}

// checkChangeLog reads the membership change log: every membership's
// latest change is an ENTERED one (missing-entered-change), and a user who
// is not a member has none or an EXITED one last (change-log-mismatch).
func (v *verifier) checkChangeLog() error {
	err := eachPage(func(after int64) ([]*ent.MembershipChange, error) {
		return v.c.MembershipChange.Query().Where(membershipchange.IDGT(after)).
			Order(ent.Asc(membershipchange.FieldID)).Limit(verifyPage).All(v.ctx)
	}, func(ch *ent.MembershipChange) int64 { return ch.ID }, v.readChange)
	if err != nil {
		return fmt.Errorf("membership changes: %w", err)
	}
	for k, m := range v.members {
		if l, ok := v.latest[k]; !ok || l.kind != changelog.KindEntered {
			v.rep.add("missing-entered-change", "membership %s (user %s in segment %s) has no ENTERED change as its latest change", m.ID, v.userName(k.user), v.segmentName(k.seg))
		}
	}
	for k, l := range v.latest {
		if _, ok := v.members[k]; !ok && l.kind == changelog.KindEntered {
			v.rep.add("change-log-mismatch", "the log says user %s entered segment %s last (change %d), but there is no membership", v.userName(k.user), v.segmentName(k.seg), l.id)
		}
	}
	return nil
}

// readChange records one change: the latest of its (segment, user), its
// last exit, the event that entered it.
func (v *verifier) readChange(ch *ent.MembershipChange) {
	v.rep.Changes++
	k := segUser{ch.SegmentRef, ch.UserRef}
	// Ids follow commit order per (segment, user): the user's row
	// lock serializes the writers of one user.
	if l, ok := v.latest[k]; !ok || ch.ID > l.id {
		v.latest[k] = latestChange{ch.Kind, ch.ID}
	}
	if ch.Kind == changelog.KindExited && ch.At.After(v.lastExit[k]) {
		v.lastExit[k] = ch.At
	}
	if ch.Kind == changelog.KindEntered && ch.EventRef != nil {
		if v.enteredBy[k] == nil {
			v.enteredBy[k] = map[pulid.ID]bool{}
		}
		v.enteredBy[k][*ch.EventRef] = true
	}
}

// checkActivations reads the campaign activations: no user activated a
// campaign twice with one entry number or one membership
// (duplicate-activation), and every member of a segment
// with an ACTIVE campaign has activated it (missing-activation).
func (v *verifier) checkActivations() error {
	type entryKey struct {
		campaignUser
		entry int
	}
	type membershipKey struct{ campaign, membership pulid.ID }
	acts := map[campaignUser]int{}
	entries := map[entryKey]int{}
	episodes := map[membershipKey]int{}
	err := eachPage(func(after pulid.ID) ([]*ent.CampaignActivation, error) {
		q := v.c.CampaignActivation.Query().Order(ent.Asc(campaignactivation.FieldID)).Limit(verifyPage)
		if after != "" {
			q = q.Where(campaignactivation.IDGT(after))
		}
		return q.All(v.ctx)
	}, func(a *ent.CampaignActivation) pulid.ID { return a.ID }, func(a *ent.CampaignActivation) {
		v.rep.Activations++
		k := campaignUser{a.CampaignRef, a.UserRef}
		acts[k]++
		// A user activates a campaign at most once per entry number and
		// once per membership (reentry EVERY_ENTRY allows one per entry).
		ek := entryKey{k, a.Entry}
		entries[ek]++
		dup := entries[ek] == 2
		if a.MembershipRef != nil {
			mk := membershipKey{a.CampaignRef, *a.MembershipRef}
			episodes[mk]++
			dup = dup || episodes[mk] == 2
		}
		if dup {
			v.rep.add("duplicate-activation", "user %s activated campaign %s more than once in one entry", v.userName(a.UserRef), a.CampaignRef)
		}
	})
	if err != nil {
		return fmt.Errorf("activations: %w", err)
	}
	camps, err := v.c.Campaign.Query().Where(campaign.StatusEQ(campaign.StatusACTIVE), campaign.SegmentRefNotNil()).All(v.ctx)
	if err != nil {
		return fmt.Errorf("campaigns: %w", err)
	}
	campsBySeg := map[pulid.ID][]*ent.Campaign{}
	for _, cp := range camps {
		campsBySeg[*cp.SegmentRef] = append(campsBySeg[*cp.SegmentRef], cp)
	}
	for k := range v.members {
		for _, cp := range campsBySeg[k.seg] {
			if acts[campaignUser{cp.ID, k.user}] == 0 {
				v.rep.add("missing-activation", "user %s is a member of segment %s but has not activated its ACTIVE campaign %q (%s)", v.userName(k.user), v.segmentName(k.seg), cp.Name, cp.ID)
			}
		}
	}
	return nil
}

// checkEvents reads the events: no two share a messageId
// (duplicate-event); those of a user are kept, by user, to rebuild the
// traits each one met.
func (v *verifier) checkEvents() error {
	msgIDs := map[string]pulid.ID{}
	err := eachPage(func(after pulid.ID) ([]*ent.Event, error) {
		q := v.c.Event.Query().Order(ent.Asc(event.FieldID)).Limit(verifyPage)
		if after != "" {
			q = q.Where(event.IDGT(after))
		}
		return q.All(v.ctx)
	}, func(e *ent.Event) pulid.ID { return e.ID }, func(e *ent.Event) {
		v.rep.Events++
		if other, dup := msgIDs[e.MessageID]; dup {
			v.rep.add("duplicate-event", "messageId %q is stored twice: %s and %s", e.MessageID, other, e.ID)
		} else {
			msgIDs[e.MessageID] = e.ID
		}
		if e.UserRef == nil {
			return
		}
		if v.erased[*e.UserRef] {
			v.rep.add("erased-user-data", "erased user %s still has event %s", *e.UserRef, e.ID)
		}
		ei := &verifyEvent{id: e.ID, typ: e.Type, props: e.Properties, traits: e.Traits,
			timestamp: e.Timestamp, receivedAt: e.ReceivedAt, outcomes: map[pulid.ID]outcome{}}
		if e.Name != nil {
			ei.name = *e.Name
		}
		for _, o := range e.Outcomes {
			// An event can enter a user and then, as an exit event, remove
			// them: the entry is the outcome the trigger re-evaluation
			// checks.
			if _, seen := ei.outcomes[o.SegmentID]; !seen {
				ei.outcomes[o.SegmentID] = outcome{entered: o.Entered, reason: o.Reason}
			}
		}
		v.byUser[*e.UserRef] = append(v.byUser[*e.UserRef], ei)
		v.evByID[e.ID] = ei
		v.evUser[e.ID] = *e.UserRef
	})
	if err != nil {
		return fmt.Errorf("events: %w", err)
	}
	v.rep.Users = len(v.byUser)
	return nil
}

// checkOutcomes re-evaluates, user by user in arrival order, every TRACK
// event against the EVENT_TRIGGERED segments it triggers, with the traits
// the user had then: the stored outcome agrees (outcome-mismatch), and an
// outcome that says "entered" has its ENTERED change (half-written-event).
func (v *verifier) checkOutcomes() error {
	for userRef, evs := range v.byUser {
		sort.Slice(evs, func(i, j int) bool {
			if !evs[i].receivedAt.Equal(evs[j].receivedAt) {
				return evs[i].receivedAt.Before(evs[j].receivedAt)
			}
			return evs[i].id < evs[j].id
		})
		var traits map[string]any
		for i, e := range evs {
			if carriesUserTraits(e.typ) {
				traits, _ = mergeTraits(traits, e.traits)
			}
			if e.typ != event.TypeTRACK {
				continue
			}
			for _, si := range v.byTrigger[e.name] {
				v.checkOutcome(userRef, e, evs[:i+1], si, traits)
			}
		}
	}
	return nil
}

// checkOutcome checks the outcome of one event e of a user, with traits,
// for one segment it triggers, and records whether it matched.
func (v *verifier) checkOutcome(userRef pulid.ID, e *verifyEvent, received []*verifyEvent, si *verifySegment, traits map[string]any) {
	k := segUser{si.seg.ID, userRef}
	o, hasOutcome := e.outcomes[si.seg.ID]
	if hasOutcome && o.entered && !v.enteredBy[k][e.id] {
		v.rep.add("half-written-event", "event %s says user %s entered segment %s, but the log has no ENTERED change for it", e.id, v.userName(userRef), v.segmentName(si.seg.ID))
	}
	if e.receivedAt.Before(si.seg.UpdatedAt) {
		return // met older rules
	}
	behaviors := len(si.prog.Behaviors()) > 0
	if behaviors && e.timestamp.Before(e.receivedAt.Add(-behaviorGrace)) {
		// A late event's behaviours were evaluated at their states'
		// floor, which the stored events do not tell.
		return
	}
	v.rep.Evaluated++
	env := trigger.Env{User: traits, Now: e.timestamp}
	if behaviors {
		env = oracleEnv(si.prog, received, traits, e.timestamp)
	}
	env.Event = e.props
	r := si.prog.Eval(env)
	v.matched[eventSegment{e.id, si.seg.ID}] = r.Matched
	switch {
	case !hasOutcome:
		v.rep.add("outcome-mismatch", "event %s of user %s has no outcome for segment %s", e.id, v.userName(userRef), v.segmentName(si.seg.ID))
	case r.Matched != (o.entered || o.reason == alreadyMember):
		v.rep.add("outcome-mismatch", "event %s of user %s, segment %s: re-evaluation says matched=%v (%s), stored outcome says %q",
			e.id, v.userName(userRef), v.segmentName(si.seg.ID), r.Matched, r.Reason, o.reason)
	}
	if r.Matched && e.receivedAt.After(v.lastExit[k]) {
		if _, ok := v.shouldBe[k]; !ok {
			v.shouldBe[k] = e.id
		}
	}
}

// checkMissingMemberships: a user whose event matched a segment since
// they last left it is in it (missing-membership).
func (v *verifier) checkMissingMemberships() error {
	for k, evID := range v.shouldBe {
		if _, ok := v.members[k]; !ok {
			v.rep.add("missing-membership", "user %s should be in segment %s (event %s matches) but is not", v.userName(k.user), v.segmentName(k.seg), evID)
		}
	}
	return nil
}

// checkEventMemberships: a member of source EVENT entered on a stored
// TRACK event of that user with a trigger name of the segment, which, if
// re-evaluated, matched (unjustified-membership).
func (v *verifier) checkEventMemberships() error {
	for k, m := range v.members {
		if si := v.segByID[k.seg]; si != nil && si.seg.Kind == segment.KindDYNAMIC {
			continue // checkExits: a DYNAMIC segment's members are its condition's
		}
		if m.Source == changelog.SourceEvent {
			v.checkEventMembership(k, m)
		}
	}
	return nil
}

func (v *verifier) checkEventMembership(k segUser, m *ent.Membership) {
	si := v.segByID[k.seg]
	if si == nil || si.prog == nil {
		v.rep.add("unjustified-membership", "membership %s of source EVENT is in segment %s, which is not EVENT_TRIGGERED", m.ID, k.seg)
		return
	}
	if m.EventRef == nil {
		v.rep.add("unjustified-membership", "membership %s (user %s, segment %s) of source EVENT names no event", m.ID, v.userName(k.user), v.segmentName(k.seg))
		return
	}
	e := v.evByID[*m.EventRef]
	switch {
	case e == nil || v.evUser[e.id] != k.user:
		v.rep.add("unjustified-membership", "membership %s (user %s, segment %s) entered on event %s, which is not a stored event of that user", m.ID, v.userName(k.user), v.segmentName(k.seg), *m.EventRef)
	case e.typ != event.TypeTRACK || !hasTrigger(si.seg, e.name):
		v.rep.add("unjustified-membership", "membership %s (user %s, segment %s) entered on event %s (%s %q), not a trigger of the segment", m.ID, v.userName(k.user), v.segmentName(k.seg), e.id, e.typ, e.name)
	default:
		if ok, evaluated := v.matched[eventSegment{e.id, k.seg}]; evaluated && !ok {
			v.rep.add("unjustified-membership", "membership %s (user %s, segment %s) entered on event %s, which does not match the segment's rules", m.ID, v.userName(k.user), v.segmentName(k.seg), e.id)
		}
	}
}

type outcome struct {
	entered bool
	reason  string
}

func hasTrigger(seg *ent.Segment, name string) bool {
	for _, t := range seg.Edges.Triggers {
		if t.EventName == name {
			return true
		}
	}
	return false
}

// String is the report as Write prints it, with at most 20 findings a kind.
func (r *VerifyReport) String() string {
	var b strings.Builder
	r.Write(&b, 20)
	return b.String()
}
