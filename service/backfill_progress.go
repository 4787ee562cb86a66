package service

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/segmentd/segmentd/ent"
	"github.com/segmentd/segmentd/ent/schema/pulid"
)

// BehaviorBackfill is a running build of behaviour states from the stored
// events (a segment created or edited with a predicate no other segment
// has, or a DYNAMIC segment's fill with one): its progress, in users.
// Builds run inside the create or update transaction (on SQLite, ahead of
// it, see prebuildBehaviorStates), so the segment is not visible to others
// until the build ends; this is what they can see meanwhile. A segment
// being created has its id already (CreateSegment picks it first).
type BehaviorBackfill struct {
	SegmentID   pulid.ID
	SegmentName string
	UsersDone   int
	UsersTotal  int
	StartedAt   time.Time
}

// usersPerPage is how many users a fill or a build reads at a time.
func (s *Service) usersPerPage() int {
	if s.userPage > 0 {
		return s.userPage
	}
	return dynamicPage
}

// backfillRegistry holds the builds running on this replica.
type backfillRegistry struct {
	mu      sync.Mutex
	running map[*BehaviorBackfill]bool
}

// BehaviorBackfills returns the builds running on this replica, oldest
// first (a copy).
func (s *Service) BehaviorBackfills() []*BehaviorBackfill {
	r := &s.backfills
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*BehaviorBackfill, 0, len(r.running))
	for b := range r.running {
		c := *b
		out = append(out, &c)
	}
	slices.SortFunc(out, func(a, b *BehaviorBackfill) int { return a.StartedAt.Compare(b.StartedAt) })
	return out
}

// eachUserPageWithProgress is eachUserPage for a build of seg's behaviour
// states, which it shows in BehaviorBackfills while it runs.
func (s *Service) eachUserPageWithProgress(ctx context.Context, client *ent.Client, seg *ent.Segment, fn func([]*ent.User) error) error {
	total, err := client.User.Query().Where(NotErased()).Count(ctx)
	if err != nil {
		return fmt.Errorf("count users: %w", err)
	}
	b := &BehaviorBackfill{SegmentID: seg.ID, SegmentName: seg.Name, UsersTotal: total, StartedAt: time.Now()}
	r := &s.backfills
	r.mu.Lock()
	if r.running == nil {
		r.running = map[*BehaviorBackfill]bool{}
	}
	r.running[b] = true
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		delete(r.running, b)
		r.mu.Unlock()
	}()
	return eachUserPage(ctx, client, s.usersPerPage(), func(page []*ent.User) error {
		if err := fn(page); err != nil {
			return err
		}
		r.mu.Lock()
		b.UsersDone = min(b.UsersDone+len(page), b.UsersTotal)
		r.mu.Unlock()
		return nil
	})
}
