package service_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sort"
	"testing"
	"time"

	"entgo.io/ent/dialect"

	"github.com/segmentd/segmentd/ent/schema/pulid"
	"github.com/segmentd/segmentd/ent/segment"
	"github.com/segmentd/segmentd/internal/testenv"
	"github.com/segmentd/segmentd/service"
	"github.com/segmentd/segmentd/trigger"
)

// figureZones are UTC, zones east of it (with a half-hour and a
// quarter-hour offset) and one west of it.
var figureZones = []string{"UTC", "Asia/Kolkata", "Asia/Kathmandu", "America/Los_Angeles"}

func rewardOver(n int) *trigger.ConditionInput {
	return &trigger.ConditionInput{Scope: ref(trigger.ScopeEvent), Property: ref("Reward Amount"),
		Operator: ref(trigger.OpGT), Value: json.Number(fmt.Sprint(n))}
}

// TestFiguresMatchRecountMixedHistory builds a history of every kind of
// membership change (event entries, manual adds and removes, RECONCILE and
// BACKFILL reevaluations, imports) around a week boundary (Monday
// 2025-09-29 and 2025-10-06) and a month boundary (2025-10-01) in four
// zones, with steps just before, at and after each local midnight. After
// every step, every figure of stats in every zone must equal a count of the
// raw membership rows; growth (HOUR, DAY, WEEK) and membersAt must equal a
// replay of the change log.
func TestFiguresMatchRecountMixedHistory(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, databaseURL string) {
		ctx := context.Background()
		clk := &testClock{t: time.Date(2025, 8, 20, 9, 0, 0, 0, time.UTC)}
		svc, _ := openService(t, databaseURL, clk)
		zones := make([]*time.Location, len(figureZones))
		for i, z := range figureZones {
			zones[i] = mustZone(t, z)
		}
		evSeg, err := svc.CreateSegment(ctx, service.CreateSegmentInput{
			Name: "Big rewards", Kind: segment.KindEVENT_TRIGGERED,
			TriggerEvents: []string{"Sign Up"}, Condition: rewardOver(50),
		})
		if err != nil {
			t.Fatal(err)
		}
		static, err := svc.CreateSegment(ctx, service.CreateSegmentInput{Name: "VIPs", Kind: segment.KindSTATIC})
		if err != nil {
			t.Fatal(err)
		}
		segs := []pulid.ID{evSeg.ID, static.ID}

		// The steps' instants: a few weeks before (so that the 30-day
		// window has something to drop), then around every local
		// midnight that starts a week or a month.
		var times []time.Time
		for d := 0; d < 30; d += 3 {
			times = append(times, time.Date(2025, 8, 25, 7, 13, 0, 0, time.UTC).AddDate(0, 0, d))
		}
		for _, loc := range zones {
			for _, b := range []time.Time{
				time.Date(2025, 9, 29, 0, 0, 0, 0, loc),
				time.Date(2025, 10, 1, 0, 0, 0, 0, loc),
				time.Date(2025, 10, 6, 0, 0, 0, 0, loc),
			} {
				times = append(times, b.Add(-time.Microsecond), b, b.Add(7*time.Minute))
			}
		}
		// And once the rolling windows start inside a bucket: 7 and 30
		// days after an early step, plus a few minutes.
		times = append(times, times[2].Add(7*24*time.Hour+3*time.Minute), times[0].Add(30*24*time.Hour+5*time.Minute))
		sort.Slice(times, func(i, j int) bool { return times[i].Before(times[j]) })

		rng := rand.New(rand.NewPCG(7, 7))
		var known []string // user IDs seen so far
		for i, at := range times {
			clk.Set(at)
			label := fmt.Sprintf("step %d (%s)", i, at.Format(time.RFC3339Nano))
			switch i % 6 {
			case 0, 3: // events: new and returning users, some over 50, some over 80
				var ins []*service.TrackInput
				for k := range 6 {
					id := fmt.Sprintf("u-%d-%d", i, k)
					if k < 2 && len(known) > 0 {
						id = known[rng.IntN(len(known))]
					} else {
						known = append(known, id)
					}
					ins = append(ins, &service.TrackInput{Event: "Sign Up", UserID: ref(id),
						MessageID:  ref(fmt.Sprintf("m-%d-%d", i, k)),
						Properties: map[string]any{"Reward Amount": 30 + 20*k}})
				}
				if _, err := svc.TrackBatch(ctx, ins); err != nil {
					t.Fatalf("%s: %v", label, err)
				}
			case 1: // manual adds to both segments
				ids := []string{fmt.Sprintf("manual-%d", i), fmt.Sprintf("manual-%d-b", i)}
				if len(known) > 0 {
					ids = append(ids, known[rng.IntN(len(known))])
				}
				known = append(known, ids[:2]...)
				for _, s := range segs {
					if _, err := svc.AddUsers(ctx, s, ids); err != nil {
						t.Fatalf("%s: %v", label, err)
					}
				}
				// An ADD import: new users, a known one, a duplicate.
				imported := []string{fmt.Sprintf("imported-%d", i), fmt.Sprintf("imported-%d", i), known[rng.IntN(len(known))]}
				known = append(known, imported[0])
				for _, s := range segs {
					importUsers(t, svc, s, "ADD", imported)
				}
			case 2: // manual removes, event-sourced members included
				var ids []string
				for range 3 {
					if len(known) > 0 {
						ids = append(ids, known[rng.IntN(len(known))])
					}
				}
				for _, s := range segs {
					if _, err := svc.RemoveUsers(ctx, s, ids); err != nil {
						t.Fatalf("%s: %v", label, err)
					}
				}
				// A REMOVE import of others, and of a user nobody knows.
				gone := []string{"never-seen"}
				for range 3 {
					gone = append(gone, known[rng.IntN(len(known))])
				}
				for _, s := range segs {
					importUsers(t, svc, s, "REMOVE", gone)
				}
			case 4: // stricter rules, RECONCILE: event members under 80 leave
				if _, err := svc.UpdateSegment(ctx, evSeg.ID, service.UpdateSegmentInput{Condition: rewardOver(80)}, service.Reconcile); err != nil {
					t.Fatalf("%s: %v", label, err)
				}
			case 5: // looser rules again, BACKFILL; a REPLACE import of the static segment
				if _, err := svc.UpdateSegment(ctx, evSeg.ID, service.UpdateSegmentInput{Condition: rewardOver(50)}, service.Backfill); err != nil {
					t.Fatalf("%s: %v", label, err)
				}
				var keep []string
				for _, id := range known {
					if rng.IntN(3) == 0 {
						keep = append(keep, id)
					}
				}
				importUsers(t, svc, static.ID, "REPLACE", keep)
			}
			for _, s := range segs {
				for _, loc := range zones {
					checkStats(t, svc, s, loc, label)
				}
			}
		}

		from, to := time.Date(2025, 8, 18, 0, 0, 0, 0, time.UTC), times[len(times)-1].Add(time.Hour)
		for _, s := range segs {
			for _, loc := range zones {
				checkGrowth(t, svc, s, service.GrowthDay, from, to, loc, "day")
				checkGrowth(t, svc, s, service.GrowthWeek, from, to, loc, "week")
				checkGrowth(t, svc, s, service.GrowthHour, time.Date(2025, 9, 28, 12, 0, 0, 0, time.UTC), time.Date(2025, 10, 1, 12, 0, 0, 0, time.UTC), loc, "hour")
			}
			for _, at := range times {
				checkMembersAt(t, svc, s, at, 4, "membersAt")
				checkMembersAt(t, svc, s, at.Add(-time.Microsecond), 4, "membersAt")
			}
		}

		// The counters rebuilt from scratch, and compacted, give the same
		// figures.
		if _, err := svc.CompactCounters(ctx, clk.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if err := svc.RebuildCounters(ctx); err != nil {
			t.Fatal(err)
		}
		for _, s := range segs {
			for _, loc := range zones {
				checkStats(t, svc, s, loc, "after rebuild")
				checkGrowth(t, svc, s, service.GrowthDay, from, to, loc, "day after rebuild")
			}
		}
		_ = dialect.Postgres
	})
}

