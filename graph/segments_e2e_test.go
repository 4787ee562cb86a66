package graph_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/segmentd/segmentd/auth"
	"github.com/segmentd/segmentd/internal/testenv"
	"github.com/segmentd/segmentd/server"
)

// mySeedCondition is the README's example:
// user."Sign Up Date" > 2025-01-01 AND (user.Channel = "Facebook" OR event."Reward Amount" > 50)
func mySeedCondition() map[string]any {
	return map[string]any{"and": []any{
		map[string]any{"scope": "USER", "property": "Sign Up Date", "operator": "GT", "value": "2025-01-01"},
		map[string]any{"or": []any{
			map[string]any{"scope": "USER", "property": "Channel", "operator": "EQ", "value": "Facebook"},
			map[string]any{"scope": "EVENT", "property": "Reward Amount", "operator": "GT", "value": 50},
		}},
	}}
}

const mySeedText = `user."Sign Up Date" > "2025-01-01" AND (user.Channel = "Facebook" OR event."Reward Amount" > 50)`

const conditionFields = `kind scope property operator value`

// conditionQuery reads a tree three levels deep, enough for the seed.
var conditionQuery = fmt.Sprintf(`condition { %[1]s children { %[1]s children { %[1]s children { %[1]s } } } }`, conditionFields)

func createSeed(t *testing.T, c *testenv.Client) (segID string) {
	t.Helper()
	var out struct{ CreateSegment struct{ ID string } }
	c.MustDo(t, `mutation($in: CreateSegmentInput!) { createSegment(input: $in) { id } }`, map[string]any{"in": map[string]any{
		"name": "Activation Experiment - New Users", "kind": "EVENT_TRIGGERED",
		"triggerEvents": []string{"Sign Up"}, "condition": mySeedCondition(),
	}}, &out)
	return out.CreateSegment.ID
}

// toInput turns a Condition read back into the input shape, dropping the
// nulls and empty children a predicate or group reads back with.
func toInput(c map[string]any) map[string]any {
	out := map[string]any{}
	switch c["kind"] {
	case "AND", "OR":
		var kids []any
		for _, k := range c["children"].([]any) {
			kids = append(kids, toInput(k.(map[string]any)))
		}
		out[strings.ToLower(c["kind"].(string))] = kids
	case "NOT":
		out["not"] = toInput(c["children"].([]any)[0].(map[string]any))
	default:
		for _, f := range []string{"scope", "property", "operator", "value"} {
			out[f] = c[f]
		}
	}
	return out
}

