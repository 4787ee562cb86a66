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
	// outcome-mismatch, half-written-event.
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
// Checks:
//   - no two events share a messageId, no user is twice in a segment, no
//     user activated a campaign twice (duplicate-*);
//   - every EVENT_TRIGGERED segment: every stored TRACK event of a trigger
//     name, received since the segment's rules last changed and since the
//     user last left the segment, whose condition holds, has its user in
//     the segment (missing-membership); a member of source EVENT entered
//     on a stored TRACK event of that user with a trigger name, and if the
//     rules are unchanged since, the condition holds for that event
//     (unjustified-membership);
//   - the stored outcome of each such event agrees with the re-evaluation
//     (matched: "entered" or "already a member"; not matched: the failure
//     reason) (outcome-mismatch), and an event whose outcome says "entered"
//     has its ENTERED change in the log (half-written-event);
//   - every membership's latest change in the log is an ENTERED one, and a
//     user who is not a member has none or an EXITED one last
//     (missing-entered-change, change-log-mismatch);
//   - every member of a segment with an ACTIVE campaign has activated it
//     (missing-activation).
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
	rep := &VerifyReport{}
	c := s.Client

	// Segments, their triggers and compiled conditions.
	segs, err := c.Segment.Query().WithTriggers().All(ctx)
	if err != nil {
		return nil, fmt.Errorf("service.Verify: segments: %w", err)
	}
	rep.Segments = len(segs)
	type segInfo struct {
		seg  *ent.Segment
		prog *trigger.Program
	}
	byTrigger := map[string][]*segInfo{}
	segByID := map[pulid.ID]*segInfo{}
	for _, sg := range segs {
		si := &segInfo{seg: sg}
		segByID[sg.ID] = si
		if sg.Kind != segment.KindEVENT_TRIGGERED {
			continue
		}
		root, err := ConditionTree(ctx, c, sg.ID)
		if err != nil {
			return nil, fmt.Errorf("service.Verify: %w", err)
		}
		si.prog, err = trigger.Compile(TriggerNode(root))
		if err != nil {
			return nil, fmt.Errorf("service.Verify: compile segment %s: %w", sg.ID, err)
		}
		for _, t := range sg.Edges.Triggers {
			byTrigger[t.EventName] = append(byTrigger[t.EventName], si)
		}
	}

	// Users' own IDs and segments' names, for a readable report.
	userIDs := map[pulid.ID]string{}
	after := pulid.ID("")
	for {
		q := c.User.Query().Order(ent.Asc(user.FieldID)).Limit(verifyPage)
		if after != "" {
			q = q.Where(user.IDGT(after))
		}
		page, err := q.Select(user.FieldID, user.FieldUserID).All(ctx)
		if err != nil {
			return nil, fmt.Errorf("service.Verify: users: %w", err)
		}
		if len(page) == 0 {
			break
		}
		after = page[len(page)-1].ID
		for _, u := range page {
			userIDs[u.ID] = u.UserID
		}
	}
	un := func(ref pulid.ID) string { return fmt.Sprintf("%q (%s)", userIDs[ref], ref) }
	sn := func(ref pulid.ID) string {
		if si := segByID[ref]; si != nil {
			return fmt.Sprintf("%q (%s)", si.seg.Name, ref)
		}
		return string(ref)
	}

	// Memberships.
	type mk struct{ seg, user pulid.ID }
	members := map[mk]*ent.Membership{}
	after = ""
	for {
		q := c.Membership.Query().Order(ent.Asc(membership.FieldID)).Limit(verifyPage)
		if after != "" {
			q = q.Where(membership.IDGT(after))
		}
		page, err := q.All(ctx)
		if err != nil {
			return nil, fmt.Errorf("service.Verify: memberships: %w", err)
		}
		if len(page) == 0 {
			break
		}
		after = page[len(page)-1].ID
		for _, m := range page {
			rep.Memberships++
			k := mk{m.SegmentRef, m.UserRef}
			if _, dup := members[k]; dup {
				rep.add("duplicate-membership", "user %s is in segment %s more than once", un(m.UserRef), sn(m.SegmentRef))
				continue
			}
			members[k] = m
		}
	}

	// The change log: the latest change of each (segment, user), the last
	// exit, and the ENTERED changes by event.
	type last struct {
		kind changelog.Kind
		id   int64
	}
	latest := map[mk]last{}
	lastExit := map[mk]time.Time{}
	enteredBy := map[mk]map[pulid.ID]bool{} // (segment, user) -> events that entered them
	var afterChange int64
	for {
		page, err := c.MembershipChange.Query().Where(membershipchange.IDGT(afterChange)).
			Order(ent.Asc(membershipchange.FieldID)).Limit(verifyPage).All(ctx)
		if err != nil {
			return nil, fmt.Errorf("service.Verify: membership changes: %w", err)
		}
		if len(page) == 0 {
			break
		}
		afterChange = page[len(page)-1].ID
		for _, ch := range page {
			rep.Changes++
			k := mk{ch.SegmentRef, ch.UserRef}
			// Ids follow commit order per (segment, user): the user's row
			// lock serializes the writers of one user.
			if l, ok := latest[k]; !ok || ch.ID > l.id {
				latest[k] = last{ch.Kind, ch.ID}
			}
			if ch.Kind == changelog.KindExited && ch.At.After(lastExit[k]) {
				lastExit[k] = ch.At
			}
			if ch.Kind == changelog.KindEntered && ch.EventRef != nil {
				if enteredBy[k] == nil {
					enteredBy[k] = map[pulid.ID]bool{}
				}
				enteredBy[k][*ch.EventRef] = true
			}
		}
	}
	for k, m := range members {
		if l, ok := latest[k]; !ok || l.kind != changelog.KindEntered {
			rep.add("missing-entered-change", "membership %s (user %s in segment %s) has no ENTERED change as its latest change", m.ID, un(k.user), sn(k.seg))
		}
	}
	for k, l := range latest {
		if _, ok := members[k]; !ok && l.kind == changelog.KindEntered {
			rep.add("change-log-mismatch", "the log says user %s entered segment %s last (change %d), but there is no membership", un(k.user), sn(k.seg), l.id)
		}
	}

	// Campaign activations.
	type ck struct{ camp, user pulid.ID }
	acts := map[ck]int{}
	after = ""
	for {
		q := c.CampaignActivation.Query().Order(ent.Asc(campaignactivation.FieldID)).Limit(verifyPage)
		if after != "" {
			q = q.Where(campaignactivation.IDGT(after))
		}
		page, err := q.All(ctx)
		if err != nil {
			return nil, fmt.Errorf("service.Verify: activations: %w", err)
		}
		if len(page) == 0 {
			break
		}
		after = page[len(page)-1].ID
		for _, a := range page {
			rep.Activations++
			k := ck{a.CampaignRef, a.UserRef}
			acts[k]++
			if acts[k] == 2 {
				rep.add("duplicate-activation", "user %s activated campaign %s more than once", un(a.UserRef), a.CampaignRef)
			}
		}
	}
	camps, err := c.Campaign.Query().Where(campaign.StatusEQ(campaign.StatusACTIVE), campaign.SegmentRefNotNil()).All(ctx)
	if err != nil {
		return nil, fmt.Errorf("service.Verify: campaigns: %w", err)
	}
	campsBySeg := map[pulid.ID][]*ent.Campaign{}
	for _, cp := range camps {
		campsBySeg[*cp.SegmentRef] = append(campsBySeg[*cp.SegmentRef], cp)
	}
	for k := range members {
		for _, cp := range campsBySeg[k.seg] {
			if acts[ck{cp.ID, k.user}] == 0 {
				rep.add("missing-activation", "user %s is a member of segment %s but has not activated its ACTIVE campaign %q (%s)", un(k.user), sn(k.seg), cp.Name, cp.ID)
			}
		}
	}

	// Events, by user in arrival order, to rebuild the traits each one met.
	type evInfo struct {
		id         pulid.ID
		typ        event.Type
		name       string
		props      map[string]any
		traits     map[string]any
		timestamp  time.Time
		receivedAt time.Time
		outcomes   map[pulid.ID]outcome
	}
	byUser := map[pulid.ID][]*evInfo{}
	evByID := map[pulid.ID]*evInfo{}
	evUser := map[pulid.ID]pulid.ID{}
	msgIDs := map[string]pulid.ID{}
	after = ""
	for {
		q := c.Event.Query().Order(ent.Asc(event.FieldID)).Limit(verifyPage)
		if after != "" {
			q = q.Where(event.IDGT(after))
		}
		page, err := q.All(ctx)
		if err != nil {
			return nil, fmt.Errorf("service.Verify: events: %w", err)
		}
		if len(page) == 0 {
			break
		}
		after = page[len(page)-1].ID
		for _, e := range page {
			rep.Events++
			if other, dup := msgIDs[e.MessageID]; dup {
				rep.add("duplicate-event", "messageId %q is stored twice: %s and %s", e.MessageID, other, e.ID)
			} else {
				msgIDs[e.MessageID] = e.ID
			}
			if e.UserRef == nil {
				continue
			}
			ei := &evInfo{id: e.ID, typ: e.Type, props: e.Properties, traits: e.Traits,
				timestamp: e.Timestamp, receivedAt: e.ReceivedAt, outcomes: map[pulid.ID]outcome{}}
			if e.Name != nil {
				ei.name = *e.Name
			}
			for _, o := range e.Outcomes {
				ei.outcomes[o.SegmentID] = outcome{entered: o.Entered, reason: o.Reason}
			}
			byUser[*e.UserRef] = append(byUser[*e.UserRef], ei)
			evByID[e.ID] = ei
			evUser[e.ID] = *e.UserRef
		}
	}
	rep.Users = len(byUser)

	// Re-evaluate, user by user.
	shouldBe := map[mk]pulid.ID{} // (segment, user) -> first event that must have entered them
	type es struct{ event, seg pulid.ID }
	matched := map[es]bool{} // re-evaluated (event, segment) pairs -> the condition held
	for userRef, evs := range byUser {
		sort.Slice(evs, func(i, j int) bool {
			if !evs[i].receivedAt.Equal(evs[j].receivedAt) {
				return evs[i].receivedAt.Before(evs[j].receivedAt)
			}
			return evs[i].id < evs[j].id
		})
		var traits map[string]any
		for _, e := range evs {
			if carriesUserTraits(e.typ) {
				traits, _ = mergeTraits(traits, e.traits)
			}
			if e.typ != event.TypeTRACK {
				continue
			}
			for _, si := range byTrigger[e.name] {
				k := mk{si.seg.ID, userRef}
				o, hasOutcome := e.outcomes[si.seg.ID]
				if hasOutcome && o.entered && !enteredBy[k][e.id] {
					rep.add("half-written-event", "event %s says user %s entered segment %s, but the log has no ENTERED change for it", e.id, un(userRef), sn(si.seg.ID))
				}
				if e.receivedAt.Before(si.seg.UpdatedAt) {
					continue // met older rules
				}
				rep.Evaluated++
				r := si.prog.Eval(trigger.Env{Event: e.props, User: traits, Now: e.timestamp})
				matched[es{e.id, si.seg.ID}] = r.Matched
				switch {
				case !hasOutcome:
					rep.add("outcome-mismatch", "event %s of user %s has no outcome for segment %s", e.id, un(userRef), sn(si.seg.ID))
				case r.Matched != (o.entered || o.reason == alreadyMember):
					rep.add("outcome-mismatch", "event %s of user %s, segment %s: re-evaluation says matched=%v (%s), stored outcome says %q",
						e.id, un(userRef), sn(si.seg.ID), r.Matched, r.Reason, o.reason)
				}
				if r.Matched && e.receivedAt.After(lastExit[k]) {
					if _, ok := shouldBe[k]; !ok {
						shouldBe[k] = e.id
					}
				}
			}
		}
	}
	for k, evID := range shouldBe {
		if _, ok := members[k]; !ok {
			rep.add("missing-membership", "user %s should be in segment %s (event %s matches) but is not", un(k.user), sn(k.seg), evID)
		}
	}
	for k, m := range members {
		if m.Source != changelog.SourceEvent {
			continue
		}
		si := segByID[k.seg]
		if si == nil || si.prog == nil {
			rep.add("unjustified-membership", "membership %s of source EVENT is in segment %s, which is not EVENT_TRIGGERED", m.ID, k.seg)
			continue
		}
		if m.EventRef == nil {
			rep.add("unjustified-membership", "membership %s (user %s, segment %s) of source EVENT names no event", m.ID, un(k.user), sn(k.seg))
			continue
		}
		e := evByID[*m.EventRef]
		switch {
		case e == nil || evUser[e.id] != k.user:
			rep.add("unjustified-membership", "membership %s (user %s, segment %s) entered on event %s, which is not a stored event of that user", m.ID, un(k.user), sn(k.seg), *m.EventRef)
		case e.typ != event.TypeTRACK || !hasTrigger(si.seg, e.name):
			rep.add("unjustified-membership", "membership %s (user %s, segment %s) entered on event %s (%s %q), not a trigger of the segment", m.ID, un(k.user), sn(k.seg), e.id, e.typ, e.name)
		default:
			if ok, evaluated := matched[es{e.id, k.seg}]; evaluated && !ok {
				rep.add("unjustified-membership", "membership %s (user %s, segment %s) entered on event %s, which does not match the segment's rules", m.ID, un(k.user), sn(k.seg), e.id)
			}
		}
	}
	sort.SliceStable(rep.Findings, func(i, j int) bool { return rep.Findings[i].Kind < rep.Findings[j].Kind })
	return rep, nil
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
