package graph_test

// Exits and DYNAMIC segments end to end over HTTP on both stores: who is a
// member after events and trait changes, the EXITED changes streamed on
// membershipChanged (source and reason), and the figures (totalUsers,
// stats, growth, membersAt) counting the exits.

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/segmentd/segmentd/internal/testenv"
)

type exitChange struct {
	MembershipChanged struct {
		Kind   string
		Source string
		Reason string
		User   struct{ UserID string }
	}
}

// exitChangesQuery replays the log from its start ("0.0"), so that no
// change can fall between subscribing and going live.
const exitChangesQuery = `subscription($s: ID) { membershipChanged(segmentId: $s, after: "0.0") { kind source reason user { userId } } }`

// exitStream subscribes to a segment's changes; next returns the next one.
func exitStream(t *testing.T, srv *testenv.Server, segID string) (next func() exitChange) {
	t.Helper()
	ws := srv.DialWS(t, testenv.AdminKey, testenv.Subprotocols[0])
	vars := map[string]any{"s": segID}
	if segID == "" {
		vars["s"] = nil // every segment
	}
	ws.Subscribe(t, "x", exitChangesQuery, vars)
	return func() exitChange {
		t.Helper()
		var c exitChange
		ws.NextData(t, "x", 5*time.Second, &c)
		return c
	}
}

func expectChange(t *testing.T, got exitChange, kind, source, user, reason string) {
	t.Helper()
	c := got.MembershipChanged
	if c.Kind != kind || c.Source != source || c.User.UserID != user || (reason != "" && c.Reason != reason) {
		t.Fatalf("change %+v, want %s %s of %s with reason %q", c, kind, source, user, reason)
	}
}

// verifyClean runs segmentd verify's checks on the server's database.
func verifyClean(t *testing.T, srv *testenv.Server) {
	t.Helper()
	rep, err := newService(t, srv.Store()).Verify(context.Background())
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if !rep.OK() {
		t.Fatalf("verify: %s", rep)
	}
}

func memberIDs(t *testing.T, c *testenv.Client, segID string) string {
	t.Helper()
	ids := ingKeys(ingMembers(t, c, segID))
	out := ""
	for i, id := range ids {
		if i > 0 {
			out += ","
		}
		out += id
	}
	return out
}

type exitFigures struct {
	TotalUsers int
	Stats      struct{ TotalUsers, NewLast7Days int }
	Growth     []struct{ Entered, Exited, Total int }
	MembersAt  struct{ TotalCount int }
}

func readExitFigures(t *testing.T, c *testenv.Client, segID string, at time.Time) exitFigures {
	t.Helper()
	var out struct{ Node exitFigures }
	from := time.Now().UTC().Add(-48 * time.Hour).Truncate(24 * time.Hour)
	c.MustDo(t, `query($s: ID!, $from: Time!, $to: Time!, $at: Time!) { node(id: $s) { ... on Segment {
		totalUsers stats { totalUsers newLast7Days } growth(interval: DAY, from: $from, to: $to) { entered exited total }
		membersAt(time: $at) { totalCount } } } }`,
		map[string]any{"s": segID, "from": from, "to": from.Add(96 * time.Hour), "at": at}, &out)
	return out.Node
}

func sumGrowth(f exitFigures) (entered, exited int) {
	for _, p := range f.Growth {
		entered += p.Entered
		exited += p.Exited
	}
	return
}

