package graph_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/segmentd/segmentd/auth"
	"github.com/segmentd/segmentd/internal/testenv"
)

// ingNested returns {"l1": {"l2": ... {"l<levels>": "deep"}}}: levels maps
// below the top.
func ingNested(levels int) map[string]any {
	var v any = "deep"
	for i := levels; i >= 1; i-- {
		v = map[string]any{fmt.Sprintf("l%d", i): v}
	}
	return v.(map[string]any)
}

// TestIngestValidationAndAtomicity: invalid events are refused with
// BAD_USER_INPUT naming the field, and a batch with one invalid event writes
// nothing at all: no events, no users, no memberships.
func TestIngestValidationAndAtomicity(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL)
		c := srv.Admin()
		segID, campID := ingSeed(t, c, "ACTIVE")
		ingTrack(t, c, map[string]any{"event": "Sign Up", "userId": "existing", "traits": ingFacebook})
		events, users := ingEventCount(t, c, nil), ingUserCount(t, c)
		unchanged := func(label string) {
			t.Helper()
			if n := ingEventCount(t, c, nil); n != events {
				t.Fatalf("%s: events %d, want %d: a refused call wrote events", label, n, events)
			}
			if n := ingUserCount(t, c); n != users {
				t.Fatalf("%s: users %d, want %d: a refused call created users", label, n, users)
			}
			if n := len(ingMembers(t, c, segID)); n != 1 {
				t.Fatalf("%s: %d members, want 1", label, n)
			}
			if n, _ := ingActivations(t, c, campID); n != 1 {
				t.Fatalf("%s: %d activations, want 1", label, n)
			}
		}
		refuse := func(label, field, query string, vars map[string]any) {
			t.Helper()
			e := c.MustFail(t, "BAD_USER_INPUT", query, vars)
			if e.Field() != field {
				t.Fatalf("%s: field %q, want %q (%s)", label, e.Field(), field, e.Message)
			}
			unchanged(label)
		}
		good := func(user string) map[string]any {
			return map[string]any{"event": "Sign Up", "userId": user, "traits": ingFacebook}
		}
		batch := func(ins ...map[string]any) map[string]any { return map[string]any{"ins": ins} }

		refuse("empty event name in a batch", "inputs[1].event", ingBatchMutation,
			batch(good("new-0"), map[string]any{"event": "", "userId": "new-1"}, good("new-2")))
		if u := ingGetUser(t, c, "new-0"); u != nil {
			t.Fatalf("the valid event before the invalid one created its user: %+v", u)
		}
		refuse("blank event name", "inputs[2].event", ingBatchMutation,
			batch(good("new-0"), good("new-1"), map[string]any{"event": "   ", "userId": "new-2"}))
		refuse("no user in a batch", "inputs[1].userId", ingBatchMutation,
			batch(good("new-0"), map[string]any{"event": "Sign Up"}))
		refuse("properties too deep in a batch", "inputs[2].properties", ingBatchMutation,
			batch(good("new-0"), good("new-1"), map[string]any{"event": "Sign Up", "userId": "new-2", "properties": ingNested(11)}))
		// A batch of one still names its input by index.
		refuse("batch of one", "inputs[0].event", ingBatchMutation, batch(map[string]any{"event": "", "userId": "x"}))

		tooMany := make([]map[string]any, 1001)
		for i := range tooMany {
			tooMany[i] = map[string]any{"event": "Bulk", "anonymousId": fmt.Sprintf("a-%d", i)}
		}
		refuse("1001 events", "inputs", `mutation($ins: [TrackInput!]!) { trackEvents(inputs: $ins) { accepted } }`, map[string]any{"ins": tooMany})

		one := func(in map[string]any) map[string]any { return map[string]any{"in": in} }
		refuse("no userId or anonymousId", "input.userId", ingTrackMutation, one(map[string]any{"event": "Sign Up"}))
		refuse("blank userId and anonymousId", "input.userId", ingTrackMutation, one(map[string]any{"event": "Sign Up", "userId": " ", "anonymousId": ""}))
		refuse("empty event name", "input.event", ingTrackMutation, one(map[string]any{"event": "", "userId": "new-0"}))
		refuse("event name too long", "input.event", ingTrackMutation, one(map[string]any{"event": strings.Repeat("e", 257), "userId": "new-0"}))
		refuse("empty messageId", "input.messageId", ingTrackMutation, one(map[string]any{"event": "Sign Up", "userId": "new-0", "messageId": ""}))
		refuse("control character in userId", "input.userId", ingTrackMutation, one(map[string]any{"event": "Sign Up", "userId": "a\x00b"}))
		refuse("properties 11 levels deep", "input.properties", ingTrackMutation,
			one(map[string]any{"event": "Sign Up", "userId": "new-0", "properties": ingNested(11)}))
		refuse("traits 11 levels deep", "input.traits", ingTrackMutation,
			one(map[string]any{"event": "Sign Up", "userId": "new-0", "traits": ingNested(11)}))
		refuse("identify with an empty userId", "input.userId", `mutation { identify(input: {userId: "", traits: {a: 1}}) { userId } }`, nil)

		// What is valid is stored: 10 levels, an anonymous event, and
		// exactly 1,000 events in one call.
		r := ingTrack(t, c, map[string]any{"event": "Deep", "userId": "deep", "properties": ingNested(10)})
		if r.Duplicate || r.Event.Properties["l1"] == nil {
			t.Fatalf("10 levels: %+v", r)
		}
		r = ingTrack(t, c, map[string]any{"event": "Sign Up", "anonymousId": "anon-1", "traits": ingFacebook})
		if r.Event.UserID != nil || r.Event.AnonymousID == nil || *r.Event.AnonymousID != "anon-1" ||
			len(r.Event.Outcomes) != 0 || len(r.EnteredSegments) != 0 {
			t.Fatalf("anonymous event: %+v", r)
		}
		var res struct {
			TrackEvents struct{ Accepted, Duplicates int }
		}
		c.MustDo(t, `mutation($ins: [TrackInput!]!) { trackEvents(inputs: $ins) { accepted duplicates } }`, map[string]any{"ins": tooMany[:1000]}, &res)
		if res.TrackEvents.Accepted != 1000 || res.TrackEvents.Duplicates != 0 {
			t.Fatalf("1000 events: %+v", res.TrackEvents)
		}
		if n := ingEventCount(t, c, nil); n != events+2+1000 {
			t.Fatalf("events %d, want %d", n, events+2+1000)
		}
		if n := ingUserCount(t, c); n != users+1 {
			t.Fatalf("users %d, want %d (deep only; anonymous events make none)", n, users+1)
		}
		var empty struct{ TrackEvents ingBatchResult }
		c.MustDo(t, ingBatchMutation, map[string]any{"ins": []any{}}, &empty)
		if empty.TrackEvents.Accepted != 0 || len(empty.TrackEvents.Results) != 0 {
			t.Fatalf("empty batch: %+v", empty.TrackEvents)
		}
	})
}

