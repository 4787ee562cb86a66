package service_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"testing"
	"time"

	"entgo.io/ent/dialect"

	"github.com/segmentd/segmentd/ent"
	"github.com/segmentd/segmentd/ent/membership"
	"github.com/segmentd/segmentd/ent/schema/pulid"
	"github.com/segmentd/segmentd/ent/segment"
	"github.com/segmentd/segmentd/internal/testenv"
	"github.com/segmentd/segmentd/service"
	"github.com/segmentd/segmentd/trigger"
)

// behaviorSegments is how many segments BenchmarkTrackEventsBehaviors
// triggers with each event.
const behaviorSegments = 100

// BenchmarkTrackEventsBehaviors is BenchmarkTrackEvents with 100 "Sign
// Up" segments, each with the README's plain condition (predicates=plain)
// or with that condition AND a behaviour predicate on the event's own name
// (predicates=performed: performed "Sign Up" at least 1 time within 1000d,
// which the event itself makes true, so both runs enter the same users and
// write the same memberships; the second also loads, updates and writes a
// state per segment and user). The aim: performed at 70 % or more of
// plain.
func BenchmarkTrackEventsBehaviors(b *testing.B) {
	for _, storeName := range testenv.Stores {
		for _, withBehavior := range []bool{false, true} {
			label := "plain"
			if withBehavior {
				label = "performed"
			}
			b.Run(fmt.Sprintf("store=%s/predicates=%s", storeName, label), func(b *testing.B) {
				ctx := context.Background()
				st := openIngestStore(b, storeName)
				svc := newService(b, st, service.Config{})
				for i := 0; i < behaviorSegments; i++ {
					cond := signUpCondition()
					if withBehavior {
						cond = &trigger.ConditionInput{And: []*trigger.ConditionInput{cond, {Performed: &trigger.PerformedInput{
							Event: "Sign Up", Within: ref("1000d"), // the batches are dated 2025
						}}}}
					}
					if _, err := svc.CreateSegment(ctx, service.CreateSegmentInput{
						Name: fmt.Sprintf("Sign Up %d", i), Kind: segment.KindEVENT_TRIGGERED,
						TriggerEvents: []string{"Sign Up"}, Condition: cond,
					}); err != nil {
						b.Fatal(err)
					}
				}
				track := func(iter int) int {
					batch := signUpBatch(iter)
					b.StartTimer()
					res, err := svc.TrackBatch(ctx, batch.inputs)
					b.StopTimer()
					if err != nil {
						b.Fatal(err)
					}
					entered := 0
					for _, r := range res.Results {
						entered += len(r.EnteredSegments)
					}
					if want := batch.matchingNew * behaviorSegments; res.Accepted != len(batch.inputs) || entered != want {
						b.Fatalf("accepted %d of %d, %d entries, want %d", res.Accepted, len(batch.inputs), entered, want)
					}
					return len(batch.inputs)
				}
				timedBatches(b, track)
			})
		}
	}
}

