package graph_test

// Behaviour over time (performed) end to end: the predicate round-trips
// through the API, counts the user's events (the one evaluated included),
// builds its state from stored events when a segment is created, and moves
// users when the window passes, by the real clock.

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/segmentd/segmentd/auth"
	"github.com/segmentd/segmentd/internal/testenv"
)

func performed(event string, extra map[string]any) map[string]any {
	p := map[string]any{"event": event}
	for k, v := range extra {
		p[k] = v
	}
	return map[string]any{"performed": p}
}

// TestPerformedRoundTrip: the tree comes back as given (performed.where,
// count, aggregate, within), with the text the language renders.
func TestPerformedRoundTrip(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL)
		c := srv.Admin()
		cond := map[string]any{"and": []any{
			performed("Purchase Completed", map[string]any{
				"where":  pred("EVENT", "total", "GT", 10),
				"within": "7d",
				"count":  map[string]any{"operator": "GTE", "value": 3},
			}),
			map[string]any{"not": performed("Refund", map[string]any{
				"aggregate": map[string]any{"function": "SUM", "property": "amount", "operator": "GT", "value": 100.5},
			})},
		}}
		id := ingCreateSegment(t, c, map[string]any{"name": "Loyal", "kind": "EVENT_TRIGGERED",
			"triggerEvents": []string{"Purchase Completed"}, "condition": cond})
		var out struct {
			Node struct {
				ConditionText string
				Condition     struct {
					Kind     string
					Children []struct {
						Kind      string
						Children  []struct{ Kind string }
						Performed *struct {
							Event  string
							Within *string
							Where  *struct {
								Kind, Scope, Property, Operator string
								Value                           any
							}
							Count *struct {
								Operator string
								Value    any
							}
						}
					}
				}
			}
		}
		c.MustDo(t, `query($id: ID!) { node(id: $id) { ... on Segment { conditionText condition { kind children {
			kind children { kind } performed { event within where { kind scope property operator value } count { operator value } } } } } } }`,
			map[string]any{"id": id}, &out)
		seg := out.Node
		want := `performed "Purchase Completed" where event.total > 10 at least 3 times within 7d AND NOT (performed "Refund" SUM of amount > 100.5)`
		if seg.ConditionText != want {
			t.Fatalf("conditionText:\n got %s\nwant %s", seg.ConditionText, want)
		}
		p := seg.Condition.Children[0]
		if p.Kind != "PERFORMED" || p.Performed == nil || p.Performed.Event != "Purchase Completed" || p.Performed.Within == nil || *p.Performed.Within != "7d" ||
			p.Performed.Where == nil || p.Performed.Where.Property != "total" || p.Performed.Count == nil || p.Performed.Count.Operator != "GTE" ||
			fmt.Sprint(p.Performed.Count.Value) != "3" || len(p.Children) != 0 {
			t.Fatalf("performed node: %+v", p)
		}
		var agg struct {
			Node struct {
				Condition struct {
					Children []struct {
						Children []struct {
							Performed struct {
								Count     any
								Aggregate struct {
									Function, Property, Operator string
									Value                        any
								}
							}
						}
					}
				}
			}
		}
		c.MustDo(t, `query($id: ID!) { node(id: $id) { ... on Segment { condition { children { children {
			performed { count { operator } aggregate { function property operator value } } } } } } } }`, map[string]any{"id": id}, &agg)
		a := agg.Node.Condition.Children[1].Children[0].Performed
		if a.Count != nil || a.Aggregate.Function != "SUM" || a.Aggregate.Property != "amount" || fmt.Sprint(a.Aggregate.Value) != "100.5" {
			t.Fatalf("aggregate node: %+v", a)
		}
	})
}

