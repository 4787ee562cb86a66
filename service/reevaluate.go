package service

import (
	"context"
	"fmt"

	"github.com/segmentd/segmentd/changelog"
	"github.com/segmentd/segmentd/ent"
	"github.com/segmentd/segmentd/ent/membership"
	"github.com/segmentd/segmentd/ent/schema/pulid"
	"github.com/segmentd/segmentd/ent/segmenttrigger"
	"github.com/segmentd/segmentd/ledger"
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
func (s *Service) reevaluate(ctx context.Context, tx *ent.Tx, seg *ent.Segment, policy ReevaluationPolicy) (ledger.Topics, error) {
	if policy != Backfill && policy != Reconcile {
		return ledger.Topics{}, nil
	}
	client := tx.Client()
	root, err := ConditionTree(ctx, client, seg.ID)
	if err != nil {
		return ledger.Topics{}, err
	}
	prog, err := trigger.Compile(TriggerNode(root))
	if err != nil {
		return ledger.Topics{}, fmt.Errorf("compile conditions: %w", err)
	}
	names, err := tx.SegmentTrigger.Query().Where(segmenttrigger.SegmentRef(seg.ID)).
		Select(segmenttrigger.FieldEventName).Strings(ctx)
	if err != nil {
		return ledger.Topics{}, fmt.Errorf("load trigger events: %w", err)
	}
	// The first matching event of each user, in arrival order.
	matched, err := matchStoredEvents(ctx, client, prog, names, nil)
	if err != nil {
		return ledger.Topics{}, err
	}
	members, err := tx.Membership.Query().Where(membership.SegmentRef(seg.ID)).All(ctx)
	if err != nil {
		return ledger.Topics{}, fmt.Errorf("load members: %w", err)
	}
	isMember := make(map[pulid.ID]bool, len(members))
	for _, m := range members {
		isMember[m.UserRef] = true
	}
	now := s.now()
	w := s.ledger().Writer(tx)
	var entries []ledger.Entry
	for userRef, m := range matched {
		if isMember[userRef] {
			continue
		}
		evID := m.event.ID
		entries = append(entries, ledger.Entry{Segment: seg.ID, User: userRef, Event: &evID,
			Source: changelog.SourceBackfill, At: now, ExpiresAt: expiresAt(seg, now),
			Reason: fmt.Sprintf("backfilled from event %q (%s): %s", *m.event.Name, m.event.ID, m.reason)})
	}
	if _, err := w.EnterMany(ctx, entries); err != nil {
		return ledger.Topics{}, err
	}
	if policy == Reconcile {
		var exits []ledger.Exit
		gone := map[pulid.ID]bool{}
		for _, m := range members {
			if m.Source != changelog.SourceEvent && m.Source != changelog.SourceBackfill {
				continue
			}
			if _, ok := matched[m.UserRef]; ok {
				continue
			}
			reason := "reconciled: no stored event of this user matches the segment's new rules"
			exits = append(exits, ledger.ExitOf(m, changelog.SourceBackfill, reason, now))
			gone[m.ID] = true
		}
		more, err := s.reconcileExits(ctx, tx, seg, members, gone, now)
		if err != nil {
			return ledger.Topics{}, err
		}
		exits = append(exits, more...)
		if _, err := w.ExitMany(ctx, exits); err != nil {
			return ledger.Topics{}, err
		}
	}
	return w.Flush(ctx)
}
