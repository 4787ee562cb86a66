package service_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/segmentd/segmentd/ent"
	"github.com/segmentd/segmentd/ent/campaign"
	"github.com/segmentd/segmentd/ent/schema/pulid"
	"github.com/segmentd/segmentd/ent/segment"
	"github.com/segmentd/segmentd/internal/testenv"
	"github.com/segmentd/segmentd/service"
	"github.com/segmentd/segmentd/store"
	"github.com/segmentd/segmentd/trigger"
)

const benchBatch = 500

func openBench(b *testing.B, storeName string) *store.Store {
	b.Helper()
	st, err := store.Open(context.Background(), testenv.DatabaseURL(b, storeName))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	if err := st.Migrate(context.Background()); err != nil {
		b.Fatal(err)
	}
	return st
}

func ptr[T any](v T) *T { return &v }

// seedSegments creates 10 segments triggered by "Sign Up" with the README's
// condition, an ACTIVE campaign on one, and total-10 segments triggered by
// other event names.
func seedSegments(b *testing.B, svc *service.Service, client *ent.Client, total int) {
	b.Helper()
	ctx := context.Background()
	cond := &trigger.ConditionInput{And: []*trigger.ConditionInput{
		{Scope: ptr(trigger.ScopeUser), Property: ptr("Sign Up Date"), Operator: ptr(trigger.OpGT), Value: "2025-01-01"},
		{Or: []*trigger.ConditionInput{
			{Scope: ptr(trigger.ScopeUser), Property: ptr("Channel"), Operator: ptr(trigger.OpEQ), Value: "Facebook"},
			{Scope: ptr(trigger.ScopeEvent), Property: ptr("Reward Amount"), Operator: ptr(trigger.OpGT), Value: json.Number("50")},
		}},
	}}
	for i := 0; i < 10; i++ {
		seg, err := svc.CreateSegment(ctx, service.CreateSegmentInput{
			Name: fmt.Sprintf("triggered %d", i), Kind: segment.KindEVENT_TRIGGERED,
			TriggerEvents: []string{"Sign Up"}, Condition: cond,
		})
		if err != nil {
			b.Fatal(err)
		}
		if i == 0 {
			if _, err := svc.CreateCampaign(ctx, service.CreateCampaignInput{Name: "Welcome Mission", SegmentID: &seg.ID, Status: ptr(campaign.StatusACTIVE)}); err != nil {
				b.Fatal(err)
			}
		}
	}
	for start := 10; start < total; start += 1000 {
		n := min(1000, total-start)
		segs := make([]*ent.SegmentCreate, n)
		trigs := make([]*ent.SegmentTriggerCreate, n)
		for i := range segs {
			id := pulid.New("seg")
			name := fmt.Sprintf("Other Event %d", start+i)
			segs[i] = client.Segment.Create().SetID(id).SetName(name).SetKind(segment.KindEVENT_TRIGGERED).SetTriggerEvents([]string{name})
			trigs[i] = client.SegmentTrigger.Create().SetSegmentRef(id).SetEventName(name)
		}
		if err := client.Segment.CreateBulk(segs...).Exec(ctx); err != nil {
			b.Fatal(err)
		}
		if err := client.SegmentTrigger.CreateBulk(trigs...).Exec(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// batchOf makes benchBatch Sign Up events of new users, half of whom match.
func batchOf(iter int) []*service.TrackInput {
	out := make([]*service.TrackInput, benchBatch)
	for j := range out {
		channel := "Google"
		if j%2 == 0 {
			channel = "Facebook"
		}
		out[j] = &service.TrackInput{
			Event:      "Sign Up",
			UserID:     ptr(fmt.Sprintf("u-%d-%d", iter, j)),
			MessageID:  ptr(fmt.Sprintf("m-%d-%d", iter, j)),
			Properties: map[string]any{"Reward Amount": 20, "plan": "pro"},
			Traits:     map[string]any{"Sign Up Date": "2025-03-01", "Channel": channel},
		}
	}
	return out
}

// BenchmarkTrackEvents reports the events per second of trackEvents batches
// of 500, with 10 and with 10,000 segments (10 of them triggered by the
// event's name); compare with BenchmarkRawInsert, run beside it.
func BenchmarkTrackEvents(b *testing.B) {
	for _, storeName := range testenv.Stores {
		for _, segments := range []int{10, 10000} {
			b.Run(fmt.Sprintf("store=%s/segments=%d", storeName, segments), func(b *testing.B) {
				st := openBench(b, storeName)
				svc := service.New(st.Client, st.Dialect, slog.New(slog.NewTextHandler(io.Discard, nil)))
				seedSegments(b, svc, st.Client, segments)
				ctx := context.Background()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					res, err := svc.TrackBatch(ctx, batchOf(i))
					if err != nil {
						b.Fatal(err)
					}
					if res.Accepted != benchBatch {
						b.Fatalf("accepted %d", res.Accepted)
					}
				}
				b.ReportMetric(float64(b.N*benchBatch)/b.Elapsed().Seconds(), "events/s")
			})
		}
	}
}

// BenchmarkRawInsert is the baseline: the same event rows, 500 per
// transaction, as one multi-row INSERT into a bare table of the same columns
// in the same kind of database.
func BenchmarkRawInsert(b *testing.B) {
	for _, storeName := range testenv.Stores {
		b.Run("store="+storeName, func(b *testing.B) {
			st := openBench(b, storeName)
			ctx := context.Background()
			jsonType, timeType := "json", "timestamptz"
			if storeName == "sqlite" {
				jsonType, timeType = "text", "datetime"
			}
			_, err := st.DB.ExecContext(ctx, fmt.Sprintf(`CREATE TABLE raw_events (id varchar(40) PRIMARY KEY, message_id varchar(256) UNIQUE NOT NULL,
				type varchar(16) NOT NULL, name varchar(256), user_id varchar(256), properties %[1]s, traits %[1]s, context %[1]s,
				timestamp %[2]s NOT NULL, received_at %[2]s NOT NULL, outcomes %[1]s)`, jsonType, timeType))
			if err != nil {
				b.Fatal(err)
			}
			now := time.Now().UTC()
			props, _ := json.Marshal(map[string]any{"Reward Amount": 20, "plan": "pro"})
			traits, _ := json.Marshal(map[string]any{"Sign Up Date": "2025-03-01", "Channel": "Facebook"})
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				var q strings.Builder
				q.WriteString(`INSERT INTO raw_events (id, message_id, type, name, user_id, properties, traits, context, timestamp, received_at, outcomes) VALUES `)
				args := make([]any, 0, benchBatch*11)
				for j := 0; j < benchBatch; j++ {
					if j > 0 {
						q.WriteByte(',')
					}
					n := len(args)
					if storeName == "sqlite" {
						q.WriteString("(?,?,?,?,?,?,?,?,?,?,?)")
					} else {
						fmt.Fprintf(&q, "($%d,$%d,$%d,$%d,$%d,$%d,$%d,$%d,$%d,$%d,$%d)", n+1, n+2, n+3, n+4, n+5, n+6, n+7, n+8, n+9, n+10, n+11)
					}
					args = append(args, string(pulid.New("evt")), fmt.Sprintf("m-%d-%d", i, j), "TRACK", "Sign Up", fmt.Sprintf("u-%d-%d", i, j),
						string(props), string(traits), "{}", now, now, "[]")
				}
				tx, err := st.DB.BeginTx(ctx, nil)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := tx.ExecContext(ctx, q.String(), args...); err != nil {
					b.Fatal(err)
				}
				if err := tx.Commit(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*benchBatch)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