// TestPerformedBadInput: each refusal names the field.
func TestPerformedBadInput(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL)
		c := srv.Admin()
		deep := performed("Login", nil)
		for range 4 {
			deep = map[string]any{"not": deep}
		}
		many := []any{}
		for i := range 21 {
			many = append(many, performed(fmt.Sprintf("E%d", i), nil))
		}
		cases := []struct {
			name  string
			cond  map[string]any
			field string
		}{
			{"window under 1s", performed("Login", map[string]any{"within": "500ms"}), "input.condition.performed.within"},
			{"window over 10 years", performed("Login", map[string]any{"within": "4000d"}), "input.condition.performed.within"},
			{"string aggregate operand", performed("Purchase", map[string]any{
				"aggregate": map[string]any{"function": "SUM", "property": "amount", "operator": "GT", "value": "100"}}), "input.condition.performed.aggregate.value"},
			{"nested too deep", deep, "input.condition.not.not.not.not.performed"},
			{"too many", map[string]any{"or": many}, "input.condition.or[20].performed"},
			{"count and aggregate", performed("Purchase", map[string]any{"count": map[string]any{"operator": "GTE", "value": 1},
				"aggregate": map[string]any{"function": "MAX", "property": "amount", "operator": "GT", "value": 1}}), "input.condition.performed"},
		}
		for _, tc := range cases {
			r := c.Do(t, `mutation($in: CreateSegmentInput!) { createSegment(input: $in) { id } }`,
				map[string]any{"in": map[string]any{"name": "Bad " + tc.name, "kind": "DYNAMIC", "condition": tc.cond}})
			if len(r.Errors) != 1 || r.Errors[0].Code() != "BAD_USER_INPUT" || r.Errors[0].Field() != tc.field {
				t.Errorf("%s: errors %+v, want BAD_USER_INPUT on %s", tc.name, r.Errors, tc.field)
			}
		}
		// An unknown aggregate function is refused by the schema.
		r := c.Do(t, `mutation { createSegment(input: {name: "Bad fn", kind: DYNAMIC, condition: {performed: {event: "P",
			aggregate: {function: MEDIAN, property: "a", operator: GT, value: 1}}}}) { id } }`, nil)
		if len(r.Errors) == 0 || !strings.Contains(r.Errors[0].Message, "MEDIAN") {
			t.Errorf("unknown function: %+v", r.Errors)
		}
		// The limit of 20 is the segment's: 15 in the condition and 6 in
		// the exit condition are too many together.
		some := func(n int) map[string]any {
			cs := []any{}
			for i := range n {
				cs = append(cs, performed(fmt.Sprintf("E%d", i), map[string]any{"within": "1d"}))
			}
			return map[string]any{"or": cs}
		}
		r = c.Do(t, `mutation($in: CreateSegmentInput!) { createSegment(input: $in) { id } }`, map[string]any{"in": map[string]any{
			"name": "Bad exit", "kind": "EVENT_TRIGGERED", "triggerEvents": []string{"Sign Up"}, "condition": some(15),
			"exitRules": map[string]any{"onEvents": []string{"Refund"}, "onEventCondition": some(6)}}})
		if len(r.Errors) != 1 || r.Errors[0].Code() != "BAD_USER_INPUT" || r.Errors[0].Field() != "input.exitRules.onEventCondition" {
			t.Errorf("21 performed in condition and exit condition: %+v", r.Errors)
		}
		ok := ingCreateSegment(t, c, map[string]any{"name": "Twenty", "kind": "EVENT_TRIGGERED", "triggerEvents": []string{"Sign Up"},
			"condition": some(14), "exitRules": map[string]any{"onEvents": []string{"Refund"}, "onEventCondition": some(6)}})
		r = c.Do(t, `mutation($id: ID!, $in: UpdateSegmentInput!) { updateSegment(id: $id, input: $in) { id } }`,
			map[string]any{"id": ok, "in": map[string]any{"condition": some(15)}})
		if len(r.Errors) != 1 || r.Errors[0].Code() != "BAD_USER_INPUT" || r.Errors[0].Field() != "input.condition" {
			t.Errorf("a 15-predicate condition beside a 6-predicate exit condition: %+v", r.Errors)
		}
		c.MustDo(t, `mutation($id: ID!) { deleteSegment(id: $id) }`, map[string]any{"id": ok}, nil)
		if n := segmentCount(t, c); n != 0 {
			t.Fatalf("%d segments written by refused inputs", n)
		}
	})
}