// TestIngestKeyRoles: a WRITE key may ingest (trackEvent, trackEvents,
// identify) but not query; a READ key may query but not ingest, and its
// attempts write nothing; an operation that mixes an allowed and a refused
// field is refused whole.
func TestIngestKeyRoles(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL)
		admin := srv.Admin()
		segID, _ := ingSeed(t, admin, "ACTIVE")
		write := srv.Client(ingKey(t, srv, auth.RoleWrite))
		read := srv.Client(ingKey(t, srv, auth.RoleRead))

		// WRITE ingests, and sees what its events did (the fields its role
		// may read: TestWriteKeySchemaWalk).
		const writeFields = `duplicate enteredSegments { id name } activatedCampaigns { id name } event { id messageId outcomes { entered reason } }`
		var r struct{ TrackEvent ingTrackResult }
		write.MustDo(t, `mutation($in: TrackInput!) { trackEvent(input: $in) { `+writeFields+` } }`,
			map[string]any{"in": map[string]any{"event": "Sign Up", "userId": "w1", "traits": ingFacebook}}, &r)
		if len(r.TrackEvent.EnteredSegments) != 1 || len(r.TrackEvent.ActivatedCampaigns) != 1 {
			t.Fatalf("WRITE trackEvent: %+v", r)
		}
		var b struct{ TrackEvents ingBatchResult }
		write.MustDo(t, `mutation($ins: [TrackInput!]!) { trackEvents(inputs: $ins) { accepted duplicates results { `+writeFields+` } } }`,
			map[string]any{"ins": []map[string]any{{"event": "Sign Up", "userId": "w2"}, {"event": "Other", "userId": "w3"}}}, &b)
		if b.TrackEvents.Accepted != 2 {
			t.Fatalf("WRITE trackEvents: %+v", b)
		}
		var u struct{ Identify ingUser }
		write.MustDo(t, `mutation { identify(input: {userId: "w2", traits: {plan: "pro"}}) { userId traits } }`, nil, &u)
		if u.Identify.Traits["plan"] != "pro" {
			t.Fatalf("WRITE identify: %+v", u)
		}
		events, users := ingEventCount(t, admin, nil), ingUserCount(t, admin)

		refused := func(label, code string, c *testenv.Client, query string, vars map[string]any) {
			t.Helper()
			resp := c.Do(t, query, vars)
			if len(resp.Errors) == 0 || resp.Errors[0].Code() != code {
				t.Fatalf("%s: want %s, got %+v %s", label, code, resp.Errors, resp.Data)
			}
			if len(resp.Data) > 0 && string(resp.Data) != "null" {
				t.Fatalf("%s: data leaked: %s", label, resp.Data)
			}
		}
		refused("WRITE segments", "FORBIDDEN", write, `{ segments { totalCount } }`, nil)
		refused("WRITE events", "FORBIDDEN", write, `{ events { totalCount } }`, nil)
		refused("WRITE user", "FORBIDDEN", write, `{ user(userId: "w1") { traits } }`, nil)
		refused("WRITE explainMembership", "FORBIDDEN", write, `query($s: ID!) { explainMembership(segmentId: $s, userId: "w1") { member } }`, map[string]any{"s": segID})
		refused("WRITE createSegment", "FORBIDDEN", write, `mutation { createSegment(input: {name: "x", kind: STATIC}) { id } }`, nil)
		refused("WRITE trackEvent with createSegment", "FORBIDDEN", write, `mutation {
			trackEvent(input: {event: "Sign Up", userId: "mixed"}) { duplicate }
			createSegment(input: {name: "x", kind: STATIC}) { id } }`, nil)

		refused("READ trackEvent", "FORBIDDEN", read, ingTrackMutation, map[string]any{"in": map[string]any{"event": "Sign Up", "userId": "r1", "traits": ingFacebook}})
		refused("READ trackEvents", "FORBIDDEN", read, ingBatchMutation, map[string]any{"ins": []map[string]any{{"event": "Sign Up", "userId": "r2"}}})
		refused("READ identify", "FORBIDDEN", read, `mutation { identify(input: {userId: "r3", traits: {a: 1}}) { userId } }`, nil)
		refused("unknown key", "UNAUTHENTICATED", srv.Client("sgd_not_a_key"), ingTrackMutation, map[string]any{"in": map[string]any{"event": "Sign Up", "userId": "r4"}})

		if n := ingEventCount(t, admin, nil); n != events {
			t.Fatalf("refused calls wrote events: %d, want %d", n, events)
		}
		if n := ingUserCount(t, admin); n != users {
			t.Fatalf("refused calls created users: %d, want %d", n, users)
		}
		for _, u := range []string{"mixed", "r1", "r2", "r3", "r4"} {
			if got := ingGetUser(t, admin, u); got != nil {
				t.Fatalf("refused call created user %s", u)
			}
		}
		// READ queries what WRITE sent.
		var q struct{ Events struct{ TotalCount int } }
		read.MustDo(t, `{ events(where: {userID: "w1"}) { totalCount } }`, nil, &q)
		if q.Events.TotalCount != 1 {
			t.Fatalf("READ sees %d events of w1, want 1", q.Events.TotalCount)
		}
	})
}
