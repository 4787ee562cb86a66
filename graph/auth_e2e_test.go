package graph_test

// Authentication and roles over real HTTP: each role against each kind of
// operation, missing, wrong and revoked keys, Basic auth. A refused request
// shows no data at all and writes nothing.

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/url"
	"testing"

	"github.com/segmentd/segmentd/auth"
	"github.com/segmentd/segmentd/ent"
	"github.com/segmentd/segmentd/internal/testenv"
)

// newKey creates an API key with role directly in the server's store and
// returns its record and secret.
func newKey(t *testing.T, srv *testenv.Server, name string, role auth.Role) (*ent.APIKey, string) {
	t.Helper()
	key, secret, err := auth.NewKeys(srv.Store().Client).Create(context.Background(), name, role)
	if err != nil {
		t.Fatalf("create %s key: %v", role, err)
	}
	return key, secret
}

// noData fails unless the response carries no data: absent or null.
func noData(t *testing.T, label string, r *testenv.Response) {
	t.Helper()
	if len(r.Data) > 0 && string(r.Data) != "null" {
		t.Errorf("%s: data leaked: %s", label, r.Data)
	}
}

// eventCount is events { totalCount }, with the ADMIN key.
func eventCount(t *testing.T, c *testenv.Client) int {
	t.Helper()
	var out struct{ Events struct{ TotalCount int } }
	c.MustDo(t, `{ events { totalCount } }`, nil, &out)
	return out.Events.TotalCount
}

// TestRolesPerOperation: ADMIN may do everything; READ may query but not
// mutate; WRITE may only ingest. A refused operation answers FORBIDDEN with
// data null, whatever else it asked for, and writes nothing.
func TestRolesPerOperation(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL)
		admin := srv.Admin()
		seg := createSegment(t, admin, seedSegment())
		_, readKey := newKey(t, srv, "dashboard", auth.RoleRead)
		_, writeKey := newKey(t, srv, "web tracker", auth.RoleWrite)
		clients := map[string]*testenv.Client{"ADMIN": admin, "READ": srv.Client(readKey), "WRITE": srv.Client(writeKey)}

		type op struct {
			name    string
			query   string
			vars    map[string]any
			allowed map[string]bool
			// skipAdmin: ADMIN may, but its run would change what the
			// other checks rely on; ADMIN mutations are tested elsewhere.
			skipAdmin bool
		}
		segVars := map[string]any{"id": seg.ID}
		ops := []op{
			{"query segments", `{ segments { totalCount edges { node { id name conditionText } } } }`, nil,
				map[string]bool{"ADMIN": true, "READ": true}, false},
			{"query node", `query($id: ID!) { node(id: $id) { ... on Segment { name } } }`, segVars,
				map[string]bool{"ADMIN": true, "READ": true}, false},
			{"query through a fragment", `query { ...Q } fragment Q on Query { segments { edges { node { name } } } }`, nil,
				map[string]bool{"ADMIN": true, "READ": true}, false},
			{"query campaigns", `{ campaigns { totalCount } }`, nil,
				map[string]bool{"ADMIN": true, "READ": true}, false},
			{"query with __typename", `{ __typename segments { totalCount } }`, nil,
				map[string]bool{"ADMIN": true, "READ": true}, false},
			{"__typename alone", `{ __typename }`, nil,
				map[string]bool{"ADMIN": true, "READ": true, "WRITE": true}, false},
			{"mutation createSegment", `mutation { createSegment(input: {name: "By role", kind: STATIC}) { id name } }`, nil,
				map[string]bool{"ADMIN": true}, false},
			{"mutation updateSegment", `mutation($id: ID!) { updateSegment(id: $id, input: {name: "Renamed by role"}) { id name } }`, segVars,
				map[string]bool{"ADMIN": true}, true},
			{"mutation deleteSegment", `mutation($id: ID!) { deleteSegment(id: $id) }`, segVars,
				map[string]bool{"ADMIN": true}, true},
			{"mutation createCampaign", `mutation { createCampaign(input: {name: "By role"}) { id } }`, nil,
				map[string]bool{"ADMIN": true}, true},
			{"mutation trackEvent", `mutation { trackEvent(input: {event: "Page Viewed", userId: "u-auth"}) { duplicate } }`, nil,
				map[string]bool{"ADMIN": true, "WRITE": true}, true},
			{"ingestion and admin mutation together", `mutation { trackEvent(input: {event: "Page Viewed", userId: "u-mixed"}) { duplicate } createSegment(input: {name: "Mixed", kind: STATIC}) { id } }`, nil,
				map[string]bool{"ADMIN": true}, true},
		}
		for _, o := range ops {
			for _, role := range []string{"READ", "WRITE", "ADMIN"} {
				if o.skipAdmin && role == "ADMIN" {
					continue
				}
				segsBefore, eventsBefore := segmentCount(t, admin), eventCount(t, admin)
				r := clients[role].Do(t, o.query, o.vars)
				label := role + " " + o.name
				if o.allowed[role] {
					if len(r.Errors) != 0 || r.Status != http.StatusOK || len(r.Data) == 0 || string(r.Data) == "null" {
						t.Errorf("%s: want data, got HTTP %d %s %+v", label, r.Status, r.Data, r.Errors)
					}
					continue
				}
				if len(r.Errors) != 1 || r.Errors[0].Code() != "FORBIDDEN" {
					t.Errorf("%s: want one FORBIDDEN error, got HTTP %d %+v", label, r.Status, r.Errors)
				}
				noData(t, label, r)
				if segsAfter, eventsAfter := segmentCount(t, admin), eventCount(t, admin); segsAfter != segsBefore || eventsAfter != eventsBefore {
					t.Errorf("%s: refused, but segments %d -> %d, events %d -> %d", label, segsBefore, segsAfter, eventsBefore, eventsAfter)
				}
			}
		}
		// The refused updates and deletes changed nothing.
		if got := getSegment(t, admin, seg.ID); got == nil || got.Name != seedSegmentName {
			t.Fatalf("after refused mutations the segment is %+v", got)
		}
		if names, n := campaignNames(t, admin, nil); n != 0 {
			t.Fatalf("refused createCampaign wrote %q", names)
		}
		// ADMIN's createSegment ran; what READ sees is what ADMIN sees.
		q := `{ segments(first: 100, orderBy: {field: NAME, direction: ASC}) { totalCount edges { node { ` + segmentFields + ` } } } }` + condFragment
		asRead, asAdmin := clients["READ"].Do(t, q, nil), admin.Do(t, q, nil)
		if len(asRead.Errors)+len(asAdmin.Errors) != 0 || string(asRead.Data) != string(asAdmin.Data) {
			t.Fatalf("READ sees %s %+v\nADMIN sees %s %+v", asRead.Data, asRead.Errors, asAdmin.Data, asAdmin.Errors)
		}
		if n := segmentCount(t, admin); n != 2 {
			t.Fatalf("segments %d, want the seed and ADMIN's", n)
		}
		// The allowed ingestion really ran for WRITE.
		if n := eventCount(t, admin); n != 1 {
			t.Fatalf("events %d, want the one trackEvent of the WRITE key", n)
		}
	})
}

