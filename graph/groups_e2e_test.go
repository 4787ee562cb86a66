package graph_test

// Issue 13, item 6: Segment's and RudderStack's group call carries the
// group's (company's) traits. They used to be merged into the user's, so
// user.plan = "enterprise" matched a user on the free plan. Now they stay on
// the group, readable as group(groupId) and User.groups, on both stores.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"sync"
	"testing"

	"github.com/segmentd/segmentd/auth"
	"github.com/segmentd/segmentd/internal/testenv"
)

// v1 posts a Segment Tracking API body to /v1/<typ> with the key as the
// Basic-auth user name, as the Segment SDKs do, and fails unless it is 200.
func v1(t *testing.T, srv *testenv.Server, key, typ string, body map[string]any) {
	t.Helper()
	if err := v1Post(srv, key, typ, body); err != nil {
		t.Fatal(err)
	}
}

// v1Post is v1 for other goroutines than the test's: it returns the error.
func v1Post(srv *testenv.Server, key, typ string, body map[string]any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequest(http.MethodPost, srv.URL+"/v1/"+typ, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.SetBasicAuth(key, "")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("/v1/%s: %w", typ, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("/v1/%s: HTTP %d %s", typ, resp.StatusCode, out)
	}
	return nil
}

func TestGroupTraitsStayOnTheGroup(t *testing.T) {
	t.Parallel()
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL)
		admin := srv.Admin()
		_, writeKey := newKey(t, srv, "sdk", auth.RoleWrite)
		_, readKey := newKey(t, srv, "dashboard", auth.RoleRead)
		segID := ingCreateSegment(t, admin, map[string]any{
			"name": "Enterprise users", "kind": "EVENT_TRIGGERED", "triggerEvents": []string{"Sign Up"},
			"condition": map[string]any{"scope": "USER", "property": "plan", "operator": "EQ", "value": "enterprise"},
		})

		// A user on the free plan joins the company Acme, which is on the
		// enterprise plan; a second user joins it in a batch.
		v1(t, srv, writeKey, "identify", map[string]any{"userId": "u-free", "messageId": "id-1", "traits": map[string]any{"plan": "free", "name": "Ann"}})
		v1(t, srv, writeKey, "group", map[string]any{"userId": "u-free", "groupId": "acme", "messageId": "grp-1",
			"traits": map[string]any{"plan": "enterprise", "employees": 500, "name": "Acme Inc."}})
		v1(t, srv, writeKey, "batch", map[string]any{"batch": []any{
			map[string]any{"type": "group", "userId": "u-other", "groupId": "acme", "messageId": "grp-2",
				"traits": map[string]any{"industry": "retail", "employees": 510}},
			map[string]any{"type": "group", "userId": "u-free", "groupId": " globex ", "messageId": "grp-3",
				"traits": map[string]any{"tier": "startup"}},
		}})
		// A repeated group call (same messageId) changes nothing.
		v1(t, srv, writeKey, "group", map[string]any{"userId": "u-free", "groupId": "acme", "messageId": "grp-1",
			"traits": map[string]any{"plan": "repeated"}})
		v1(t, srv, writeKey, "track", map[string]any{"userId": "u-free", "event": "Sign Up", "messageId": "su-1"})
		v1(t, srv, writeKey, "track", map[string]any{"userId": "u-other", "event": "Sign Up", "messageId": "su-2"})

		if m := ingMembers(t, admin, segID); len(m) != 0 {
			t.Errorf("user.plan = enterprise matched users of an enterprise company: members %v", ingKeys(m))
		}

		type groupView struct {
			GroupID string
			Traits  map[string]any
			Users   struct {
				TotalCount int
				Edges      []struct{ Node struct{ UserID string } }
			}
		}
		var got struct {
			User *struct {
				Traits map[string]any
				Groups []struct {
					GroupID string
					Traits  map[string]any
				}
			}
			Group  *groupView
			Globex *groupView
			None   *groupView
		}
		const q = `{ user(userId: "u-free") { traits groups { groupId traits } }
			group(groupId: "acme") { groupId traits users(first: 10, orderBy: {field: USER_ID}) { totalCount edges { node { userId } } } }
			globex: group(groupId: "globex") { groupId traits users { totalCount } }
			none: group(groupId: "initech") { groupId } }`
		srv.Client(readKey).MustDo(t, q, nil, &got)
		if got.User == nil {
			t.Fatal("user u-free is unknown")
		}
		if want := map[string]any{"plan": "free", "name": "Ann"}; !reflect.DeepEqual(got.User.Traits, want) {
			t.Errorf("u-free traits = %v, want %v (the groups' traits must not reach the user)", got.User.Traits, want)
		}
		groups := map[string]map[string]any{}
		for _, g := range got.User.Groups {
			groups[g.GroupID] = g.Traits
		}
		if len(groups) != 2 || groups["acme"] == nil || groups["globex"] == nil {
			t.Errorf("u-free groups = %v, want acme and globex", got.User.Groups)
		}
		if got.Group == nil {
			t.Fatal("group(groupId: acme) is null")
		}
		wantAcme := map[string]any{"plan": "enterprise", "employees": 510.0, "name": "Acme Inc.", "industry": "retail"}
		if !reflect.DeepEqual(got.Group.Traits, wantAcme) {
			t.Errorf("acme traits = %v, want %v", got.Group.Traits, wantAcme)
		}
		var members []string
		for _, e := range got.Group.Users.Edges {
			members = append(members, e.Node.UserID)
		}
		if got.Group.Users.TotalCount != 2 || !reflect.DeepEqual(members, []string{"u-free", "u-other"}) {
			t.Errorf("acme users = %v (total %d), want [u-free u-other]", members, got.Group.Users.TotalCount)
		}
		if got.Globex == nil || got.Globex.Traits["tier"] != "startup" || got.Globex.Users.TotalCount != 1 {
			t.Errorf("globex (sent as \" globex \") = %+v", got.Globex)
		}
		if got.None != nil {
			t.Errorf("unknown group = %+v, want null", got.None)
		}

		// Group data is for READ and ADMIN keys; a WRITE key may not query it.
		if e := srv.Client(writeKey).MustFail(t, "FORBIDDEN", `{ group(groupId: "acme") { traits } }`, nil); e.Message == "" {
			t.Error("FORBIDDEN without a message")
		}
		// A group call without a groupId is refused, naming the field.
		b, _ := json.Marshal(map[string]any{"userId": "u-free", "traits": map[string]any{"plan": "x"}})
		r := rawHTTP(t, http.MethodPost, srv.URL+"/v1/group",
			http.Header{"Content-Type": {"application/json"}, "Authorization": {"Bearer " + writeKey}}, bytes.NewReader(b))
		if r.Status != http.StatusBadRequest || !bytes.Contains(r.Body, []byte("groupId")) {
			t.Errorf("group without groupId: HTTP %d %s", r.Status, r.Body)
		}

		// verify rebuilds the users' traits from their stored events: a
		// group call's traits are not among them.
		svc := newService(t, srv.Store())
		rep, err := svc.Verify(context.Background())
		if err != nil {
			t.Fatalf("verify: %v", err)
		}
		if !rep.OK() {
			t.Errorf("verify: %s", rep)
		}
	})
}