// TestExitWhenConditionFails: a member leaves when identify changes a
// trait the condition reads (source TRAITS), when traits carried on any
// event do, and when a later trigger event fails the condition (source
// EVENT); a trait change the condition does not decide keeps them.
func TestExitWhenConditionFails(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL)
		c := srv.Admin()
		segID := ingCreateSegment(t, c, map[string]any{
			"name": "Activation Experiment - New Users", "kind": "EVENT_TRIGGERED", "triggerEvents": []string{"Sign Up"},
			"condition": map[string]any{"and": []any{pred("USER", "Channel", "EQ", "Facebook"), pred("EVENT", "plan", "EQ", "pro")}},
			"exitRules": map[string]any{"whenConditionFails": true},
		})
		next := exitStream(t, srv, segID)
		for _, u := range []string{"alice", "bob", "carol", "dave"} {
			r := ingTrack(t, c, map[string]any{"event": "Sign Up", "userId": u, "messageId": "in-" + u,
				"properties": map[string]any{"plan": "pro"}, "traits": map[string]any{"Channel": "Facebook"}})
			if len(r.EnteredSegments) != 1 {
				t.Fatalf("%s did not enter: %+v", u, r.Event.Outcomes)
			}
			expectChange(t, next(), "ENTERED", "EVENT", u, "")
		}
		beforeExits := time.Now()
		time.Sleep(20 * time.Millisecond)

		// identify changes the channel: alice leaves, by traits.
		ingIdentify(t, c, map[string]any{"userId": "alice", "traits": map[string]any{"Channel": "Google"}})
		expectChange(t, next(), "EXITED", "TRAITS", "alice", `left: condition failed: user.Channel = "Facebook" (was "Google")`)
		// A trait the condition does not read: carol stays.
		ingIdentify(t, c, map[string]any{"userId": "carol", "traits": map[string]any{"age": 31}})
		// A later trigger event that fails the event part: bob leaves, by the event.
		r := ingTrack(t, c, map[string]any{"event": "Sign Up", "userId": "bob", "properties": map[string]any{"plan": "free"}})
		expectChange(t, next(), "EXITED", "EVENT", "bob", `left: condition failed: event.plan = "pro" (was "free")`)
		if len(r.Event.Outcomes) != 1 || r.Event.Outcomes[0].Entered || r.Event.Outcomes[0].Reason != `left: condition failed: event.plan = "pro" (was "free")` {
			t.Fatalf("bob's outcome: %+v", r.Event.Outcomes)
		}
		// Traits carried on another event: dave leaves, by traits.
		ingTrack(t, c, map[string]any{"event": "Page Viewed", "userId": "dave", "traits": map[string]any{"Channel": "Twitter"}})
		expectChange(t, next(), "EXITED", "TRAITS", "dave", `left: condition failed: user.Channel = "Facebook" (was "Twitter")`)

		if got := memberIDs(t, c, segID); got != "carol" {
			t.Fatalf("members %s, want carol", got)
		}
		f := readExitFigures(t, c, segID, beforeExits)
		if entered, exited := sumGrowth(f); f.TotalUsers != 1 || f.Stats.TotalUsers != 1 || entered != 4 || exited != 3 || f.MembersAt.TotalCount != 4 {
			t.Fatalf("figures %+v (growth entered %d exited %d)", f, entered, exited)
		}
		if now := readExitFigures(t, c, segID, time.Now()); now.MembersAt.TotalCount != 1 {
			t.Fatalf("membersAt now: %d, want 1", now.MembersAt.TotalCount)
		}
		if ex := ingExplain(t, c, segID, "alice"); ex.Member || !strings.HasPrefix(ex.Reason, `not a member any more: left: condition failed: user.Channel = "Facebook" (was "Google") (TRAITS, `) {
			t.Fatalf("explainMembership of alice: %+v", ex)
		}
		// Back to Facebook with a pro sign-up: alice re-enters.
		ingTrack(t, c, map[string]any{"event": "Sign Up", "userId": "alice", "properties": map[string]any{"plan": "pro"}, "traits": map[string]any{"Channel": "Facebook"}})
		expectChange(t, next(), "ENTERED", "EVENT", "alice", "")
		if got := memberIDs(t, c, segID); got != "alice,carol" {
			t.Fatalf("members %s, want alice,carol", got)
		}
		verifyClean(t, srv)
	})
}

