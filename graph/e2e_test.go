package graph_test

// End-to-end tests of segments over real HTTP, on SQLite and PostgreSQL:
// create, read back, page, filter, order, update, delete, and node(id:).
// Helpers shared by the other *_e2e_test.go files of this slice (campaigns,
// validation, auth, websockets, limits) live here too.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/segmentd/segmentd/internal/testenv"
)

// The seed example of issue 2.
const (
	seedSegmentName = "Activation Experiment - New Users"
	seedCampaign    = "Welcome Mission"
	seedText        = `user."Sign Up Date" > "2025-01-01" AND (user.Channel = "Facebook" OR event."Reward Amount" > 50)`
)

// seedCondition is `user."Sign Up Date" > 2025-01-01 AND (user.Channel =
// "Facebook" OR event."Reward Amount" > 50)` as a ConditionInput.
func seedCondition() map[string]any {
	return map[string]any{"and": []any{
		pred("USER", "Sign Up Date", "GT", "2025-01-01"),
		map[string]any{"or": []any{
			pred("USER", "Channel", "EQ", "Facebook"),
			pred("EVENT", "Reward Amount", "GT", 50),
		}},
	}}
}

// seedSegment is the CreateSegmentInput of the seed example.
func seedSegment() map[string]any {
	return map[string]any{
		"name":          seedSegmentName,
		"description":   "New users from the spring activation experiment",
		"kind":          "EVENT_TRIGGERED",
		"triggerEvents": []string{"Sign Up"},
		"condition":     seedCondition(),
	}
}

// pred is a predicate ConditionInput.
func pred(scope, property, op string, value any) map[string]any {
	return map[string]any{"scope": scope, "property": property, "operator": op, "value": value}
}

// condView is a Condition as the API returns it.
type condView struct {
	ID       string
	Kind     string
	Scope    *string
	Property *string
	Operator *string
	Value    json.RawMessage
	Children []condView
}

// shape renders a condition tree without its IDs, values as compact JSON,
// for comparing trees: AND(USER "Sign Up Date" GT "2025-01-01", OR(...)).
// A group that carries predicate fields, or a predicate with children, shows
// them, so that such a tree never compares equal to a clean one.
func (c *condView) shape() string {
	if c == nil {
		return "<none>"
	}
	var extra string
	if c.Kind != "PREDICATE" && (c.Scope != nil || c.Property != nil || c.Operator != nil || !jsonIsNull(c.Value)) {
		extra = fmt.Sprintf("!fields(%v %v %v %s)", strOrNull(c.Scope), strOrNull(c.Property), strOrNull(c.Operator), compactJSON(c.Value))
	}
	if c.Kind == "PREDICATE" {
		s := fmt.Sprintf("%s %q %s %s", strOrNull(c.Scope), strOrNull(c.Property), strOrNull(c.Operator), compactJSON(c.Value))
		if len(c.Children) > 0 {
			s += fmt.Sprintf("!children(%d)", len(c.Children))
		}
		return s
	}
	parts := make([]string, len(c.Children))
	for i := range c.Children {
		parts[i] = c.Children[i].shape()
	}
	return c.Kind + extra + "(" + strings.Join(parts, ", ") + ")"
}

// ids returns the IDs of every node of the tree, in pre-order.
func (c *condView) ids() []string {
	if c == nil {
		return nil
	}
	out := []string{c.ID}
	for i := range c.Children {
		out = append(out, c.Children[i].ids()...)
	}
	return out
}

// input turns a read-back tree into a ConditionInput again.
func (c *condView) input() map[string]any {
	switch c.Kind {
	case "AND", "OR":
		list := make([]any, len(c.Children))
		for i := range c.Children {
			list[i] = c.Children[i].input()
		}
		return map[string]any{strings.ToLower(c.Kind): list}
	case "NOT":
		return map[string]any{"not": c.Children[0].input()}
	}
	in := map[string]any{"scope": strOrNull(c.Scope), "property": strOrNull(c.Property), "operator": strOrNull(c.Operator)}
	if !jsonIsNull(c.Value) {
		in["value"] = c.Value
	}
	return in
}

func strOrNull(s *string) string {
	if s == nil {
		return "<null>"
	}
	return *s
}

func jsonIsNull(raw json.RawMessage) bool {
	return len(bytes.TrimSpace(raw)) == 0 || string(bytes.TrimSpace(raw)) == "null"
}

func compactJSON(raw json.RawMessage) string {
	if jsonIsNull(raw) {
		return "null"
	}
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return "!invalid(" + string(raw) + ")"
	}
	return b.String()
}

