package service

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/segmentd/segmentd"
	"github.com/segmentd/segmentd/changelog"
	"github.com/segmentd/segmentd/ent"
	"github.com/segmentd/segmentd/ent/event"
	"github.com/segmentd/segmentd/ent/membership"
	"github.com/segmentd/segmentd/ent/membershipchange"
	"github.com/segmentd/segmentd/ent/schema"
	"github.com/segmentd/segmentd/ent/schema/pulid"
	"github.com/segmentd/segmentd/ent/segment"
	"github.com/segmentd/segmentd/ent/segmenttrigger"
	"github.com/segmentd/segmentd/ent/user"
)

// MembershipExplanation says why a user is, or is not, in a segment.
type MembershipExplanation struct {
	Segment            *ent.Segment
	User               *ent.User
	Member             bool
	Membership         *ent.Membership
	Reason             string
	LastEvaluatedEvent *ent.Event
}

// alreadyMember is the outcome reason of an event that matched a segment
// whose member the user already was.
const alreadyMember = "already a member"

// explainScan is how many of a user's latest events ExplainMembership looks
// through for one that the segment evaluated.
const explainScan = 200

// ExplainMembership answers "why is this user (not) in this segment?".
func (s *Service) ExplainMembership(ctx context.Context, segmentID pulid.ID, userID string) (*MembershipExplanation, error) {
	seg, err := s.client.Segment.Get(ctx, segmentID)
	if ent.IsNotFound(err) {
		return nil, &segmentd.Error{Code: segmentd.CodeNotFound, Field: "segmentId", Message: fmt.Sprintf("no segment with id %q", segmentID)}
	}
	if err != nil {
		return nil, fmt.Errorf("service.ExplainMembership: %w", err)
	}
	ex := &MembershipExplanation{Segment: seg}
	userID = segmentd.NormalizeID(userID)
	u, err := s.client.User.Query().Where(user.UserID(userID)).Only(ctx)
	if ent.IsNotFound(err) {
		ex.Reason = fmt.Sprintf("segmentd has never seen a user with userId %q", userID)
		return ex, nil
	}
	if err != nil {
		return nil, fmt.Errorf("service.ExplainMembership: %w", err)
	}
	ex.User = u
	m, err := s.client.Membership.Query().Where(membership.SegmentRef(segmentID), membership.UserRef(u.ID)).Only(ctx)
	switch {
	case err == nil:
		ex.Member, ex.Membership, ex.Reason = true, m, m.Reason
		if m.EventRef != nil {
			ex.LastEvaluatedEvent, _ = s.client.Event.Get(ctx, *m.EventRef)
		}
		return ex, nil
	case !ent.IsNotFound(err):
		return nil, fmt.Errorf("service.ExplainMembership: %w", err)
	}
	if HasExitRules(seg) || seg.Kind == segment.KindDYNAMIC {
		if done, err := s.explainExit(ctx, seg, u, ex); done || err != nil {
			return ex, err
		}
	}
	names, err := s.client.SegmentTrigger.Query().Where(segmenttrigger.SegmentRef(segmentID)).
		Select(segmenttrigger.FieldEventName).Strings(ctx)
	if err != nil {
		return nil, fmt.Errorf("service.ExplainMembership: %w", err)
	}
	if len(names) == 0 {
		ex.Reason = "not a member: this segment has no trigger events; users are added by hand or by import"
		return ex, nil
	}
	evs, err := s.client.Event.Query().
		Where(event.UserRef(u.ID), event.NameIn(names...)).
		Order(ent.Desc(event.FieldReceivedAt), ent.Desc(event.FieldID)).
		Limit(explainScan).All(ctx)
	if err != nil {
		return nil, fmt.Errorf("service.ExplainMembership: %w", err)
	}
	for _, ev := range evs {
		for _, o := range ev.Outcomes {
			if o.SegmentID == segmentID {
				ex.LastEvaluatedEvent = ev
				ex.Reason = "not a member: on its latest event " + fmt.Sprintf("%q (%s), ", *ev.Name, ev.ID) + o.Reason
				switch {
				case o.Entered:
					ex.Reason = fmt.Sprintf("not a member any more: entered on event %q (%s), then left", *ev.Name, ev.ID)
				case o.Reason == alreadyMember:
					// The user was a member when this event arrived, and is not now.
					ex.Reason = fmt.Sprintf("not a member any more: was a member on event %q (%s), then left", *ev.Name, ev.ID)
				}
				return ex, nil
			}
		}
	}
	if len(evs) > 0 {
		ex.LastEvaluatedEvent = evs[0]
		ex.Reason = fmt.Sprintf("not a member: the user's events named %s arrived before this segment's rules applied to them", quoteList(names))
		return ex, nil
	}
	ex.Reason = fmt.Sprintf("not a member: no event named %s has arrived for this user", strings.Join(quoteEach(names), " or "))
	return ex, nil
}

func quoteEach(names []string) []string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("%q", n)
	}
	return q
}

// LiveOutcomes returns the outcomes whose segment still exists: an event
// outlives the segments it was evaluated against.
func LiveOutcomes(ctx context.Context, client *ent.Client, outcomes []schema.Outcome) ([]*schema.Outcome, error) {
	if len(outcomes) == 0 {
		return []*schema.Outcome{}, nil
	}
	ids := make([]pulid.ID, len(outcomes))
	for i, o := range outcomes {
		ids[i] = o.SegmentID
	}
	live, err := client.Segment.Query().Where(segment.IDIn(ids...)).IDs(ctx)
	if err != nil {
		return nil, fmt.Errorf("service.LiveOutcomes: %w", err)
	}
	ok := make(map[pulid.ID]bool, len(live))
	for _, id := range live {
		ok[id] = true
	}
	out := make([]*schema.Outcome, 0, len(outcomes))
	for i := range outcomes {
		if ok[outcomes[i].SegmentID] {
			out = append(out, &outcomes[i])
		}
	}
	return out, nil
}

// explainExit explains a non-member of a segment whose members can leave:
// the exit that removed them last ("not a member any more: left on event
// ..."), or for a DYNAMIC segment why the condition does not hold now. It
// reports whether it explained.
func (s *Service) explainExit(ctx context.Context, seg *ent.Segment, u *ent.User, ex *MembershipExplanation) (bool, error) {
	last, err := s.client.MembershipChange.Query().
		Where(membershipchange.SegmentRef(seg.ID), membershipchange.UserRef(u.ID)).
		Order(ent.Desc(membershipchange.FieldID)).First(ctx)
	if err != nil && !ent.IsNotFound(err) {
		return false, fmt.Errorf("service.ExplainMembership: %w", err)
	}
	if last != nil && last.Kind == changelog.KindExited {
		ex.Reason = fmt.Sprintf("not a member any more: %s (%s, %s)", last.Reason, last.Source, last.At.UTC().Format(time.RFC3339))
		return true, nil
	}
	if seg.Kind != segment.KindDYNAMIC {
		return false, nil
	}
	prog, err := s.programs.get(ctx, s.client, seg)
	if err != nil {
		return false, fmt.Errorf("service.ExplainMembership: %w", err)
	}
	now := s.now()
	bs, err := loadBehaviorStates(ctx, s.client.BehaviorState, now, programKeys(prog), []pulid.ID{u.ID})
	if err != nil {
		return false, fmt.Errorf("service.ExplainMembership: %w", err)
	}
	ex.Reason = "not a member: " + prog.Eval(bs.envFor(u.ID, prog, u.Traits, now)).Reason
	return true, bs.err
}
