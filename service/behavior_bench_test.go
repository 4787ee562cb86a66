package service_test

import (
	"context"
	"fmt"
	"testing"

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
				b.StopTimer()
				track(0)
				b.StartTimer()
				iter, events := 0, 0
				for b.Loop() {
					b.StopTimer()
					iter++
					events += track(iter)
					b.StartTimer()
				}
				b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
			})
		}
	}
}