// segmentView is a Segment as the API returns it.
type segmentView struct {
	ID            string
	Name          string
	Description   *string
	Kind          string
	TriggerEvents []string
	ConditionText *string
	Condition     *condView
	Campaigns     []campaignRef
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

type campaignRef struct{ ID, Name, Status string }

// segmentFields selects everything of a Segment, with its condition tree
// five levels deep; queries that use it append condFragment.
const segmentFields = `id name description kind triggerEvents conditionText createdAt updatedAt
  campaigns { id name status }
  condition { ...Cond children { ...Cond children { ...Cond children { ...Cond children { ...Cond } } } } }`

const condFragment = `
fragment Cond on Condition { id kind scope property operator value }`

// createSegment creates a segment and returns it as createSegment answered.
func createSegment(t *testing.T, c *testenv.Client, in map[string]any) segmentView {
	t.Helper()
	var out struct{ CreateSegment segmentView }
	c.MustDo(t, `mutation($in: CreateSegmentInput!) { createSegment(input: $in) { `+segmentFields+` } }`+condFragment,
		map[string]any{"in": in}, &out)
	if out.CreateSegment.ID == "" {
		t.Fatalf("createSegment returned no id")
	}
	return out.CreateSegment
}

// getSegment reads a segment through node(id:); nil if there is none (node
// null with a NOT_FOUND error). Any other error fails the test.
func getSegment(t *testing.T, c *testenv.Client, id string) *segmentView {
	t.Helper()
	r := c.Do(t, `query($id: ID!) { node(id: $id) { ... on Segment { `+segmentFields+` } } }`+condFragment,
		map[string]any{"id": id})
	var out struct{ Node *segmentView }
	if err := json.Unmarshal(r.Data, &out); err != nil {
		t.Fatalf("decode %s: %v (errors %+v)", r.Data, err, r.Errors)
	}
	switch {
	case len(r.Errors) == 0 && out.Node != nil:
	case len(r.Errors) == 1 && r.Errors[0].Code() == "NOT_FOUND" && out.Node == nil:
	default:
		t.Fatalf("node(id: %s): data %s, errors %+v", id, r.Data, r.Errors)
	}
	return out.Node
}

type pageInfo struct {
	HasNextPage, HasPreviousPage bool
	StartCursor, EndCursor       *string
}

type segmentPage struct {
	TotalCount int
	PageInfo   pageInfo
	Edges      []struct {
		Cursor string
		Node   segmentView
	}
}

func (p segmentPage) names() []string {
	out := make([]string, len(p.Edges))
	for i, e := range p.Edges {
		out[i] = e.Node.Name
	}
	return out
}

// listSegments runs segments(...) with the given arguments.
func listSegments(t *testing.T, c *testenv.Client, args map[string]any) segmentPage {
	t.Helper()
	if args["first"] == nil && args["last"] == nil {
		// The default page (1,000) of segments with their condition trees
		// is over the query cost limit; 100 is under it.
		args = maps.Clone(args)
		if args == nil {
			args = map[string]any{}
		}
		args["first"] = 100
	}
	var out struct{ Segments segmentPage }
	c.MustDo(t, `query($after: Cursor, $first: Int, $before: Cursor, $last: Int, $where: SegmentWhereInput, $orderBy: SegmentOrder) {
  segments(after: $after, first: $first, before: $before, last: $last, where: $where, orderBy: $orderBy) {
    totalCount pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges { cursor node { `+segmentFields+` } } } }`+condFragment, args, &out)
	return out.Segments
}

// segmentCount is segments { totalCount }.
func segmentCount(t *testing.T, c *testenv.Client) int {
	t.Helper()
	var out struct{ Segments struct{ TotalCount int } }
	c.MustDo(t, `{ segments { totalCount } }`, nil, &out)
	return out.Segments.TotalCount
}

// nodeTypename resolves id through node(id:) and returns its __typename and
// the response's errors; "" when node is null.
func nodeTypename(t *testing.T, c *testenv.Client, id string) (string, []testenv.GQLError) {
	t.Helper()
	r := c.Do(t, `query($id: ID!) { node(id: $id) { __typename id } }`, map[string]any{"id": id})
	var out struct {
		Node *struct {
			Typename string `json:"__typename"`
			ID       string
		}
	}
	if len(r.Data) > 0 && string(r.Data) != "null" {
		if err := json.Unmarshal(r.Data, &out); err != nil {
			t.Fatalf("decode %s: %v", r.Data, err)
		}
	} else {
		t.Fatalf("node(id: %q): no data at all: %+v", id, r.Errors)
	}
	if out.Node == nil {
		return "", r.Errors
	}
	if out.Node.ID != id {
		t.Fatalf("node(id: %q) returned id %q", id, out.Node.ID)
	}
	return out.Node.Typename, r.Errors
}

// httpResult is a raw HTTP answer.
type httpResult struct {
	Status int
	Header http.Header
	Body   []byte
}

// gql decodes the body as a GraphQL response.
func (h httpResult) gql(t *testing.T) testenv.Response {
	t.Helper()
	var r testenv.Response
	if err := json.Unmarshal(h.Body, &r); err != nil {
		t.Fatalf("HTTP %d, body is not a GraphQL response: %q: %v", h.Status, h.Body, err)
	}
	r.Status = h.Status
	return r
}

// rawHTTP sends one request with exactly the given headers.
func rawHTTP(t *testing.T, method, url string, header http.Header, body io.Reader) httpResult {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatalf("request: %v", err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return httpResult{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// postGraphQL posts a query with the given Authorization header ("" for none).
func postGraphQL(t *testing.T, srv *testenv.Server, authorization, query string, vars map[string]any) httpResult {
	t.Helper()
	body, err := json.Marshal(map[string]any{"query": query, "variables": vars})
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{"Content-Type": {"application/json"}}
	if authorization != "" {
		h.Set("Authorization", authorization)
	}
	return rawHTTP(t, http.MethodPost, srv.URL+"/graphql", h, bytes.NewReader(body))
}

// TestSegmentSeedExample: the example segment is created over HTTP
// and reads back identically, from createSegment, node(id:) and segments:
// name, kind, trigger events, the condition tree (kinds, order, value types)
// and its one-line text.
func TestSegmentSeedExample(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL)
		c := srv.Admin()
		const wantShape = `AND(USER "Sign Up Date" GT "2025-01-01", OR(USER "Channel" EQ "Facebook", EVENT "Reward Amount" GT 50))`

		created := createSegment(t, c, seedSegment())
		read := getSegment(t, c, created.ID)
		if read == nil {
			t.Fatalf("node(id: %s) is null right after createSegment", created.ID)
		}
		list := listSegments(t, c, nil)
		if list.TotalCount != 1 || len(list.Edges) != 1 {
			t.Fatalf("segments: totalCount %d, %d edges; want 1", list.TotalCount, len(list.Edges))
		}
		for name, s := range map[string]segmentView{"createSegment": created, "node": *read, "segments": list.Edges[0].Node} {
			if !strings.HasPrefix(s.ID, "seg_") || s.ID != created.ID {
				t.Errorf("%s: id %q, want %q", name, s.ID, created.ID)
			}
			if s.Name != seedSegmentName || s.Kind != "EVENT_TRIGGERED" || strOrNull(s.Description) != "New users from the spring activation experiment" {
				t.Errorf("%s: name %q kind %q description %v", name, s.Name, s.Kind, strOrNull(s.Description))
			}
			if !slices.Equal(s.TriggerEvents, []string{"Sign Up"}) {
				t.Errorf("%s: triggerEvents %q", name, s.TriggerEvents)
			}
			if got := s.Condition.shape(); got != wantShape {
				t.Errorf("%s: condition\n got %s\nwant %s", name, got, wantShape)
			}
			if strOrNull(s.ConditionText) != seedText {
				t.Errorf("%s: conditionText\n got %s\nwant %s", name, strOrNull(s.ConditionText), seedText)
			}
			if len(s.Campaigns) != 0 {
				t.Errorf("%s: campaigns %+v, want none", name, s.Campaigns)
			}
			if s.CreatedAt.IsZero() || s.UpdatedAt.Before(s.CreatedAt) || time.Since(s.CreatedAt) > time.Minute {
				t.Errorf("%s: createdAt %v updatedAt %v", name, s.CreatedAt, s.UpdatedAt)
			}
		}
		// The timestamps createSegment answered are the stored ones.
		if !created.CreatedAt.Equal(read.CreatedAt) || !created.UpdatedAt.Equal(read.UpdatedAt) {
			t.Errorf("createSegment answered createdAt %s updatedAt %s; reads give %s %s",
				created.CreatedAt.Format(time.RFC3339Nano), created.UpdatedAt.Format(time.RFC3339Nano),
				read.CreatedAt.Format(time.RFC3339Nano), read.UpdatedAt.Format(time.RFC3339Nano))
		}
		// The value types survive exactly: a string stays a string (not a
		// date), 50 stays the number 50.
		and := read.Condition
		if got := string(and.Children[0].Value); got != `"2025-01-01"` {
			t.Errorf(`"Sign Up Date" value = %s, want the string "2025-01-01"`, got)
		}
		if got := string(and.Children[1].Children[1].Value); got != `50` {
			t.Errorf(`"Reward Amount" value = %s, want the number 50`, got)
		}
		// Every condition node has its own ID, and they are all distinct.
		ids := read.Condition.ids()
		if len(ids) != 5 {
			t.Fatalf("condition ids %v, want 5", ids)
		}
		seen := map[string]bool{}
		for _, id := range ids {
			if !strings.HasPrefix(id, "cnd_") || seen[id] {
				t.Fatalf("condition ids %v: want 5 distinct cnd_ IDs", ids)
			}
			seen[id] = true
		}
		if !slices.Equal(ids, created.Condition.ids()) {
			t.Fatalf("condition ids differ between createSegment %v and node %v", created.Condition.ids(), ids)
		}
	})
}

// TestSegmentConditionRoundTrip: a tree with every kind of node and value
// (string, integer, decimal, huge number, boolean, list, unicode, nested
// property, no value) reads back identically, children in order; and the
// read-back tree, sent again as input, makes the same tree.
func TestSegmentConditionRoundTrip(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL)
		c := srv.Admin()
		cond := map[string]any{"or": []any{
			pred("EVENT", "plan", "IN", []any{"pro", "team", 3}),
			pred("USER", "address.city", "EQ", "Zürich"),
			map[string]any{"and": []any{
				pred("USER", "age", "BETWEEN", []any{18, 65.5}),
				pred("USER", "beta", "EQ", true),
				map[string]any{"not": pred("USER", "email", "ENDS_WITH", "@example.com")},
				pred("EVENT", "amount", "GTE", json.Number("12345678901234567890")),
				pred("USER", "last seen", "WITHIN_LAST", "7d"),
				pred("USER", "name", "MATCHES", `^J(ane|ohn)\b`),
			}},
			pred("USER", "deleted", "NOT_EXISTS", nil),
			pred("EVENT", "ratio", "LT", -0.25),
		}}
		const want = `OR(EVENT "plan" IN ["pro","team",3], USER "address.city" EQ "Zürich", ` +
			`AND(USER "age" BETWEEN [18,65.5], USER "beta" EQ true, NOT(USER "email" ENDS_WITH "@example.com"), ` +
			`EVENT "amount" GTE 12345678901234567890, USER "last seen" WITHIN_LAST "7d", USER "name" MATCHES "^J(ane|ohn)\\b"), ` +
			`USER "deleted" NOT_EXISTS null, EVENT "ratio" LT -0.25)`
		first := createSegment(t, c, map[string]any{"name": "Round trip", "kind": "EVENT_TRIGGERED",
			"triggerEvents": []string{"Order Completed", "Sign Up"}, "condition": cond})
		read := getSegment(t, c, first.ID)
		if got := read.Condition.shape(); got != want {
			t.Fatalf("condition\n got %s\nwant %s", got, want)
		}
		if !slices.Equal(read.TriggerEvents, []string{"Order Completed", "Sign Up"}) {
			t.Fatalf("triggerEvents %q: want the order given", read.TriggerEvents)
		}
		const wantText = `event.plan in ["pro","team",3] OR user.address.city = "Zürich" OR ` +
			`(user.age between 18 and 65.5 AND user.beta = true AND NOT (user.email ends with "@example.com") AND ` +
			`event.amount >= 12345678901234567890 AND user."last seen" within last "7d" AND user.name matches "^J(ane|ohn)\\b") OR ` +
			`user.deleted not exists OR event.ratio < -0.25`
		if strOrNull(read.ConditionText) != wantText {
			t.Fatalf("conditionText\n got %s\nwant %s", strOrNull(read.ConditionText), wantText)
		}

		again := createSegment(t, c, map[string]any{"name": "Round trip again", "kind": "EVENT_TRIGGERED",
			"triggerEvents": []string{"Sign Up"}, "condition": read.Condition.input()})
		if got := getSegment(t, c, again.ID).Condition.shape(); got != want {
			t.Fatalf("the read-back tree, written again, reads\n %s\nwant %s", got, want)
		}
		if strOrNull(again.ConditionText) != wantText {
			t.Fatalf("conditionText of the copy: %s", strOrNull(again.ConditionText))
		}
	})
}

