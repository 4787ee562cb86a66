package graph_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/segmentd/segmentd/internal/testenv"
)

type trackResult struct {
	Duplicate          bool
	EnteredSegments    []struct{ Name string }
	ActivatedCampaigns []struct{ Name string }
	Event              struct {
		ID       string
		Outcomes []struct {
			Entered bool
			Reason  string
			Segment struct{ Name string }
		}
	}
}

const trackQuery = `mutation($in: TrackInput!) { trackEvent(input: $in) { duplicate enteredSegments { name } activatedCampaigns { name }
	event { id outcomes { entered reason segment { name } } } } }`

func track(t *testing.T, c *testenv.Client, in map[string]any) trackResult {
	t.Helper()
	var out struct{ TrackEvent trackResult }
	c.MustDo(t, trackQuery, map[string]any{"in": in}, &out)
	return out.TrackEvent
}

// seedWorld creates the README's seed segment and its ACTIVE campaign.
func seedWorld(t *testing.T, c *testenv.Client) (segID, campID string) {
	t.Helper()
	segID = createSeed(t, c)
	var camp struct{ CreateCampaign struct{ ID string } }
	c.MustDo(t, `mutation($s: ID!) { createCampaign(input: {name: "Welcome Mission", segmentId: $s, status: ACTIVE}) { id } }`,
		map[string]any{"s": segID}, &camp)
	return segID, camp.CreateCampaign.ID
}

func activationCount(t *testing.T, c *testenv.Client, campID string) int {
	t.Helper()
	var out struct{ Node struct{ ActivationCount int } }
	c.MustDo(t, `query($c: ID!) { node(id: $c) { ... on Campaign { activationCount } } }`, map[string]any{"c": campID}, &out)
	return out.Node.ActivationCount
}

func memberCount(t *testing.T, c *testenv.Client, segID string) int {
	t.Helper()
	var out struct {
		Node struct{ Members struct{ TotalCount int } }
	}
	c.MustDo(t, `query($s: ID!) { node(id: $s) { ... on Segment { members { totalCount } } } }`, map[string]any{"s": segID}, &out)
	return out.Node.Members.TotalCount
}

// TestSeedExample: the README's example, case by case.
func TestSeedExample(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL)
		c := srv.Admin()
		segID, campID := seedWorld(t, c)
		for _, tc := range []struct {
			name   string
			traits map[string]any
			props  map[string]any
			enters bool
			reason string
		}{
			{"Facebook enters", map[string]any{"Sign Up Date": "2025-02-01", "Channel": "Facebook"}, nil, true, "entered: matched"},
			{"Google with 20 does not", map[string]any{"Sign Up Date": "2025-02-01", "Channel": "Google"}, map[string]any{"Reward Amount": 20},
				false, `condition failed: none of: user.Channel = "Facebook" (was "Google"); event."Reward Amount" > 50 (was 20)`},
			{"Google with 72 does", map[string]any{"Sign Up Date": "2025-02-01", "Channel": "Google"}, map[string]any{"Reward Amount": 72}, true, "entered"},
			{"72 as a numeric string does", map[string]any{"Sign Up Date": "2025-02-01", "Channel": "Google"}, map[string]any{"Reward Amount": "72"}, true, "entered"},
			{"signed up in 2024 does not", map[string]any{"Sign Up Date": "2024-06-01", "Channel": "Facebook"}, nil,
				false, `condition failed: user."Sign Up Date" > "2025-01-01" (was "2024-06-01")`},
		} {
			user := strings.ReplaceAll(tc.name, " ", "-")
			r := track(t, c, map[string]any{"event": "Sign Up", "userId": user, "traits": tc.traits, "properties": tc.props})
			if got := len(r.EnteredSegments) == 1; got != tc.enters {
				t.Fatalf("%s: entered = %v, want %v (%+v)", tc.name, got, tc.enters, r)
			}
			if tc.enters && (len(r.ActivatedCampaigns) != 1 || r.ActivatedCampaigns[0].Name != "Welcome Mission") {
				t.Fatalf("%s: activated %+v", tc.name, r.ActivatedCampaigns)
			}
			if len(r.Event.Outcomes) != 1 || r.Event.Outcomes[0].Entered != tc.enters || !strings.HasPrefix(r.Event.Outcomes[0].Reason, tc.reason) {
				t.Fatalf("%s: outcomes %+v, want reason %q", tc.name, r.Event.Outcomes, tc.reason)
			}
			var ex struct {
				ExplainMembership struct {
					Member bool
					Reason string
				}
			}
			c.MustDo(t, `query($s: ID!, $u: String!) { explainMembership(segmentId: $s, userId: $u) { member reason } }`,
				map[string]any{"s": segID, "u": user}, &ex)
			if ex.ExplainMembership.Member != tc.enters || (!tc.enters && !strings.Contains(ex.ExplainMembership.Reason, "condition failed")) {
				t.Fatalf("%s: explanation %+v", tc.name, ex.ExplainMembership)
			}
		}
		// Another event name triggers nothing.
		r := track(t, c, map[string]any{"event": "Purchase Completed", "userId": "Facebook-enters"})
		if len(r.Event.Outcomes) != 0 || len(r.EnteredSegments) != 0 {
			t.Fatalf("Purchase Completed: %+v", r)
		}
		// The Facebook user signing up again is already a member.
		r = track(t, c, map[string]any{"event": "Sign Up", "userId": "Facebook-enters"})
		if len(r.EnteredSegments) != 0 || r.Event.Outcomes[0].Reason != "already a member" {
			t.Fatalf("second Sign Up: %+v", r)
		}
		if n, a := memberCount(t, c, segID), activationCount(t, c, campID); n != 3 || a != 3 {
			t.Fatalf("members %d, activations %d; want 3 and 3", n, a)
		}
	})
}

