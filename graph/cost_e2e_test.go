package graph_test

// Query cost over real HTTP and websockets: the attacks of issue 12 (an
// exponential fragment document, nested pages, aliased growth series and
// explanations) are refused with COST_LIMIT, with the cost and the limit,
// before anything runs, on any key; every README example and GraphiQL's
// introspection query run under the default limit.

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/segmentd/segmentd/auth"
	"github.com/segmentd/segmentd/internal/testenv"
	"github.com/segmentd/segmentd/server"
)

// fragmentBomb is 41 fragments on typ, each of the first 40 spreading the
// next twice (2^40 spreads), under the selection root: about 1.6 KB.
func fragmentBomb(operation, root, typ, leaf string) string {
	var b strings.Builder
	b.WriteString(operation + " { " + root + " }\n")
	for i := range 40 {
		fmt.Fprintf(&b, "fragment F%d on %s { ...F%d ...F%d }\n", i, typ, i+1, i+1)
	}
	fmt.Fprintf(&b, "fragment F40 on %s { %s }\n", typ, leaf)
	return b.String()
}

// nestedPages is a page of 200 members, each with their segments' pages of
// 1,000 members and their traits.
const nestedPages = `query($id: ID!) { node(id: $id) { ... on Segment { members(first: 200) { edges { node { user { memberships {
  segment { members(first: 1000) { edges { node { user { userId traits } } } } } } } } } } } } }`

// aliases repeats one selection n times under aliases a0, a1, ...
func aliases(n int, sel string) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "a%d: %s\n", i, sel)
	}
	return b.String()
}

// costRefused checks that r is exactly one COST_LIMIT error with its cost
// over the default limit, and no data.
func costRefused(t *testing.T, label string, r *testenv.Response) {
	t.Helper()
	if len(r.Errors) != 1 || r.Errors[0].Code() != "COST_LIMIT" {
		t.Errorf("%s: HTTP %d errors %+v; want one COST_LIMIT", label, r.Status, r.Errors)
		return
	}
	checkCostExtensions(t, label, r.Errors[0])
	noData(t, label, r)
}

func checkCostExtensions(t *testing.T, label string, e testenv.GQLError) {
	t.Helper()
	cost, _ := e.Extensions["cost"].(float64)
	limit, _ := e.Extensions["limit"].(float64)
	if limit != server.DefaultMaxQueryCost || cost <= limit {
		t.Errorf("%s: extensions %v; want limit %d and a cost above it", label, e.Extensions, server.DefaultMaxQueryCost)
	}
}

// TestQueryCostAttacks: each attack is refused with COST_LIMIT before it
// runs (a refused mutation writes nothing), on HTTP, on any key, and the
// server keeps serving.
func TestQueryCostAttacks(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL)
		admin := srv.Admin()
		segID := createStatic(t, admin, "Static audience")
		var added struct{ AddUsersToSegment struct{ Added int } }
		admin.MustDo(t, `mutation($s: ID!) { addUsersToSegment(segmentId: $s, userIds: ["u-1", "u-2", "u-3"]) { added } }`,
			map[string]any{"s": segID}, &added)
		_, readKey := newKey(t, srv, "dashboard", auth.RoleRead)
		_, writeKey := newKey(t, srv, "web tracker", auth.RoleWrite)
		reader, writer := srv.Client(readKey), srv.Client(writeKey)
		track := map[string]any{"in": map[string]any{"event": "Sign Up", "userId": "u-9", "messageId": "cost-1"}}

		for _, c := range []*testenv.Client{admin, reader} {
			start := time.Now()
			costRefused(t, "41 fragments, each spreading the next twice",
				c.Do(t, fragmentBomb("query", "segments(first: 1) { edges { node { ...F0 } } }", "Segment", "name"), nil))
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("the fragment document took %s to refuse", d)
			}
			costRefused(t, "pages of members in pages of members", c.Do(t, nestedPages, map[string]any{"id": segID}))
			costRefused(t, "200 aliased growth series of 9,999 hours", c.Do(t, `query($id: ID!) { node(id: $id) { ... on Segment { `+
				aliases(200, `growth(interval: HOUR, from: "2024-01-01T00:00:00Z", to: "2025-02-20T15:00:00Z") { start entered exited total }`)+` } } }`,
				map[string]any{"id": segID}))
			costRefused(t, "500 aliased explainMembership", c.Do(t, `query($s: ID!) { `+
				aliases(500, `explainMembership(segmentId: $s, userId: "u-1") { member reason }`)+` }`, map[string]any{"s": segID}))
		}
		// WRITE keys and mutations: refused before the mutation runs.
		before := eventCount(t, admin)
		for _, c := range []*testenv.Client{admin, writer} {
			costRefused(t, "fragment document under trackEvent", c.Do(t, fragmentBomb("mutation($in: TrackInput!)",
				"trackEvent(input: $in) { ...F0 }", "TrackResult", "duplicate"), track))
			costRefused(t, "pages under trackEvent", c.Do(t, `mutation($in: TrackInput!) { trackEvent(input: $in) { event { outcomes {
  segment { members(first: 1000) { edges { node { user { userId traits memberships { segment { name } } } } } } } } } } }`, track))
		}
		costRefused(t, "trackEvents with 1,000 results of pages", admin.Do(t, `mutation($ins: [TrackInput!]!) { trackEvents(inputs: $ins) {
  results { enteredSegments { members(first: 100) { edges { node { user { userId } } } } } } } }`, map[string]any{"ins": trackInputs(1000)}))
		if n := eventCount(t, admin); n != before {
			t.Errorf("refused mutations stored %d events", n-before)
		}
		if got := members(t, admin, segID); len(got) != 3 {
			t.Errorf("members after the attacks: %v", got)
		}
		// The same shapes, small enough, run.
		var out struct {
			Node struct {
				Members struct {
					Edges []struct {
						Node struct{ User struct{ UserID string } }
					}
				}
			}
		}
		reader.MustDo(t, `query($id: ID!) { node(id: $id) { ... on Segment { members(first: 10) { edges { node { user { userId memberships {
  segment { members(first: 10) { edges { node { user { userId } } } } } } } } } } } } }`, map[string]any{"id": segID}, &out)
		if len(out.Node.Members.Edges) != 3 {
			t.Errorf("a small nested page: %+v", out)
		}
	})
}