// pagingNames are the segments of the paging tests, in creation order; every
// second one is STATIC.
var pagingNames = []string{"Delta", "Alpha", "Golf", "Charlie", "Echo", "Bravo", "Foxtrot"}

func createPagingSegments(t *testing.T, c *testenv.Client) []segmentView {
	t.Helper()
	var out []segmentView
	for i, name := range pagingNames {
		in := map[string]any{"name": name, "kind": "EVENT_TRIGGERED", "triggerEvents": []string{"Sign Up"}}
		if i%2 == 1 {
			in = map[string]any{"name": name, "kind": "STATIC"}
		}
		out = append(out, createSegment(t, c, in))
	}
	return out
}

// checkPage fails unless the page holds exactly want, in order, with
// consistent cursors, the total count and the given pageInfo flags.
func checkPage(t *testing.T, label string, p segmentPage, want []string, total int, hasNext, hasPrev bool) {
	t.Helper()
	if got := p.names(); !slices.Equal(got, want) {
		t.Fatalf("%s: names %q, want %q", label, got, want)
	}
	if p.TotalCount != total {
		t.Fatalf("%s: totalCount %d, want %d", label, p.TotalCount, total)
	}
	if p.PageInfo.HasNextPage != hasNext || p.PageInfo.HasPreviousPage != hasPrev {
		t.Fatalf("%s: pageInfo %+v, want hasNextPage %v hasPreviousPage %v", label, p.PageInfo, hasNext, hasPrev)
	}
	if len(p.Edges) > 0 {
		if strOrNull(p.PageInfo.StartCursor) != p.Edges[0].Cursor || strOrNull(p.PageInfo.EndCursor) != p.Edges[len(p.Edges)-1].Cursor {
			t.Fatalf("%s: startCursor/endCursor %v/%v do not match the edges", label, strOrNull(p.PageInfo.StartCursor), strOrNull(p.PageInfo.EndCursor))
		}
	}
}

