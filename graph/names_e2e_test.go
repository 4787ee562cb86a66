package graph_test

// The names a condition builder offers (eventNames, propertyNames,
// traitNames) and viewer, over real HTTP on SQLite and PostgreSQL: counted
// and ordered as documented, bounded, and closed to WRITE keys.

import (
	"slices"
	"testing"
	"time"

	"github.com/segmentd/segmentd/auth"
	"github.com/segmentd/segmentd/internal/testenv"
)

func TestBuilderNames(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL)
		admin := srv.Admin()
		track := func(name, user string, props, traits map[string]any) {
			admin.MustDo(t, `mutation($in: TrackInput!) { trackEvent(input: $in) { duplicate } }`,
				map[string]any{"in": map[string]any{"event": name, "userId": user, "properties": props, "traits": traits}}, nil)
		}
		before := time.Now().Add(-time.Second)
		track("Sign Up", "u1", map[string]any{"Channel": "Facebook", "address": map[string]any{"city": "Paris"}}, map[string]any{"plan": "pro"})
		track("Sign Up", "u2", map[string]any{"Channel": "Google"}, map[string]any{"plan": "free", "Sign Up Date": "2025-02-01"})
		track("Sign Up", "u3", map[string]any{"Channel": "Google", "Reward Amount": 60}, nil)
		track("Purchase Completed", "u1", map[string]any{"amount": 10}, nil)
		admin.MustDo(t, `mutation { identify(input: {userId: "u4", traits: {plan: "pro"}}) { userId } }`, nil, nil)

		var out struct {
			EventNames []struct {
				Name       string
				Count      int
				LastSeenAt time.Time
			}
			Prefixed      []struct{ Name string }
			PropertyNames []string
			TraitNames    []string
			Viewer        struct{ KeyName, Role string }
		}
		admin.MustDo(t, `{ eventNames { name count lastSeenAt } prefixed: eventNames(prefix: "Pur") { name }
		  propertyNames(event: "Sign Up") traitNames viewer { keyName role } }`, nil, &out)
		if len(out.EventNames) != 2 || out.EventNames[0].Name != "Sign Up" || out.EventNames[0].Count != 3 ||
			out.EventNames[1].Name != "Purchase Completed" || out.EventNames[1].Count != 1 {
			t.Fatalf("eventNames = %+v, want Sign Up (3) then Purchase Completed (1)", out.EventNames)
		}
		for _, n := range out.EventNames {
			if n.LastSeenAt.Before(before) || n.LastSeenAt.After(time.Now().Add(time.Second)) {
				t.Errorf("%s lastSeenAt %v, want about now", n.Name, n.LastSeenAt)
			}
		}
		if len(out.Prefixed) != 1 || out.Prefixed[0].Name != "Purchase Completed" {
			t.Errorf("eventNames(prefix: Pur) = %+v", out.Prefixed)
		}
		// Most frequent first, ties by name; nested objects as dotted paths.
		if want := []string{"Channel", "Reward Amount", "address", "address.city"}; !slices.Equal(out.PropertyNames, want) {
			t.Errorf("propertyNames = %q, want %q", out.PropertyNames, want)
		}
		if want := []string{"plan", "Sign Up Date"}; !slices.Equal(out.TraitNames, want) {
			t.Errorf("traitNames = %q, want %q", out.TraitNames, want)
		}
		if out.Viewer.Role != "ADMIN" || out.Viewer.KeyName == "" {
			t.Errorf("viewer = %+v, want the ADMIN key", out.Viewer)
		}

		e := admin.MustFail(t, "BAD_USER_INPUT", `{ traitNames(first: 0) }`, nil)
		if e.Field() != "first" {
			t.Errorf("traitNames(first: 0) names field %q, want first", e.Field())
		}
		admin.MustFail(t, "BAD_USER_INPUT", `{ eventNames(first: 1001) { name } }`, nil)

		_, readKey := newKey(t, srv, "console reader", auth.RoleRead)
		srv.Client(readKey).MustDo(t, `{ viewer { keyName role } }`, nil, &out)
		if out.Viewer.Role != "READ" || out.Viewer.KeyName != "console reader" {
			t.Errorf("viewer of a READ key = %+v", out.Viewer)
		}
		_, writeKey := newKey(t, srv, "sdk", auth.RoleWrite)
		w := srv.Client(writeKey)
		for _, q := range []string{`{ eventNames { name } }`, `{ propertyNames(event: "Sign Up") }`, `{ traitNames }`, `{ viewer { role } }`} {
			w.MustFail(t, "FORBIDDEN", q, nil)
		}
	})
}
