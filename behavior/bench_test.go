package behavior_test

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/segmentd/segmentd/behavior"
)

// BenchmarkStateBytes measures the stored size of a state after a
// realistic stream: one user's events over 90 days with exponential gaps
// (a mean of perDay events a day), client timestamps to the millisecond,
// arriving 50 ms to 2 s late at the server, which prunes each state to its
// clock less a minute of grace for late events (what an ingest would do)
// and once more at the end. Each iteration is one user; bytes/state is the
// mean encoded length, entries/state the mean kept entries, ns/event the
// cost of Add, Eval at the event, Prune and NextChange per event.
//
//	go test ./behavior -run '^$' -bench StateBytes -benchtime 2000x
func BenchmarkStateBytes(b *testing.B) {
	cases := []struct {
		name   string
		spec   behavior.Spec
		perDay float64
	}{
		{"count_GTE_3_within_7d", behavior.Spec{Within: 7 * day, Op: behavior.GTE, Value: 3}, 0.5},
		{"count_GTE_3_within_7d_heavy", behavior.Spec{Within: 7 * day, Op: behavior.GTE, Value: 3}, 20},
		{"count_EQ_0_within_14d", behavior.Spec{Within: 14 * day, Op: behavior.EQ, Value: 0}, 1},
		{"sum_GT_100_within_30d", behavior.Spec{Within: 30 * day, Func: behavior.Sum, Op: behavior.GT, Value: 100}, 0.5},
		{"sum_GT_100_within_30d_heavy", behavior.Spec{Within: 30 * day, Func: behavior.Sum, Op: behavior.GT, Value: 100}, 20},
		{"max_GT_100_within_30d", behavior.Spec{Within: 30 * day, Func: behavior.Max, Op: behavior.GT, Value: 100}, 0.5},
		{"avg_GT_20_all_time", behavior.Spec{Func: behavior.Avg, Op: behavior.GT, Value: 20}, 0.5},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			var bytes, entries, events int
			var spent time.Duration
			for i := 0; i < b.N; i++ {
				r := rand.New(rand.NewPCG(uint64(i), 7))
				s, _ := behavior.New(c.spec)
				start := time.Now()
				ts := t0.Add(-90 * day)
				for {
					gap := time.Duration(r.ExpFloat64() / c.perDay * float64(day))
					ts = ts.Add(gap).Truncate(time.Millisecond)
					if ts.After(t0) {
						break
					}
					server := ts.Add(time.Duration(50+r.IntN(1950)) * time.Millisecond)
					amount := math.Round((5+r.ExpFloat64()*40)*100) / 100
					s.Add(ts, amount, true)
					s.Prune(server.Add(-time.Minute))
					if _, err := s.Eval(ts); err != nil {
						b.Fatal(err)
					}
					if _, _, err := s.NextChange(server); err != nil {
						b.Fatal(err)
					}
					events++
				}
				s.Prune(t0)
				spent += time.Since(start)
				enc, _ := s.MarshalBinary()
				bytes += len(enc)
				entries += s.Len()
			}
			b.ReportMetric(float64(bytes)/float64(b.N), "bytes/state")
			b.ReportMetric(float64(entries)/float64(b.N), "entries/state")
			b.ReportMetric(float64(spent.Nanoseconds())/float64(events), "ns/event")
		})
	}
}
