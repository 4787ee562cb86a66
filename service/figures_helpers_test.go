package service_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/segmentd/segmentd/changelog"
	"github.com/segmentd/segmentd/ent"
	"github.com/segmentd/segmentd/ent/importjob"
	"github.com/segmentd/segmentd/ent/membership"
	"github.com/segmentd/segmentd/ent/membershipchange"
	"github.com/segmentd/segmentd/ent/schema/pulid"
	"github.com/segmentd/segmentd/internal/testenv"
	"github.com/segmentd/segmentd/service"
	"github.com/segmentd/segmentd/store"
)

// testClock is a clock the test moves by hand.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// openService opens a fresh database of the named store (testenv), migrates
// it and returns a Service on it whose clock is clk.
func openService(t testing.TB, databaseURL string, clk *testClock) (*service.Service, *store.Store) {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, databaseURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	var cfg service.Config
	if clk != nil {
		cfg.Now = clk.Now
	}
	return newService(t, st, cfg), st
}

// newService returns a Service on st with cfg, logging nowhere unless cfg
// says where.
func newService(t testing.TB, st *store.Store, cfg service.Config) *service.Service {
	t.Helper()
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	svc, err := service.New(st, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

// mustZone loads a time zone or fails the test.
func mustZone(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// recountStats computes a segment's stats at now in loc from the raw
// membership rows, with boundaries computed here, not by the service.
func recountStats(t testing.TB, client *ent.Client, seg pulid.ID, now time.Time, loc *time.Location) service.SegmentStats {
	t.Helper()
	ctx := context.Background()
	count := func(since *time.Time) int {
		q := client.Membership.Query().Where(membership.SegmentRef(seg))
		if since != nil {
			q = q.Where(membership.EnteredAtGTE(since.UTC()))
		}
		n, err := q.Count(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	lt := now.In(loc)
	monday := time.Date(lt.Year(), lt.Month(), lt.Day(), 0, 0, 0, 0, loc)
	for monday.Weekday() != time.Monday {
		monday = time.Date(monday.Year(), monday.Month(), monday.Day()-1, 0, 0, 0, 0, loc)
	}
	first := time.Date(lt.Year(), lt.Month(), 1, 0, 0, 0, 0, loc)
	d7, d30 := now.Add(-7*24*time.Hour), now.Add(-30*24*time.Hour)
	return service.SegmentStats{
		TotalUsers:    count(nil),
		NewThisWeek:   count(&monday),
		NewThisMonth:  count(&first),
		NewLast7Days:  count(&d7),
		NewLast30Days: count(&d30),
	}
}

// logChange is one row of the membership change log.
type logChange struct {
	id      int64
	user    pulid.ID
	entered bool
	at      time.Time
}

// changeLog reads a segment's change log, in (at, id) order.
func changeLog(t testing.TB, client *ent.Client, seg pulid.ID) []logChange {
	t.Helper()
	rows, err := client.MembershipChange.Query().Where(membershipchange.SegmentRef(seg)).All(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := make([]logChange, len(rows))
	for i, r := range rows {
		out[i] = logChange{id: r.ID, user: r.UserRef, entered: r.Kind == changelog.KindEntered, at: r.At}
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].at.Equal(out[j].at) {
			return out[i].at.Before(out[j].at)
		}
		return out[i].id < out[j].id
	})
	return out
}

// replayMembers replays the log up to and including instant at: the users
// whose last change was an entry.
func replayMembers(log []logChange, at time.Time) map[pulid.ID]bool {
	last := map[pulid.ID]bool{}
	for _, c := range log {
		if c.at.After(at) {
			break
		}
		last[c.user] = c.entered
	}
	out := map[pulid.ID]bool{}
	for u, in := range last {
		if in {
			out[u] = true
		}
	}
	return out
}

// expectedStarts are the interval starts of a growth query, computed
// naively: calendar arithmetic in loc.
func expectedStarts(t testing.TB, iv service.GrowthInterval, from, to time.Time, loc *time.Location) []time.Time {
	t.Helper()
	lf := from.In(loc)
	var cur time.Time
	var next func(time.Time) time.Time
	switch iv {
	case service.GrowthHour:
		cur = time.Date(lf.Year(), lf.Month(), lf.Day(), lf.Hour(), 0, 0, 0, loc)
		next = func(x time.Time) time.Time { return x.Add(time.Hour) }
	case service.GrowthDay:
		cur = time.Date(lf.Year(), lf.Month(), lf.Day(), 0, 0, 0, 0, loc)
		next = func(x time.Time) time.Time { return time.Date(x.Year(), x.Month(), x.Day()+1, 0, 0, 0, 0, loc) }
	case service.GrowthWeek:
		cur = time.Date(lf.Year(), lf.Month(), lf.Day(), 0, 0, 0, 0, loc)
		for cur.Weekday() != time.Monday {
			cur = time.Date(cur.Year(), cur.Month(), cur.Day()-1, 0, 0, 0, 0, loc)
		}
		next = func(x time.Time) time.Time { return time.Date(x.Year(), x.Month(), x.Day()+7, 0, 0, 0, 0, loc) }
	}
	var out []time.Time
	for ; cur.Before(to); cur = next(cur).In(loc) {
		out = append(out, cur)
	}
	return out
}

// checkStats compares the service's stats with the recount.
func checkStats(t testing.TB, svc *service.Service, seg pulid.ID, loc *time.Location, label string) {
	t.Helper()
	got, err := svc.Stats(context.Background(), seg, loc)
	if err != nil {
		t.Fatalf("%s: stats: %v", label, err)
	}
	want := recountStats(t, svc.EntClient(), seg, svc.ClockNow(), loc)
	if *got != want {
		t.Fatalf("%s: stats in %s at %s:\n got %+v\nwant %+v", label, loc, svc.ClockNow().In(loc).Format(time.RFC3339Nano), *got, want)
	}
}

// checkGrowth compares Growth with a replay of the change log.
func checkGrowth(t testing.TB, svc *service.Service, seg pulid.ID, iv service.GrowthInterval, from, to time.Time, loc *time.Location, label string) {
	t.Helper()
	points, err := svc.Growth(context.Background(), seg, iv, from, to, loc.String())
	if err != nil {
		t.Fatalf("%s: growth: %v", label, err)
	}
	starts := expectedStarts(t, iv, from, to, loc)
	if len(points) != len(starts) {
		t.Fatalf("%s: growth %s in %s: %d points, want %d", label, iv, loc, len(points), len(starts))
	}
	log := changeLog(t, svc.EntClient(), seg)
	for i, p := range points {
		end := time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)
		if i+1 < len(starts) {
			end = starts[i+1]
		} else {
			switch iv {
			case service.GrowthHour:
				end = starts[i].Add(time.Hour)
			case service.GrowthDay:
				s := starts[i]
				end = time.Date(s.Year(), s.Month(), s.Day()+1, 0, 0, 0, 0, loc)
			case service.GrowthWeek:
				s := starts[i]
				end = time.Date(s.Year(), s.Month(), s.Day()+7, 0, 0, 0, 0, loc)
			}
		}
		want := service.GrowthPoint{Start: starts[i]}
		for _, c := range log {
			if c.at.Before(starts[i]) || !c.at.Before(end) {
				continue
			}
			if c.entered {
				want.Entered++
			} else {
				want.Exited++
			}
		}
		want.Total = len(replayMembers(log, end.Add(-time.Nanosecond)))
		if !p.Start.Equal(want.Start) || p.Entered != want.Entered || p.Exited != want.Exited || p.Total != want.Total {
			t.Fatalf("%s: growth %s in %s, point %d:\n got %+v\nwant %+v", label, iv, loc, i, *p, want)
		}
	}
}

// checkMembersAt pages through MembersAt(at) and compares it with a replay.
func checkMembersAt(t testing.TB, svc *service.Service, seg pulid.ID, at time.Time, page int, label string) {
	t.Helper()
	ctx := context.Background()
	want := replayMembers(changeLog(t, svc.EntClient(), seg), at)
	got := map[pulid.ID]bool{}
	var after *ent.Cursor
	for pages := 0; ; pages++ {
		if pages > len(want)+2 {
			t.Fatalf("%s: membersAt(%s) does not end", label, at)
		}
		conn, err := svc.MembersAt(ctx, seg, at, &page, after)
		if err != nil {
			t.Fatalf("%s: membersAt: %v", label, err)
		}
		if conn.TotalCount != len(want) {
			t.Fatalf("%s: membersAt(%s).totalCount = %d, want %d", label, at.Format(time.RFC3339Nano), conn.TotalCount, len(want))
		}
		for _, e := range conn.Edges {
			if got[e.Node.User.ID] {
				t.Fatalf("%s: membersAt(%s): %s twice", label, at, e.Node.User.ID)
			}
			got[e.Node.User.ID] = true
			if e.Node.User.UserID == "" {
				t.Fatalf("%s: membersAt: user %s not loaded", label, e.Node.User.ID)
			}
		}
		if !conn.PageInfo.HasNextPage {
			break
		}
		after = conn.PageInfo.EndCursor
	}
	if fmt.Sprint(sortedKeys(got)) != fmt.Sprint(sortedKeys(want)) {
		t.Fatalf("%s: membersAt(%s):\n got %v\nwant %v", label, at.Format(time.RFC3339Nano), sortedKeys(got), sortedKeys(want))
	}
}

func sortedKeys(m map[pulid.ID]bool) []pulid.ID {
	out := make([]pulid.ID, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// importUsers imports a CSV file of userIDs into a segment in mode ADD,
// REMOVE or REPLACE through the import service, and waits for the job.
func importUsers(t testing.TB, svc *service.Service, seg pulid.ID, mode string, userIDs []string) {
	t.Helper()
	ctx := context.Background()
	f, err := os.CreateTemp(t.TempDir(), "import-*.csv")
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(f, "user_id")
	for _, id := range userIDs {
		fmt.Fprintln(f, id)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	job, err := svc.StartImport(ctx, service.ImportInput{SegmentID: seg, Mode: importjob.Mode(mode), Path: f.Name(), FileName: "figures.csv"})
	if err != nil {
		t.Fatal(err)
	}
	svc.WaitImports()
	job, err = svc.EntClient().ImportJob.Get(ctx, job.ID)
	if err != nil {
		t.Fatal(err)
	}
	if job.Status != importjob.StatusSUCCEEDED {
		t.Fatalf("import %s: %s %v", mode, job.Status, job.Failure)
	}
}

var _ = testenv.Stores
