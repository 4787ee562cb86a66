package service

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/segmentd/segmentd"
	"github.com/segmentd/segmentd/changelog"
	"github.com/segmentd/segmentd/ent"
	"github.com/segmentd/segmentd/ent/membership"
	"github.com/segmentd/segmentd/ent/schema/pulid"
	"github.com/segmentd/segmentd/ent/user"
	"github.com/segmentd/segmentd/ledger"
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
	var topics ledger.Topics
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
		w := s.ledger().Writer(tx)
		for start := 0; start < len(ids); start += maxBatchTxRows {
			chunk := ids[start:min(start+maxBatchTxRows, len(ids))]
			var users []*ent.User
			if add {
				users, err = s.lockUserIDs(ctx, tx, chunk, now)
			} else {
				users, err = tx.User.Query().Where(user.UserIDIn(chunk...), s.sql.lockForNoKeyUpdate).
					Order(ent.Asc(user.FieldUserID)).All(ctx)
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
				var fresh []ledger.Entry
				for _, u := range users {
					if byUser[u.ID] == nil {
						fresh = append(fresh, ledger.Entry{Segment: segmentID, User: u.ID,
							Source: changelog.SourceManual, Reason: "added by hand", At: now, ExpiresAt: expiresAt(seg, now)})
					}
				}
				res.Unchanged += len(chunk) - len(fresh)
				res.Added += len(fresh)
				if _, err := w.EnterMany(ctx, fresh); err != nil {
					return err
				}
			} else {
				var gone []ledger.Exit
				for _, u := range users {
					if m := byUser[u.ID]; m != nil {
						gone = append(gone, ledger.ExitOf(m, changelog.SourceManual, "removed by hand", now))
					}
				}
				res.Unchanged += len(chunk) - len(gone)
				res.Removed += len(gone)
				if _, err := w.ExitMany(ctx, gone); err != nil {
					return err
				}
			}
		}
		topics, err = w.Flush(ctx)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("service.changeMembers: %w", err)
	}
	s.publish(topics)
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