// Concurrent group calls for one group, from different users, lose no
// trait and no member: the group row is locked while its traits merge.
func TestConcurrentGroupCallsMergeEveryTrait(t *testing.T) {
	t.Parallel()
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL)
		_, writeKey := newKey(t, srv, "sdk", auth.RoleWrite)
		const n = 24
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- v1Post(srv, writeKey, "group", map[string]any{"userId": fmt.Sprintf("u-%02d", i), "groupId": "acme",
					"messageId": fmt.Sprintf("g-%02d", i), "traits": map[string]any{fmt.Sprintf("t%02d", i): i}})
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		var got struct {
			Group struct {
				Traits map[string]any
				Users  struct{ TotalCount int }
			}
		}
		srv.Admin().MustDo(t, `{ group(groupId: "acme") { traits users { totalCount } } }`, nil, &got)
		if len(got.Group.Traits) != n || got.Group.Users.TotalCount != n {
			t.Errorf("after %d concurrent group calls: %d traits, %d users", n, len(got.Group.Traits), got.Group.Users.TotalCount)
		}
		for i := range n {
			if v, ok := got.Group.Traits[fmt.Sprintf("t%02d", i)]; !ok || v != float64(i) {
				t.Errorf("trait t%02d = %v (present %v)", i, v, ok)
			}
		}
	})
}
