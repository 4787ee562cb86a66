package service

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/segmentd/segmentd/ent"
	"github.com/segmentd/segmentd/ent/membershipdeadline"
	"github.com/segmentd/segmentd/ledger"
	"github.com/segmentd/segmentd/trigger"
)

// The expiry sweeper: memberships expire from the deadline index
// (membership_deadlines, which the ledger keeps), with no event needed. A
// background worker waits until the earliest deadline (at most
// SweepCeiling, so that deadlines another replica wrote are seen within
// it; a commit that writes a deadline earlier than the worker's next wake
// wakes it through the broker), then takes the due deadlines in batches of
// SweepBatch, one transaction each, and publishes after each commit. A
// crash loses nothing: a deadline goes only with its exit's commit, and the
// next sweep (of any replica) takes what is left. On PostgreSQL replicas
// sweep at once and take different rows (SKIP LOCKED), so that no exit is
// made twice.

// SweepBatch is how many deadlines one sweep transaction takes.
const SweepBatch = 1000

// SweepCeiling is the longest the sweeper sleeps between looks at the
// deadline index.
const SweepCeiling = time.Second

// DeadlinesTopic is the broker topic signalled when a commit wrote a
// deadline earlier than the sweeper's next wake.
const DeadlinesTopic = "membership_deadlines"

// sweepIdle is the shortest pause between sweeps: a due deadline that
// another transaction holds (it is changing that member now) is retried
// after it, not in a busy loop.
const sweepIdle = 10 * time.Millisecond

// SweepDue makes every change due by the service's clock, SweepBatch
// deadlines a transaction, and returns how many memberships expired. On a
// store whose writers run at once (PostgreSQL) SweepWorkers transactions
// sweep side by side (SKIP LOCKED keeps them apart), since most of a
// batch's time is the database writing the change log.
func (s *Service) SweepDue(ctx context.Context) (int, error) {
	now := s.now()
	workers := SweepWorkers
	if s.sql.writersTakeTurns() {
		workers = 1
	}
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		total    int
		firstErr error
	)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, err := s.sweepBatches(ctx, now)
			mu.Lock()
			defer mu.Unlock()
			total += n
			if err != nil && firstErr == nil {
				firstErr = err
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return total, fmt.Errorf("service.SweepDue: %w", firstErr)
	}
	return total, nil
}

// SweepWorkers is how many sweep transactions SweepDue runs at once on
// PostgreSQL. A batch's time is mostly the database's, in round trips,
// row locks and commits as much as in CPU: 50,000 memberships due at one
// instant (BenchmarkSweepDue) were swept at about 11,000 a second with 2
// and 15,000 with 4 on the 2-core machine (load average about 2).
const SweepWorkers = 4

// sweepBatches sweeps the expiries batch after batch (sweepInBatches).
func (s *Service) sweepBatches(ctx context.Context, now time.Time) (int, error) {
	return s.sweepInBatches(ctx, func(_ *ent.Tx, w *ledger.Writer) (made, taken, settled int, err error) {
		swept, err := w.ExpireDue(ctx, now, SweepBatch)
		if err != nil {
			return 0, 0, 0, err
		}
		return len(swept.Exited), swept.Taken, len(swept.Exited) + swept.Dropped, nil
	})
}

// sweepInBatches runs batch, one transaction each, publishing after each
// commit, until a batch finds less than SweepBatch due deadlines or
// settles none of those it found (all held by other transactions: a later
// sweep takes them, rather than this one spinning on them). It returns the
// changes made.
func (s *Service) sweepInBatches(ctx context.Context, batch func(tx *ent.Tx, w *ledger.Writer) (made, taken, settled int, err error)) (int, error) {
	total := 0
	for {
		var (
			made, taken, settled int
			topics               ledger.Topics
		)
		err := s.inTx(ctx, func(tx *ent.Tx) error {
			w := s.ledger().Writer(tx)
			var err error
			if made, taken, settled, err = batch(tx, w); err != nil {
				return err
			}
			topics, err = w.Flush(ctx)
			return err
		})
		if err != nil {
			return total, err
		}
		s.publish(topics)
		total += made
		if taken < SweepBatch || settled == 0 {
			return total, nil
		}
	}
}

// StartSweeper runs the expiry sweeper until ctx ends; WaitSweeper waits
// for it to stop.
func (s *Service) StartSweeper(ctx context.Context) {
	wake, unsubscribe := s.broker.Subscribe(DeadlinesTopic)
	s.sweepers.Add(1)
	go func() {
		defer s.sweepers.Done()
		defer unsubscribe()
		s.dropStagedLeftovers(ctx)
		s.runSweeper(ctx, wake)
	}()
}

// dropStagedLeftovers deletes, on a store that stages behaviour states
// ahead of a segment's transaction (SQLite, one server per file), the
// states a server killed midway left under keys no segment has. In the
// background: startup does not wait for it.
func (s *Service) dropStagedLeftovers(ctx context.Context) {
	if _, staged, _ := s.sql.eventsPosition(ctx, s.db); !staged {
		return
	}
	s.defsMu.Lock()
	defer s.defsMu.Unlock()
	if err := s.inTx(ctx, func(tx *ent.Tx) error { return s.dropUnusedBehaviorStates(ctx, tx) }); err != nil && ctx.Err() == nil {
		s.log.Warn("dropping unused behaviour states", "err", err)
	}
}

