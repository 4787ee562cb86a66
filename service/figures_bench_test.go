package service_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"entgo.io/ent/dialect"

	"github.com/segmentd/segmentd/ent/schema/pulid"
	"github.com/segmentd/segmentd/ent/segment"
	"github.com/segmentd/segmentd/internal/testenv"
	"github.com/segmentd/segmentd/service"
	"github.com/segmentd/segmentd/store"
)

// benchMembers is the size of the segment of BenchmarkStats:
// SEGMENTD_BENCH_MEMBERS, default 1,000,000. Benchmarks only run with
// -bench, so plain go test never builds it.
func benchMembers(b *testing.B) int {
	if v := os.Getenv("SEGMENTD_BENCH_MEMBERS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("SEGMENTD_BENCH_MEMBERS=%q: want a positive number", v)
		}
		return n
	}
	return 1_000_000
}

// BenchmarkStats measures Stats on a segment of benchMembers members who
// entered over the last 60 days (so that every bucket of the windows has
// rows), next to a COUNT(*) of the segment's membership rows in the same
// run: stats/... is the maintained figures, count/... the query they
// replace. The members are inserted with raw multi-row INSERTs, then
// RebuildCounters builds the counters.
//
//	go test ./service -run '^$' -bench 'BenchmarkStats$' -benchtime 2000x
func BenchmarkStats(b *testing.B) {
	for _, storeName := range testenv.Stores {
		b.Run("store="+storeName, func(b *testing.B) {
			ctx := context.Background()
			now := time.Date(2025, 10, 15, 12, 7, 30, 0, time.UTC)
			svc, st := openService(b, testenv.DatabaseURL(b, storeName), &testClock{t: now})
			n := benchMembers(b)
			seg, err := svc.CreateSegment(ctx, service.CreateSegmentInput{Name: "Everyone", Kind: segment.KindSTATIC})
			if err != nil {
				b.Fatal(err)
			}
			start := time.Now()
			if err := insertMembers(ctx, st.DB, st.Dialect, seg.ID, n, now); err != nil {
				b.Fatal(err)
			}
			if err := svc.RebuildCounters(ctx); err != nil {
				b.Fatal(err)
			}
			if st.Dialect == dialect.Postgres {
				if _, err := st.DB.ExecContext(ctx, "VACUUM ANALYZE"); err != nil {
					b.Fatal(err)
				}
			}
			b.Logf("setup: %d members and their counters in %s", n, time.Since(start).Round(time.Millisecond))
			utc := time.UTC
			got, err := svc.Stats(ctx, seg.ID, utc)
			if err != nil {
				b.Fatal(err)
			}
			if want := recountStats(b, svc.EntClient(), seg.ID, now, utc); *got != want {
				b.Fatalf("stats %+v, want %+v", *got, want)
			}
			q := "SELECT COUNT(*) FROM memberships WHERE segment_ref = ?"
			if st.Dialect == dialect.Postgres {
				q = "SELECT COUNT(*) FROM memberships WHERE segment_ref = $1"
			}
			b.Run("stats", func(b *testing.B) {
				for b.Loop() {
					if _, err := svc.Stats(ctx, seg.ID, utc); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("count", func(b *testing.B) {
				for b.Loop() {
					var c int
					if err := st.DB.QueryRowContext(ctx, q, seg.ID).Scan(&c); err != nil {
						b.Fatal(err)
					}
					if c != n {
						b.Fatalf("count %d, want %d", c, n)
					}
				}
			})
		})
	}
}

// insertMembers inserts n users and their memberships of seg, entering
// evenly over the 60 days before now, 1,000 rows a statement.
func insertMembers(ctx context.Context, db *sql.DB, d string, seg pulid.ID, n int, now time.Time) error {
	const rows = 1000
	span := 60 * 24 * time.Hour
	tx, err := store.BeginWriter(ctx, db, d)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // after Commit, a no-op
	insert := func(table string, cols []string, count int, row func(i int) []any) error {
		for lo := 0; lo < count; lo += rows {
			hi := min(lo+rows, count)
			var q strings.Builder
			fmt.Fprintf(&q, "INSERT INTO %s (%s) VALUES ", table, strings.Join(cols, ", "))
			args := make([]any, 0, (hi-lo)*len(cols))
			for i := lo; i < hi; i++ {
				if i > lo {
					q.WriteByte(',')
				}
				q.WriteByte('(')
				for c := range cols {
					if c > 0 {
						q.WriteByte(',')
					}
					if d == dialect.Postgres {
						fmt.Fprintf(&q, "$%d", len(args)+c+1)
					} else {
						q.WriteByte('?')
					}
				}
				q.WriteByte(')')
				args = append(args, row(i)...)
			}
			if _, err := tx.ExecContext(ctx, q.String(), args...); err != nil {
				return fmt.Errorf("insert %s: %w", table, err)
			}
		}
		return nil
	}
	userID := func(i int) string { return fmt.Sprintf("usr_bench%012d", i) }
	err = insert("users", []string{"id", "user_id", "traits", "first_seen_at", "last_seen_at"}, n, func(i int) []any {
		return []any{userID(i), fmt.Sprintf("bench-%d", i), "{}", now, now}
	})
	if err != nil {
		return err
	}
	err = insert("memberships", []string{"id", "entered_at", "source", "reason", "segment_ref", "user_ref"}, n, func(i int) []any {
		at := now.Add(-span + time.Duration(int64(span)/int64(n)*int64(i))).UTC().Truncate(time.Microsecond)
		return []any{fmt.Sprintf("mem_bench%012d", i), at, "IMPORT", "benchmark", string(seg), userID(i)}
	})
	if err != nil {
		return err
	}
	return tx.Commit()
}

// BenchmarkHotSegmentIngest measures TrackBatch into one hot segment
// (every event a new user who enters it) from concurrent goroutines, with
// the maintained counters and without (counters=off switches their writes
// off), so that their cost shows as the difference in events/s, and on
// PostgreSQL with every writer on one shard (counters=one-shard), to show
// what the shards buy. Each operation is one batch of 100 events, or of
// one (where a transaction is short and the counter rows' locks weigh
// most).
//
//	go test ./service -run '^$' -bench 'BenchmarkHotSegmentIngest' -benchtime 100x -count 3
func BenchmarkHotSegmentIngest(b *testing.B) {
	for _, batch := range []int{100, 1} {
		benchmarkHotSegmentIngest(b, batch)
	}
}

func benchmarkHotSegmentIngest(b *testing.B, batch int) {
	for _, storeName := range testenv.Stores {
		for _, counters := range []string{"on", "off", "one-shard"} {
			if counters == "one-shard" && storeName != "postgres" {
				continue // SQLite writes one shard anyway
			}
			b.Run(fmt.Sprintf("batch=%d/store=%s/counters=%s", batch, storeName, counters), func(b *testing.B) {
				ctx := context.Background()
				svc, _ := openService(b, testenv.DatabaseURL(b, storeName), nil)
				seg, err := svc.CreateSegment(ctx, service.CreateSegmentInput{
					Name: "Hot", Kind: segment.KindEVENT_TRIGGERED, TriggerEvents: []string{"Sign Up"},
				})
				if err != nil {
					b.Fatal(err)
				}
				service.SetCountersOff(counters == "off")
				defer service.SetCountersOff(false)
				if counters == "one-shard" {
					service.SetCounterShards(1)
					defer service.SetCounterShards(0)
				}
				var next atomic.Int64
				mkBatch := func() []*service.TrackInput {
					ins := make([]*service.TrackInput, batch)
					for i := range ins {
						k := next.Add(1)
						ins[i] = &service.TrackInput{Event: "Sign Up", UserID: ref(fmt.Sprintf("hot-%d", k)),
							MessageID: ref(fmt.Sprintf("hot-m-%d", k)), Properties: map[string]any{"plan": "pro"}}
					}
					return ins
				}
				if _, err := svc.TrackBatch(ctx, mkBatch()); err != nil { // warm-up
					b.Fatal(err)
				}
				b.SetParallelism(4) // 8 goroutines on 2 cores
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						res, err := svc.TrackBatch(ctx, mkBatch())
						if err != nil {
							b.Error(err)
							return
						}
						if res.Accepted != batch {
							b.Errorf("accepted %d", res.Accepted)
							return
						}
					}
				})
				b.StopTimer()
				b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "events/s")
				if counters != "off" {
					st, err := svc.Stats(ctx, seg.ID, time.UTC)
					if err != nil {
						b.Fatal(err)
					}
					if want := int(next.Load()); st.TotalUsers != want {
						b.Fatalf("totalUsers %d, want %d", st.TotalUsers, want)
					}
				}
			})
		}
	}
}
