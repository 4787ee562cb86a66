package graph_test

import (
	"strings"
	"testing"

	"github.com/segmentd/segmentd/internal/testenv"
)

// TestIngestNULRefused (issue 13, item 5): a NUL character (\u0000) in a
// property, trait or context value, or in a property or trait NAME, is
// refused on both stores alike with BAD_USER_INPUT naming the field (it
// answered 500 on PostgreSQL and failed the whole batch); nothing of the
// call is stored, and the same events without the NUL are accepted.
func TestIngestNULRefused(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL)
		c := srv.Admin()
		ingSeed(t, c, "ACTIVE")
		ingTrack(t, c, map[string]any{"event": "Sign Up", "userId": "u1", "traits": ingFacebook})
		events, users := ingEventCount(t, c, nil), ingUserCount(t, c)
		refuse := func(label, field, query string, vars map[string]any) {
			t.Helper()
			e := c.MustFail(t, "BAD_USER_INPUT", query, vars)
			if e.Field() != field || !strings.Contains(e.Message, "NUL") {
				t.Errorf("%s: field %q (%s), want %q and a message that says NUL", label, e.Field(), e.Message, field)
			}
			if n, u := ingEventCount(t, c, nil), ingUserCount(t, c); n != events || u != users {
				t.Fatalf("%s: %d events, %d users; want %d, %d: a refused call wrote", label, n, u, events, users)
			}
		}
		one := func(in map[string]any) map[string]any {
			in["event"], in["userId"] = "Sign Up", "u2"
			return map[string]any{"in": in}
		}
		refuse("property value", "input.properties.note", ingTrackMutation,
			one(map[string]any{"properties": map[string]any{"note": "a\u0000b"}}))
		refuse("property name", `input.properties["na\x00me"]`, ingTrackMutation,
			one(map[string]any{"properties": map[string]any{"na\u0000me": 1}}))
		refuse("in a list", "input.properties.tags[1]", ingTrackMutation,
			one(map[string]any{"properties": map[string]any{"tags": []any{"ok", "\u0000"}}}))
		refuse("trait value", "input.traits.plan", ingTrackMutation,
			one(map[string]any{"traits": map[string]any{"plan": "pro\u0000"}}))
		refuse("trait name", `input.traits["\x00"]`, ingTrackMutation,
			one(map[string]any{"traits": map[string]any{"\u0000": "x"}}))
		refuse("context", "input.context.page.title", ingTrackMutation,
			one(map[string]any{"context": map[string]any{"page": map[string]any{"title": "\u0000"}}}))
		refuse("in a batch, after good events", "inputs[2].properties.note", ingBatchMutation, map[string]any{"ins": []any{
			map[string]any{"event": "Sign Up", "userId": "u3"},
			map[string]any{"event": "Sign Up", "userId": "u4"},
			map[string]any{"event": "Sign Up", "userId": "u5", "properties": map[string]any{"note": "x\u0000"}},
		}})
		refuse("identify", "input.traits.name",
			`mutation($in: IdentifyInput!) { identify(input: $in) { userId } }`,
			map[string]any{"in": map[string]any{"userId": "u1", "traits": map[string]any{"name": "\u0000"}}})
		refuse("inline literal", "input.properties.note",
			`mutation { trackEvent(input: {event: "Sign Up", userId: "u2", properties: {note: "a\u0000b"}}) { duplicate } }`, nil)

		// Without the NUL, the same batch is stored.
		b := ingTrackBatch(t, c, []map[string]any{
			{"event": "Sign Up", "userId": "u3"}, {"event": "Sign Up", "userId": "u4"},
			{"event": "Sign Up", "userId": "u5", "properties": map[string]any{"note": "x"}},
		})
		if b.Accepted != 3 {
			t.Fatalf("the batch without the NUL: %+v", b)
		}
	})
}
