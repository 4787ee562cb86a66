package service

import (
	"context"
	"fmt"
	"time"

	"github.com/segmentd/segmentd/changelog"
	"github.com/segmentd/segmentd/ent"
	"github.com/segmentd/segmentd/ent/membership"
	"github.com/segmentd/segmentd/ent/schema/pulid"
	"github.com/segmentd/segmentd/ent/segmenttrigger"
	"github.com/segmentd/segmentd/trigger"
)

// reevaluate applies a segment's new rules to the past, inside the update's
// transaction. BACKFILL replays the stored TRACK events whose name is one of
// the segment's trigger events, evaluates each against its properties and
// the user's current traits (segmentd keeps traits as they are now, not as
// they were), and adds the users who match and are not members (source
// BACKFILL, activating ACTIVE campaigns as any entry does). RECONCILE also
// removes members who entered through events (source EVENT or BACKFILL) when
// none of their stored trigger events matches any more; members added by
// hand or by import stay.
func (s *Service) reevaluate(ctx context.Context, tx *ent.Tx, seg *ent.Segment, policy ReevaluationPolicy) error {
	if policy != Backfill && policy != Reconcile {
		return nil
	}
	client := tx.Client()
	root, err := ConditionTree(ctx, client, seg.ID)
	if err != nil {
		return err
	}
	prog, err := trigger.Compile(TriggerNode(root))
	if err != nil {
		return fmt.Errorf("compile conditions: %w", err)
	}
	names, err := tx.SegmentTrigger.Query().Where(segmenttrigger.SegmentRef(seg.ID)).
		Select(segmenttrigger.FieldEventName).Strings(ctx)
	if err != nil {
		return fmt.Errorf("load trigger events: %w", err)
	}
	// The first matching event of each user, in arrival order.
	matched, err := matchStoredEvents(ctx, client, prog, names, nil)
	if err != nil {
		return err
	}
	members, err := tx.Membership.Query().Where(membership.SegmentRef(seg.ID)).All(ctx)
	if err != nil {
		return fmt.Errorf("load members: %w", err)
	}
	isMember := make(map[pulid.ID]bool, len(members))
	for _, m := range members {
		isMember[m.UserRef] = true
	}
	now := s.now()
	counts := counterDeltas{}
	for userRef, m := range matched {
		if isMember[userRef] {
			continue
		}
		reason := fmt.Sprintf("backfilled from event %q (%s): %s", *m.event.Name, m.event.ID, m.reason)
		if err := enter(ctx, tx, counts, seg.ID, userRef, &m.event.ID, changelog.SourceBackfill, reason, now); err != nil {
			return err
		}
	}
	if policy != Reconcile {
		return counts.flush(ctx, tx, s.dialect)
	}
	for _, m := range members {
		if m.Source != changelog.SourceEvent && m.Source != changelog.SourceBackfill {
			continue
		}
		if _, ok := matched[m.UserRef]; ok {
			continue
		}
		reason := "reconciled: no stored event of this user matches the segment's new rules"
		if err := exit(ctx, tx, counts, m, changelog.SourceBackfill, reason, now); err != nil {
			return err
		}
	}
	return counts.flush(ctx, tx, s.dialect)
}

// enter makes a user a member of a segment, records the change and
// activates the segment's ACTIVE campaigns.
func enter(ctx context.Context, tx *ent.Tx, counts counterDeltas, segID, userRef pulid.ID, eventRef *pulid.ID, source changelog.Source, reason string, now time.Time) error {
	err := tx.Membership.Create().
		SetSegmentRef(segID).SetUserRef(userRef).SetNillableEventRef(eventRef).
		SetEnteredAt(now).SetSource(source).SetReason(reason).Exec(ctx)
	if err != nil {
		return fmt.Errorf("store membership: %w", err)
	}
	err = tx.MembershipChange.Create().
		SetSegmentRef(segID).SetUserRef(userRef).SetNillableEventRef(eventRef).
		SetKind(changelog.KindEntered).SetSource(source).
		SetAt(now).SetReason(reason).Exec(ctx)
	if err != nil {
		return fmt.Errorf("store membership change: %w", err)
	}
	counts.entered(segID, now, 1)
	if _, err := activateFor(ctx, tx, userRef, []pulid.ID{segID}, eventRef, now); err != nil {
		return err
	}
	return nil
}

// exit removes a membership and records the change.
func exit(ctx context.Context, tx *ent.Tx, counts counterDeltas, m *ent.Membership, source changelog.Source, reason string, now time.Time) error {
	if err := tx.Membership.DeleteOneID(m.ID).Exec(ctx); err != nil {
		return fmt.Errorf("delete membership: %w", err)
	}
	counts.exited(m.SegmentRef, m.EnteredAt, now)
	err := tx.MembershipChange.Create().
		SetSegmentRef(m.SegmentRef).SetUserRef(m.UserRef).
		SetKind(changelog.KindExited).SetSource(source).
		SetAt(now).SetReason(reason).Exec(ctx)
	if err != nil {
		return fmt.Errorf("store membership change: %w", err)
	}
	return nil
}