// TestEnsureCountersUpgrades: a database whose memberships predate the
// counters, or whose counters predate the day rows, gets them built at
// start, and the figures are exact again.
func TestEnsureCountersUpgrades(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, databaseURL string) {
		ctx := context.Background()
		clk := &testClock{t: time.Date(2025, 10, 1, 3, 0, 0, 0, time.UTC)}
		svc, st := openService(t, databaseURL, clk)
		seg, err := svc.CreateSegment(ctx, service.CreateSegmentInput{Name: "S", Kind: segment.KindSTATIC})
		if err != nil {
			t.Fatal(err)
		}
		for d := range 20 {
			clk.Set(clk.Now().Add(37 * time.Hour))
			if _, err := svc.AddUsers(ctx, seg.ID, []string{fmt.Sprintf("a%d", d), fmt.Sprintf("b%d", d)}); err != nil {
				t.Fatal(err)
			}
			if d%3 == 0 {
				if _, err := svc.RemoveUsers(ctx, seg.ID, []string{fmt.Sprintf("a%d", d/2)}); err != nil {
					t.Fatal(err)
				}
			}
		}
		loc := mustZone(t, "Asia/Kathmandu")
		for _, stmt := range []string{
			"DELETE FROM segment_counters WHERE bucket < -1", // counters from before day rows
			"DELETE FROM segment_counters",                   // no counters at all
		} {
			if _, err := st.DB.ExecContext(ctx, stmt); err != nil {
				t.Fatal(err)
			}
			if err := svc.EnsureCounters(ctx); err != nil {
				t.Fatal(err)
			}
			checkStats(t, svc, seg.ID, loc, stmt)
			checkGrowth(t, svc, seg.ID, service.GrowthDay, time.Date(2025, 10, 1, 0, 0, 0, 0, time.UTC), clk.Now(), loc, stmt)
		}
	})
}