// TestSegmentPagination: seven segments paged forward with first/after and
// backward with last/before, by default order (creation) and by name: every
// segment exactly once, in order, with the right totalCount and pageInfo.
func TestSegmentPagination(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL)
		c := srv.Admin()
		createPagingSegments(t, c)
		all := pagingNames // default order: creation order (IDs are time-sortable)

		p1 := listSegments(t, c, map[string]any{"first": 3})
		checkPage(t, "first 3", p1, all[0:3], 7, true, false)
		p2 := listSegments(t, c, map[string]any{"first": 3, "after": p1.PageInfo.EndCursor})
		checkPage(t, "next 3", p2, all[3:6], 7, true, true)
		p3 := listSegments(t, c, map[string]any{"first": 3, "after": p2.PageInfo.EndCursor})
		checkPage(t, "last page forward", p3, all[6:7], 7, false, true)

		b1 := listSegments(t, c, map[string]any{"last": 3})
		checkPage(t, "last 3", b1, all[4:7], 7, false, true)
		b2 := listSegments(t, c, map[string]any{"last": 3, "before": b1.PageInfo.StartCursor})
		checkPage(t, "previous 3", b2, all[1:4], 7, true, true)
		b3 := listSegments(t, c, map[string]any{"last": 3, "before": b2.PageInfo.StartCursor})
		checkPage(t, "first page backward", b3, all[0:1], 7, true, false)

		// A page past the end is empty, not an error.
		empty := listSegments(t, c, map[string]any{"first": 3, "after": p3.PageInfo.EndCursor})
		checkPage(t, "past the end", empty, []string{}, 7, false, true)

		// Paging by name, two at a time, collects every name once, sorted.
		byName := map[string]any{"field": "NAME", "direction": "ASC"}
		var got []string
		var after any
		for i := 0; ; i++ {
			if i > 10 {
				t.Fatalf("paging by name does not end: %q", got)
			}
			p := listSegments(t, c, map[string]any{"first": 2, "after": after, "orderBy": byName})
			if p.TotalCount != 7 {
				t.Fatalf("totalCount %d while paging by name", p.TotalCount)
			}
			got = append(got, p.names()...)
			if !p.PageInfo.HasNextPage {
				break
			}
			after = p.PageInfo.EndCursor
		}
		sorted := slices.Clone(pagingNames)
		slices.Sort(sorted)
		if !slices.Equal(got, sorted) {
			t.Fatalf("paged by name: %q, want %q", got, sorted)
		}
		// And backward by name, DESC.
		desc := listSegments(t, c, map[string]any{"last": 2, "orderBy": map[string]any{"field": "NAME", "direction": "DESC"}})
		checkPage(t, "last 2 by name DESC", desc, []string{"Bravo", "Alpha"}, 7, false, true)

		// first and last beyond the page cap are refused, not served.
		e := c.MustFail(t, "BAD_USER_INPUT", `{ segments(first: 100000) { totalCount } }`, nil)
		if e.Field() != "first" {
			t.Fatalf("first: 100000: field %q", e.Field())
		}
	})
}

