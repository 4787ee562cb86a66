package service_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"entgo.io/ent/dialect"

	"github.com/segmentd/segmentd/ent/segment"
	"github.com/segmentd/segmentd/internal/testenv"
	"github.com/segmentd/segmentd/service"
	"github.com/segmentd/segmentd/store"
	"github.com/segmentd/segmentd/trigger"
)

// benchPreviewEvents is how many stored events BenchmarkPreviewSegment
// scans: SEGMENTD_BENCH_PREVIEW_EVENTS, default 1,000,000.
func benchPreviewEvents(b *testing.B) int {
	if v := os.Getenv("SEGMENTD_BENCH_PREVIEW_EVENTS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("SEGMENTD_BENCH_PREVIEW_EVENTS=%q: want a positive number", v)
		}
		return n
	}
	return 1_000_000
}

// BenchmarkPreviewSegment measures previewSegment (the count and a sample
// of 20) over benchPreviewEvents stored TRACK events of the trigger name,
// 10 per user, with conditions that few events meet, so that every event
// is read and evaluated: the worst case of the scan. cond=event+traits
// tests the event's properties and the user's traits, cond=traits only
// the traits (the properties are then not read). A tenth more events of
// another name are stored beside them and not scanned. The events are
// seeded with multi-row INSERTs, not through ingestion; the setup runs once
// per store.
//
//	go test ./service -run '^$' -bench 'BenchmarkPreviewSegment$' -benchtime 3x
func BenchmarkPreviewSegment(b *testing.B) {
	for _, storeName := range testenv.Stores {
		b.Run("store="+storeName, func(b *testing.B) {
			ctx := context.Background()
			svc, st := openService(b, testenv.DatabaseURL(b, storeName), nil)
			n := benchPreviewEvents(b)
			users := max(1, n/10)
			start := time.Now()
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
			b.Logf("setup: %d events (+%d of another name) of %d users in %s", n, n/10, users, time.Since(start).Round(time.Millisecond))
			// total is i % 1000 and every other user is on "pro": the events
			// with total 999 of "pro" users match.
			bigSpenders := 0
			seen := map[int]bool{}
			for i := 0; i < n; i++ {
				if u := i % users; i%1000 == 999 && u%2 == 0 && !seen[u] {
					seen[u] = true
					bigSpenders++
				}
			}
			for _, c := range []struct {
				name string
				cond *trigger.ConditionInput
				want int
			}{
				// Properties and traits: every event's properties decoded.
				{"event+traits", &trigger.ConditionInput{And: []*trigger.ConditionInput{
					{Scope: ptr(trigger.ScopeEvent), Property: ptr("total"), Operator: ptr(trigger.OpGTE), Value: 999},
					{Scope: ptr(trigger.ScopeUser), Property: ptr("plan"), Operator: ptr(trigger.OpEQ), Value: "pro"},
				}}, bigSpenders},
				// Traits only, held by nobody: every event evaluated, no
				// properties read.
				{"traits", &trigger.ConditionInput{Scope: ptr(trigger.ScopeUser), Property: ptr("plan"), Operator: ptr(trigger.OpEQ), Value: "enterprise"}, 0},
			} {
				b.Run("cond="+c.name, func(b *testing.B) {
					in := service.CreateSegmentInput{Name: "Big spenders", Kind: segment.KindEVENT_TRIGGERED,
						TriggerEvents: []string{"Purchase Completed"}, Condition: c.cond}
					for i := 0; i < b.N; i++ {
						p, err := svc.PreviewSegment(ctx, in, nil)
						if err != nil {
							b.Fatal(err)
						}
						sample, err := p.Sample(ctx, nil)
						if err != nil {
							b.Fatal(err)
						}
						if p.MatchingUsers != c.want || len(sample) != min(c.want, service.DefaultPreviewSample) {
							b.Fatalf("%d matching users and a sample of %d; want %d", p.MatchingUsers, len(sample), c.want)
						}
					}
					perOp := b.Elapsed().Seconds() / float64(b.N)
					b.ReportMetric(float64(n)/perOp, "events/s")
				})
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

// insertPreviewEvents stores users users (every other one on plan "pro")
// and n TRACK events "Purchase Completed" of them, round robin, with
// properties {"total": i % 1000}, plus n/10 "Page Viewed" events, in
// multi-row INSERTs of one transaction.
func insertPreviewEvents(ctx context.Context, db *sql.DB, d string, n, users int) error {
	const rows = 1000
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
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	userRef := func(i int) string { return fmt.Sprintf("usr_bench%012d", i) }
	err = insert("users", []string{"id", "user_id", "traits", "first_seen_at", "last_seen_at"}, users, func(i int) []any {
		plan := "free"
		if i%2 == 0 {
			plan = "pro"
		}
		return []any{userRef(i), fmt.Sprintf("bench-%d", i), fmt.Sprintf(`{"plan":%q}`, plan), base, base}
	})
	if err != nil {
		return err
	}
	eventCols := []string{"id", "message_id", "type", "name", "user_id", "user_ref", "properties", "traits", "context", "timestamp", "received_at", "outcomes"}
	event := func(prefix, name string, i int) []any {
		u := i % users
		at := base.Add(time.Duration(i) * time.Second)
		return []any{fmt.Sprintf("evt_%s%012d", prefix, i), fmt.Sprintf("%s-%d", prefix, i), "TRACK", name,
			fmt.Sprintf("bench-%d", u), userRef(u), fmt.Sprintf(`{"total":%d,"currency":"EUR","sku":"sku-%d"}`, i%1000, i%37),
			"{}", `{"library":{"name":"bench"}}`, at, at, "[]"}
	}
	err = insert("events", eventCols, n, func(i int) []any { return event("bench", "Purchase Completed", i) })
	if err != nil {
		return err
	}
	err = insert("events", eventCols, n/10, func(i int) []any { return event("other", "Page Viewed", i) })
	if err != nil {
		return err
	}
	return tx.Commit()
}