func TestSegmentLifecycle(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL)
		c := srv.Admin()
		id := createSeed(t, c)

		// Read back: the tree round-trips identically, with its text.
		var got struct {
			Node struct {
				Name, Kind    string
				TriggerEvents []string
				ConditionText string
				Condition     map[string]any
			}
		}
		c.MustDo(t, `query($id: ID!) { node(id: $id) { ... on Segment { name kind triggerEvents conditionText `+conditionQuery+` } } }`,
			map[string]any{"id": id}, &got)
		if got.Node.Name != "Activation Experiment - New Users" || got.Node.Kind != "EVENT_TRIGGERED" ||
			!reflect.DeepEqual(got.Node.TriggerEvents, []string{"Sign Up"}) || got.Node.ConditionText != mySeedText {
			t.Fatalf("read back: %+v", got.Node)
		}
		want, _ := json.Marshal(mySeedCondition())
		back, _ := json.Marshal(toInput(got.Node.Condition))
		if string(want) != string(back) {
			t.Fatalf("condition round trip:\nsent %s\nread %s", want, back)
		}

		// Update: rename, new trigger events, replace the condition, then clear it.
		var upd struct {
			UpdateSegment struct {
				Name          string
				TriggerEvents []string
				ConditionText *string
			}
		}
		c.MustDo(t, `mutation($id: ID!) { updateSegment(id: $id, input: {name: "Renamed", triggerEvents: ["Sign Up", "Purchase Completed"],
			condition: {scope: EVENT, property: "Reward Amount", operator: BETWEEN, value: [10, 20]}}) { name triggerEvents conditionText } }`,
			map[string]any{"id": id}, &upd)
		if upd.UpdateSegment.Name != "Renamed" || len(upd.UpdateSegment.TriggerEvents) != 2 ||
			upd.UpdateSegment.ConditionText == nil || *upd.UpdateSegment.ConditionText != `event."Reward Amount" between 10 and 20` {
			t.Fatalf("update: %+v %v", upd.UpdateSegment, deref(upd.UpdateSegment.ConditionText))
		}
		c.MustDo(t, `mutation($id: ID!) { updateSegment(id: $id, input: {clearCondition: true}) { name triggerEvents conditionText } }`,
			map[string]any{"id": id}, &upd)
		if upd.UpdateSegment.ConditionText != nil {
			t.Fatalf("cleared condition still reads %q", *upd.UpdateSegment.ConditionText)
		}

		// Delete: refused while an ACTIVE campaign uses it, allowed after.
		var camp struct{ CreateCampaign struct{ ID string } }
		c.MustDo(t, `mutation($s: ID!) { createCampaign(input: {name: "Welcome Mission", segmentId: $s, status: ACTIVE}) { id } }`,
			map[string]any{"s": id}, &camp)
		e := c.MustFail(t, "CONFLICT", `mutation($id: ID!) { deleteSegment(id: $id) }`, map[string]any{"id": id})
		if err := e.Contains("Welcome Mission"); err != nil {
			t.Fatal(err)
		}
		c.MustDo(t, `mutation($c: ID!) { updateCampaign(id: $c, input: {status: PAUSED}) { status } }`, map[string]any{"c": camp.CreateCampaign.ID}, nil)
		var del struct{ DeleteSegment string }
		c.MustDo(t, `mutation($id: ID!) { deleteSegment(id: $id) }`, map[string]any{"id": id}, &del)
		if del.DeleteSegment != id {
			t.Fatalf("deleteSegment = %q", del.DeleteSegment)
		}
		var after struct {
			Node struct {
				Segment *struct{ ID string }
				Status  string
			}
		}
		c.MustDo(t, `query($c: ID!) { node(id: $c) { ... on Campaign { status segment { id } } } }`,
			map[string]any{"c": camp.CreateCampaign.ID}, &after)
		if after.Node.Segment != nil || after.Node.Status != "PAUSED" {
			t.Fatalf("campaign after its segment was deleted: %+v", after)
		}
		c.MustFail(t, "NOT_FOUND", `query($id: ID!) { node(id: $id) { id } }`, map[string]any{"id": id})
		c.MustFail(t, "NOT_FOUND", `mutation($id: ID!) { deleteSegment(id: $id) }`, map[string]any{"id": id})
	})
}

func deref(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}

