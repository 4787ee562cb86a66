package graph_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/segmentd/segmentd/internal/testenv"
)

// relayConn is a connection as a client reads it.
type relayConn struct {
	TotalCount int
	Edges      []struct {
		Cursor string
		Node   json.RawMessage
	}
	PageInfo struct {
		HasNextPage, HasPreviousPage bool
		StartCursor, EndCursor       *string
	}
}

// relayField is one connection field of the API in one order, over six
// rows labelled a to f; want is the labels in the list's order.
type relayField struct {
	name     string
	wrap     string   // the query around the aliased connection fields (%s)
	path     []string // from data to the object that holds the aliases
	field    string   // the connection field and its fixed arguments, e.g. `segments(orderBy: {...}`
	node     string   // the node's selection
	label    func(node json.RawMessage) string
	want     []string
	backward bool // has before and last
}

// relayExpect is the Relay Cursor Connections algorithm over labels:
// ApplyCursorsToEdges, then first, then last; hasNext (hasPrev) is set
// when first (last) decides it.
func relayExpect(all []string, after, before int, first, last *int) (edges []string, hasNext, hasPrev *bool) {
	var window []string
	for i, l := range all {
		if (after < 0 || i > after) && (before < 0 || i < before) {
			window = append(window, l)
		}
	}
	edges = window
	if first != nil {
		b := len(window) > *first
		hasNext = &b
		if len(edges) > *first {
			edges = edges[:*first]
		}
	}
	if last != nil {
		b := len(window) > *last
		hasPrev = &b
		if len(edges) > *last {
			edges = edges[len(edges)-*last:]
		}
	}
	return edges, hasNext, hasPrev
}

func intp(n int) *int { return &n }