// TestSegmentFilterAndOrder: where by name (contains, case-insensitive) and
// kind, alone and together, and orderBy name in both directions.
func TestSegmentFilterAndOrder(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL)
		c := srv.Admin()
		createPagingSegments(t, c)
		createSegment(t, c, seedSegment())

		cases := []struct {
			name  string
			where map[string]any
			want  []string // ordered by name
		}{
			{"nameContains", map[string]any{"nameContains": "o"}, []string{seedSegmentName, "Bravo", "Echo", "Foxtrot", "Golf"}},
			{"nameContains seed", map[string]any{"nameContains": "Experiment"}, []string{seedSegmentName}},
			{"nameContains is case-sensitive", map[string]any{"nameContains": "experiment"}, []string{}},
			{"nameContainsFold", map[string]any{"nameContainsFold": "ALPHA"}, []string{"Alpha"}},
			{"kind STATIC", map[string]any{"kind": "STATIC"}, []string{"Alpha", "Bravo", "Charlie"}},
			{"kind EVENT_TRIGGERED", map[string]any{"kind": "EVENT_TRIGGERED"}, []string{seedSegmentName, "Delta", "Echo", "Foxtrot", "Golf"}},
			{"kind and name", map[string]any{"kind": "STATIC", "nameContains": "o"}, []string{"Bravo"}},
			{"or", map[string]any{"or": []any{map[string]any{"name": "Golf"}, map[string]any{"name": "Alpha"}}}, []string{"Alpha", "Golf"}},
			{"no match", map[string]any{"name": "Zulu"}, []string{}},
		}
		for _, tc := range cases {
			p := listSegments(t, c, map[string]any{"where": tc.where, "orderBy": map[string]any{"field": "NAME", "direction": "ASC"}})
			if got := p.names(); !slices.Equal(got, tc.want) || p.TotalCount != len(tc.want) {
				t.Errorf("%s: got %q (totalCount %d), want %q", tc.name, got, p.TotalCount, tc.want)
			}
		}

		asc := listSegments(t, c, map[string]any{"orderBy": map[string]any{"field": "NAME", "direction": "ASC"}}).names()
		want := append([]string{seedSegmentName}, "Alpha", "Bravo", "Charlie", "Delta", "Echo", "Foxtrot", "Golf")
		// "Activation..." sorts before "Alpha" in every collation.
		if !slices.Equal(asc, want) {
			t.Fatalf("orderBy NAME ASC: %q, want %q", asc, want)
		}
		desc := listSegments(t, c, map[string]any{"orderBy": map[string]any{"field": "NAME", "direction": "DESC"}}).names()
		slices.Reverse(want)
		if !slices.Equal(desc, want) {
			t.Fatalf("orderBy NAME DESC: %q, want %q", desc, want)
		}
		// By creation time, newest first: the seed was created last.
		newest := listSegments(t, c, map[string]any{"first": 1, "orderBy": map[string]any{"field": "CREATED_AT", "direction": "DESC"}})
		checkPage(t, "newest", newest, []string{seedSegmentName}, 8, true, false)
	})
}