// WaitSweeper waits for the sweeper started by StartSweeper to stop (after
// its context ends).
func (s *Service) WaitSweeper() { s.sweepers.Wait() }

func (s *Service) runSweeper(ctx context.Context, wake <-chan struct{}) {
	for ctx.Err() == nil {
		wait := SweepCeiling
		_, err := s.SweepDue(ctx)
		if err == nil {
			_, err = s.SweepReevaluations(ctx)
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			s.log.Warn("sweeping membership deadlines", "err", err)
		} else if next, ok, err := s.ledger().NextDeadline(ctx, s.client); err != nil {
			if ctx.Err() != nil {
				return
			}
			s.log.Warn("reading the next membership deadline", "err", err)
		} else if ok {
			wait = min(max(next.Sub(s.now()), sweepIdle), SweepCeiling)
		}
		s.nextSweep.Store(time.Now().Add(wait).UnixNano())
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		case <-wake:
			timer.Stop()
		}
	}
}

// wakeSweeper signals the sweepers when a committed deadline comes due
// before this process's sweeper means to look again (a sweeper of another
// replica looks within SweepCeiling anyway): rarely, since most deadlines
// are further away than that.
func (s *Service) wakeSweeper(due time.Time) {
	if due.IsZero() {
		return
	}
	// The wait in real time: the clock may be a test's.
	at := time.Now().Add(due.Sub(s.now()))
	if at.UnixNano() < s.nextSweep.Load() {
		s.notify(DeadlinesTopic)
	}
}

// expiresAt is when a membership of seg that begins at `at` expires (the
// segment's exit rule after), or nil when it does not.
func expiresAt(seg *ent.Segment, at time.Time) *time.Time {
	after, ok := exitAfter(seg)
	if !ok {
		return nil
	}
	due := at.Add(after)
	return &due
}

// exitAfter is the segment's exit rule after, if it has one. The rule was
// validated when stored; one that no longer parses (a rule written by a
// later version) means no expiry rather than a failed entry.
func exitAfter(seg *ent.Segment) (time.Duration, bool) {
	if seg == nil || seg.ExitAfter == nil {
		return 0, false
	}
	after, err := trigger.ParseDuration(*seg.ExitAfter)
	if err != nil {
		return 0, false
	}
	return after, true
}

// rescheduleExpiries applies a change of a segment's exit rule after to its
// current members (see README, "Exits and DYNAMIC"): the new after counts
// from each member's entry, and a member already past it expires at once
// (at the update); a removed after removes their expiry.
func (s *Service) rescheduleExpiries(ctx context.Context, tx *ent.Tx, before, after *ent.Segment, topics *ledger.Topics) error {
	old, had := exitAfter(before)
	cur, has := exitAfter(after)
	if had == has && old == cur {
		return nil
	}
	var next *time.Duration
	if has {
		next = &cur
	}
	w := s.ledger().Writer(tx)
	if _, err := w.RescheduleExpiries(ctx, after.ID, next, s.now()); err != nil {
		return err
	}
	topics.Merge(w.Topics())
	return nil
}

// checkDeadlines checks the deadline index against the memberships: every
// member of a segment with exit rule after has an expiry deadline
// (missing-deadline), and every expiry deadline of an existing segment
// belongs to a member (stale-deadline). A deadline of a deleted segment is
// not a finding: the sweeper drops it when it comes due.
func (v *verifier) checkDeadlines() error {
	has := map[segUser]bool{}
	err := eachPage(func(after int64) ([]*ent.MembershipDeadline, error) {
		return v.c.MembershipDeadline.Query().
			Where(membershipdeadline.IDGT(after), membershipdeadline.WhyEQ(membershipdeadline.WhyEXPIRE)).
			Order(ent.Asc(membershipdeadline.FieldID)).Limit(verifyPage).All(v.ctx)
	}, func(d *ent.MembershipDeadline) int64 { return d.ID }, func(d *ent.MembershipDeadline) {
		k := segUser{d.SegmentRef, d.UserRef}
		has[k] = true
		if _, member := v.members[k]; !member && v.segByID[d.SegmentRef] != nil {
			v.rep.add("stale-deadline", "user %s has an expiry deadline in segment %s (at %s) but is not a member",
				v.userName(k.user), v.segmentName(k.seg), d.DueAt.UTC().Format(time.RFC3339))
		}
	})
	if err != nil {
		return fmt.Errorf("membership deadlines: %w", err)
	}
	for k, m := range v.members {
		si := v.segByID[k.seg]
		if si == nil {
			continue
		}
		if _, expires := exitAfter(si.seg); expires && !has[k] {
			v.rep.add("missing-deadline", "membership %s (user %s in segment %s) has no expiry deadline, but the segment's members expire after %s",
				m.ID, v.userName(k.user), v.segmentName(k.seg), *si.seg.ExitAfter)
		}
	}
	return nil
}
