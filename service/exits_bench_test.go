package service_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/segmentd/segmentd/ent/campaign"
	"github.com/segmentd/segmentd/ent/segment"
	"github.com/segmentd/segmentd/internal/testenv"
	"github.com/segmentd/segmentd/service"
)

// BenchmarkTrackEventsExits is BenchmarkTrackEvents with its 10 "Sign Up"
// segments, without exit rules and with whenConditionFails on each: every
// returning member's event re-checks the condition (and its traits count
// as a trait change), and nobody leaves, so both runs write the same rows.
// The aim: exits=whenConditionFails at 85 % or more of exits=none.
func BenchmarkTrackEventsExits(b *testing.B) {
	for _, storeName := range testenv.Stores {
		for _, exits := range []bool{false, true} {
			label := "none"
			if exits {
				label = "whenConditionFails"
			}
			b.Run(fmt.Sprintf("store=%s/exits=%s", storeName, label), func(b *testing.B) {
				ctx := context.Background()
				st := openIngestStore(b, storeName)
				svc := newService(b, st, service.Config{})
				for i := 0; i < ingestTriggered; i++ {
					in := service.CreateSegmentInput{
						Name: fmt.Sprintf("Sign Up %d", i), Kind: segment.KindEVENT_TRIGGERED,
						TriggerEvents: []string{"Sign Up"}, Condition: signUpCondition(),
					}
					if exits {
						in.ExitRules = &service.ExitRulesInput{WhenConditionFails: ref(true)}
					}
					seg, err := svc.CreateSegment(ctx, in)
					if err != nil {
						b.Fatal(err)
					}
					if i == 0 {
						if _, err := svc.CreateCampaign(ctx, service.CreateCampaignInput{
							Name: "Welcome Mission", SegmentID: &seg.ID, Status: ref(campaign.StatusACTIVE),
						}); err != nil {
							b.Fatal(err)
						}
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
					checkBatch(b, res, batch)
					return len(batch.inputs)
				}
				timedBatches(b, track)
			})
		}
	}
}