// TestExitOnEvents: members leave when an exit event arrives; with an
// onEventCondition only when it holds for that event.
func TestExitOnEvents(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL)
		c := srv.Admin()
		newsletter := ingCreateSegment(t, c, map[string]any{"name": "Newsletter", "kind": "EVENT_TRIGGERED", "triggerEvents": []string{"Subscribed"},
			"exitRules": map[string]any{"onEvents": []string{"Unsubscribed"}}})
		bigSpenders := ingCreateSegment(t, c, map[string]any{"name": "Cart abandoners", "kind": "EVENT_TRIGGERED", "triggerEvents": []string{"Cart Abandoned"},
			"exitRules": map[string]any{"onEvents": []string{"Purchase Completed"}, "onEventCondition": pred("EVENT", "total", "GT", 100)}})
		nextNews := exitStream(t, srv, newsletter)
		nextCart := exitStream(t, srv, bigSpenders)
		ingTrack(t, c, map[string]any{"event": "Subscribed", "userId": "u1"})
		ingTrack(t, c, map[string]any{"event": "Subscribed", "userId": "u2"})
		ingTrack(t, c, map[string]any{"event": "Cart Abandoned", "userId": "u1"})
		expectChange(t, nextNews(), "ENTERED", "EVENT", "u1", "")
		expectChange(t, nextNews(), "ENTERED", "EVENT", "u2", "")
		expectChange(t, nextCart(), "ENTERED", "EVENT", "u1", "")

		r := ingTrack(t, c, map[string]any{"event": "Unsubscribed", "userId": "u1"})
		expectChange(t, nextNews(), "EXITED", "EVENT", "u1", `left on event "Unsubscribed"`)
		if len(r.Event.Outcomes) != 1 || r.Event.Outcomes[0].Reason != `left on event "Unsubscribed"` || r.Event.Outcomes[0].Segment.ID != newsletter {
			t.Fatalf("outcomes of Unsubscribed: %+v", r.Event.Outcomes)
		}
		if got := memberIDs(t, c, newsletter); got != "u2" {
			t.Fatalf("newsletter members %s, want u2", got)
		}
		// A purchase of 50 does not meet the exit condition; 150 does.
		ingTrack(t, c, map[string]any{"event": "Purchase Completed", "userId": "u1", "properties": map[string]any{"total": 50}})
		if got := memberIDs(t, c, bigSpenders); got != "u1" {
			t.Fatalf("after a small purchase: members %s, want u1", got)
		}
		ingTrack(t, c, map[string]any{"event": "Purchase Completed", "userId": "u1", "properties": map[string]any{"total": 150}})
		expectChange(t, nextCart(), "EXITED", "EVENT", "u1", `left on event "Purchase Completed"`)
		if got := memberIDs(t, c, bigSpenders); got != "" {
			t.Fatalf("after a big purchase: members %s, want none", got)
		}
		f := readExitFigures(t, c, newsletter, time.Now())
		if entered, exited := sumGrowth(f); f.TotalUsers != 1 || entered != 2 || exited != 1 {
			t.Fatalf("newsletter figures %+v", f)
		}
		// One batch that enters, removes and re-enters u3: the ledger
		// writes the three changes in that order.
		ingTrackBatch(t, c, []map[string]any{
			{"event": "Subscribed", "userId": "u3"}, {"event": "Unsubscribed", "userId": "u3"}, {"event": "Subscribed", "userId": "u3"},
		})
		expectChange(t, nextNews(), "ENTERED", "EVENT", "u3", "")
		expectChange(t, nextNews(), "EXITED", "EVENT", "u3", `left on event "Unsubscribed"`)
		expectChange(t, nextNews(), "ENTERED", "EVENT", "u3", "")
		if got := memberIDs(t, c, newsletter); got != "u2,u3" {
			t.Fatalf("newsletter members after the batch %s, want u2,u3", got)
		}
		f = readExitFigures(t, c, newsletter, time.Now())
		if entered, exited := sumGrowth(f); f.TotalUsers != 2 || entered != 4 || exited != 2 {
			t.Fatalf("newsletter figures after the batch %+v", f)
		}
		verifyClean(t, srv)
	})
}