// TestThreePurchasesInSevenDays: an EVENT_TRIGGERED segment on "Purchase
// Completed" with "at least 3 purchases over 10 within 7d": the third
// qualifying purchase (the event itself counts) enters; a small one and
// one older than the window do not count; the outcome shows the figure.
func TestThreePurchasesInSevenDays(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL)
		c := srv.Admin()
		seg := ingCreateSegment(t, c, map[string]any{"name": "Frequent buyers", "kind": "EVENT_TRIGGERED",
			"triggerEvents": []string{"Purchase Completed"},
			"condition": performed("Purchase Completed", map[string]any{"where": pred("EVENT", "total", "GT", 10), "within": "7d",
				"count": map[string]any{"operator": "GTE", "value": 3}})})
		now := time.Now().UTC()
		buy := func(msg string, total float64, at time.Time) ingTrackResult {
			return ingTrack(t, c, map[string]any{"event": "Purchase Completed", "userId": "ann", "messageId": msg,
				"properties": map[string]any{"total": total}, "timestamp": at.Format(time.RFC3339Nano)})
		}
		buy("old", 50, now.Add(-8*24*time.Hour)) // outside the window
		buy("p1", 20, now.Add(-2*24*time.Hour))
		r := buy("small", 5, now.Add(-time.Hour)) // where fails
		if len(r.EnteredSegments) != 0 || !strings.Contains(r.Event.Outcomes[0].Reason, "was 1") {
			t.Fatalf("after 1 qualifying purchase: %+v", r.Event.Outcomes)
		}
		r = buy("p2", 30, now.Add(-time.Minute/2))
		if len(r.EnteredSegments) != 0 || !strings.Contains(r.Event.Outcomes[0].Reason, "was 2") {
			t.Fatalf("after 2 qualifying purchases: %+v", r.Event.Outcomes)
		}
		r = buy("p3", 40, now)
		if len(r.EnteredSegments) != 1 || !r.Event.Outcomes[0].Entered {
			t.Fatalf("the third qualifying purchase did not enter: %+v", r.Event.Outcomes)
		}
		if got := memberIDs(t, c, seg); got != "ann" {
			t.Fatalf("members %q", got)
		}
		verifyClean(t, srv)
	})
}

// TestPerformedWindowByTheRealClock: "logged in within 3s" (DYNAMIC) takes
// a user in on the Login (EVENT) and lets them go when the login is 3 s
// old (TIME), within 1 s of that instant, with no event; "no login within
// 3s" does the opposite. A new login brings them back.
func TestPerformedWindowByTheRealClock(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL)
		c := srv.Admin()
		active := ingCreateSegment(t, c, map[string]any{"name": "Just logged in", "kind": "DYNAMIC",
			"condition": performed("Login", map[string]any{"within": "3s"})})
		idle := ingCreateSegment(t, c, map[string]any{"name": "No login lately", "kind": "DYNAMIC",
			"condition": performed("Login", map[string]any{"within": "3s", "count": map[string]any{"operator": "EQ", "value": 0}})})
		nextActive, nextIdle := exitStream(t, srv, active), exitStream(t, srv, idle)
		ingIdentify(t, c, map[string]any{"userId": "ann", "traits": map[string]any{"plan": "pro"}})
		expectChange(t, nextIdle(), "ENTERED", "EVENT", "ann", "") // a new user: their first call
		login := time.Now().UTC()
		ingTrack(t, c, map[string]any{"event": "Login", "userId": "ann", "timestamp": login.Format(time.RFC3339Nano)})
		expectChange(t, nextActive(), "ENTERED", "EVENT", "ann", "")
		expectChange(t, nextIdle(), "EXITED", "EVENT", "ann", "")

		got := nextActive().MembershipChanged
		left := time.Now()
		due := login.Add(3 * time.Second)
		// The reason says what holds now, what it was and when time
		// changed it: the instant the login left the window.
		fellOut := login.Truncate(time.Microsecond).Add(3 * time.Second).Format(time.RFC3339Nano)
		wantLeft := `left: condition failed: performed "Login" at least 1 time within 3s (was 0 of 1 within 3s); it was 1 until the last one fell out of the window at ` + fellOut
		if got.Kind != "EXITED" || got.Source != "TIME" || got.Reason != wantLeft {
			t.Fatalf("change %+v, want ann EXITED by TIME with reason\n%s", got, wantLeft)
		}
		if late := left.Sub(due); late < 0 || late > time.Second {
			t.Fatalf("left %s after the login fell out of the window, want within 1 s", late)
		}
		entered := nextIdle().MembershipChanged
		wantEntered := `entered as time passed: performed "Login" 0 times within 3s; it was 1 until the last one fell out of the window at ` + fellOut
		if entered.Kind != "ENTERED" || entered.Source != "TIME" || entered.Reason != wantEntered {
			t.Fatalf("change %+v, want ann ENTERED by TIME with reason\n%s", entered, wantEntered)
		}
		ingTrack(t, c, map[string]any{"event": "Login", "userId": "ann"})
		expectChange(t, nextActive(), "ENTERED", "EVENT", "ann", "")
		expectChange(t, nextIdle(), "EXITED", "EVENT", "ann", "")
		verifyClean(t, srv)
	})
}