func trackInputs(n int) []map[string]any {
	ins := make([]map[string]any, n)
	for i := range ins {
		ins[i] = map[string]any{"event": "Page", "userId": fmt.Sprintf("u-%d", i), "messageId": fmt.Sprintf("batch-%d", i)}
	}
	return ins
}

// TestQueryCostOnWebsockets: every operation on a websocket is costed:
// queries and subscriptions over the limit end with COST_LIMIT, on both
// subprotocols, and the socket keeps serving.
func TestQueryCostOnWebsockets(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL)
		segID := createStatic(t, srv.Admin(), "Static audience")
		_, readKey := newKey(t, srv, "dashboard", auth.RoleRead)
		for _, proto := range testenv.Subprotocols {
			ws := srv.DialWS(t, readKey, proto)
			ops := map[string]string{
				"fragment document": fragmentBomb("query", "segments(first: 1) { edges { node { ...F0 } } }", "Segment", "name"),
				"subscription of pages": `subscription { membershipChanged { segment { members(first: 1000) { edges { node { user {
  memberships { segment { members(first: 1000) { edges { node { reason } } } } } } } } } } } }`,
				"subscription through fragments": fragmentBomb("subscription", "membershipChanged { ...F0 }", "MembershipChange", "reason"),
			}
			for name, q := range ops {
				ws.Subscribe(t, name, q, nil)
				errs := ws.NextError(t, name, 10*time.Second)
				if len(errs) != 1 || errs[0].Code() != "COST_LIMIT" {
					t.Errorf("%s %s: %+v; want COST_LIMIT", proto, name, errs)
					continue
				}
				checkCostExtensions(t, proto+" "+name, errs[0])
				skipComplete(t, ws, name)
			}
			ws.Subscribe(t, "ok", `query($id: ID!) { node(id: $id) { id } }`, map[string]any{"id": segID})
			var got struct{ Node struct{ ID string } }
			ws.NextData(t, "ok", 5*time.Second, &got)
			if got.Node.ID != segID {
				t.Errorf("%s: a cheap query after the refusals: %+v", proto, got)
			}
		}
	})
}

// skipComplete consumes the "complete" that may follow an operation's
// error (gqlgen sends one on graphql-ws).
func skipComplete(t *testing.T, ws *testenv.WSClient, id string) {
	t.Helper()
	select {
	case m := <-ws.Messages:
		if m.Type != "complete" || m.ID != id {
			t.Fatalf("after the error of %s: %s %s %s", id, m.Type, m.ID, m.Payload)
		}
	case <-time.After(200 * time.Millisecond):
	}
}

// introspectionQuery is what GraphiQL 4 sends (graphql-js
// getIntrospectionQuery with its options on).
const introspectionQuery = `query IntrospectionQuery {
  __schema {
    description
    queryType { name kind }
    mutationType { name kind }
    subscriptionType { name kind }
    types { ...FullType }
    directives { name description isRepeatable locations args(includeDeprecated: true) { ...InputValue } }
  }
}
fragment FullType on __Type {
  kind name description specifiedByURL isOneOf
  fields(includeDeprecated: true) { name description args(includeDeprecated: true) { ...InputValue } type { ...TypeRef } isDeprecated deprecationReason }
  inputFields(includeDeprecated: true) { ...InputValue }
  interfaces { ...TypeRef }
  enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason }
  possibleTypes { ...TypeRef }
}
fragment InputValue on __InputValue { name description type { ...TypeRef } defaultValue isDeprecated deprecationReason }
fragment TypeRef on __Type {
  kind name
  ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name
    ofType { kind name ofType { kind name ofType { kind name } } } } } } } } }
}`