// TestSegmentUpdate: name, description, trigger events and the condition
// change and read back; fields left out stay as they were; clearCondition
// removes the tree and the old conditions are gone; updating an unknown
// segment is NOT_FOUND.
func TestSegmentUpdate(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL)
		c := srv.Admin()
		seg := createSegment(t, c, seedSegment())
		oldIDs := seg.Condition.ids()

		update := func(in map[string]any) segmentView {
			t.Helper()
			var out struct{ UpdateSegment segmentView }
			c.MustDo(t, `mutation($id: ID!, $in: UpdateSegmentInput!) { updateSegment(id: $id, input: $in) { `+segmentFields+` } }`+condFragment,
				map[string]any{"id": seg.ID, "in": in}, &out)
			if got := getSegment(t, c, seg.ID); got == nil || got.Condition.shape() != out.UpdateSegment.Condition.shape() ||
				got.Name != out.UpdateSegment.Name || strOrNull(got.ConditionText) != strOrNull(out.UpdateSegment.ConditionText) ||
				!got.UpdatedAt.Equal(out.UpdateSegment.UpdatedAt) || !got.CreatedAt.Equal(out.UpdateSegment.CreatedAt) {
				t.Fatalf("updateSegment answered %+v but node reads %+v", out.UpdateSegment, got)
			}
			return out.UpdateSegment
		}

		// Name, description and trigger events; the condition stays.
		u := update(map[string]any{"name": "Activation Experiment - Returning Users", "description": "Now for returning users",
			"triggerEvents": []string{"Login", "Sign Up"}})
		if u.Name != "Activation Experiment - Returning Users" || strOrNull(u.Description) != "Now for returning users" ||
			!slices.Equal(u.TriggerEvents, []string{"Login", "Sign Up"}) || u.Kind != "EVENT_TRIGGERED" {
			t.Fatalf("after update: %+v", u)
		}
		if strOrNull(u.ConditionText) != seedText || !slices.Equal(u.Condition.ids(), oldIDs) {
			t.Fatalf("a name-only update changed the condition: %s %v", strOrNull(u.ConditionText), u.Condition.ids())
		}
		if !u.CreatedAt.Equal(seg.CreatedAt) || u.UpdatedAt.Before(seg.UpdatedAt) {
			t.Fatalf("createdAt %v -> %v, updatedAt %v -> %v", seg.CreatedAt, u.CreatedAt, seg.UpdatedAt, u.UpdatedAt)
		}

		// Replace the condition.
		newCond := map[string]any{"or": []any{
			pred("EVENT", "plan", "IN", []any{"pro", "team"}),
			map[string]any{"not": pred("USER", "email", "ENDS_WITH", "@example.com")},
		}}
		u = update(map[string]any{"condition": newCond})
		const wantShape = `OR(EVENT "plan" IN ["pro","team"], NOT(USER "email" ENDS_WITH "@example.com"))`
		if got := u.Condition.shape(); got != wantShape {
			t.Fatalf("replaced condition\n got %s\nwant %s", got, wantShape)
		}
		if got := strOrNull(u.ConditionText); got != `event.plan in ["pro","team"] OR NOT (user.email ends with "@example.com")` {
			t.Fatalf("conditionText %s", got)
		}
		if u.Name != "Activation Experiment - Returning Users" || !slices.Equal(u.TriggerEvents, []string{"Login", "Sign Up"}) {
			t.Fatalf("a condition update changed other fields: %+v", u)
		}
		for _, id := range oldIDs {
			if typ, errs := nodeTypename(t, c, id); typ != "" {
				t.Fatalf("old condition %s still resolves as %s (%v)", id, typ, errs)
			}
		}
		replacedIDs := u.Condition.ids()

		// Clear the description.
		u = update(map[string]any{"clearDescription": true})
		if u.Description != nil {
			t.Fatalf("clearDescription left %q", *u.Description)
		}

		// Clear the condition.
		u = update(map[string]any{"clearCondition": true})
		if u.Condition != nil || u.ConditionText != nil {
			t.Fatalf("clearCondition left condition %s / text %v", u.Condition.shape(), strOrNull(u.ConditionText))
		}
		if !slices.Equal(u.TriggerEvents, []string{"Login", "Sign Up"}) {
			t.Fatalf("clearCondition changed the trigger events: %q", u.TriggerEvents)
		}
		for _, id := range replacedIDs {
			if typ, _ := nodeTypename(t, c, id); typ != "" {
				t.Fatalf("cleared condition %s still resolves", id)
			}
		}

		// And a condition again, on the segment that has none.
		u = update(map[string]any{"condition": seedCondition()})
		if strOrNull(u.ConditionText) != seedText {
			t.Fatalf("condition set again: %s", strOrNull(u.ConditionText))
		}

		// Unknown segment.
		e := c.MustFail(t, "NOT_FOUND", `mutation { updateSegment(id: "seg_01JD3V6N5Q8K4Z2R7W9X1Y0B3C", input: {name: "x"}) { id } }`, nil)
		if err := e.Contains("seg_01JD3V6N5Q8K4Z2R7W9X1Y0B3C"); err != nil {
			t.Fatal(err)
		}
		if segmentCount(t, c) != 1 {
			t.Fatalf("updating an unknown segment created one")
		}
	})
}

