package server_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/segmentd/segmentd/internal/testenv"
)

// nestedListsQuery lists segments with their campaigns and a page of
// members each, the members' users with all their memberships, and the
// segments of those: lists in lists in lists.
const nestedListsQuery = `{ segments(first: 50) { totalCount edges { node {
	id name totalUsers conditionText
	campaigns { id name status activationCount segment { name } activations(first: 5) { totalCount edges { node { user { userId } } } } }
	members(first: 20) { totalCount pageInfo { hasNextPage endCursor } edges { cursor node {
		source enteredAt user { userId memberships { source segment { name } } } } } }
} } } }`

// seedNested creates segments segments, each with a campaign and members
// members (every user in two segments).
func seedNested(t testing.TB, c *testenv.Client, segments, members int) {
	t.Helper()
	for i := range segments {
		var seg struct{ CreateSegment struct{ ID string } }
		c.MustDo(t, `mutation($n: String!) { createSegment(input: {name: $n, kind: STATIC}) { id } }`, map[string]any{"n": fmt.Sprintf("segment %03d", i)}, &seg)
		id := seg.CreateSegment.ID
		c.MustDo(t, `mutation($s: ID!, $n: String!) { createCampaign(input: {name: $n, segmentId: $s, status: ACTIVE}) { id } }`,
			map[string]any{"s": id, "n": fmt.Sprintf("campaign %03d", i)}, nil)
		users := make([]string, members)
		for j := range users {
			users[j] = fmt.Sprintf("user-%d-%d", (i+j)%(segments+members), j)
		}
		c.MustDo(t, `mutation($s: ID!, $u: [String!]!) { addUsersToSegment(segmentId: $s, userIds: $u) { added } }`,
			map[string]any{"s": id, "u": users}, nil)
	}
}

// statementsOf runs query and returns how many SQL statements the server
// ran for it.
func statementsOf(t *testing.T, srv *testenv.Server, query string) int64 {
	t.Helper()
	before := srv.Store().Statements()
	r := srv.Admin().Do(t, query, nil)
	if len(r.Errors) > 0 {
		t.Fatalf("errors: %+v", r.Errors)
	}
	// The key's authentication is the only statement outside the query.
	return srv.Store().Statements() - before
}

// Nested lists load in batches: the statements of a query grow with its
// depth, not with its rows. The same query over 3 segments of 4 members and
// over 12 segments of 20 members (5 times the rows at every level) runs the
// same number of statements.
func TestNestedListsLoadInBatches(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		small := testenv.StartServer(t, dbURL)
		seedNested(t, small.Admin(), 3, 4)
		large := testenv.StartServer(t, testenv.DatabaseURL(t, storeOf(dbURL)))
		seedNested(t, large.Admin(), 12, 20)
		statementsOf(t, small, nestedListsQuery) // warm: caches, lazy statements
		statementsOf(t, large, nestedListsQuery)
		// The fewest of three runs: the count is the server's, and its
		// background work (live tailers polling, key touches) adds to it now
		// and then.
		fewest := func(srv *testenv.Server) int64 {
			n := statementsOf(t, srv, nestedListsQuery)
			for range 2 {
				n = min(n, statementsOf(t, srv, nestedListsQuery))
			}
			return n
		}
		s, l := fewest(small), fewest(large)
		t.Logf("statements: %d for 3×4 rows, %d for 12×20 rows", s, l)
		// gqlgen resolves sibling fields concurrently, so a group of
		// siblings is now and then split in two and loads in two statements:
		// a little slack. One list loaded per row would add 9 or more.
		if l > s+3 {
			t.Errorf("the query ran %d statements over 12 segments of 20 members and %d over 3 of 4: they grow with the rows", l, s)
		}
		if s > 25 {
			t.Errorf("%d statements for a query 6 lists deep", s)
		}
		// The batched pages are the pages: the same as paged one segment
		// at a time (an empty where takes that path), in both orders.
		for _, order := range []string{"", ", orderBy: {field: ENTERED_AT, direction: ASC}"} {
			batched := strings.Replace(nestedListsQuery, "members(first: 20)", "members(first: 7"+order+")", 1)
			single := strings.Replace(nestedListsQuery, "members(first: 20)", "members(first: 7, where: {}"+order+")", 1)
			a, b := large.Admin().Do(t, batched, nil), large.Admin().Do(t, single, nil)
			if len(a.Errors)+len(b.Errors) > 0 {
				t.Fatalf("errors: %+v %+v", a.Errors, b.Errors)
			}
			if string(a.Data) != string(b.Data) {
				t.Errorf("order %q: batched pages differ from single pages:\n%s\n%s", order, a.Data, b.Data)
			}
		}
	})
}

func storeOf(dbURL string) string {
	if len(dbURL) >= 8 && dbURL[:8] == "postgres" {
		return "postgres"
	}
	return "sqlite"
}
