package service_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"entgo.io/ent/dialect"

	"github.com/segmentd/segmentd/ent/campaign"
	"github.com/segmentd/segmentd/ent/schema"
	"github.com/segmentd/segmentd/ent/schema/pulid"
	"github.com/segmentd/segmentd/ent/segment"
	"github.com/segmentd/segmentd/internal/testenv"
	"github.com/segmentd/segmentd/service"
	"github.com/segmentd/segmentd/store"
	"github.com/segmentd/segmentd/trigger"
)

// The shape of the ingestion benchmarks: batches of ingestBatchSize events,
// all "Sign Up", from ingestBatchSize distinct users. ingestReturning of
// them come back from the previous batch (already known, and already
// members if they matched); the rest are new. Users with an even index
// match the segments' condition, so half of the events match.
const (
	ingestBatchSize = 500
	ingestReturning = 100
	ingestTriggered = 10 // segments triggered by "Sign Up"
)

// BenchmarkTrackEvents measures TrackBatch, one 500-event batch per
// iteration, with 10 and with 10,000 EVENT_TRIGGERED segments of which 10
// are triggered by the batch's event name, on each store. The aims: the
// 10,000-segment run at 90% or more of the 10-segment one (the cost of
// ingestion follows the segments an event triggers, not all segments), and
// at least 25% of BenchmarkRawInsert.
func BenchmarkTrackEvents(b *testing.B) {
	for _, storeName := range testenv.Stores {
		for _, segments := range []int{10, 10_000} {
			b.Run(fmt.Sprintf("store=%s/segments=%d", storeName, segments), func(b *testing.B) {
				ctx := context.Background()
				st := openIngestStore(b, storeName)
				svc := newService(b, st, service.Config{})
				start := time.Now()
				seedIngestSegments(b, svc, segments)
				b.Logf("setup: %d segments in %s", segments, time.Since(start).Round(time.Millisecond))
				// Batch 0 warms up (b.Loop starts the clock afterwards): it
				// compiles the conditions, fills the caches, and gives
				// batch 1 its returning users, so that every timed batch
				// does the same work.
				track := func(iter int) int {
					batch := signUpBatch(iter)
					b.StartTimer()
					res, err := svc.TrackBatch(ctx, batch.inputs)
					b.StopTimer()
					if err != nil {
						b.Fatal(err)
					}
					checkBatch(b, res, batch)
					return len(batch.inputs)
				}
				timedBatches(b, track)
			})
		}
	}
}