// TestQueryCostAllowsTheExamples: GraphiQL's introspection and every
// GraphQL example of the README run under the default limit.
func TestQueryCostAllowsTheExamples(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL)
		admin := srv.Admin()
		seg := createSegment(t, admin, seedSegment())
		var camp struct{ CreateCampaign struct{ ID string } }
		admin.MustDo(t, `mutation($s: ID!) { createCampaign(input: {name: "Welcome Mission", segmentId: $s, status: ACTIVE}) { id status } }`,
			map[string]any{"s": seg.ID}, &camp)
		vars := map[string]any{"s": seg.ID, "c": camp.CreateCampaign.ID}
		examples := []string{
			introspectionQuery,
			`mutation($in: TrackInput!) { trackEvent(input: $in) { duplicate enteredSegments { name } activatedCampaigns { name } event { outcomes { entered reason } } } }`,
			`{ events(first: 20, where: {name: "Sign Up"}) { edges { node { messageId userId timestamp properties outcomes { segment { name } entered reason } } } } }`,
			`query($s: ID!) { explainMembership(segmentId: $s, userId: "u-7") { member reason lastEvaluatedEvent { messageId } } }`,
			`query($s: ID!) { node(id: $s) { ... on Segment {
    totalUsers
    stats(timeZone: "Asia/Kolkata") { totalUsers newThisWeek newThisMonth newLast7Days newLast30Days }
    growth(interval: DAY, from: "2025-09-01T00:00:00Z", to: "2025-10-01T00:00:00Z", timeZone: "America/Los_Angeles") { start entered exited total }
    membersAt(time: "2025-09-15T12:00:00Z", first: 100) { totalCount edges { cursor node { user { userId } enteredAt source reason } } } } } }`,
			`{ segments(first: 20, orderBy: {field: TOTAL_USERS, direction: DESC}) { edges { cursor node { name totalUsers stats { newLast7Days } } } pageInfo { hasNextPage endCursor } } }`,
			`{ segments { totalCount edges { node { id name kind conditionText triggerEvents createdAt } } } }`,
			`query($s: ID!) { node(id: $s) { ... on Segment { members(first: 1000) { totalCount edges { cursor node { enteredAt source reason user { userId traits } } } } } } }`,
			`query($s: ID!) { node(id: $s) { ... on Segment { growth(interval: HOUR, from: "2024-01-01T00:00:00Z", to: "2025-02-20T15:00:00Z") { start entered exited total } } } }`,
			`query($c: ID!) { node(id: $c) { ... on Campaign { name status activationCount activations(first: 100) { edges { node { user { userId } activatedAt } } } } } }`,
		}
		track := map[string]any{"in": map[string]any{"event": "Sign Up", "userId": "u-42", "messageId": "m-1",
			"traits": map[string]any{"Sign Up Date": "2025-03-01", "Channel": "Google"}, "properties": map[string]any{"Reward Amount": 72}}}
		for i, q := range examples {
			v := vars
			if strings.HasPrefix(q, "mutation") {
				v = track
			}
			if r := admin.Do(t, q, v); len(r.Errors) != 0 {
				t.Errorf("example %d: %+v\n%s", i, r.Errors, q)
			}
		}
		ws := srv.DialWS(t, testenv.AdminKey, testenv.TransportWS)
		ws.Subscribe(t, "1", `subscription($s: ID!) { membershipChanged(segmentId: $s) { cursor kind source at user { userId } event { messageId } reason } }`, vars)
		ws.Subscribe(t, "2", `subscription { eventReceived(name: "Sign Up") { messageId userId properties outcomes { segment { name } entered reason } } }`, nil)
		ws.Subscribe(t, "3", `subscription($c: ID) { campaignActivated(campaignId: $c) { user { userId } activatedAt } }`, map[string]any{"c": camp.CreateCampaign.ID})
		// None is refused: no error or complete (an activation of u-42 may
		// still arrive on the PostgreSQL broker).
		deadline := time.After(300 * time.Millisecond)
		for done := false; !done; {
			select {
			case m := <-ws.Messages:
				if m.Type != "next" {
					t.Errorf("subscription %s: %s %s", m.ID, m.Type, m.Payload)
				}
			case <-deadline:
				done = true
			}
		}
	})
}