// TestAuthentication: no key, a wrong key, a malformed header and a revoked
// key are UNAUTHENTICATED with HTTP 401 and no data, and the message does not
// tell a wrong key from a revoked one; Basic auth with the key as user name
// works; GET requests are authenticated the same way.
func TestAuthentication(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL)
		createSegment(t, srv.Admin(), seedSegment())
		const q = `{ segments { totalCount edges { node { name } } } }`
		basic := func(user string) string {
			return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"))
		}

		refused := map[string]string{
			"no Authorization header":     "",
			"wrong key":                   "Bearer sgd_not_a_real_key_at_all_0123456789",
			"empty bearer":                "Bearer ",
			"unknown scheme":              "Token " + testenv.AdminKey,
			"bare key":                    testenv.AdminKey,
			"wrong key as Basic user":     basic("sgd_not_a_real_key_at_all_0123456789"),
			"key as Basic password":       "Basic " + base64.StdEncoding.EncodeToString([]byte(":"+testenv.AdminKey)),
			"Basic that is not base64":    "Basic !!!",
			"admin key with one char off": "Bearer " + testenv.AdminKey[:len(testenv.AdminKey)-1] + "x",
		}
		var wrongMessage string
		for name, header := range refused {
			h := postGraphQL(t, srv, header, q, nil)
			r := h.gql(t)
			if h.Status != http.StatusUnauthorized || len(r.Errors) != 1 || r.Errors[0].Code() != "UNAUTHENTICATED" {
				t.Errorf("%s: HTTP %d %s; want 401 UNAUTHENTICATED", name, h.Status, h.Body)
			}
			noData(t, name, &r)
			if name == "wrong key" {
				wrongMessage = r.Errors[0].Message
			}
		}

		// Basic auth with the key as user name, as Segment's SDKs send it.
		for _, header := range []string{basic(testenv.AdminKey), "bearer " + testenv.AdminKey} {
			r := postGraphQL(t, srv, header, q, nil).gql(t)
			if r.Status != http.StatusOK || len(r.Errors) != 0 || string(r.Data) == "null" {
				t.Errorf("%q: HTTP %d %s %+v", header[:6], r.Status, r.Data, r.Errors)
			}
		}

		// A key works until it is revoked, then never again.
		key, secret := newKey(t, srv, "to revoke", auth.RoleRead)
		reader := srv.Client(secret)
		var out struct{ Segments struct{ TotalCount int } }
		reader.MustDo(t, `{ segments { totalCount } }`, nil, &out)
		if out.Segments.TotalCount != 1 {
			t.Fatalf("READ key sees %d segments", out.Segments.TotalCount)
		}
		if err := auth.NewKeys(srv.Store().Client).Revoke(context.Background(), key.ID); err != nil {
			t.Fatalf("revoke: %v", err)
		}
		for _, header := range []string{"Bearer " + secret, basic(secret)} {
			h := postGraphQL(t, srv, header, q, nil)
			r := h.gql(t)
			if h.Status != http.StatusUnauthorized || len(r.Errors) != 1 || r.Errors[0].Code() != "UNAUTHENTICATED" {
				t.Fatalf("revoked key: HTTP %d %s; want 401 UNAUTHENTICATED", h.Status, h.Body)
			}
			noData(t, "revoked key", &r)
			if r.Errors[0].Message != wrongMessage {
				t.Errorf("a revoked key reads %q, a wrong one %q: the message must not tell them apart", r.Errors[0].Message, wrongMessage)
			}
		}

		// GET /graphql: the key is required there too.
		get := func(header string) httpResult {
			h := http.Header{}
			if header != "" {
				h.Set("Authorization", header)
			}
			return rawHTTP(t, http.MethodGet, srv.URL+"/graphql?query="+url.QueryEscape(q), h, nil)
		}
		if h := get(""); h.Status != http.StatusUnauthorized || h.gql(t).Errors[0].Code() != "UNAUTHENTICATED" {
			t.Fatalf("GET without a key: HTTP %d %s", h.Status, h.Body)
		}
		if h := get("Bearer " + testenv.AdminKey); h.Status != http.StatusOK || len(h.gql(t).Errors) != 0 {
			t.Fatalf("GET with the ADMIN key: HTTP %d %s", h.Status, h.Body)
		}
	})
}
