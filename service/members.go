package service

import (
	"context"
	"fmt"
	"sort"
	"time"

	"entgo.io/ent/dialect"

	"github.com/segmentd/segmentd"
	"github.com/segmentd/segmentd/changelog"
	"github.com/segmentd/segmentd/ent"
	"github.com/segmentd/segmentd/ent/campaign"
	"github.com/segmentd/segmentd/ent/campaignactivation"
	"github.com/segmentd/segmentd/ent/membership"
	"github.com/segmentd/segmentd/ent/schema/pulid"
	"github.com/segmentd/segmentd/ent/user"
)

// MaxManualUsers is how many user IDs one addUsersToSegment or
// removeUsersFromSegment call takes; larger lists go through imports.
const MaxManualUsers = 10000

// MembershipUpdateResult counts what a manual change did.
type MembershipUpdateResult struct {
	Segment   *ent.Segment
	Added     int
	Removed   int
	Unchanged int
}

// AddUsers adds users to a segment by user ID (creating unknown users), on
// STATIC and EVENT_TRIGGERED segments alike (test users). New members enter
// with source MANUAL, the change is logged, and the segment's ACTIVE
// campaigns activate for them, exactly as for an event entry. Users already
// in the segment are counted unchanged.
func (s *Service) AddUsers(ctx context.Context, segmentID pulid.ID, userIDs []string) (*MembershipUpdateResult, error) {
	return s.changeMembers(ctx, segmentID, userIDs, true)
}

// RemoveUsers removes users from a segment by user ID; users who are not
// members (or unknown) are counted unchanged.
func (s *Service) RemoveUsers(ctx context.Context, segmentID pulid.ID, userIDs []string) (*MembershipUpdateResult, error) {
	return s.changeMembers(ctx, segmentID, userIDs, false)
}