// BenchmarkRawInsert is the floor that BenchmarkTrackEvents is
// compared with: the same event rows written to the same events table that
// Migrate creates (with its indexes and unique messageId), as one
// multi-row INSERT per 500 rows, in one transaction, with database/sql, and
// nothing else: no duplicate check, no users, no segments. user_ref stays
// NULL, as no users exist.
func BenchmarkRawInsert(b *testing.B) {
	for _, storeName := range testenv.Stores {
		b.Run("store="+storeName, func(b *testing.B) {
			ctx := context.Background()
			st := openIngestStore(b, storeName)
			// Outcomes like the ones TrackBatch stores: one per triggered
			// segment, with a reason.
			segIDs := make([]pulid.ID, ingestTriggered)
			for i := range segIDs {
				segIDs[i] = pulid.New("seg")
			}

			insert := func(iter int) int {
				batch := signUpBatch(iter)
				b.StartTimer()
				err := rawInsertEvents(ctx, st.DB, st.Dialect, batch, segIDs)
				b.StopTimer()
				if err != nil {
					b.Fatal(err)
				}
				return len(batch.inputs)
			}
			b.StopTimer()
			insert(0) // warm-up, as in BenchmarkTrackEvents
			b.StartTimer()

			iter, events := 0, 0
			for b.Loop() {
				b.StopTimer()
				iter++
				events += insert(iter)
				b.StartTimer()
			}
			b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

func openIngestStore(b *testing.B, storeName string) *store.Store {
	b.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, testenv.DatabaseURL(b, storeName))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	if err := st.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	return st
}

func ref[T any](v T) *T { return &v }

// signUpCondition is the README's example:
// user."Sign Up Date" > "2025-01-01" AND (user.Channel = "Facebook" OR event."Reward Amount" > 50).
func signUpCondition() *trigger.ConditionInput {
	return &trigger.ConditionInput{And: []*trigger.ConditionInput{
		{Scope: ref(trigger.ScopeUser), Property: ref("Sign Up Date"), Operator: ref(trigger.OpGT), Value: "2025-01-01"},
		{Or: []*trigger.ConditionInput{
			{Scope: ref(trigger.ScopeUser), Property: ref("Channel"), Operator: ref(trigger.OpEQ), Value: "Facebook"},
			{Scope: ref(trigger.ScopeEvent), Property: ref("Reward Amount"), Operator: ref(trigger.OpGT), Value: json.Number("50")},
		}},
	}}
}

// seedIngestSegments creates, through CreateSegment, total EVENT_TRIGGERED
// segments with the README's condition: ingestTriggered triggered by
// "Sign Up", with an ACTIVE campaign on the first, and the others each by
// an event name of its own ("Other Event 1234"). On PostgreSQL they are
// created by several goroutines; on SQLite writers take turns anyway.
func seedIngestSegments(b *testing.B, svc *service.Service, total int) {
	b.Helper()
	ctx := context.Background()
	first, err := svc.CreateSegment(ctx, service.CreateSegmentInput{
		Name: "Sign Up 0", Kind: segment.KindEVENT_TRIGGERED,
		TriggerEvents: []string{"Sign Up"}, Condition: signUpCondition(),
	})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := svc.CreateCampaign(ctx, service.CreateCampaignInput{
		Name: "Welcome Mission", SegmentID: &first.ID, Status: ref(campaign.StatusACTIVE),
	}); err != nil {
		b.Fatal(err)
	}
	workers := 1
	if svc.StoreDialect() == dialect.Postgres {
		workers = 8
	}
	var (
		next     atomic.Int64
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	next.Store(1)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= total {
					return
				}
				in := service.CreateSegmentInput{
					Name: fmt.Sprintf("Sign Up %d", i), Kind: segment.KindEVENT_TRIGGERED,
					TriggerEvents: []string{"Sign Up"}, Condition: signUpCondition(),
				}
				if i >= ingestTriggered {
					in.Name = fmt.Sprintf("Other %d", i)
					in.TriggerEvents = []string{fmt.Sprintf("Other Event %d", i)}
				}
				if _, err := svc.CreateSegment(ctx, in); err != nil {
					errOnce.Do(func() { firstErr = err })
					return
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		b.Fatal(firstErr)
	}
}

// ingestBatch is one iteration's events, and what TrackBatch should make of
// them.
type ingestBatch struct {
	inputs       []*service.TrackInput
	matchingNew  int // new users that match: each enters ingestTriggered segments
	matchingUser []bool
}

// signUpBatch returns batch iter: ingestBatchSize "Sign Up" events with
// distinct messageIds from distinct users, ingestReturning of whom (from
// iter 1 on) were new in batch iter-1.
func signUpBatch(iter int) ingestBatch {
	ts := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC).Add(time.Duration(iter) * time.Minute)
	out := ingestBatch{
		inputs:       make([]*service.TrackInput, ingestBatchSize),
		matchingUser: make([]bool, ingestBatchSize),
	}
	returning := 0
	if iter > 0 {
		returning = ingestReturning
	}
	for j := range out.inputs {
		// User u-<batch>-<k>, new in batch <batch>; a returning user is one
		// of the previous batch's new ones (k ≥ ingestReturning there).
		userIter, k := iter, j
		if j < returning {
			userIter, k = iter-1, j+ingestReturning
		}
		match := k%2 == 0
		channel, reward := "Google", 20
		if match {
			channel = "Facebook"
		}
		if j%5 == 0 {
			reward = 35 // still ≤ 50: non-matching users stay non-matching
		}
		out.inputs[j] = &service.TrackInput{
			Event:     "Sign Up",
			UserID:    ref(fmt.Sprintf("u-%d-%d", userIter, k)),
			MessageID: ref(fmt.Sprintf("m-%d-%d", iter, j)),
			Timestamp: ref(ts.Add(time.Duration(j) * time.Millisecond)),
			Properties: map[string]any{
				"Reward Amount": reward,
				"plan":          "pro",
				"referrer":      "spring-campaign",
			},
			Traits: map[string]any{
				"Sign Up Date": "2025-03-01",
				"Channel":      channel,
				"email":        fmt.Sprintf("user-%d-%d@example.com", userIter, k),
			},
			Context: map[string]any{
				"library":   map[string]any{"name": "analytics.js", "version": "5.2.0"},
				"ip":        "203.0.113.7",
				"userAgent": "Mozilla/5.0 (X11; Linux x86_64)",
			},
		}
		out.matchingUser[j] = match
		if match && j >= returning {
			out.matchingNew++
		}
	}
	return out
}

// checkBatch fails the benchmark unless every event was accepted and
// exactly the new matching users entered the triggered segments and
// activated the campaign.
func checkBatch(b *testing.B, res *service.TrackBatchResult, batch ingestBatch) {
	b.Helper()
	if res.Accepted != len(batch.inputs) || res.Duplicates != 0 {
		b.Fatalf("accepted %d, duplicates %d; want %d, 0", res.Accepted, res.Duplicates, len(batch.inputs))
	}
	entered, activated := 0, 0
	for _, r := range res.Results {
		entered += len(r.EnteredSegments)
		activated += len(r.ActivatedCampaigns)
	}
	if want := batch.matchingNew * ingestTriggered; entered != want {
		b.Fatalf("%d segment entries, want %d", entered, want)
	}
	if activated != batch.matchingNew {
		b.Fatalf("%d activations, want %d", activated, batch.matchingNew)
	}
}

// eventColumns are the columns of the events table (ent/migrate/schema.go).
var eventColumns = []string{
	"id", "message_id", "type", "name", "user_id", "anonymous_id",
	"properties", "traits", "context", "timestamp", "received_at", "outcomes", "user_ref",
}

// rawInsertEvents writes batch to the events table in one transaction, as
// one multi-row INSERT.
func rawInsertEvents(ctx context.Context, db *sql.DB, d string, batch ingestBatch, segIDs []pulid.ID) error {
	now := time.Now().UTC().Truncate(time.Microsecond)
	var q strings.Builder
	q.WriteString("INSERT INTO events (" + strings.Join(eventColumns, ", ") + ") VALUES ")
	args := make([]any, 0, len(batch.inputs)*len(eventColumns))
	for j, in := range batch.inputs {
		if j > 0 {
			q.WriteByte(',')
		}
		q.WriteByte('(')
		for c := range eventColumns {
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
		outcomes := make([]schema.Outcome, len(segIDs))
		for i, id := range segIDs {
			if batch.matchingUser[j] {
				outcomes[i] = schema.Outcome{SegmentID: id, Entered: true,
					Reason: `entered: matched: user."Sign Up Date" > "2025-01-01" (was "2025-03-01") AND user.Channel = "Facebook" (was "Facebook")`}
			} else {
				outcomes[i] = schema.Outcome{SegmentID: id,
					Reason: `condition failed: user.Channel = "Facebook" (was "Google") OR event."Reward Amount" > 50 (was 20)`}
			}
		}
		props, err := json.Marshal(in.Properties)
		if err != nil {
			return err
		}
		traits, err := json.Marshal(in.Traits)
		if err != nil {
			return err
		}
		evctx, err := json.Marshal(in.Context)
		if err != nil {
			return err
		}
		outs, err := json.Marshal(outcomes)
		if err != nil {
			return err
		}
		args = append(args,
			string(pulid.New("evt")), *in.MessageID, "TRACK", in.Event, *in.UserID, nil,
			string(props), string(traits), string(evctx), in.Timestamp.UTC(), now, string(outs), nil)
	}
	tx, err := store.BeginWriter(ctx, db, d)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, q.String(), args...); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

// timedBatches runs track(0) untimed (the warm-up: compiled conditions,
// filled caches, and the returning users of batch 1), then track(1),
// track(2), ... one per b.Loop iteration, and reports events/s from the
// events each returns. track starts and stops the timer around what it
// measures.
func timedBatches(b *testing.B, track func(iter int) int) {
	b.StopTimer()
	track(0)
	b.StartTimer()
	iter, events := 0, 0
	for b.Loop() {
		// Building and checking a batch is not timed.
		b.StopTimer()
		iter++
		events += track(iter)
		b.StartTimer()
	}
	b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
}