// BenchmarkSweepBehaviors: SEGMENTD_BENCH_BEHAVIOR_EXITS (default 10,000)
// members of a DYNAMIC segment "performed Login within 1h" whose logins
// fall out of the window at one instant, swept by SweepReevaluations;
// each iteration logs them in again (untimed, 500 events a batch) and
// times the sweep. The figure is exits a second, the aim being
// all 10,000 within 5 s.
func BenchmarkSweepBehaviors(b *testing.B) {
	n := 10000
	if v, err := strconv.Atoi(os.Getenv("SEGMENTD_BENCH_BEHAVIOR_EXITS")); err == nil && v > 0 {
		n = v
	}
	for _, storeName := range testenv.Stores {
		b.Run("store="+storeName, func(b *testing.B) {
			ctx := context.Background()
			start := time.Date(2026, 5, 4, 9, 0, 0, 0, time.UTC)
			clk := &testClock{t: start}
			svc, st := openService(b, testenv.DatabaseURL(b, storeName), clk)
			seg, err := svc.CreateSegment(ctx, service.CreateSegmentInput{Name: "Logged in this hour", Kind: segment.KindDYNAMIC,
				Condition: &trigger.ConditionInput{Performed: &trigger.PerformedInput{Event: "Login", Within: ref("1h")}}})
			if err != nil {
				b.Fatal(err)
			}
			round, swept := 0, 0
			for b.Loop() {
				b.StopTimer()
				at := start.Add(time.Duration(round) * 2 * time.Hour)
				clk.Set(at)
				for i := 0; i < n; i += 500 {
					batch := make([]*service.TrackInput, 0, 500)
					for j := i; j < min(i+500, n); j++ {
						batch = append(batch, &service.TrackInput{Event: "Login", UserID: ref(fmt.Sprintf("bh%d", j)),
							MessageID: ref(fmt.Sprintf("bh%d-%d", round, j)), Timestamp: &at})
					}
					if _, err := svc.TrackBatch(ctx, batch); err != nil {
						b.Fatal(err)
					}
				}
				if got := countMembers(b, st.Client, seg.ID); got != n {
					b.Fatalf("%d members after the logins, want %d", got, n)
				}
				clk.Set(at.Add(time.Hour + time.Second))
				round++
				b.StartTimer()
				got, err := svc.SweepReevaluations(ctx)
				if err != nil {
					b.Fatal(err)
				}
				if got != n {
					b.Fatalf("swept %d, want %d", got, n)
				}
				swept += got
			}
			b.StopTimer()
			if left := countMembers(b, st.Client, seg.ID); left != 0 {
				b.Fatalf("%d members left", left)
			}
			b.ReportMetric(float64(swept)/b.Elapsed().Seconds(), "exits/s")
		})
	}
}