// TestSegmentDelete: deleteSegment returns the ID; the segment and its
// conditions are gone from node(id:) and from segments; a second delete is
// NOT_FOUND; other segments stay.
func TestSegmentDelete(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL)
		c := srv.Admin()
		seg := createSegment(t, c, seedSegment())
		other := createSegment(t, c, map[string]any{"name": "Other", "kind": "STATIC"})

		var out struct{ DeleteSegment string }
		c.MustDo(t, `mutation($id: ID!) { deleteSegment(id: $id) }`, map[string]any{"id": seg.ID}, &out)
		if out.DeleteSegment != seg.ID {
			t.Fatalf("deleteSegment returned %q, want %q", out.DeleteSegment, seg.ID)
		}
		if got := getSegment(t, c, seg.ID); got != nil {
			t.Fatalf("deleted segment still resolves: %+v", got)
		}
		for _, id := range seg.Condition.ids() {
			if typ, _ := nodeTypename(t, c, id); typ != "" {
				t.Fatalf("condition %s of the deleted segment still resolves", id)
			}
		}
		p := listSegments(t, c, nil)
		if got := p.names(); p.TotalCount != 1 || !slices.Equal(got, []string{"Other"}) {
			t.Fatalf("segments after delete: %q (totalCount %d)", got, p.TotalCount)
		}
		e := c.MustFail(t, "NOT_FOUND", `mutation($id: ID!) { deleteSegment(id: $id) }`, map[string]any{"id": seg.ID})
		if err := e.Contains(seg.ID); err != nil {
			t.Fatal(err)
		}
		if getSegment(t, c, other.ID) == nil {
			t.Fatalf("the other segment is gone")
		}
	})
}