// TestRelayConnections: every connection field of the API, in several
// orders, answers every combination of after, before, first and last that
// the Relay spec allows as the spec's algorithm does (cursors first, then
// first, then last): `first: 2, before: d` is a, b; `after: b, before: e`
// is c, d; `first: 2, last: 1` is b. A cursor of another order, or of
// another list, is BAD_USER_INPUT naming the argument, on both stores.
func TestRelayConnections(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL)
		c := srv.Admin()
		labels := []string{"a", "b", "c", "d", "e", "f"}
		base := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)

		// Users a..f, in that order; segments a..f (segment x has as many
		// members as its letter's rank, so TOTAL_USERS orders them too);
		// campaigns a..f; segment f holds every user, each added alone, and
		// its ACTIVE campaign "f" activates for each as they enter; events
		// a..f, received in that order, with timestamps in reverse order.
		for _, u := range labels {
			c.MustDo(t, `mutation($u: String!) { identify(input: {userId: $u, traits: {}}) { id } }`, map[string]any{"u": u}, nil)
		}
		segIDs := map[string]string{}
		for _, l := range labels {
			var out struct{ CreateSegment struct{ ID string } }
			c.MustDo(t, `mutation($n: String!) { createSegment(input: {name: $n, kind: STATIC}) { id } }`, map[string]any{"n": l}, &out)
			segIDs[l] = out.CreateSegment.ID
		}
		campIDs := map[string]string{}
		for _, l := range labels {
			status := "DRAFT"
			if l == "f" {
				status = "ACTIVE"
			}
			var out struct{ CreateCampaign struct{ ID string } }
			c.MustDo(t, `mutation($n: String!, $s: ID!, $st: CampaignStatus) { createCampaign(input: {name: $n, segmentId: $s, status: $st}) { id } }`,
				map[string]any{"n": l, "s": segIDs["f"], "st": status}, &out)
			campIDs[l] = out.CreateCampaign.ID
		}
		for i, l := range labels {
			for _, u := range labels[:i+1] {
				c.MustDo(t, `mutation($s: ID!, $u: [String!]!) { addUsersToSegment(segmentId: $s, userIds: $u) { added } }`,
					map[string]any{"s": segIDs[l], "u": []string{u}}, nil)
			}
		}
		for i, l := range labels {
			c.MustDo(t, `mutation($e: String!, $ts: Time!) { trackEvent(input: {event: $e, anonymousId: "anon", timestamp: $ts}) { duplicate } }`,
				map[string]any{"e": l, "ts": base.Add(-time.Duration(i) * time.Hour)}, nil)
		}
		// Groups a..f (group calls, user x into group x), then every user
		// into group f.
		for _, l := range labels {
			v1(t, srv, testenv.AdminKey, "group", map[string]any{"userId": l, "groupId": l})
		}
		for _, u := range labels[:5] {
			v1(t, srv, testenv.AdminKey, "group", map[string]any{"userId": u, "groupId": "f"})
		}
		var grp struct{ Group struct{ ID string } }
		c.MustDo(t, `{ group(groupId: "f") { id } }`, nil, &grp)
		at := time.Now().UTC().Add(time.Minute).Format(time.RFC3339Nano)

		name := func(n json.RawMessage) string {
			var v struct{ Name string }
			_ = json.Unmarshal(n, &v)
			return v.Name
		}
		userID := func(n json.RawMessage) string {
			var v struct{ UserID string }
			_ = json.Unmarshal(n, &v)
			return v.UserID
		}
		ofUser := func(n json.RawMessage) string {
			var v struct{ User struct{ UserID string } }
			_ = json.Unmarshal(n, &v)
			return v.User.UserID
		}
		groupID := func(n json.RawMessage) string {
			var v struct{ GroupID string }
			_ = json.Unmarshal(n, &v)
			return v.GroupID
		}
		rev := slices.Clone(labels)
		slices.Reverse(rev)
		root := relayField{wrap: `{ %s }`, backward: true}
		onSegment := relayField{wrap: `{ node(id: "` + segIDs["f"] + `") { ... on Segment { %s } } }`, path: []string{"node"}, backward: true}
		onCampaign := relayField{wrap: `{ node(id: "` + campIDs["f"] + `") { ... on Campaign { %s } } }`, path: []string{"node"}, backward: true}
		onGroup := relayField{wrap: `{ node(id: "` + grp.Group.ID + `") { ... on Group { %s } } }`, path: []string{"node"}, backward: true}
		with := func(f relayField, name, field, node string, label func(json.RawMessage) string, want []string) relayField {
			f.name, f.field, f.node, f.label, f.want = name, field, node, label, want
			return f
		}
		fields := []relayField{
			with(root, "segments", `segments(`, `name`, name, labels),
			with(root, "segments by NAME DESC", `segments(orderBy: {field: NAME, direction: DESC}, `, `name`, name, rev),
			with(root, "segments by CREATED_AT", `segments(orderBy: {field: CREATED_AT, direction: ASC}, `, `name`, name, labels),
			with(root, "segments by TOTAL_USERS DESC", `segments(orderBy: {field: TOTAL_USERS, direction: DESC}, `, `name`, name, rev),
			with(root, "campaigns", `campaigns(`, `name`, name, labels),
			with(root, "campaigns by NAME DESC", `campaigns(orderBy: {field: NAME, direction: DESC}, `, `name`, name, rev),
			with(root, "users", `users(`, `userId`, userID, labels),
			with(root, "users by USER_ID DESC", `users(orderBy: {field: USER_ID, direction: DESC}, `, `userId`, userID, rev),
			with(root, "events", `events(where: {type: TRACK}, `, `name`, name, rev),
			with(root, "events by TIMESTAMP", `events(where: {type: TRACK}, orderBy: {field: TIMESTAMP, direction: ASC}, `, `name`, name, rev),
			with(root, "events by RECEIVED_AT", `events(where: {type: TRACK}, orderBy: {field: RECEIVED_AT, direction: ASC}, `, `name`, name, labels),
			with(onSegment, "Segment.members", `members(`, `user { userId }`, ofUser, rev),
			with(onSegment, "Segment.members by ENTERED_AT ASC", `members(orderBy: {field: ENTERED_AT, direction: ASC}, `, `user { userId }`, ofUser, labels),
			with(root, "groups", `groups(`, `groupId`, groupID, labels),
			with(root, "groups by GROUP_ID DESC", `groups(orderBy: {field: GROUP_ID, direction: DESC}, `, `groupId`, groupID, rev),
			with(onGroup, "Group.users", `users(`, `userId`, userID, labels),
			with(onGroup, "Group.users by USER_ID DESC", `users(orderBy: {field: USER_ID, direction: DESC}, `, `userId`, userID, rev),
			with(onCampaign, "Campaign.activations", `activations(`, `user { userId }`, ofUser, labels),
			with(onCampaign, "Campaign.activations by ACTIVATED_AT DESC", `activations(orderBy: {field: ACTIVATED_AT, direction: DESC}, `, `user { userId }`, ofUser, rev),
		}
		membersAt := with(onSegment, "Segment.membersAt", `membersAt(time: "`+at+`", `, `user { userId }`, ofUser, labels)
		membersAt.backward = false
		fields = append(fields, membersAt)

		// fetch runs the connection field once per args (aliased, in one
		// request) and returns the connections.
		fetch := func(t *testing.T, f relayField, args []string) []relayConn {
			t.Helper()
			var sel strings.Builder
			for i, a := range args {
				call := strings.TrimSuffix(f.field+a+")", "()") // GraphQL has no empty argument list
				fmt.Fprintf(&sel, "c%d: %s { totalCount edges { cursor node { %s } } pageInfo { hasNextPage hasPreviousPage startCursor endCursor } }\n",
					i, call, f.node)
			}
			r := c.Do(t, fmt.Sprintf(f.wrap, sel.String()), nil)
			if len(r.Errors) > 0 {
				t.Fatalf("%s: %+v", f.name, r.Errors)
			}
			var data map[string]json.RawMessage
			if err := json.Unmarshal(r.Data, &data); err != nil {
				t.Fatal(err)
			}
			for _, p := range f.path {
				raw := data[p]
				data = nil
				if err := json.Unmarshal(raw, &data); err != nil {
					t.Fatal(err)
				}
			}
			out := make([]relayConn, len(args))
			for i := range args {
				if err := json.Unmarshal(data[fmt.Sprintf("c%d", i)], &out[i]); err != nil {
					t.Fatal(err)
				}
			}
			return out
		}
		labelsOf := func(f relayField, conn relayConn) []string {
			out := []string{}
			for _, e := range conn.Edges {
				out = append(out, f.label(e.Node))
			}
			return out
		}

		for _, f := range fields {
			t.Run(f.name, func(t *testing.T) {
				all := fetch(t, f, []string{"first: 100"})[0]
				if got := labelsOf(f, all); !slices.Equal(got, f.want) {
					t.Fatalf("the whole list: %v, want %v", got, f.want)
				}
				cursors := make([]string, len(all.Edges))
				for i, e := range all.Edges {
					cursors[i] = e.Cursor
				}
				afters, befores := []int{-1, 1, 4}, []int{-1}
				counts := []*int{nil, intp(0), intp(2), intp(7)}
				lasts := []*int{nil}
				if f.backward {
					befores = []int{-1, 1, 4, 3}
					lasts = counts
				}
				for _, after := range afters {
					for _, before := range befores {
						var args []string
						type combo struct {
							first, last *int
						}
						var combos []combo
						for _, first := range counts {
							for _, last := range lasts {
								var a []string
								if after >= 0 {
									a = append(a, fmt.Sprintf("after: %q", cursors[after]))
								}
								if before >= 0 {
									a = append(a, fmt.Sprintf("before: %q", cursors[before]))
								}
								if first != nil {
									a = append(a, fmt.Sprintf("first: %d", *first))
								}
								if last != nil {
									a = append(a, fmt.Sprintf("last: %d", *last))
								}
								args = append(args, strings.Join(a, ", "))
								combos = append(combos, combo{first, last})
							}
						}
						conns := fetch(t, f, args)
						for i, conn := range conns {
							desc := fmt.Sprintf("(%s)", args[i])
							for _, idx := range []int{after, before} {
								if idx >= 0 {
									desc = strings.Replace(strings.Replace(desc, cursors[idx], f.want[idx], 1), cursors[idx], f.want[idx], 1)
								}
							}
							wantEdges, hasNext, hasPrev := relayExpect(f.want, after, before, combos[i].first, combos[i].last)
							if got := labelsOf(f, conn); !slices.Equal(got, wantEdges) {
								t.Errorf("%s: edges %v, want %v", desc, got, wantEdges)
							}
							pi := conn.PageInfo
							if hasNext != nil && pi.HasNextPage != *hasNext {
								t.Errorf("%s: hasNextPage %v, want %v", desc, pi.HasNextPage, *hasNext)
							}
							if hasPrev != nil && pi.HasPreviousPage != *hasPrev {
								t.Errorf("%s: hasPreviousPage %v, want %v", desc, pi.HasPreviousPage, *hasPrev)
							}
							if hasNext == nil && before < 0 && pi.HasNextPage {
								t.Errorf("%s: hasNextPage true at the end of the list", desc)
							}
							if hasPrev == nil && after < 0 && pi.HasPreviousPage {
								t.Errorf("%s: hasPreviousPage true at the start of the list", desc)
							}
							if conn.TotalCount != len(f.want) {
								t.Errorf("%s: totalCount %d, want %d", desc, conn.TotalCount, len(f.want))
							}
							if n := len(conn.Edges); n > 0 && (pi.StartCursor == nil || *pi.StartCursor != conn.Edges[0].Cursor ||
								pi.EndCursor == nil || *pi.EndCursor != conn.Edges[n-1].Cursor) {
								t.Errorf("%s: startCursor/endCursor are not the first and last edges' cursors", desc)
							}
						}
					}
				}
			})
		}

		// The cases, literally.
		t.Run("as reported", func(t *testing.T) {
			f := fields[0] // segments by ID: a..f
			all := fetch(t, f, []string{"first: 100"})[0]
			cur := func(l string) string { return all.Edges[slices.Index(labels, l)].Cursor }
			conns := fetch(t, f, []string{
				fmt.Sprintf("first: 2, before: %q", cur("d")),
				fmt.Sprintf("after: %q, before: %q", cur("b"), cur("e")),
				"first: 2, last: 1",
				fmt.Sprintf("last: 2, after: %q", cur("c")),
			})
			for i, want := range [][]string{{"a", "b"}, {"c", "d"}, {"b"}, {"e", "f"}} {
				if got := labelsOf(f, conns[i]); !slices.Equal(got, want) {
					t.Errorf("case %d: %v, want %v", i, got, want)
				}
			}
		})

		// Cursors of another order or list: BAD_USER_INPUT on the argument.
		t.Run("foreign cursors", func(t *testing.T) {
			cursorOf := func(f relayField) string {
				return fetch(t, f, []string{"first: 1"})[0].Edges[0].Cursor
			}
			byID, byName, byCreated, byTotal := cursorOf(fields[0]), cursorOf(fields[1]), cursorOf(fields[2]), cursorOf(fields[3])
			campaign, member, activation := cursorOf(fields[4]), cursorOf(fields[11]), cursorOf(fields[13])
			for _, tc := range []struct {
				name, query, field string
			}{
				{"a NAME cursor under CREATED_AT", fmt.Sprintf(`{ segments(orderBy: {field: CREATED_AT, direction: ASC}, after: %q) { totalCount } }`, byName), "after"},
				{"a CREATED_AT cursor under UPDATED_AT", fmt.Sprintf(`{ segments(orderBy: {field: UPDATED_AT, direction: ASC}, before: %q, last: 1) { edges { cursor } } }`, byCreated), "before"},
				{"an ID cursor under NAME", fmt.Sprintf(`{ segments(orderBy: {field: NAME, direction: ASC}, after: %q) { edges { cursor } } }`, byID), "after"},
				{"a NAME cursor under the ID order", fmt.Sprintf(`{ segments(after: %q) { edges { cursor } } }`, byName), "after"},
				{"a TOTAL_USERS cursor under NAME", fmt.Sprintf(`{ segments(orderBy: {field: NAME, direction: ASC}, after: %q) { edges { cursor } } }`, byTotal), "after"},
				{"a NAME cursor under NEW_LAST_7_DAYS", fmt.Sprintf(`{ segments(orderBy: {field: NEW_LAST_7_DAYS, direction: ASC}, after: %q) { edges { cursor } } }`, byName), "after"},
				{"a segment cursor in campaigns", fmt.Sprintf(`{ campaigns(after: %q) { edges { cursor } } }`, byID), "after"},
				{"a campaign cursor in users", fmt.Sprintf(`{ users(before: %q, last: 2) { edges { cursor } } }`, campaign), "before"},
				{"a members cursor in events", fmt.Sprintf(`{ events(after: %q) { edges { cursor } } }`, member), "after"},
				{"an activation cursor in members", fmt.Sprintf(`{ node(id: %q) { ... on Segment { members(after: %q) { edges { cursor } } } } }`, segIDs["f"], activation), "after"},
				{"a members cursor in activations", fmt.Sprintf(`{ node(id: %q) { ... on Campaign { activations(after: %q) { edges { cursor } } } } }`, campIDs["f"], member), "after"},
				{"a members cursor in membersAt", fmt.Sprintf(`{ node(id: %q) { ... on Segment { membersAt(time: %q, after: %q) { edges { cursor } } } } }`, segIDs["f"], at, member), "after"},
			} {
				e := c.MustFail(t, "BAD_USER_INPUT", tc.query, nil)
				if e.Field() != tc.field {
					t.Errorf("%s: field %q, want %q (%s)", tc.name, e.Field(), tc.field, e.Message)
				}
			}
		})
	})
}