// TestPerformedBackfill: a DYNAMIC segment created after the events counts
// them: "SUM of amount > 100 within 30d" takes in ann (60 + 50) and not bob
// (60, and 500 forty days ago).
func TestPerformedBackfill(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL)
		c := srv.Admin()
		now := time.Now().UTC()
		for i, e := range []struct {
			user   string
			amount float64
			ago    time.Duration
		}{{"ann", 60, 48 * time.Hour}, {"ann", 50, time.Hour}, {"bob", 60, time.Hour}, {"bob", 500, 40 * 24 * time.Hour}} {
			ingTrack(t, c, map[string]any{"event": "Order", "userId": e.user, "messageId": fmt.Sprintf("o%d", i),
				"properties": map[string]any{"amount": e.amount}, "timestamp": now.Add(-e.ago).Format(time.RFC3339Nano)})
		}
		seg := ingCreateSegment(t, c, map[string]any{"name": "Big spenders", "kind": "DYNAMIC",
			"condition": performed("Order", map[string]any{"within": "30d",
				"aggregate": map[string]any{"function": "SUM", "property": "amount", "operator": "GT", "value": 100}})})
		if got := memberIDs(t, c, seg); got != "ann" {
			t.Fatalf("members after the fill: %q, want ann", got)
		}
		// bob's next order passes 100 and takes him in.
		ingTrack(t, c, map[string]any{"event": "Order", "userId": "bob", "properties": map[string]any{"amount": 41}})
		if got := memberIDs(t, c, seg); got != "ann,bob" {
			t.Fatalf("members after bob's order: %q, want ann,bob", got)
		}
		verifyClean(t, srv)
	})
}

// TestPerformedPreviewAndExplain: previewSegment counts behaviours from the
// stored events, for DYNAMIC (now) and EVENT_TRIGGERED (each stored
// trigger event at its timestamp) definitions, writing nothing; explain
// shows a non-member's figure.
func TestPerformedPreviewAndExplain(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL)
		c := srv.Admin()
		now := time.Now().UTC()
		for i, u := range []string{"ann", "ann", "ann", "bob"} {
			ingTrack(t, c, map[string]any{"event": "Purchase", "userId": u, "messageId": fmt.Sprintf("p%d", i),
				"timestamp": now.Add(-time.Duration(i+1) * time.Hour).Format(time.RFC3339Nano)})
		}
		three := performed("Purchase", map[string]any{"within": "7d", "count": map[string]any{"operator": "GTE", "value": 3}})
		preview := func(kind string) (int, []string) {
			in := map[string]any{"name": "Preview", "kind": kind, "condition": three}
			if kind == "EVENT_TRIGGERED" {
				in["triggerEvents"] = []string{"Purchase"}
			}
			var out struct {
				PreviewSegment struct {
					MatchingUsers int
					Sample        []struct{ UserID string }
				}
			}
			c.MustDo(t, `query($in: CreateSegmentInput!) { previewSegment(input: $in) { matchingUsers sample(first: 5) { userId } } }`,
				map[string]any{"in": in}, &out)
			var ids []string
			for _, u := range out.PreviewSegment.Sample {
				ids = append(ids, u.UserID)
			}
			return out.PreviewSegment.MatchingUsers, ids
		}
		for _, kind := range []string{"DYNAMIC", "EVENT_TRIGGERED"} {
			if n, ids := preview(kind); n != 1 || len(ids) != 1 || ids[0] != "ann" {
				t.Fatalf("preview %s: %d %v, want ann alone", kind, n, ids)
			}
		}
		if n := segmentCount(t, c); n != 0 {
			t.Fatalf("preview wrote %d segments", n)
		}
		seg := ingCreateSegment(t, c, map[string]any{"name": "Three purchases", "kind": "DYNAMIC", "condition": three})
		ex := ingExplain(t, c, seg, "bob")
		if ex.Member || !strings.Contains(ex.Reason, `performed "Purchase" at least 3 times within 7d (was 1 of 3 within 7d)`) {
			t.Fatalf("explain bob: %+v", ex)
		}
	})
}