func TestSegmentListPagingFilteringOrdering(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL)
		c := srv.Admin()
		names := []string{"Gamma", "alpha", "Beta", "Delta", "Epsilon", "Zeta", "Eta"}
		for _, n := range names {
			c.MustDo(t, `mutation($n: String!) { createSegment(input: {name: $n, kind: STATIC}) { id } }`, map[string]any{"n": n}, nil)
		}
		c.MustDo(t, `mutation { createSegment(input: {name: "Triggered", kind: EVENT_TRIGGERED, triggerEvents: ["x"]}) { id } }`, nil, nil)

		type page struct {
			Segments struct {
				TotalCount int
				PageInfo   struct {
					HasNextPage, HasPreviousPage bool
					StartCursor, EndCursor       *string
				}
				Edges []struct{ Node struct{ Name string } }
			}
		}
		q := `query($first: Int, $after: Cursor, $last: Int, $before: Cursor) { segments(first: $first, after: $after, last: $last, before: $before,
			where: {kind: STATIC}, orderBy: {field: NAME, direction: ASC}) {
			totalCount pageInfo { hasNextPage hasPreviousPage startCursor endCursor } edges { node { name } } } }`
		var seen []string
		vars := map[string]any{"first": 3}
		for i := 0; ; i++ {
			var p page
			c.MustDo(t, q, vars, &p)
			if p.Segments.TotalCount != 7 {
				t.Fatalf("totalCount = %d, want 7 (STATIC only)", p.Segments.TotalCount)
			}
			for _, e := range p.Segments.Edges {
				seen = append(seen, e.Node.Name)
			}
			if !p.Segments.PageInfo.HasNextPage {
				break
			}
			if i > 5 {
				t.Fatal("paging does not end")
			}
			vars = map[string]any{"first": 3, "after": *p.Segments.PageInfo.EndCursor}
		}
		// Byte order: upper case before lower case.
		if got := strings.Join(seen, ","); got != "Beta,Delta,Epsilon,Eta,Gamma,Zeta,alpha" {
			t.Fatalf("pages = %s", got)
		}
		var last page
		c.MustDo(t, q, map[string]any{"last": 2}, &last)
		if len(last.Segments.Edges) != 2 || last.Segments.Edges[1].Node.Name != "alpha" || !last.Segments.PageInfo.HasPreviousPage {
			t.Fatalf("last page: %+v", last.Segments)
		}
		var before page
		c.MustDo(t, q, map[string]any{"last": 2, "before": *last.Segments.PageInfo.StartCursor}, &before)
		if len(before.Segments.Edges) != 2 || before.Segments.Edges[0].Node.Name != "Eta" || before.Segments.Edges[1].Node.Name != "Gamma" {
			t.Fatalf("page before: %+v", before.Segments.Edges)
		}
		var filtered page
		c.MustDo(t, `{ segments(where: {nameContains: "eta"}) { totalCount edges { node { name } } } }`, nil, &filtered)
		if filtered.Segments.TotalCount != 2 { // Beta, Zeta: case-sensitive on both stores, not Eta
			t.Fatalf("nameContains eta: %+v", filtered.Segments)
		}
	})
}

func TestCampaignLifecycle(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL)
		c := srv.Admin()
		segID := createSeed(t, c)
		type campaign struct {
			ID, Name, Status string
			Description      *string
			Segment          *struct{ ID string }
		}
		var created struct{ CreateCampaign campaign }
		c.MustDo(t, `mutation { createCampaign(input: {name: "Draft one", description: "d"}) { id name status description segment { id } } }`, nil, &created)
		cp := created.CreateCampaign
		if cp.Status != "DRAFT" || cp.Segment != nil || deref(cp.Description) != "d" {
			t.Fatalf("created: %+v", cp)
		}
		e := c.MustFail(t, "NOT_FOUND", `mutation { createCampaign(input: {name: "x", segmentId: "seg_missing"}) { id } }`, nil)
		if e.Field() != "input.segmentId" {
			t.Fatalf("field = %q", e.Field())
		}
		var upd struct{ UpdateCampaign campaign }
		c.MustDo(t, `mutation($id: ID!, $s: ID!) { updateCampaign(id: $id, input: {segmentId: $s, status: ACTIVE, name: "Welcome Mission"}) { id name status segment { id } } }`,
			map[string]any{"id": cp.ID, "s": segID}, &upd)
		if upd.UpdateCampaign.Status != "ACTIVE" || upd.UpdateCampaign.Segment == nil || upd.UpdateCampaign.Segment.ID != segID {
			t.Fatalf("update: %+v", upd.UpdateCampaign)
		}
		var seg struct {
			Node struct{ Campaigns []struct{ Name string } }
		}
		c.MustDo(t, `query($s: ID!) { node(id: $s) { ... on Segment { campaigns { name } } } }`, map[string]any{"s": segID}, &seg)
		if len(seg.Node.Campaigns) != 1 || seg.Node.Campaigns[0].Name != "Welcome Mission" {
			t.Fatalf("Segment.campaigns = %+v", seg.Node.Campaigns)
		}
		var list struct {
			Campaigns struct{ TotalCount int }
		}
		c.MustDo(t, `{ campaigns(where: {status: ACTIVE}) { totalCount } }`, nil, &list)
		if list.Campaigns.TotalCount != 1 {
			t.Fatalf("ACTIVE campaigns = %d", list.Campaigns.TotalCount)
		}
		c.MustDo(t, `mutation($id: ID!) { updateCampaign(id: $id, input: {clearSegment: true, status: ENDED}) { id } }`, map[string]any{"id": cp.ID}, nil)
		c.MustFail(t, "BAD_USER_INPUT", `mutation($id: ID!) { updateCampaign(id: $id, input: {status: ACTIVE}) { id } }`, map[string]any{"id": cp.ID})
		var del struct{ DeleteCampaign string }
		c.MustDo(t, `mutation($id: ID!) { deleteCampaign(id: $id) }`, map[string]any{"id": cp.ID}, &del)
		c.MustDo(t, `{ campaigns { totalCount } }`, nil, &list)
		if del.DeleteCampaign != cp.ID || list.Campaigns.TotalCount != 0 {
			t.Fatalf("after delete: %d campaigns", list.Campaigns.TotalCount)
		}
	})
}

