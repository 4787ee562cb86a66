package service_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/segmentd/segmentd/internal/testenv"
)

// BenchmarkSweepDue: SEGMENTD_BENCH_EXPIRIES (default 100,000) members of
// one segment due at one instant, swept by SweepDue; each iteration enters
// them again (untimed) and times the sweep. The figure is expiries a
// second, the aim being all 100,000 within 10 s.
func BenchmarkSweepDue(b *testing.B) {
	n := 100000
	if v, err := strconv.Atoi(os.Getenv("SEGMENTD_BENCH_EXPIRIES")); err == nil && v > 0 {
		n = v
	}
	for _, storeName := range testenv.Stores {
		b.Run("store="+storeName, func(b *testing.B) {
			ctx := context.Background()
			start := time.Date(2026, 5, 4, 9, 0, 0, 0, time.UTC)
			clk := &testClock{t: start}
			svc, st := openService(b, testenv.DatabaseURL(b, storeName), clk)
			seg := expirySegment(b, svc, "bench trial")
			round, swept := 0, 0
			for b.Loop() {
				b.StopTimer()
				clk.Set(start.Add(time.Duration(round) * time.Hour))
				ids := userIDs(fmt.Sprintf("sw%d", round), n)
				for i := 0; i < n; i += 10000 {
					if err := svc.EnterExpiring(ctx, seg, ids[i:min(i+10000, n)], time.Minute); err != nil {
						b.Fatal(err)
					}
				}
				clk.Set(start.Add(time.Duration(round)*time.Hour + time.Minute))
				round++
				b.StartTimer()
				got, err := svc.SweepDue(ctx)
				if err != nil {
					b.Fatal(err)
				}
				if got != n {
					b.Fatalf("swept %d, want %d", got, n)
				}
				swept += got
			}
			b.StopTimer()
			if left := countMembers(b, st.Client, seg); left != 0 {
				b.Fatalf("%d members left", left)
			}
			b.ReportMetric(float64(swept)/b.Elapsed().Seconds(), "expiries/s")
		})
	}
}