// TestBehaviorBackfillsQuery: behaviorBackfills answers an ADMIN or READ
// key (empty when no build runs) and refuses a WRITE key, over HTTP.
func TestBehaviorBackfillsQuery(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL)
		var out struct{ BehaviorBackfills []struct{ SegmentID string } }
		srv.Admin().MustDo(t, `{ behaviorBackfills { segmentId segmentName usersDone usersTotal startedAt } }`, nil, &out)
		if len(out.BehaviorBackfills) != 0 {
			t.Fatalf("behaviorBackfills with none running: %+v", out.BehaviorBackfills)
		}
		w := srv.Client(ingKey(t, srv, auth.RoleWrite))
		r := w.Do(t, `{ behaviorBackfills { segmentId } }`, nil)
		if len(r.Errors) == 0 || r.Errors[0].Code() != "FORBIDDEN" {
			t.Fatalf("a WRITE key reading behaviorBackfills: %+v", r.Errors)
		}
	})
}

// TestPerformedWithWhenConditionFails: members of a whenConditionFails
// segment whose condition has a behaviour keep their place when a trait
// change or a RECONCILE re-checks it while the behaviour still holds (both
// once judged it false: a re-check without the states), and leave when
// the trait fails it.
func TestPerformedWithWhenConditionFails(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL)
		c := srv.Admin()
		seg := ingCreateSegment(t, c, map[string]any{"name": "Pro buyers", "kind": "EVENT_TRIGGERED",
			"triggerEvents": []string{"Purchase"}, "exitRules": map[string]any{"whenConditionFails": true},
			"condition": map[string]any{"and": []any{pred("USER", "plan", "EQ", "pro"),
				performed("Purchase", map[string]any{"within": "30d"})}}})
		for _, u := range []string{"ann", "bob"} {
			ingIdentify(t, c, map[string]any{"userId": u, "traits": map[string]any{"plan": "pro"}})
			ingTrack(t, c, map[string]any{"event": "Purchase", "userId": u})
		}
		if got := memberIDs(t, c, seg); got != "ann,bob" {
			t.Fatalf("members after the purchases: %q", got)
		}
		// A trait change the condition reads, that keeps it true.
		ingIdentify(t, c, map[string]any{"userId": "ann", "traits": map[string]any{"plan": "pro", "seats": 3}})
		ingIdentify(t, c, map[string]any{"userId": "ann", "traits": map[string]any{"plan": "pro"}})
		if got := memberIDs(t, c, seg); got != "ann,bob" {
			t.Fatalf("members after ann's trait change: %q", got)
		}
		verifyClean(t, srv)
		c.MustDo(t, `mutation($id: ID!) { updateSegment(id: $id, input: {name: "Pro buyers (reconciled)"}, reevaluate: RECONCILE) { id } }`,
			map[string]any{"id": seg}, nil)
		if got := memberIDs(t, c, seg); got != "ann,bob" {
			t.Fatalf("members after RECONCILE: %q", got)
		}
		ingIdentify(t, c, map[string]any{"userId": "bob", "traits": map[string]any{"plan": "free"}})
		if got := memberIDs(t, c, seg); got != "ann" {
			t.Fatalf("members after bob left pro: %q", got)
		}
		verifyClean(t, srv)
	})
}