// BenchmarkBehaviorBackfill: a DYNAMIC segment "performed Purchase
// Completed where event.total >= 500 at least 3 times within 7d" created
// over benchPreviewEvents stored events (default 1,000,000, 10 per user:
// 100,000 users, seeded with multi-row INSERTs as for
// BenchmarkPreviewSegment, spread over 11.6 days), with the clock 12 days
// after the first: CreateSegment builds every user's state from their
// stored events and fills the segment, in its transaction. It reports the
// time, the members (checked against a recomputation), the size of the
// behavior_states table it leaves (rows, state bytes, and the table with
// its indexes as the store counts it), and the acknowledgement p99 of
// events ingested one a call at 500/s beside the build.
//
//	go test ./service -run '^$' -bench 'BenchmarkBehaviorBackfill$' -benchtime 1x
func BenchmarkBehaviorBackfill(b *testing.B) {
	for _, storeName := range testenv.Stores {
		b.Run("store="+storeName, func(b *testing.B) {
			ctx := context.Background()
			base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
			clk := &testClock{t: base.Add(12 * 24 * time.Hour)}
			svc, st := openService(b, testenv.DatabaseURL(b, storeName), clk)
			n := benchPreviewEvents(b)
			users := max(1, n/10)
			if err := insertPreviewEvents(ctx, st.DB, st.Dialect, n, users); err != nil {
				b.Fatal(err)
			}
			analyze := "ANALYZE"
			if st.Dialect == dialect.Postgres {
				analyze = "VACUUM ANALYZE"
			}
			if _, err := st.DB.ExecContext(ctx, analyze); err != nil {
				b.Fatal(err)
			}
			// The recomputation: event i is user i % users's, at base + i s,
			// total i % 1000; the window is [now - 7d, now].
			from := int(clk.t.Add(-7*24*time.Hour).Sub(base) / time.Second)
			counts := make([]int, users)
			for i := from; i < n; i++ {
				if i%1000 >= 500 {
					counts[i%users]++
				}
			}
			want := 0
			for _, c := range counts {
				if c >= 3 {
					want++
				}
			}
			in := service.CreateSegmentInput{Name: "Frequent big buyers", Kind: segment.KindDYNAMIC,
				Condition: &trigger.ConditionInput{Performed: &trigger.PerformedInput{Event: "Purchase Completed",
					Where:  &trigger.ConditionInput{Scope: ref(trigger.ScopeEvent), Property: ref("total"), Operator: ref(trigger.OpGTE), Value: 500},
					Within: ref("7d"), Count: &trigger.ComparisonInput{Operator: trigger.OpGTE, Value: 3}}}}
			var last *ent.Segment
			for b.Loop() {
				if last != nil {
					// Deleting the last segment with the predicate drops
					// its states, so that this one builds them again.
					b.StopTimer()
					if err := svc.DeleteSegment(ctx, last.ID); err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
				}
				// Ingestion beside the build: one event every 2 ms (500/s,
				// each its own call), acknowledgement latencies kept.
				stop := make(chan struct{})
				acks := make(chan []time.Duration, 1)
				go func() {
					var lat []time.Duration
					for i := 0; ; i++ {
						select {
						case <-stop:
							acks <- lat
							return
						default:
						}
						t0 := time.Now()
						_, err := svc.TrackBatch(ctx, []*service.TrackInput{{Event: "App Open", UserID: ref(fmt.Sprintf("beside-%d", i%1000)),
							MessageID: ref(fmt.Sprintf("beside-%d-%d", len(lat), time.Now().UnixNano()))}})
						if err != nil {
							b.Error(err)
						}
						lat = append(lat, time.Since(t0))
						time.Sleep(time.Until(t0.Add(2 * time.Millisecond)))
					}
				}()
				seg, err := svc.CreateSegment(ctx, in)
				close(stop)
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				lat := <-acks
				slices.Sort(lat)
				if len(lat) > 0 {
					b.ReportMetric(float64(lat[len(lat)*99/100].Milliseconds()), "ack-p99-ms")
					b.ReportMetric(float64(len(lat)), "acks")
				}
				if got := countMembers(b, st.Client, seg.ID); got != want {
					b.Fatalf("%d members, want %d", got, want)
				}
				last = seg
				b.StartTimer()
			}
			b.StopTimer()
			var rows, stateBytes, tableBytes int64
			if err := st.DB.QueryRowContext(ctx, `SELECT count(*), coalesce(sum(length(state)), 0) FROM behavior_states`).Scan(&rows, &stateBytes); err != nil {
				b.Fatal(err)
			}
			sizeQuery := `SELECT pg_total_relation_size('behavior_states')`
			if st.Dialect != dialect.Postgres {
				sizeQuery = `SELECT coalesce(sum(pgsize), 0) FROM dbstat WHERE name = 'behavior_states' OR name LIKE 'behaviorstate_%'`
			}
			if err := st.DB.QueryRowContext(ctx, sizeQuery).Scan(&tableBytes); err != nil {
				b.Logf("table size: %v", err)
			}
			b.ReportMetric(float64(n)/(b.Elapsed().Seconds()/float64(b.N)), "events/s")
			b.ReportMetric(float64(want), "members")
			b.ReportMetric(float64(rows), "states")
			b.ReportMetric(float64(stateBytes)/float64(max(rows, 1)), "B/state")
			b.ReportMetric(float64(tableBytes)/(1<<20), "table-MB")
		})
	}
}

// TestBehaviorBackfillProgress: while a DYNAMIC behaviour segment builds
// its states over 1,000 users' stored events, 50 users a page,
// BehaviorBackfills shows it with its users done so far; afterwards it is
// gone. (Two purchases each, three needed: the fill enters nobody. Small,
// so that its transaction is short: on PostgreSQL a long one holds back
// every live subscriber of the cluster, those of tests running beside it
// included.)
func TestBehaviorBackfillProgress(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		ctx := context.Background()
		svc, st := openService(t, dbURL, nil)
		svc.SetUsersPerPage(50)
		const users = 1000
		if err := insertPreviewEvents(ctx, st.DB, st.Dialect, 2*users, users); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			_, err := svc.CreateSegment(ctx, service.CreateSegmentInput{Name: "Three purchases", Kind: segment.KindDYNAMIC,
				Condition: &trigger.ConditionInput{Performed: &trigger.PerformedInput{Event: "Purchase Completed",
					Count: &trigger.ComparisonInput{Operator: trigger.OpGTE, Value: 3}}}})
			done <- err
		}()
		var midway *service.BehaviorBackfill
		for running := true; running; {
			select {
			case err := <-done:
				if err != nil {
					t.Fatal(err)
				}
				running = false
			default:
				for _, b := range svc.BehaviorBackfills() {
					if b.SegmentName == "Three purchases" && b.UsersTotal == users && b.UsersDone > 0 && b.UsersDone < users {
						midway = b
					}
				}
				runtime.Gosched()
			}
		}
		if midway == nil {
			t.Fatal("behaviorBackfills never showed the build midway")
		}
		if left := svc.BehaviorBackfills(); len(left) != 0 {
			t.Fatalf("after the create: %+v", left)
		}
		t.Logf("seen midway: %d of %d users", midway.UsersDone, midway.UsersTotal)
	})
}

