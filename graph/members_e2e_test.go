package graph_test

import (
	"encoding/csv"
	"io"
	"net/http"
	"sort"
	"strings"
	"testing"

	"github.com/segmentd/segmentd/internal/testenv"
)

type memberResult struct {
	Segment struct {
		ID string
	}
	Added, Removed, Unchanged int
}

// TestAddAndRemoveUsers: test users are added and removed by ID on a STATIC
// segment, counted, logged, and activate an ACTIVE campaign once; the CSV
// export lists exactly the members, with formula cells defused.
func TestAddAndRemoveUsers(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL)
		c := srv.Admin()
		var seg struct{ CreateSegment struct{ ID string } }
		c.MustDo(t, `mutation { createSegment(input: {name: "Beta testers", kind: STATIC}) { id } }`, nil, &seg)
		segID := seg.CreateSegment.ID
		var camp struct{ CreateCampaign struct{ ID string } }
		c.MustDo(t, `mutation($s: ID!) { createCampaign(input: {name: "Beta", segmentId: $s, status: ACTIVE}) { id } }`,
			map[string]any{"s": segID}, &camp)

		add := func(ids ...string) memberResult {
			var out struct{ AddUsersToSegment memberResult }
			c.MustDo(t, `mutation($s: ID!, $u: [String!]!) { addUsersToSegment(segmentId: $s, userIds: $u) { segment { id } added removed unchanged } }`,
				map[string]any{"s": segID, "u": ids}, &out)
			return out.AddUsersToSegment
		}
		remove := func(ids ...string) memberResult {
			var out struct{ RemoveUsersFromSegment memberResult }
			c.MustDo(t, `mutation($s: ID!, $u: [String!]!) { removeUsersFromSegment(segmentId: $s, userIds: $u) { segment { id } added removed unchanged } }`,
				map[string]any{"s": segID, "u": ids}, &out)
			return out.RemoveUsersFromSegment
		}
		if got := add("alice", "bob", " alice ", "=HYPERLINK()"); got.Added != 3 || got.Unchanged != 0 || got.Segment.ID != segID {
			t.Fatalf("first add: %+v", got)
		}
		if got := add("bob", "carol"); got.Added != 1 || got.Unchanged != 1 {
			t.Fatalf("second add: %+v", got)
		}
		if got := remove("bob", "nobody"); got.Removed != 1 || got.Unchanged != 1 {
			t.Fatalf("remove: %+v", got)
		}
		if got := add("bob"); got.Added != 1 {
			t.Fatalf("re-add: %+v", got)
		}

		var q struct {
			Node struct {
				Members struct {
					TotalCount int
					Edges      []struct {
						Node struct {
							Source string
							Reason string
							User   struct{ UserID string }
						}
					}
				}
				Campaigns []struct{ ActivationCount int }
			}
		}
		c.MustDo(t, `query($s: ID!) { node(id: $s) { ... on Segment { members(first: 10) { totalCount edges { node { source reason user { userId } } } } campaigns { activationCount } } } }`,
			map[string]any{"s": segID}, &q)
		if q.Node.Members.TotalCount != 4 {
			t.Fatalf("members: %+v", q.Node.Members)
		}
		for _, e := range q.Node.Members.Edges {
			if e.Node.Source != "MANUAL" || e.Node.Reason == "" {
				t.Fatalf("member %+v: want source MANUAL with a reason", e.Node)
			}
		}
		// bob activated once although he entered twice.
		if got := q.Node.Campaigns[0].ActivationCount; got != 4 {
			t.Fatalf("activationCount = %d, want 4", got)
		}

		// Bad input: nothing written.
		e := c.MustFail(t, "BAD_USER_INPUT", `mutation($s: ID!) { addUsersToSegment(segmentId: $s, userIds: ["ok", ""]) { added } }`, map[string]any{"s": segID})
		if e.Field() != "userIds[1]" {
			t.Fatalf("field = %q", e.Field())
		}
		c.MustFail(t, "NOT_FOUND", `mutation { addUsersToSegment(segmentId: "seg_nope", userIds: ["x"]) { added } }`, nil)
		var users struct{ Users struct{ TotalCount int } }
		c.MustDo(t, `{ users { totalCount } }`, nil, &users)
		if users.Users.TotalCount != 4 { // alice, bob, carol, =HYPERLINK()
			t.Fatalf("users = %d, want 4 (a refused call must create none)", users.Users.TotalCount)
		}

		// Export.
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/segments/"+segID+"/members.csv", nil)
		req.Header.Set("Authorization", "Bearer "+testenv.AdminKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/csv") {
			body, _ := io.ReadAll(resp.Body)
			t.Fatalf("export: %d %s", resp.StatusCode, body)
		}
		rows, err := csv.NewReader(resp.Body).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, r := range rows[1:] {
			ids = append(ids, r[0])
			if r[2] != "MANUAL" {
				t.Fatalf("row %v", r)
			}
		}
		sort.Strings(ids)
		if strings.Join(rows[0], ",") != "user_id,entered_at,source" || strings.Join(ids, ",") != "'=HYPERLINK(),alice,bob,carol" {
			t.Fatalf("export rows: %v", rows)
		}
		resp2, err := http.Get(srv.URL + "/segments/" + segID + "/members.csv")
		if err != nil {
			t.Fatal(err)
		}
		resp2.Body.Close()
		if resp2.StatusCode != http.StatusUnauthorized {
			t.Fatalf("export without a key: %d", resp2.StatusCode)
		}
	})
}