// TestPerformedInExitEventCondition: "leave on a purchase once it is the
// 3rd within 7d" (exitRules.onEventCondition with performed): the exit
// event counts in its own predicate; an old purchase does not; the state
// of a segment created after the events is built from them; RECONCILE
// judges stored exit events as ingestion did.
func TestPerformedInExitEventCondition(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL)
		c := srv.Admin()
		now := time.Now().UTC()
		buy := func(user, msg string, at time.Time) ingTrackResult {
			return ingTrack(t, c, map[string]any{"event": "Purchase Completed", "userId": user, "messageId": msg,
				"timestamp": at.Format(time.RFC3339Nano)})
		}
		// bob bought twice before the segment existed.
		buy("bob", "b1", now.Add(-48*time.Hour))
		buy("bob", "b2", now.Add(-24*time.Hour))
		third := performed("Purchase Completed", map[string]any{"within": "7d", "count": map[string]any{"operator": "GTE", "value": 3}})
		seg := ingCreateSegment(t, c, map[string]any{"name": "Trial", "kind": "EVENT_TRIGGERED", "triggerEvents": []string{"Sign Up"},
			"exitRules": map[string]any{"onEvents": []string{"Purchase Completed"}, "onEventCondition": third}})
		var got struct {
			Node struct {
				ExitRules struct{ OnEventConditionText string }
			}
		}
		c.MustDo(t, `query($id: ID!) { node(id: $id) { ... on Segment { exitRules { onEventConditionText } } } }`, map[string]any{"id": seg}, &got)
		if want := `performed "Purchase Completed" at least 3 times within 7d`; got.Node.ExitRules.OnEventConditionText != want {
			t.Fatalf("onEventConditionText %q, want %q", got.Node.ExitRules.OnEventConditionText, want)
		}
		next := exitStream(t, srv, seg)
		for _, u := range []string{"ann", "bob"} {
			ingTrack(t, c, map[string]any{"event": "Sign Up", "userId": u})
			expectChange(t, next(), "ENTERED", "EVENT", u, "")
		}
		buy("ann", "a0", now.Add(-10*24*time.Hour)) // older than the window
		buy("ann", "a1", now.Add(-time.Hour))
		buy("ann", "a2", now.Add(-time.Minute))
		if got := memberIDs(t, c, seg); got != "ann,bob" {
			t.Fatalf("members after ann's 2 purchases in the window: %q", got)
		}
		// bob's third, counted with the two stored before the segment.
		r := buy("bob", "b3", now)
		if len(r.Event.Outcomes) == 0 || r.Event.Outcomes[0].Reason != `left on event "Purchase Completed"` {
			t.Fatalf("bob's third purchase: outcomes %+v", r.Event.Outcomes)
		}
		expectChange(t, next(), "EXITED", "EVENT", "bob", `left on event "Purchase Completed"`)
		buy("ann", "a3", now)
		expectChange(t, next(), "EXITED", "EVENT", "ann", `left on event "Purchase Completed"`)
		verifyClean(t, srv)

		// A segment that takes the exit rules later, with RECONCILE: cat
		// made 3 purchases after entering, dan 2 (and one long ago); ann
		// and bob, taken in from their stored sign-ups, none since.
		late := ingCreateSegment(t, c, map[string]any{"name": "Trial 2", "kind": "EVENT_TRIGGERED", "triggerEvents": []string{"Sign Up"}})
		for _, u := range []string{"cat", "dan"} {
			ingTrack(t, c, map[string]any{"event": "Sign Up", "userId": u})
		}
		buy("dan", "d0", now.Add(-30*24*time.Hour))
		for i := range 3 {
			buy("cat", fmt.Sprintf("c%d", i), now.Add(-time.Duration(3-i)*time.Hour))
			if i < 2 {
				buy("dan", fmt.Sprintf("d%d", i+1), now.Add(-time.Duration(3-i)*time.Hour))
			}
		}
		c.MustDo(t, `mutation($id: ID!, $in: UpdateSegmentInput!) { updateSegment(id: $id, input: $in, reevaluate: RECONCILE) { id } }`,
			map[string]any{"id": late, "in": map[string]any{"exitRules": map[string]any{"onEvents": []string{"Purchase Completed"}, "onEventCondition": third}}}, nil)
		if got := memberIDs(t, c, late); got != "ann,bob,dan" {
			t.Fatalf("members after RECONCILE: %q, want ann,bob,dan (cat's 3rd purchase is an exit event)", got)
		}
		buy("dan", "d3", now)
		if got := memberIDs(t, c, late); got != "ann,bob" {
			t.Fatalf("members after dan's 3rd purchase: %q", got)
		}
		verifyClean(t, srv)
		// Deleting the segments leaves no state behind.
		for _, id := range []string{seg, late} {
			c.MustDo(t, `mutation($id: ID!) { deleteSegment(id: $id) }`, map[string]any{"id": id}, nil)
		}
		verifyClean(t, srv)
	})
}