// TestBehaviorBuildLetsIngestionRun: while a DYNAMIC behaviour segment
// builds its states over 2,000 users' stored events, events are stored
// beside it, and the build misses none of them.
//   - SQLite: the build runs a page per transaction ahead of the segment's
//     (it held the one write lock for the whole build before), so a third
//     purchase of a user whose page was built already is answered before
//     the build ends, and the catch-up inside the segment's transaction
//     counts it.
//   - PostgreSQL: the build runs inside the segment's transaction, which
//     holds the lock of the names it counts (lockEventNames): an event of
//     another name is answered before the build ends; the purchase waits
//     for the build and is counted after it (it used to commit beside the
//     build, unseen by it and uncounted by the segment it could not see).
//
// Either way that user is a member, and verify is clean.
func TestBehaviorBuildLetsIngestionRun(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		ctx := context.Background()
		svc, st := openService(t, dbURL, nil)
		svc.SetUsersPerPage(50)
		const users = 2000
		if err := insertPreviewEvents(ctx, st.DB, st.Dialect, 2*users, users); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		var seg *ent.Segment
		go func() {
			var err error
			seg, err = svc.CreateSegment(ctx, service.CreateSegmentInput{Name: "Three purchases", Kind: segment.KindDYNAMIC,
				Condition: &trigger.ConditionInput{Performed: &trigger.PerformedInput{Event: "Purchase Completed",
					Count: &trigger.ComparisonInput{Operator: trigger.OpGTE, Value: 3}}}})
			done <- err
		}()
		// Midway: the first pages are built.
		deadline := time.Now().Add(time.Minute)
		var shown pulid.ID
		for midway := false; !midway; {
			for _, b := range svc.BehaviorBackfills() {
				if b.SegmentName == "Three purchases" && b.UsersDone >= 200 && b.UsersDone < users/2 {
					midway, shown = true, b.SegmentID
				}
			}
			if time.Now().After(deadline) {
				t.Fatal("the build never showed midway")
			}
			runtime.Gosched()
		}
		track := func(name, msg string) error {
			user, now := "bench-0", time.Now()
			_, err := svc.Track(ctx, service.TrackInput{Event: name, UserID: &user, MessageID: &msg, Timestamp: &now,
				Properties: map[string]any{"total": 5}})
			return err
		}
		built := func() bool {
			select {
			case err := <-done:
				done <- err
				return true
			default:
				return false
			}
		}
		if st.Dialect == "postgres" {
			if err := track("Page Viewed", "other-name-during-the-build"); err != nil {
				t.Fatal(err)
			}
			if built() {
				t.Fatal("an event no behaviour counts was answered only after the build ended")
			}
		}
		purchase := make(chan error, 1)
		go func() { purchase <- track("Purchase Completed", "third-purchase-during-the-build") }()
		if st.Dialect != "postgres" {
			if err := <-purchase; err != nil {
				t.Fatal(err)
			}
			if built() {
				t.Fatal("the purchase was answered only after the build ended")
			}
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if st.Dialect == "postgres" {
			if err := <-purchase; err != nil {
				t.Fatal(err)
			}
		}
		if shown != seg.ID {
			t.Fatalf("behaviorBackfills named segment %q, created %q", shown, seg.ID)
		}
		members, err := st.Client.Membership.Query().Where(membership.SegmentRef(seg.ID)).Count(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if members != 1 {
			t.Fatalf("%d members, want 1 (bench-0's third purchase came during the build)", members)
		}
		rep, err := svc.Verify(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Findings) != 0 {
			t.Fatalf("verify: %+v", rep.Findings[:min(5, len(rep.Findings))])
		}
	})
}