// TestNodeResolvesEveryType: node(id:) and nodes(ids:) resolve segments,
// conditions and campaigns by ID; an ID that names nothing gives null with a
// NOT_FOUND error, never INTERNAL.
func TestNodeResolvesEveryType(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL)
		c := srv.Admin()
		seg := createSegment(t, c, seedSegment())
		var camp struct{ CreateCampaign struct{ ID string } }
		c.MustDo(t, `mutation($s: ID!) { createCampaign(input: {name: "Welcome Mission", segmentId: $s}) { id } }`,
			map[string]any{"s": seg.ID}, &camp)
		condID := seg.Condition.Children[1].Children[1].ID

		for id, want := range map[string]string{seg.ID: "Segment", camp.CreateCampaign.ID: "Campaign", condID: "Condition", seg.Condition.ID: "Condition"} {
			typ, errs := nodeTypename(t, c, id)
			if typ != want || len(errs) != 0 {
				t.Errorf("node(id: %s): %q %+v, want %s", id, typ, errs, want)
			}
		}
		// The resolved nodes carry their own fields.
		var q struct {
			Seg  struct{ Name string }
			Camp struct {
				Name    string
				Status  string
				Segment struct{ ID string }
			}
			Cond struct {
				Kind     string
				Property string
				Value    json.RawMessage
			}
		}
		c.MustDo(t, `query($s: ID!, $c: ID!, $k: ID!) {
  seg: node(id: $s) { ... on Segment { name } }
  camp: node(id: $c) { ... on Campaign { name status segment { id } } }
  cond: node(id: $k) { ... on Condition { kind property value } } }`,
			map[string]any{"s": seg.ID, "c": camp.CreateCampaign.ID, "k": condID}, &q)
		if q.Seg.Name != seedSegmentName || q.Camp.Name != seedCampaign || q.Camp.Status != "DRAFT" || q.Camp.Segment.ID != seg.ID ||
			q.Cond.Kind != "PREDICATE" || q.Cond.Property != "Reward Amount" || string(q.Cond.Value) != "50" {
			t.Fatalf("node fields: %+v", q)
		}

		// IDs that name nothing: a well-formed ID of each type that does not
		// exist, an unknown prefix, and no prefix at all.
		for _, id := range []string{"seg_01JD3V6N5Q8K4Z2R7W9X1Y0B3C", "cmp_01JD3V6N5Q8K4Z2R7W9X1Y0B3C", "cnd_01JD3V6N5Q8K4Z2R7W9X1Y0B3C",
			"zzz_01JD3V6N5Q8K4Z2R7W9X1Y0B3C", "nonsense"} {
			typ, errs := nodeTypename(t, c, id)
			if typ != "" {
				t.Errorf("node(id: %q) resolved to a %s", id, typ)
			}
			if len(errs) != 1 || errs[0].Code() != "NOT_FOUND" {
				t.Errorf("node(id: %q): errors %+v, want one NOT_FOUND", id, errs)
			}
		}

		// nodes(ids:) resolves a list, in order.
		var ns struct {
			Nodes []struct {
				Typename string `json:"__typename"`
				ID       string
			}
		}
		c.MustDo(t, `query($ids: [ID!]!) { nodes(ids: $ids) { __typename id } }`,
			map[string]any{"ids": []string{condID, seg.ID, camp.CreateCampaign.ID}}, &ns)
		if len(ns.Nodes) != 3 || ns.Nodes[0].Typename != "Condition" || ns.Nodes[1].Typename != "Segment" || ns.Nodes[2].Typename != "Campaign" ||
			ns.Nodes[0].ID != condID || ns.Nodes[1].ID != seg.ID {
			t.Fatalf("nodes: %+v", ns.Nodes)
		}
	})
}