// TestSegmentValidation sends each invalid definition over HTTP and checks
// the code, the path of the bad field, and that nothing was written.
func TestSegmentValidation(t *testing.T) {
	deep := map[string]any{"scope": "EVENT", "property": "p", "operator": "EXISTS"}
	for i := 0; i < 10; i++ {
		deep = map[string]any{"not": deep}
	}
	var many []any
	for i := 0; i < 200; i++ {
		many = append(many, map[string]any{"scope": "EVENT", "property": "p", "operator": "EXISTS"})
	}
	pred := func(op string, value any) map[string]any {
		return map[string]any{"scope": "EVENT", "property": "p", "operator": op, "value": value}
	}
	cases := []struct {
		name  string
		input map[string]any
		field string
	}{
		{"empty group", map[string]any{"condition": map[string]any{"and": []any{}}}, "input.condition.and"},
		{"two kinds of group", map[string]any{"condition": map[string]any{"and": []any{pred("EXISTS", nil)}, "or": []any{pred("EXISTS", nil)}}}, "input.condition"},
		{"group and predicate", map[string]any{"condition": map[string]any{"and": []any{pred("EXISTS", nil)}, "scope": "EVENT"}}, "input.condition"},
		{"missing scope", map[string]any{"condition": map[string]any{"or": []any{pred("EXISTS", nil), map[string]any{"property": "p", "operator": "EXISTS"}}}}, "input.condition.or[1].scope"},
		{"missing property", map[string]any{"condition": map[string]any{"scope": "USER", "operator": "EXISTS"}}, "input.condition.property"},
		{"missing operator", map[string]any{"condition": map[string]any{"scope": "USER", "property": "p"}}, "input.condition.operator"},
		{"BETWEEN with one value", map[string]any{"condition": map[string]any{"or": []any{pred("EXISTS", nil), pred("BETWEEN", []any{1})}}}, "input.condition.or[1].value"},
		{"IN without a list", map[string]any{"condition": pred("IN", "a")}, "input.condition.value"},
		{"WITHIN_LAST not a duration", map[string]any{"condition": pred("WITHIN_LAST", "7 days")}, "input.condition.value"},
		{"MATCHES bad RE2", map[string]any{"condition": pred("MATCHES", "(")}, "input.condition.value"},
		{"more than 10 levels", map[string]any{"condition": deep}, ""},
		{"more than 200 nodes", map[string]any{"condition": map[string]any{"or": many}}, "input.condition"},
		{"STATIC with trigger events", map[string]any{"kind": "STATIC", "triggerEvents": []string{"Sign Up"}}, "input.triggerEvents"},
		{"STATIC with a condition", map[string]any{"kind": "STATIC", "triggerEvents": []string{}, "condition": pred("EXISTS", nil)}, "input.condition"},
		{"EVENT_TRIGGERED without trigger events", map[string]any{"triggerEvents": []string{}}, "input.triggerEvents"},
		{"empty name", map[string]any{"name": "  "}, "input.name"},
	}
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL)
		c := srv.Admin()
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				in := map[string]any{"name": "bad", "kind": "EVENT_TRIGGERED", "triggerEvents": []string{"Sign Up"}}
				for k, v := range tc.input {
					in[k] = v
				}
				e := c.MustFail(t, "BAD_USER_INPUT", `mutation($in: CreateSegmentInput!) { createSegment(input: $in) { id } }`, map[string]any{"in": in})
				if tc.field == "" {
					if !strings.HasPrefix(e.Field(), "input.condition.not.not") {
						t.Fatalf("field = %q, want the path of the node too deep", e.Field())
					}
				} else if e.Field() != tc.field {
					t.Fatalf("field = %q, want %q (%s)", e.Field(), tc.field, e.Message)
				}
			})
		}
		c.MustFail(t, "GRAPHQL_VALIDATION_FAILED", `mutation { createSegment(input: {name: "x", kind: EVENT_TRIGGERED, triggerEvents: ["a"],
			condition: {scope: EVENT, property: "p", operator: FOO}}) { id } }`, nil)
		var n struct{ Segments struct{ TotalCount int } }
		c.MustDo(t, `{ segments { totalCount } }`, nil, &n)
		if n.Segments.TotalCount != 0 {
			t.Fatalf("refused inputs wrote %d segments", n.Segments.TotalCount)
		}
	})
}

