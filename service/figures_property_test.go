package service_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/segmentd/segmentd/ent/schema/pulid"
	"github.com/segmentd/segmentd/ent/segment"
	"github.com/segmentd/segmentd/internal/testenv"
	"github.com/segmentd/segmentd/service"
)

// TestFiguresPropertyRandomHistories runs random histories of entries and
// exits (events, manual adds and removes, concurrent writers, compaction)
// with random clock jumps (a microsecond, onto a bucket edge, minutes,
// days, weeks) and checks after every step that stats in a random zone
// equal the recount from the raw membership rows, and at the end that
// growth in every interval and membersAt at random instants equal a replay
// of the change log.
func TestFiguresPropertyRandomHistories(t *testing.T) {
	seeds, steps := 3, 40
	if testing.Short() {
		seeds, steps = 1, 20
	}
	testenv.ForEachStore(t, func(t *testing.T, databaseURL string) {
		ctx := context.Background()
		clk := &testClock{t: time.Date(2025, 12, 20, 22, 40, 0, 0, time.UTC)}
		svc, _ := openService(t, databaseURL, clk)
		zones := make([]*time.Location, 0, len(figureZones)+2)
		for _, z := range append(figureZones, "Australia/Lord_Howe", "Pacific/Chatham") {
			zones = append(zones, mustZone(t, z))
		}
		for seed := range seeds {
			rng := rand.New(rand.NewPCG(uint64(seed), 99))
			seg, err := svc.CreateSegment(ctx, service.CreateSegmentInput{
				Name: fmt.Sprintf("Random %d", seed), Kind: segment.KindEVENT_TRIGGERED,
				TriggerEvents: []string{"Sign Up"}, Condition: rewardOver(50),
			})
			if err != nil {
				t.Fatal(err)
			}
			start := clk.Now()
			var stamps []time.Time
			user := func() string { return fmt.Sprintf("p%d-u%d", seed, rng.IntN(40)) }
			for step := range steps {
				switch rng.IntN(6) {
				case 0:
					clk.Set(clk.Now().Add(time.Microsecond))
				case 1: // onto the next bucket edge
					next := time.Unix(service.BucketOf(clk.Now())+15*60, 0).UTC()
					clk.Set(next)
				case 2:
					clk.Set(clk.Now().Add(time.Duration(rng.IntN(90)) * time.Minute))
				case 3:
					clk.Set(clk.Now().Add(time.Duration(rng.IntN(72)) * time.Hour))
				case 4:
					clk.Set(clk.Now().Add(time.Duration(rng.IntN(15)) * 24 * time.Hour))
				}
				stamps = append(stamps, clk.Now())
				label := fmt.Sprintf("seed %d step %d at %s", seed, step, clk.Now().Format(time.RFC3339Nano))
				switch rng.IntN(5) {
				case 0, 1:
					var ins []*service.TrackInput
					for k := range 1 + rng.IntN(8) {
						ins = append(ins, &service.TrackInput{Event: "Sign Up", UserID: ref(user()),
							MessageID:  ref(fmt.Sprintf("p%d-%d-%d", seed, step, k)),
							Properties: map[string]any{"Reward Amount": rng.IntN(100)}})
					}
					if _, err := svc.TrackBatch(ctx, ins); err != nil {
						t.Fatalf("%s: %v", label, err)
					}
				case 2:
					if _, err := svc.AddUsers(ctx, seg.ID, []string{user(), user(), user()}); err != nil {
						t.Fatalf("%s: %v", label, err)
					}
				case 3:
					ids := make([]string, 1+rng.IntN(10))
					for i := range ids {
						ids[i] = user()
					}
					if _, err := svc.RemoveUsers(ctx, seg.ID, ids); err != nil {
						t.Fatalf("%s: %v", label, err)
					}
				case 4: // concurrent writers into the same segment
					var wg sync.WaitGroup
					errs := make(chan error, 8)
					for w := range 4 {
						ids := []string{user(), user()}
						wg.Add(1)
						go func() {
							defer wg.Done()
							var err error
							if w%2 == 0 {
								_, err = svc.AddUsers(ctx, seg.ID, ids)
							} else {
								_, err = svc.RemoveUsers(ctx, seg.ID, ids)
							}
							errs <- err
						}()
					}
					wg.Wait()
					close(errs)
					for err := range errs {
						if err != nil {
							t.Fatalf("%s: %v", label, err)
						}
					}
				}
				if rng.IntN(8) == 0 {
					if _, err := svc.CompactCounters(ctx, clk.Now().Add(-time.Duration(rng.IntN(48))*time.Hour)); err != nil {
						t.Fatal(err)
					}
				}
				checkStats(t, svc, seg.ID, zones[rng.IntN(len(zones))], label)
			}
			end := clk.Now().Add(time.Minute)
			for _, loc := range zones {
				label := fmt.Sprintf("seed %d", seed)
				checkGrowth(t, svc, seg.ID, service.GrowthDay, start.Add(-24*time.Hour), end, loc, label)
				checkGrowth(t, svc, seg.ID, service.GrowthWeek, start, end, loc, label)
				if end.Sub(start) < 400*time.Hour {
					checkGrowth(t, svc, seg.ID, service.GrowthHour, start, end, loc, label)
				}
			}
			for range 10 {
				at := stamps[rng.IntN(len(stamps))]
				if rng.IntN(2) == 0 {
					at = at.Add(-time.Microsecond)
				}
				checkMembersAt(t, svc, seg.ID, at, 1+rng.IntN(6), fmt.Sprintf("seed %d", seed))
			}
			_ = pulid.ID("")
		}
	})
}
