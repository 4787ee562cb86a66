package service_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/segmentd/segmentd/changelog"
	"github.com/segmentd/segmentd/ent"
	"github.com/segmentd/segmentd/ent/membership"
	"github.com/segmentd/segmentd/ent/membershipchange"
	"github.com/segmentd/segmentd/ent/membershipdeadline"
	"github.com/segmentd/segmentd/ent/schema/pulid"
	"github.com/segmentd/segmentd/ent/segment"
	"github.com/segmentd/segmentd/internal/testenv"
	"github.com/segmentd/segmentd/service"
	"github.com/segmentd/segmentd/store"
	"github.com/segmentd/segmentd/trigger"
)

func expirySegment(t testing.TB, svc *service.Service, name string) pulid.ID {
	t.Helper()
	seg, err := svc.CreateSegment(context.Background(), service.CreateSegmentInput{Name: name, Kind: segment.KindSTATIC})
	if err != nil {
		t.Fatal(err)
	}
	return seg.ID
}

func userIDs(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%d", prefix, i)
	}
	return out
}

func countMembers(t testing.TB, c *ent.Client, seg pulid.ID) int {
	t.Helper()
	n, err := c.Membership.Query().Where(membership.SegmentRef(seg)).Count(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// expiries are the segment's TIME exits.
func expiries(t testing.TB, c *ent.Client, seg pulid.ID) []*ent.MembershipChange {
	t.Helper()
	rows, err := c.MembershipChange.Query().Where(membershipchange.SegmentRef(seg),
		membershipchange.KindEQ(changelog.KindExited), membershipchange.SourceEQ(changelog.SourceTime)).All(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// checkClean fails on any finding of Verify and on a member count that
// differs from the stats'.
func checkClean(t testing.TB, svc *service.Service, seg pulid.ID, members int) {
	t.Helper()
	ctx := context.Background()
	rep, err := svc.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range rep.Findings {
		t.Errorf("verify: %+v", f)
	}
	st, err := svc.Stats(ctx, seg, time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	if st.TotalUsers != members {
		t.Errorf("stats: %d members, want %d", st.TotalUsers, members)
	}
}

// TestSweeperExpiresOnTheRealClock: members with a 2 s expiry leave within
// 1 s of their instant, with no event, and the log says so exactly.
func TestSweeperExpiresOnTheRealClock(t *testing.T) {
	for _, name := range testenv.Stores {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			svc, st := openService(t, testenv.DatabaseURL(t, name), nil)
			ctx, cancel := context.WithCancel(context.Background())
			defer func() { cancel(); svc.WaitSweeper() }()
			svc.StartSweeper(ctx)
			seg := expirySegment(t, svc, "trial")
			if err := svc.EnterExpiring(ctx, seg, userIDs("real", 50), 2*time.Second); err != nil {
				t.Fatal(err)
			}
			entered, err := st.Client.Membership.Query().Where(membership.SegmentRef(seg)).First(ctx)
			if err != nil {
				t.Fatal(err)
			}
			due := entered.EnteredAt.Add(2 * time.Second)
			deadline := time.Now().Add(10 * time.Second)
			for countMembers(t, st.Client, seg) > 0 && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			late := time.Since(due)
			t.Logf("%s: the last of 50 members left %v after their instant", name, late.Round(time.Millisecond))
			if late > time.Second {
				t.Errorf("members left %v after their instant, want within 1s", late)
			}
			exits := expiries(t, st.Client, seg)
			if len(exits) != 50 {
				t.Fatalf("%d exits, want 50", len(exits))
			}
			for _, x := range exits {
				if !x.At.Equal(due) || x.Reason != "left: expired 2s after entry" {
					t.Errorf("exit at %v with reason %q, want at %v, \"left: expired 2s after entry\"", x.At, x.Reason, due)
					break
				}
			}
			checkClean(t, svc, seg, 0)
		})
	}
}

// TestSweeperFollowsAnInjectedClock: nothing leaves before the deadline by
// the service's clock; a sweep after the clock passes it exits everyone,
// and so does the running sweeper without being asked.
func TestSweeperFollowsAnInjectedClock(t *testing.T) {
	for _, name := range testenv.Stores {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			start := time.Date(2026, 5, 4, 9, 0, 0, 0, time.UTC)
			clk := &testClock{t: start}
			svc, st := openService(t, testenv.DatabaseURL(t, name), clk)
			seg := expirySegment(t, svc, "thirty days")
			if err := svc.EnterExpiring(ctx, seg, userIDs("fake", 1200), 30*24*time.Hour); err != nil {
				t.Fatal(err)
			}
			due := start.Add(30 * 24 * time.Hour)
			clk.Set(due.Add(-time.Microsecond))
			if n, err := svc.SweepDue(ctx); err != nil || n != 0 {
				t.Fatalf("a sweep before the deadline: %d exits, %v; want 0", n, err)
			}
			clk.Set(due)
			n, err := svc.SweepDue(ctx) // more than one batch
			if err != nil || n != 1200 {
				t.Fatalf("a sweep at the deadline: %d exits, %v; want 1200", n, err)
			}
			exits := expiries(t, st.Client, seg)
			if len(exits) != 1200 || !exits[0].At.Equal(due) || exits[0].Reason != "left: expired 30d after entry" {
				t.Errorf("%d exits, the first %+v; want 1200 at %v, \"left: expired 30d after entry\"", len(exits), exits[0], due)
			}
			checkClean(t, svc, seg, 0)

			// The running sweeper, with the clock moved past a deadline.
			seg2 := expirySegment(t, svc, "an hour")
			if err := svc.EnterExpiring(ctx, seg2, userIDs("bg", 3), time.Hour); err != nil {
				t.Fatal(err)
			}
			sctx, cancel := context.WithCancel(ctx)
			defer func() { cancel(); svc.WaitSweeper() }()
			svc.StartSweeper(sctx)
			time.Sleep(50 * time.Millisecond)
			if m := countMembers(t, st.Client, seg2); m != 3 {
				t.Fatalf("%d members before the clock moved, want 3", m)
			}
			clk.Set(due.Add(time.Hour))
			moved := time.Now()
			for countMembers(t, st.Client, seg2) > 0 && time.Since(moved) < 5*time.Second {
				time.Sleep(5 * time.Millisecond)
			}
			// It looks at least every SweepCeiling; the sweep itself takes
			// a moment more (much more under -race on a busy machine).
			if took := time.Since(moved); took > 2*service.SweepCeiling {
				t.Errorf("the sweeper took %v after the clock moved, want within about %v", took, service.SweepCeiling)
			}
			checkClean(t, svc, seg2, 0)
		})
	}
}

// TestSweepersOfTwoReplicasShareTheWork: two services on one PostgreSQL
// database, each with its sweeper running and two more sweeps at once:
// every member expires exactly once.
func TestSweepersOfTwoReplicasShareTheWork(t *testing.T) {
	ctx := context.Background()
	start := time.Date(2026, 5, 4, 9, 0, 0, 0, time.UTC)
	clk := &testClock{t: start}
	svcs, client := twoReplicas(t, clk)
	const members = 6000
	seg := expirySegment(t, svcs[0], "shared")
	if err := svcs[0].EnterExpiring(ctx, seg, userIDs("r", members), time.Minute); err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(ctx)
	for _, s := range svcs {
		s.StartSweeper(sctx)
	}
	clk.Set(start.Add(time.Minute))
	total := sweepAtOnce(t, svcs, (*service.Service).SweepDue)
	// What the explicit sweeps left (rows a sweeper held), the
	// background sweepers take within their ceiling.
	for waited := time.Now(); countMembers(t, client, seg) > 0 && time.Since(waited) < 10*time.Second; {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	for _, s := range svcs {
		s.WaitSweeper()
	}
	t.Logf("the explicit sweeps made %d of %d expiries, the background sweepers the rest", total, members)
	exits := expiries(t, client, seg)
	seen := map[pulid.ID]int{}
	for _, x := range exits {
		seen[x.UserRef]++
	}
	if len(exits) != members || len(seen) != members {
		t.Errorf("%d exits of %d users, want %d each once", len(exits), len(seen), members)
	}
	if n, _ := client.MembershipDeadline.Query().Where(membershipdeadline.SegmentRef(seg)).Count(ctx); n != 0 {
		t.Errorf("%d deadlines left, want 0", n)
	}
	checkClean(t, svcs[1], seg, 0)
}

func deadlinesOf(t testing.TB, c *ent.Client, seg pulid.ID) map[pulid.ID]time.Time {
	t.Helper()
	rows, err := c.MembershipDeadline.Query().Where(membershipdeadline.SegmentRef(seg)).All(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[pulid.ID]time.Time{}
	for _, d := range rows {
		out[d.UserRef] = d.DueAt
	}
	return out
}

// TestExitRuleAfter: entry into a segment with exitRules.after writes each
// member's deadline; an update of after recomputes them from entry (a
// member already past it expires at the update's instant); clearing the
// rules removes them; a manual removal takes its deadline along.
func TestExitRuleAfter(t *testing.T) {
	for _, name := range testenv.Stores {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			start := time.Date(2026, 5, 4, 9, 0, 0, 0, time.UTC)
			clk := &testClock{t: start}
			svc, st := openService(t, testenv.DatabaseURL(t, name), clk)
			after := "30d"
			seg, err := svc.CreateSegment(ctx, service.CreateSegmentInput{Name: "trial", Kind: segment.KindSTATIC,
				ExitRules: &service.ExitRulesInput{After: &after}})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := svc.AddUsers(ctx, seg.ID, []string{"early"}); err != nil {
				t.Fatal(err)
			}
			clk.Set(start.Add(3 * time.Hour))
			if _, err := svc.AddUsers(ctx, seg.ID, []string{"late", "gone"}); err != nil {
				t.Fatal(err)
			}
			users := map[string]pulid.ID{}
			for _, u := range st.Client.User.Query().AllX(ctx) {
				users[u.UserID] = u.ID
			}
			d := deadlinesOf(t, st.Client, seg.ID)
			month := 30 * 24 * time.Hour
			if len(d) != 3 || !d[users["early"]].Equal(start.Add(month)) || !d[users["late"]].Equal(start.Add(3*time.Hour+month)) {
				t.Errorf("deadlines %v, want early at +30d and late, gone at +3h+30d", d)
			}
			if _, err := svc.RemoveUsers(ctx, seg.ID, []string{"gone"}); err != nil {
				t.Fatal(err)
			}
			if d := deadlinesOf(t, st.Client, seg.ID); len(d) != 2 {
				t.Errorf("after a removal, deadlines %v, want 2", d)
			}

			// after shortened to 2h at +3h: early (entered at +0) is past it
			// and expires at once; late expires 2h after its entry.
			short := "2h"
			if _, err := svc.UpdateSegment(ctx, seg.ID, service.UpdateSegmentInput{
				ExitRules: &service.ExitRulesInput{After: &short}}, service.FutureOnly); err != nil {
				t.Fatal(err)
			}
			d = deadlinesOf(t, st.Client, seg.ID)
			if len(d) != 2 || !d[users["early"]].Equal(start.Add(3*time.Hour)) || !d[users["late"]].Equal(start.Add(5*time.Hour)) {
				t.Errorf("after the update, deadlines %v, want early at +3h (now), late at +5h", d)
			}
			if n, err := svc.SweepDue(ctx); err != nil || n != 1 {
				t.Fatalf("sweep: %d, %v; want early's expiry", n, err)
			}
			exits := expiries(t, st.Client, seg.ID)
			if len(exits) != 1 || exits[0].UserRef != users["early"] || exits[0].Reason != "left: expired 3h after entry" {
				t.Errorf("exits %+v, want early's, \"left: expired 3h after entry\"", exits)
			}
			checkClean(t, svc, seg.ID, 1)

			// Cleared: late stays.
			clear := true
			if _, err := svc.UpdateSegment(ctx, seg.ID, service.UpdateSegmentInput{ClearExitRules: &clear}, service.FutureOnly); err != nil {
				t.Fatal(err)
			}
			if d := deadlinesOf(t, st.Client, seg.ID); len(d) != 0 {
				t.Errorf("after clearing the rules, deadlines %v, want none", d)
			}
			clk.Set(start.Add(365 * 24 * time.Hour))
			if n, _ := svc.SweepDue(ctx); n != 0 {
				t.Errorf("a sweep a year later expired %d, want 0", n)
			}
			checkClean(t, svc, seg.ID, 1)

			// Verify finds a member without their deadline.
			day := "1d"
			if _, err := svc.UpdateSegment(ctx, seg.ID, service.UpdateSegmentInput{
				ExitRules: &service.ExitRulesInput{After: &day}}, service.FutureOnly); err != nil {
				t.Fatal(err)
			}
			checkClean(t, svc, seg.ID, 1)
			if _, err := st.Client.MembershipDeadline.Delete().Exec(ctx); err != nil {
				t.Fatal(err)
			}
			rep, err := svc.Verify(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Findings) != 1 || rep.Findings[0].Kind != "missing-deadline" {
				t.Errorf("verify without the deadline: %+v, want one missing-deadline", rep.Findings)
			}
		})
	}
}

// TestReevaluationSweepsOfTwoReplicas: two services on one PostgreSQL
// database and a DYNAMIC segment "seen within 1h" of 3,000 members; once
// the clock passes the window, both sweepers and four more sweeps at once
// re-evaluate them: each member leaves exactly once (source TIME) and no
// deadline is left.
func TestReevaluationSweepsOfTwoReplicas(t *testing.T) {
	ctx := context.Background()
	start := time.Date(2026, 5, 4, 9, 0, 0, 0, time.UTC)
	clk := &testClock{t: start}
	svcs, client := twoReplicas(t, clk)
	const members = 3000
	seg, err := svcs[0].CreateSegment(ctx, service.CreateSegmentInput{Name: "seen within 1h", Kind: segment.KindDYNAMIC,
		Condition: &trigger.ConditionInput{Scope: ref(trigger.ScopeUser), Property: ref("lastSeen"), Operator: ref(trigger.OpWithinLast), Value: "1h"}})
	if err != nil {
		t.Fatal(err)
	}
	for b := 0; b < members; b += 500 {
		var batch []*service.TrackInput
		for i := b; i < b+500; i++ {
			batch = append(batch, &service.TrackInput{Event: "Visit", UserID: ref(fmt.Sprintf("r%d", i)),
				Traits: map[string]any{"lastSeen": start.Format(time.RFC3339)}})
		}
		if _, err := svcs[b/500%2].TrackBatch(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	if n := countMembers(t, client, seg.ID); n != members {
		t.Fatalf("%d members, want %d", n, members)
	}
	sctx, cancel := context.WithCancel(ctx)
	for _, s := range svcs {
		s.StartSweeper(sctx)
	}
	clk.Set(start.Add(2 * time.Hour))
	total := sweepAtOnce(t, svcs, (*service.Service).SweepReevaluations)
	for waited := time.Now(); countMembers(t, client, seg.ID) > 0 && time.Since(waited) < 10*time.Second; {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	for _, s := range svcs {
		s.WaitSweeper()
	}
	t.Logf("the explicit sweeps made %d of %d exits, the background sweepers the rest", total, members)
	exits := expiries(t, client, seg.ID)
	seen := map[pulid.ID]int{}
	for _, x := range exits {
		seen[x.UserRef]++
	}
	if len(exits) != members || len(seen) != members {
		t.Errorf("%d exits of %d users, want %d each once", len(exits), len(seen), members)
	}
	if len(exits) > 0 && !exits[0].At.Equal(start.Add(time.Hour+time.Microsecond)) {
		t.Errorf("an exit at %v, want the microsecond after the window passed (%v)", exits[0].At, start.Add(time.Hour))
	}
	if n, _ := client.MembershipDeadline.Query().Where(membershipdeadline.SegmentRef(seg.ID)).Count(ctx); n != 0 {
		t.Errorf("%d deadlines left, want 0", n)
	}
	checkClean(t, svcs[1], seg.ID, 0)
}

// TestDeleteSegmentDropsItsDeadlines: deleting a segment removes its
// expiry and re-evaluation deadlines with it (the index has no foreign
// keys), so that nothing of it waits in the index.
func TestDeleteSegmentDropsItsDeadlines(t *testing.T) {
	for _, name := range testenv.Stores {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			svc, st := openService(t, testenv.DatabaseURL(t, name), nil)
			trial := expirySegment(t, svc, "trial")
			if err := svc.EnterExpiring(ctx, trial, userIDs("d", 3), time.Hour); err != nil {
				t.Fatal(err)
			}
			seen, err := svc.CreateSegment(ctx, service.CreateSegmentInput{Name: "seen", Kind: segment.KindDYNAMIC,
				Condition: &trigger.ConditionInput{Scope: ref(trigger.ScopeUser), Property: ref("lastSeen"), Operator: ref(trigger.OpWithinLast), Value: "1h"}})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := svc.Identify(ctx, service.IdentifyInput{UserID: "d-0", Traits: map[string]any{"lastSeen": time.Now().UTC().Format(time.RFC3339)}}); err != nil {
				t.Fatal(err)
			}
			if n := len(deadlinesOf(t, st.Client, trial)) + len(deadlinesOf(t, st.Client, seen.ID)); n != 4 {
				t.Fatalf("%d deadlines before the deletes, want 4 (3 expiries, 1 re-evaluation)", n)
			}
			for _, seg := range []pulid.ID{trial, seen.ID} {
				if err := svc.DeleteSegment(ctx, seg); err != nil {
					t.Fatal(err)
				}
			}
			if n, _ := st.Client.MembershipDeadline.Query().Count(ctx); n != 0 {
				t.Errorf("%d deadlines left after deleting their segments, want 0", n)
			}
		})
	}
}

// twoReplicas opens two services, each with its own store, on one
// PostgreSQL database, both on clk.
func twoReplicas(t *testing.T, clk *testClock) ([]*service.Service, *ent.Client) {
	t.Helper()
	url := testenv.DatabaseURL(t, "postgres")
	ctx := context.Background()
	var (
		svcs   []*service.Service
		client *ent.Client
	)
	for range 2 {
		st, err := store.Open(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		if err := st.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		svcs = append(svcs, newService(t, st, service.Config{Now: clk.Now}))
		client = st.Client
	}
	return svcs, client
}

// sweepAtOnce runs four sweeps at once, two on each replica, and returns
// the changes they made together.
func sweepAtOnce(t *testing.T, svcs []*service.Service, sweep func(*service.Service, context.Context) (int, error)) int {
	t.Helper()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		total int
	)
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, err := sweep(svcs[i%2], context.Background())
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			total += n
			mu.Unlock()
		}()
	}
	wg.Wait()
	return total
}
