package graph_test

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentd/segmentd/internal/testenv"
	"github.com/segmentd/segmentd/server"
)

type figuresClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *figuresClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *figuresClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

type listedSegment struct {
	Cursor string
	Node   struct {
		ID, Name   string
		TotalUsers int
		Stats      struct{ TotalUsers, NewLast7Days int }
	}
}

type segmentListPage struct {
	Segments struct {
		TotalCount int
		PageInfo   struct {
			HasNextPage, HasPreviousPage bool
			StartCursor, EndCursor       *string
		}
		Edges []listedSegment
	}
}

const listSegmentsQuery = `query($o: SegmentOrder, $first: Int, $after: Cursor, $last: Int, $before: Cursor, $w: SegmentWhereInput) {
  segments(orderBy: $o, first: $first, after: $after, last: $last, before: $before, where: $w) {
    totalCount pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges { cursor node { id name totalUsers stats { totalUsers newLast7Days } } } } }`

// TestSegmentFiguresOverGraphQL: totalUsers, stats, growth and membersAt
// through the API with an injected clock; the segments list ordered by
// TOTAL_USERS and NEW_LAST_7_DAYS, paged forwards and backwards; members
// filtered by source and entry time, newest first; bad arguments named.
func TestSegmentFiguresOverGraphQL(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		clk := &figuresClock{t: time.Date(2025, 9, 20, 10, 0, 0, 0, time.UTC)}
		srv := testenv.StartServer(t, dbURL, func(c *server.Config) { c.Now = clk.Now })
		c := srv.Admin()

		// Segments with (old members, recent members): totals and
		// newLast7Days differ, with ties.
		plan := []struct {
			name        string
			old, recent int
		}{{"A", 3, 2}, {"B", 0, 2}, {"C", 8, 0}, {"D", 0, 0}, {"E", 1, 1}, {"F", 4, 5}}
		ids := map[string]string{}
		for _, p := range plan {
			var out struct{ CreateSegment struct{ ID string } }
			c.MustDo(t, `mutation($n: String!) { createSegment(input: {name: $n, kind: STATIC}) { id } }`, map[string]any{"n": p.name}, &out)
			ids[p.name] = out.CreateSegment.ID
		}
		add := func(seg string, users ...string) {
			t.Helper()
			if len(users) == 0 {
				return
			}
			c.MustDo(t, `mutation($s: ID!, $u: [String!]!) { addUsersToSegment(segmentId: $s, userIds: $u) { added } }`,
				map[string]any{"s": seg, "u": users}, nil)
		}
		users := func(prefix string, n int) []string {
			out := make([]string, n)
			for i := range out {
				out[i] = fmt.Sprintf("%s-%d", prefix, i)
			}
			return out
		}
		for _, p := range plan {
			add(ids[p.name], users(p.name+"-old", p.old)...)
		}
		clk.Set(time.Date(2025, 9, 29, 8, 0, 0, 0, time.UTC)) // 9 days later, a Monday
		for _, p := range plan {
			add(ids[p.name], users(p.name+"-new", p.recent)...)
		}
		total := map[string]int{}
		recent := map[string]int{}
		for _, p := range plan {
			total[ids[p.name]] = p.old + p.recent
			recent[ids[p.name]] = p.recent
		}

		// Every order, every direction, forwards by 2 and backwards by 4:
		// the same sequence as sorting by (figure, id).
		for _, field := range []string{"TOTAL_USERS", "NEW_LAST_7_DAYS"} {
			for _, dir := range []string{"ASC", "DESC"} {
				fig := total
				if field == "NEW_LAST_7_DAYS" {
					fig = recent
				}
				var want []string
				for _, id := range ids {
					want = append(want, id)
				}
				sort.Slice(want, func(i, j int) bool {
					a, b := want[i], want[j]
					less := fig[a] < fig[b] || fig[a] == fig[b] && a < b
					if dir == "DESC" {
						return !less
					}
					return less
				})
				order := map[string]any{"field": field, "direction": dir}
				var got []string
				var after any
				for pages := 0; ; pages++ {
					var page segmentListPage
					c.MustDo(t, listSegmentsQuery, map[string]any{"o": order, "first": 2, "after": after}, &page)
					if page.Segments.TotalCount != len(plan) {
						t.Fatalf("%s %s: totalCount %d", field, dir, page.Segments.TotalCount)
					}
					for _, e := range page.Segments.Edges {
						got = append(got, e.Node.ID)
						if e.Node.TotalUsers != total[e.Node.ID] || e.Node.Stats.TotalUsers != total[e.Node.ID] || e.Node.Stats.NewLast7Days != recent[e.Node.ID] {
							t.Fatalf("%s: totalUsers %d, stats %+v; want %d, %d", e.Node.Name, e.Node.TotalUsers, e.Node.Stats, total[e.Node.ID], recent[e.Node.ID])
						}
					}
					if !page.Segments.PageInfo.HasNextPage {
						break
					}
					if pages > len(plan) {
						t.Fatalf("%s %s: paging does not end", field, dir)
					}
					after = *page.Segments.PageInfo.EndCursor
				}
				if strings.Join(got, ",") != strings.Join(want, ",") {
					t.Fatalf("%s %s forwards:\n got %v\nwant %v", field, dir, got, want)
				}
				var back []string
				var before any
				for {
					var page segmentListPage
					c.MustDo(t, listSegmentsQuery, map[string]any{"o": order, "last": 4, "before": before}, &page)
					var ids []string
					for _, e := range page.Segments.Edges {
						ids = append(ids, e.Node.ID)
					}
					back = append(ids, back...)
					if !page.Segments.PageInfo.HasPreviousPage {
						break
					}
					before = *page.Segments.PageInfo.StartCursor
				}
				if strings.Join(back, ",") != strings.Join(want, ",") {
					t.Fatalf("%s %s backwards:\n got %v\nwant %v", field, dir, back, want)
				}
			}
		}
		// Filters still apply under an aggregate order.
		var filtered segmentListPage
		c.MustDo(t, listSegmentsQuery, map[string]any{"o": map[string]any{"field": "TOTAL_USERS", "direction": "DESC"},
			"w": map[string]any{"nameIn": []string{"A", "C", "D"}}}, &filtered)
		if n := len(filtered.Segments.Edges); n != 3 || filtered.Segments.TotalCount != 3 || filtered.Segments.Edges[0].Node.Name != "C" {
			t.Fatalf("filtered: %+v", filtered.Segments)
		}
		// Column orders still work.
		var byName segmentListPage
		c.MustDo(t, listSegmentsQuery, map[string]any{"o": map[string]any{"field": "NAME", "direction": "DESC"}, "first": 1}, &byName)
		if byName.Segments.Edges[0].Node.Name != "F" || byName.Segments.Edges[0].Node.TotalUsers != 9 {
			t.Fatalf("by name: %+v", byName.Segments.Edges)
		}

		// Remove one of A's recent members, an hour later; look back.
		clk.Set(time.Date(2025, 9, 29, 9, 0, 0, 0, time.UTC))
		c.MustDo(t, `mutation($s: ID!) { removeUsersFromSegment(segmentId: $s, userIds: ["A-new-0"]) { removed } }`,
			map[string]any{"s": ids["A"]}, nil)
		var seg struct {
			Node struct {
				Stats  struct{ TotalUsers, NewThisWeek, NewThisMonth, NewLast7Days, NewLast30Days int }
				Growth []struct {
					Start                  time.Time
					Entered, Exited, Total int
				}
				Before struct {
					TotalCount int
					Edges      []struct {
						Node struct {
							User      struct{ UserID string }
							EnteredAt time.Time
							Source    string
						}
					}
				}
				After  struct{ TotalCount int }
				Recent struct {
					Edges []struct {
						Node struct {
							EnteredAt time.Time
							Source    string
							User      struct{ UserID string }
						}
					}
				}
			}
		}
		c.MustDo(t, `query($s: ID!, $t1: Time!, $t2: Time!, $since: Time!) { node(id: $s) { ... on Segment {
			stats(timeZone: "Asia/Kathmandu") { totalUsers newThisWeek newThisMonth newLast7Days newLast30Days }
			growth(interval: DAY, from: "2025-09-19T00:00:00Z", to: "2025-09-30T00:00:00Z", timeZone: "Asia/Kolkata") { start entered exited total }
			before: membersAt(time: $t1, first: 10) { totalCount edges { node { user { userId } enteredAt source } } }
			after: membersAt(time: $t2) { totalCount }
			recent: members(where: {source: MANUAL, enteredAtGTE: $since}) { edges { node { enteredAt source user { userId } } } }
		} } }`, map[string]any{"s": ids["A"], "t1": "2025-09-29T08:30:00Z", "t2": "2025-09-29T09:00:00Z", "since": "2025-09-25T00:00:00Z"}, &seg)
		n := seg.Node
		if n.Stats.TotalUsers != 4 || n.Stats.NewThisWeek != 1 || n.Stats.NewThisMonth != 4 || n.Stats.NewLast7Days != 1 || n.Stats.NewLast30Days != 4 {
			t.Fatalf("stats: %+v", n.Stats)
		}
		// Kolkata days from Sep 19 05:30 IST to the day holding Sep 30 00:00Z.
		if len(n.Growth) != 12 {
			t.Fatalf("growth: %d points: %+v", len(n.Growth), n.Growth)
		}
		kolkata, _ := time.LoadLocation("Asia/Kolkata")
		if !n.Growth[0].Start.Equal(time.Date(2025, 9, 19, 0, 0, 0, 0, kolkata)) {
			t.Fatalf("first point starts %s", n.Growth[0].Start)
		}
		for i, p := range n.Growth {
			want := struct{ e, x, total int }{0, 0, 0}
			switch {
			case i == 1: // Sep 20 10:00Z
				want = struct{ e, x, total int }{3, 0, 3}
			case i >= 2 && i < 10:
				want.total = 3
			case i == 10: // Sep 29
				want = struct{ e, x, total int }{2, 1, 4}
			case i == 11:
				want.total = 4
			}
			if p.Entered != want.e || p.Exited != want.x || p.Total != want.total {
				t.Fatalf("growth point %d (%s): %+v, want %+v", i, p.Start, p, want)
			}
		}
		if n.Before.TotalCount != 5 || len(n.Before.Edges) != 5 || n.After.TotalCount != 4 {
			t.Fatalf("membersAt: before %d (%d edges), after %d", n.Before.TotalCount, len(n.Before.Edges), n.After.TotalCount)
		}
		if len(n.Recent.Edges) != 1 || n.Recent.Edges[0].Node.User.UserID != "A-new-1" {
			t.Fatalf("members where: %+v", n.Recent.Edges)
		}

		// User.memberships, with their reasons.
		var u struct {
			User struct {
				Memberships []struct {
					Reason  string
					Source  string
					Segment struct{ Name string }
				}
			}
		}
		c.MustDo(t, `{ user(userId: "A-new-1") { memberships { reason source segment { name } } } }`, nil, &u)
		if len(u.User.Memberships) != 1 || u.User.Memberships[0].Reason != "added by hand" || u.User.Memberships[0].Segment.Name != "A" {
			t.Fatalf("memberships: %+v", u.User.Memberships)
		}

		// Bad arguments: BAD_USER_INPUT naming the argument.
		for _, tc := range []struct{ args, field string }{
			{`interval: DAY, from: "2025-09-20T00:00:00Z", to: "2025-09-20T00:00:00Z"`, "to"},
			{`interval: DAY, from: "2025-09-21T00:00:00Z", to: "2025-09-20T00:00:00Z"`, "to"},
			{`interval: HOUR, from: "2020-01-01T00:00:00Z", to: "2025-01-01T00:00:00Z"`, "to"},
			{`interval: DAY, from: "2025-09-20T00:00:00Z", to: "2025-09-21T00:00:00Z", timeZone: "Mars/Olympus"`, "timeZone"},
		} {
			res := c.Do(t, `query($s: ID!) { node(id: $s) { ... on Segment { growth(`+tc.args+`) { total } } } }`, map[string]any{"s": ids["A"]})
			if len(res.Errors) != 1 || res.Errors[0].Code() != "BAD_USER_INPUT" || res.Errors[0].Extensions["field"] != tc.field {
				t.Fatalf("growth(%s): %+v", tc.args, res.Errors)
			}
		}
		res := c.Do(t, `query($s: ID!) { node(id: $s) { ... on Segment { membersAt(time: "2025-09-29T00:00:00Z", first: 5000) { totalCount } } } }`, map[string]any{"s": ids["A"]})
		if len(res.Errors) != 1 || res.Errors[0].Code() != "BAD_USER_INPUT" {
			t.Fatalf("membersAt first: 5000: %+v", res.Errors)
		}
		res = c.Do(t, listSegmentsQuery, map[string]any{"o": map[string]any{"field": "TOTAL_USERS"}, "first": 1, "after": firstCursorByName(t, c)})
		if len(res.Errors) != 1 || res.Errors[0].Code() != "BAD_USER_INPUT" || res.Errors[0].Extensions["field"] != "after" {
			t.Fatalf("a NAME cursor under TOTAL_USERS: %+v", res.Errors)
		}
	})
}

// firstCursorByName is the cursor of the first segment by NAME, which does
// not carry a number.
func firstCursorByName(t *testing.T, c *testenv.Client) string {
	var page segmentListPage
	c.MustDo(t, listSegmentsQuery, map[string]any{"o": map[string]any{"field": "NAME"}, "first": 1}, &page)
	return page.Segments.Edges[0].Cursor
}