// TestDuplicatesAndConcurrency: a repeated messageId changes nothing, also
// when 50 identical events arrive at once on separate connections; 50
// different events for one new user at once make one membership and one
// activation.
func TestDuplicatesAndConcurrency(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL)
		c := srv.Admin()
		segID, campID := seedWorld(t, c)
		fb := map[string]any{"Sign Up Date": "2025-02-01", "Channel": "Facebook"}

		first := track(t, c, map[string]any{"event": "Sign Up", "userId": "u-dup", "messageId": "m-1", "traits": fb})
		again := track(t, c, map[string]any{"event": "Sign Up", "userId": "u-dup", "messageId": "m-1", "traits": map[string]any{"Channel": "Google"}})
		if first.Duplicate || !again.Duplicate || again.Event.ID != first.Event.ID || len(again.EnteredSegments) != 0 {
			t.Fatalf("first %+v\nagain %+v", first, again)
		}
		var u struct {
			User struct{ Traits map[string]any }
		}
		c.MustDo(t, `{ user(userId: "u-dup") { traits } }`, nil, &u)
		if u.User.Traits["Channel"] != "Facebook" {
			t.Fatalf("a duplicate changed the user's traits: %v", u.User.Traits)
		}

		run := func(n int, in func(i int) map[string]any) []trackResult {
			var wg sync.WaitGroup
			out := make([]trackResult, n)
			for i := 0; i < n; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					cl := srv.Admin() // its own connection pool
					var r struct{ TrackEvent trackResult }
					resp := cl.Do(t, trackQuery, map[string]any{"in": in(i)})
					if len(resp.Errors) > 0 {
						t.Errorf("event %d: %+v", i, resp.Errors)
						return
					}
					if err := jsonUnmarshal(resp.Data, &r); err != nil {
						t.Error(err)
					}
					out[i] = r.TrackEvent
				}()
			}
			wg.Wait()
			return out
		}
		same := run(50, func(int) map[string]any {
			return map[string]any{"event": "Sign Up", "userId": "u-same", "messageId": "m-same", "traits": fb}
		})
		fresh, entered := 0, 0
		for _, r := range same {
			if !r.Duplicate {
				fresh++
			}
			entered += len(r.EnteredSegments)
		}
		if fresh != 1 || entered != 1 {
			t.Fatalf("50 identical events: %d stored, %d entries; want 1 and 1", fresh, entered)
		}
		many := run(50, func(i int) map[string]any {
			return map[string]any{"event": "Sign Up", "userId": "u-many", "messageId": fmt.Sprintf("m-many-%d", i), "traits": fb}
		})
		entered = 0
		for _, r := range many {
			if r.Duplicate {
				t.Fatal("distinct messageIds reported as duplicates")
			}
			entered += len(r.EnteredSegments)
		}
		if entered != 1 {
			t.Fatalf("50 events of one user entered %d times", entered)
		}
		var evs struct{ Events struct{ TotalCount int } }
		c.MustDo(t, `{ events { totalCount } }`, nil, &evs)
		if evs.Events.TotalCount != 1+1+50 {
			t.Fatalf("events stored = %d, want 52", evs.Events.TotalCount)
		}
		if n, a := memberCount(t, c, segID), activationCount(t, c, campID); n != 3 || a != 3 {
			t.Fatalf("members %d, activations %d; want 3 and 3", n, a)
		}
	})
}