// TestRoles: each role against each kind of operation, over HTTP.
func TestRoles(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL)
		ctx := context.Background()
		keys := auth.NewKeys(srv.Store().Client)
		_, read, err := keys.Create(ctx, "dashboard", auth.RoleRead)
		if err != nil {
			t.Fatal(err)
		}
		writeKey, write, err := keys.Create(ctx, "backend", auth.RoleWrite)
		if err != nil {
			t.Fatal(err)
		}
		createSeed(t, srv.Admin())
		const query = `{ segments { totalCount edges { node { name } } } }`
		const mutation = `mutation { createSegment(input: {name: "x", kind: STATIC}) { id } }`
		const ingest = `mutation { trackEvent(input: {event: "Sign Up", userId: "u1"}) { duplicate } }`
		for _, tc := range []struct {
			key                       string
			query, mutation, tracking bool
		}{
			{testenv.AdminKey, true, true, true},
			{read, true, false, false},
			{write, false, false, true},
		} {
			c := srv.Client(tc.key)
			for _, op := range []struct {
				q  string
				ok bool
			}{{query, tc.query}, {mutation, tc.mutation}, {ingest, tc.tracking}} {
				r := c.Do(t, op.q, nil)
				if op.ok && len(r.Errors) > 0 {
					t.Fatalf("key %.12s: %s: %+v", tc.key, op.q, r.Errors)
				}
				if !op.ok {
					if len(r.Errors) == 0 || r.Errors[0].Code() != "FORBIDDEN" {
						t.Fatalf("key %.12s: %s: want FORBIDDEN, got %s %+v", tc.key, op.q, r.Data, r.Errors)
					}
					if string(r.Data) != "" && string(r.Data) != "null" {
						t.Fatalf("a refused operation leaked data: %s", r.Data)
					}
				}
			}
		}
		var n struct{ Segments struct{ TotalCount int } }
		srv.Admin().MustDo(t, `{ segments { totalCount } }`, nil, &n)
		if n.Segments.TotalCount != 2 { // the seed and the ADMIN's "x"
			t.Fatalf("segments = %d: a refused mutation wrote", n.Segments.TotalCount)
		}
		// Missing, wrong and revoked keys: 401 UNAUTHENTICATED, no data.
		if err := keys.Revoke(ctx, writeKey.ID); err != nil {
			t.Fatal(err)
		}
		for _, key := range []string{"", "sgd_wrong", write} {
			r := srv.Client(key).Do(t, query, nil)
			if r.Status != http.StatusUnauthorized || len(r.Errors) != 1 || r.Errors[0].Code() != "UNAUTHENTICATED" || (string(r.Data) != "" && string(r.Data) != "null") {
				t.Fatalf("key %q: status %d, %s %+v", key, r.Status, r.Data, r.Errors)
			}
		}
		// Basic auth with the key as user name works too.
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/graphql", strings.NewReader(`{"query":"{ segments { totalCount } }"}`))
		req.Header.Set("Content-Type", "application/json")
		req.SetBasicAuth(read, "")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("basic auth: %d", resp.StatusCode)
		}
	})
}