// TestDynamicSegment: a DYNAMIC segment is filled on create with the users
// whose traits match (BACKFILL); afterwards users enter and leave as their
// traits change (TRAITS), by identify or traits on an event.
func TestDynamicSegment(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL)
		c := srv.Admin()
		ingIdentify(t, c, map[string]any{"userId": "early-fb", "traits": map[string]any{"Channel": "Facebook"}})
		ingIdentify(t, c, map[string]any{"userId": "early-g", "traits": map[string]any{"Channel": "Google"}})
		next := exitStream(t, srv, "")
		segID := ingCreateSegment(t, c, map[string]any{"name": "Facebook users", "kind": "DYNAMIC", "condition": pred("USER", "Channel", "EQ", "Facebook")})
		members := ingMembers(t, c, segID)
		if len(members) != 1 || members["early-fb"].Source != "BACKFILL" {
			t.Fatalf("filled on create: %+v", members)
		}
		expectChange(t, next(), "ENTERED", "BACKFILL", "early-fb", `filled from current traits: user.Channel = "Facebook"`)
		ingIdentify(t, c, map[string]any{"userId": "early-g", "traits": map[string]any{"Channel": "Facebook"}})
		expectChange(t, next(), "ENTERED", "TRAITS", "early-g", "")
		ingIdentify(t, c, map[string]any{"userId": "early-fb", "traits": map[string]any{"Channel": "Google"}})
		expectChange(t, next(), "EXITED", "TRAITS", "early-fb", `left: condition failed: user.Channel = "Facebook" (was "Google")`)
		r := ingTrack(t, c, map[string]any{"event": "Page Viewed", "userId": "new", "traits": map[string]any{"Channel": "Facebook"}})
		expectChange(t, next(), "ENTERED", "TRAITS", "new", "")
		if len(r.EnteredSegments) != 1 || r.EnteredSegments[0].ID != segID {
			t.Fatalf("enteredSegments %+v", r.EnteredSegments)
		}
		// An event without a trait change changes nothing.
		ingTrack(t, c, map[string]any{"event": "Page Viewed", "userId": "early-fb"})
		if got := memberIDs(t, c, segID); got != "early-g,new" {
			t.Fatalf("members %s, want early-g,new", got)
		}
		if m := ingMembers(t, c, segID)["new"]; m.Source != "TRAITS" {
			t.Fatalf("membership of new: %+v", m)
		}
		f := readExitFigures(t, c, segID, time.Now())
		if entered, exited := sumGrowth(f); f.TotalUsers != 2 || entered != 3 || exited != 1 {
			t.Fatalf("figures %+v", f)
		}
		// Changing the condition re-fills: Google users now.
		c.MustDo(t, `mutation($id: ID!, $in: UpdateSegmentInput!) { updateSegment(id: $id, input: $in) { id } }`,
			map[string]any{"id": segID, "in": map[string]any{"condition": pred("USER", "Channel", "EQ", "Google")}}, nil)
		if got := memberIDs(t, c, segID); got != "early-fb" {
			t.Fatalf("after the update: members %s, want early-fb", got)
		}
		if ex := ingExplain(t, c, segID, "new"); ex.Member || !strings.HasPrefix(ex.Reason, `not a member any more: left: condition failed: user.Channel = "Google" (was "Facebook") (BACKFILL, `) {
			t.Fatalf("explainMembership of new: %+v", ex)
		}
		verifyClean(t, srv)
	})
}

// TestExitRulesReconcile: updateSegment adding whenConditionFails with
// RECONCILE removes the members the new rule would have removed; with
// FUTURE_ONLY they stay until their next trait change.
func TestExitRulesReconcile(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL)
		c := srv.Admin()
		segID := ingCreateSegment(t, c, map[string]any{"name": "Facebook sign-ups", "kind": "EVENT_TRIGGERED", "triggerEvents": []string{"Sign Up"},
			"condition": pred("USER", "Channel", "EQ", "Facebook")})
		for _, u := range []string{"a", "b"} {
			ingTrack(t, c, map[string]any{"event": "Sign Up", "userId": u, "traits": map[string]any{"Channel": "Facebook"}})
		}
		// Without exit rules, a trait change keeps the member.
		ingIdentify(t, c, map[string]any{"userId": "a", "traits": map[string]any{"Channel": "Google"}})
		if got := memberIDs(t, c, segID); got != "a,b" {
			t.Fatalf("members %s, want a,b", got)
		}
		c.MustDo(t, `mutation($id: ID!) { updateSegment(id: $id, input: {exitRules: {whenConditionFails: true}}, reevaluate: FUTURE_ONLY) { id } }`, map[string]any{"id": segID}, nil)
		if got := memberIDs(t, c, segID); got != "a,b" {
			t.Fatalf("FUTURE_ONLY: members %s, want a,b", got)
		}
		c.MustDo(t, `mutation($id: ID!) { updateSegment(id: $id, input: {exitRules: {whenConditionFails: true}}, reevaluate: RECONCILE) { id } }`, map[string]any{"id": segID}, nil)
		if got := memberIDs(t, c, segID); got != "b" {
			t.Fatalf("RECONCILE: members %s, want b", got)
		}
		verifyClean(t, srv)
	})
}