// TestCampaignLaunchedAfterEntries: members who entered before a campaign
// went ACTIVE activate it when it does, once.
func TestCampaignLaunchedAfterEntries(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL)
		c := srv.Admin()
		segID := createSeed(t, c)
		var camp struct{ CreateCampaign struct{ ID string } }
		c.MustDo(t, `mutation($s: ID!) { createCampaign(input: {name: "Later", segmentId: $s}) { id } }`, map[string]any{"s": segID}, &camp)
		for i := 0; i < 5; i++ {
			r := track(t, c, map[string]any{"event": "Sign Up", "userId": fmt.Sprintf("early-%d", i),
				"traits": map[string]any{"Sign Up Date": "2025-02-01", "Channel": "Facebook"}})
			if len(r.ActivatedCampaigns) != 0 {
				t.Fatal("a DRAFT campaign activated")
			}
		}
		setStatus := func(s string) {
			c.MustDo(t, `mutation($c: ID!, $s: CampaignStatus!) { updateCampaign(id: $c, input: {status: $s}) { id } }`,
				map[string]any{"c": camp.CreateCampaign.ID, "s": s}, nil)
		}
		setStatus("ACTIVE")
		if a := activationCount(t, c, camp.CreateCampaign.ID); a != 5 {
			t.Fatalf("activations after launch = %d, want 5", a)
		}
		setStatus("PAUSED")
		setStatus("ACTIVE")
		if a := activationCount(t, c, camp.CreateCampaign.ID); a != 5 {
			t.Fatalf("activations after relaunch = %d, want still 5", a)
		}
	})
}

// TestReevaluationPolicies: FUTURE_ONLY, BACKFILL and RECONCILE.
func TestReevaluationPolicies(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL)
		c := srv.Admin()
		var seg struct{ CreateSegment struct{ ID string } }
		c.MustDo(t, `mutation { createSegment(input: {name: "Big spenders", kind: EVENT_TRIGGERED, triggerEvents: ["Purchase Completed"],
			condition: {scope: EVENT, property: "amount", operator: GT, value: 100}}) { id } }`, nil, &seg)
		segID := seg.CreateSegment.ID
		var camp struct{ CreateCampaign struct{ ID string } }
		c.MustDo(t, `mutation($s: ID!) { createCampaign(input: {name: "VIP", segmentId: $s, status: ACTIVE}) { id } }`, map[string]any{"s": segID}, &camp)
		for u, amount := range map[string]int{"a": 150, "b": 80, "c": 40} {
			track(t, c, map[string]any{"event": "Purchase Completed", "userId": u, "properties": map[string]any{"amount": amount}})
		}
		c.MustDo(t, `mutation($s: ID!) { addUsersToSegment(segmentId: $s, userIds: ["manual"]) { added } }`, map[string]any{"s": segID}, nil)
		members := func() map[string]string {
			var out struct {
				Node struct {
					Members struct {
						Edges []struct {
							Node struct {
								Source string
								User   struct{ UserID string }
							}
						}
					}
				}
			}
			c.MustDo(t, `query($s: ID!) { node(id: $s) { ... on Segment { members(first: 100) { edges { node { source user { userId } } } } } } }`,
				map[string]any{"s": segID}, &out)
			m := map[string]string{}
			for _, e := range out.Node.Members.Edges {
				m[e.Node.User.UserID] = e.Node.Source
			}
			return m
		}
		update := func(policy string, value int) {
			c.MustDo(t, `mutation($s: ID!, $v: JSON, $p: ReevaluationPolicy) { updateSegment(id: $s, reevaluate: $p,
				input: {condition: {scope: EVENT, property: "amount", operator: GT, value: $v}}) { id } }`,
				map[string]any{"s": segID, "v": value, "p": policy}, nil)
		}
		if got := members(); len(got) != 2 || got["a"] != "EVENT" || got["manual"] != "MANUAL" {
			t.Fatalf("before: %v", got)
		}
		update("FUTURE_ONLY", 50) // b (80) would match now, but only future events count
		if got := members(); len(got) != 2 {
			t.Fatalf("FUTURE_ONLY changed members: %v", got)
		}
		update("BACKFILL", 50)
		if got := members(); len(got) != 3 || got["b"] != "BACKFILL" || got["a"] != "EVENT" {
			t.Fatalf("BACKFILL: %v", got)
		}
		if a := activationCount(t, c, camp.CreateCampaign.ID); a != 3 {
			t.Fatalf("activations after BACKFILL = %d, want 3 (a, manual, b)", a)
		}
		update("BACKFILL", 500) // nobody matches: BACKFILL never removes
		if got := members(); len(got) != 3 {
			t.Fatalf("BACKFILL removed members: %v", got)
		}
		update("RECONCILE", 100) // a (150) still matches; b (80) no longer; manual stays
		if got := members(); len(got) != 2 || got["a"] != "EVENT" || got["manual"] != "MANUAL" {
			t.Fatalf("RECONCILE: %v", got)
		}
		var ex struct{ ExplainMembership struct{ Member bool } }
		c.MustDo(t, `query($s: ID!) { explainMembership(segmentId: $s, userId: "b") { member } }`, map[string]any{"s": segID}, &ex)
		if ex.ExplainMembership.Member {
			t.Fatal("b is still a member after RECONCILE")
		}
	})
}
