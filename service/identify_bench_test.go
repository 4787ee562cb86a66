package service_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/segmentd/segmentd/ent/membership"
	"github.com/segmentd/segmentd/ent/segment"
	"github.com/segmentd/segmentd/internal/testenv"
	"github.com/segmentd/segmentd/service"
	"github.com/segmentd/segmentd/trigger"
)

// identifyUsers is how many users the identifies of BenchmarkIdentifyDynamic
// take turns on: each is identified once before the clock starts, so the
// timed identifies update known users.
const identifyUsers = 200

// BenchmarkIdentifyDynamic measures Identify, one call per iteration, with no
// segments and with 100 DYNAMIC segments whose condition reads the traits
// the identifies change (plan and Channel), on each store. Iteration i
// changes user (i/2) mod identifyUsers: an even i flips its plan between
// "pro" and "free", which moves it into or out of every DYNAMIC segment; an
// odd i changes its Channel between values that keep it where it is, so the
// evaluation runs and decides nothing changes. The 100-segment run reports
// its rate as a share of the 0-segment run of the same invocation.
func BenchmarkIdentifyDynamic(b *testing.B) {
	for _, storeName := range testenv.Stores {
		var noneRate float64 // identifies/s of dynamic=0 on this store
		for _, dynamic := range []int{0, 100} {
			b.Run(fmt.Sprintf("store=%s/dynamic=%d", storeName, dynamic), func(b *testing.B) {
				ctx := context.Background()
				st := openIngestStore(b, storeName)
				svc := newService(b, st, service.Config{})
				for i := range dynamic {
					if _, err := svc.CreateSegment(ctx, service.CreateSegmentInput{
						Name: fmt.Sprintf("Pro users %d", i), Kind: segment.KindDYNAMIC,
						Condition: &trigger.ConditionInput{And: []*trigger.ConditionInput{
							{Scope: ref(trigger.ScopeUser), Property: ref("plan"), Operator: ref(trigger.OpEQ), Value: "pro"},
							{Scope: ref(trigger.ScopeUser), Property: ref("Channel"), Operator: ref(trigger.OpNEQ), Value: fmt.Sprintf("Blocked %d", i)},
						}},
					}); err != nil {
						b.Fatal(err)
					}
				}
				pro := make([]bool, identifyUsers) // each user's plan now
				identify := func(u int, traits map[string]any) {
					if _, err := svc.Identify(ctx, service.IdentifyInput{UserID: fmt.Sprintf("idu-%d", u), Traits: traits}); err != nil {
						b.Fatal(err)
					}
				}
				// Not timed: every user known, all on "free" (members of nothing).
				b.StopTimer()
				for u := range identifyUsers {
					identify(u, map[string]any{"plan": "free", "Channel": "Google", "email": fmt.Sprintf("idu-%d@example.com", u)})
				}
				b.StartTimer()

				iter := 0
				for b.Loop() {
					u := (iter / 2) % identifyUsers
					if iter%2 == 0 {
						pro[u] = !pro[u]
						plan := "free"
						if pro[u] {
							plan = "pro"
						}
						identify(u, map[string]any{"plan": plan})
					} else {
						channels := []string{"Facebook", "Google"}
						identify(u, map[string]any{"Channel": channels[(iter/2/identifyUsers)%2]})
					}
					iter++
				}
				rate := float64(iter) / b.Elapsed().Seconds()
				b.StopTimer()

				// What a user sees: exactly the users now on "pro" are members
				// of every DYNAMIC segment.
				wantPro := 0
				for _, p := range pro {
					if p {
						wantPro++
					}
				}
				got, err := st.Client.Membership.Query().Where(membership.HasSegmentWith(segment.KindEQ(segment.KindDYNAMIC))).Count(ctx)
				if err != nil {
					b.Fatal(err)
				}
				if want := wantPro * dynamic; got != want {
					b.Fatalf("%d DYNAMIC memberships after %d identifies, want %d", got, iter, want)
				}
				b.ReportMetric(rate, "identifies/s")
				if dynamic == 0 {
					noneRate = rate
				} else if noneRate > 0 {
					b.ReportMetric(rate/noneRate, "ratio_to_dynamic=0")
				}
			})
		}
	}
}