// TestWebsocketAuth: a socket that never sends connection_init is closed
// after the init timeout; a bad key is closed with 4403; a good key is acked.
func TestWebsocketAuth(t *testing.T) {
	t.Parallel()
	srv := testenv.StartServer(t, testenv.DatabaseURL(t, "sqlite"), func(c *server.Config) {
		c.WebsocketInitTimeout = 300 * time.Millisecond
	})
	for _, proto := range testenv.Subprotocols {
		silent := srv.DialWS(t, "", proto)
		start := time.Now()
		select {
		case err := <-silent.Closed:
			if time.Since(start) > 5*time.Second {
				t.Fatalf("%s: closed only after %s", proto, time.Since(start))
			}
			_ = err
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: a socket without connection_init stayed open", proto)
		}
		bad := srv.DialWS(t, "", proto)
		bad.Send(t, testenv.WSMessage{Type: "connection_init", Payload: json.RawMessage(`{"Authorization":"Bearer sgd_wrong"}`)})
		select {
		case err := <-bad.Closed:
			var ce *websocket.CloseError
			if !asCloseError(err, &ce) || ce.Code != 4403 {
				t.Fatalf("%s: bad key closed with %v, want 4403", proto, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: a bad key was not refused", proto)
		}
		srv.DialWS(t, testenv.AdminKey, proto) // fails the test unless acked
	}
}

func asCloseError(err error, target **websocket.CloseError) bool {
	ce, ok := err.(*websocket.CloseError)
	if ok {
		*target = ce
	}
	return ok
}

func TestHealthAndIDE(t *testing.T) {
	t.Parallel()
	srv := testenv.StartServer(t, testenv.DatabaseURL(t, "sqlite"))
	for path, want := range map[string]string{"/healthz": "application/json", "/readyz": "application/json", "/": "text/html"} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), want) {
			t.Fatalf("GET %s: %d %s", path, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
	}
}

func TestQueryLimits(t *testing.T) {
	t.Parallel()
	srv := testenv.StartServer(t, testenv.DatabaseURL(t, "sqlite"))
	c := srv.Admin()
	deep := `{ segments { edges { node { condition {` + strings.Repeat(" children {", 12) + " kind " + strings.Repeat("}", 12) + `} } } } }`
	c.MustFail(t, "BAD_USER_INPUT", deep, nil)
	big := `{ segments { totalCount } }` + strings.Repeat(" ", 2<<20)
	r := c.Do(t, big, nil)
	if r.Status < 400 || r.Status >= 500 || len(r.Errors) == 0 {
		t.Fatalf("a 2 MiB body: status %d, errors %+v", r.Status, r.Errors)
	}
	c.MustDo(t, `{ segments { totalCount } }`, nil, nil) // still serving
}