func cleanUserIDs(field string, ids []string) ([]string, error) {
	if len(ids) > MaxManualUsers {
		return nil, segmentd.Invalid(field, "at most %d user IDs a call, got %d; import a CSV file for more", MaxManualUsers, len(ids))
	}
	out := make([]string, 0, len(ids))
	seen := make(map[string]bool, len(ids))
	for i, id := range ids {
		id = segmentd.NormalizeID(id)
		if err := checkID(fmt.Sprintf("%s[%d]", field, i), id, true); err != nil {
			return nil, err
		}
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out, nil
}

func (s *Service) changeMembers(ctx context.Context, segmentID pulid.ID, userIDs []string, add bool) (*MembershipUpdateResult, error) {
	ids, err := cleanUserIDs("userIds", userIDs)
	if err != nil {
		return nil, err
	}
	res := &MembershipUpdateResult{}
	activated := false
	err = s.inTx(ctx, func(tx *ent.Tx) error {
		seg, err := tx.Segment.Get(ctx, segmentID)
		if ent.IsNotFound(err) {
			return &segmentd.Error{Code: segmentd.CodeNotFound, Field: "segmentId", Message: fmt.Sprintf("no segment with id %q", segmentID)}
		}
		if err != nil {
			return err
		}
		res.Segment = seg.Unwrap()
		now := s.now()
		counts := counterDeltas{}
		for start := 0; start < len(ids); start += maxBatchTxRows {
			chunk := ids[start:min(start+maxBatchTxRows, len(ids))]
			var users []*ent.User
			if add {
				users, err = s.lockUserIDs(ctx, tx, chunk, now)
			} else {
				q := tx.User.Query().Where(user.UserIDIn(chunk...)).Order(ent.Asc(user.FieldUserID))
				if s.dialect == dialect.Postgres {
					q = q.Where(forNoKeyUpdate)
				}
				users, err = q.All(ctx)
			}
			if err != nil {
				return err
			}
			refs := make([]pulid.ID, len(users))
			for i, u := range users {
				refs[i] = u.ID
			}
			members, err := tx.Membership.Query().
				Where(membership.SegmentRef(segmentID), membership.UserRefIn(refs...)).All(ctx)
			if err != nil {
				return fmt.Errorf("find members: %w", err)
			}
			byUser := make(map[pulid.ID]*ent.Membership, len(members))
			for _, m := range members {
				byUser[m.UserRef] = m
			}
			if add {
				var fresh []pulid.ID
				for _, u := range users {
					if byUser[u.ID] == nil {
						fresh = append(fresh, u.ID)
					}
				}
				res.Unchanged += len(chunk) - len(fresh)
				res.Added += len(fresh)
				if len(fresh) > 0 {
					if err := enterMany(ctx, tx, counts, segmentID, fresh, changelog.SourceManual, "added by hand", now); err != nil {
						return err
					}
					activated = true
				}
			} else {
				var gone []*ent.Membership
				for _, u := range users {
					if m := byUser[u.ID]; m != nil {
						gone = append(gone, m)
					}
				}
				res.Unchanged += len(chunk) - len(gone)
				res.Removed += len(gone)
				if err := exitMany(ctx, tx, counts, gone, changelog.SourceManual, "removed by hand", now); err != nil {
					return err
				}
			}
		}
		return counts.flush(ctx, tx, s.dialect)
	})
	if err != nil {
		return nil, fmt.Errorf("service.changeMembers: %w", err)
	}
	if res.Added > 0 || res.Removed > 0 {
		s.notify(changelog.MembershipChanges.Topic)
	}
	if activated {
		s.notify(changelog.CampaignActivations.Topic)
	}
	return res, nil
}

// lockUserIDs creates unknown users and locks the rows (PostgreSQL) in ID
// order, as ingestion does.
func (s *Service) lockUserIDs(ctx context.Context, tx *ent.Tx, ids []string, now time.Time) ([]*ent.User, error) {
	evs := make([]*incoming, len(ids))
	for i, id := range ids {
		evs[i] = &incoming{userID: id}
	}
	users, err := s.lockUsers(ctx, tx, evs, now)
	if err != nil {
		return nil, err
	}
	out := make([]*ent.User, 0, len(users))
	for _, id := range ids {
		out = append(out, users[id])
	}
	return out, nil
}

// enterMany makes users members of a segment in bulk, logs the changes and
// activates the segment's ACTIVE campaigns for them. The caller flushes
// counts before it commits.
func enterMany(ctx context.Context, tx *ent.Tx, counts counterDeltas, segID pulid.ID, userRefs []pulid.ID, source changelog.Source, reason string, now time.Time) error {
	mems := make([]*ent.MembershipCreate, len(userRefs))
	changes := make([]*ent.MembershipChangeCreate, len(userRefs))
	for i, u := range userRefs {
		mems[i] = tx.Membership.Create().SetSegmentRef(segID).SetUserRef(u).
			SetEnteredAt(now).SetSource(source).SetReason(reason)
		changes[i] = tx.MembershipChange.Create().SetSegmentRef(segID).SetUserRef(u).
			SetKind(changelog.KindEntered).SetSource(source).
			SetAt(now).SetReason(reason)
	}
	if err := tx.Membership.CreateBulk(mems...).Exec(ctx); err != nil {
		return fmt.Errorf("store memberships: %w", err)
	}
	if err := tx.MembershipChange.CreateBulk(changes...).Exec(ctx); err != nil {
		return fmt.Errorf("store membership changes: %w", err)
	}
	counts.entered(segID, now, int64(len(userRefs)))
	camps, err := tx.Campaign.Query().
		Where(campaign.SegmentRef(segID), campaign.StatusEQ(campaign.StatusACTIVE)).IDs(ctx)
	if err != nil {
		return fmt.Errorf("find campaigns: %w", err)
	}
	for _, c := range camps {
		acts := make([]*ent.CampaignActivationCreate, len(userRefs))
		for i, u := range userRefs {
			acts[i] = tx.CampaignActivation.Create().SetCampaignRef(c).SetUserRef(u).
				SetSegmentRef(segID).SetActivatedAt(now)
		}
		err := tx.CampaignActivation.CreateBulk(acts...).
			OnConflictColumns(campaignactivation.FieldCampaignRef, campaignactivation.FieldUserRef).
			DoNothing().Exec(ctx)
		if err != nil && !isNoRows(err) {
			return fmt.Errorf("activate campaign %s: %w", c, err)
		}
	}
	return nil
}

// exitMany removes memberships in bulk and logs the changes. The caller
// flushes counts before it commits.
func exitMany(ctx context.Context, tx *ent.Tx, counts counterDeltas, gone []*ent.Membership, source changelog.Source, reason string, now time.Time) error {
	if len(gone) == 0 {
		return nil
	}
	ids := make([]pulid.ID, len(gone))
	changes := make([]*ent.MembershipChangeCreate, len(gone))
	for i, m := range gone {
		ids[i] = m.ID
		counts.exited(m.SegmentRef, m.EnteredAt, now)
		changes[i] = tx.MembershipChange.Create().SetSegmentRef(m.SegmentRef).SetUserRef(m.UserRef).
			SetKind(changelog.KindExited).SetSource(source).SetAt(now).SetReason(reason)
	}
	if _, err := tx.Membership.Delete().Where(membership.IDIn(ids...)).Exec(ctx); err != nil {
		return fmt.Errorf("delete memberships: %w", err)
	}
	if err := tx.MembershipChange.CreateBulk(changes...).Exec(ctx); err != nil {
		return fmt.Errorf("store membership changes: %w", err)
	}
	return nil
}
