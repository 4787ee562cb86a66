package graph_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/segmentd/segmentd/internal/testenv"
)

// TestPoisonNumbersRefused (issue 13, item 1): a number outside float64
// (1e400, 1e200000) in an event's properties, traits or context, or in an
// identify's traits, sent as a variable or as an inline literal, is
// refused with BAD_USER_INPUT naming the field; nothing is written, and the
// user stays readable and keeps ingesting.
func TestPoisonNumbersRefused(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL)
		c := srv.Admin()
		ingSeed(t, c, "ACTIVE")
		ingTrack(t, c, map[string]any{"event": "Sign Up", "userId": "u1", "messageId": "ok-0", "traits": ingFacebook})
		events := ingEventCount(t, c, nil)
		refuse := func(label, field, query string, vars map[string]any) {
			t.Helper()
			e := c.MustFail(t, "BAD_USER_INPUT", query, vars)
			if e.Field() != field {
				t.Errorf("%s: field %q, want %q (%s)", label, e.Field(), field, e.Message)
			}
			if !strings.Contains(e.Message, "64-bit") {
				t.Errorf("%s: message %q does not say why", label, e.Message)
			}
			if n := ingEventCount(t, c, nil); n != events {
				t.Fatalf("%s: %d events, want %d: a refused call wrote", label, n, events)
			}
		}
		one := func(in map[string]any) map[string]any {
			in["event"], in["userId"] = "Sign Up", "u1"
			return map[string]any{"in": in}
		}
		big, huge := json.Number("1e400"), json.Number("1e200000")
		refuse("property 1e400", "input.properties.big", ingTrackMutation,
			one(map[string]any{"properties": map[string]any{"big": big}}))
		refuse("property 1e200000", "input.properties.big", ingTrackMutation,
			one(map[string]any{"properties": map[string]any{"big": huge}}))
		refuse("negative, nested in a list", `input.properties.cart[1]["unit price"]`, ingTrackMutation,
			one(map[string]any{"properties": map[string]any{"cart": []any{map[string]any{"ok": 1}, map[string]any{"unit price": json.Number("-1e400")}}}}))
		refuse("trait", "input.traits.score", ingTrackMutation,
			one(map[string]any{"traits": map[string]any{"score": big}}))
		refuse("context", "input.context.screen.width", ingTrackMutation,
			one(map[string]any{"context": map[string]any{"screen": map[string]any{"width": huge}}}))
		refuse("in a batch", "inputs[1].properties.big", ingBatchMutation, map[string]any{"ins": []any{
			map[string]any{"event": "Sign Up", "userId": "u2"},
			map[string]any{"event": "Sign Up", "userId": "u3", "properties": map[string]any{"big": big}},
		}})
		refuse("identify", "input.traits.big",
			`mutation($in: IdentifyInput!) { identify(input: $in) { userId } }`,
			map[string]any{"in": map[string]any{"userId": "u1", "traits": map[string]any{"big": big}}})
		refuse("inline literal", "input.properties.big",
			`mutation { trackEvent(input: {event: "Sign Up", userId: "u1", properties: {big: 1e400}}) { duplicate } }`, nil)
		refuse("inline literal 1e200000", "input.traits.big",
			`mutation { identify(input: {userId: "u1", traits: {big: 1e200000}}) { userId } }`, nil)

		// The user was never touched: readable, and its next event counts.
		if u := ingGetUser(t, c, "u1"); u == nil || u.Traits["big"] != nil || u.Traits["score"] != nil {
			t.Fatalf("user u1 after the refusals: %+v", u)
		}
		for _, u := range []string{"u2", "u3"} {
			if got := ingGetUser(t, c, u); got != nil {
				t.Fatalf("the refused batch created user %s", u)
			}
		}
		// Numbers inside float64 are stored as the float64 every reader
		// sees, the same on both stores, even when written with more
		// digits than PostgreSQL's numeric takes (it refused these two).
		long := json.Number("1." + strings.Repeat("0", 17000))
		r := ingTrack(t, c, map[string]any{"event": "Sign Up", "userId": "u1", "messageId": "in-range", "properties": map[string]any{
			"max": json.Number("1.7976931348623157e308"), "tiny": json.Number("1e-20000"), "long": long, "int": 42}})
		stored := ingEventByMessage(t, c, "in-range")
		for _, props := range []map[string]any{r.Event.Properties, stored.Properties} {
			if props["max"] != 1.7976931348623157e308 || props["tiny"] != 0.0 || props["long"] != 1.0 || props["int"] != 42.0 {
				t.Fatalf("numbers inside float64: %v", props)
			}
		}
	})
}
