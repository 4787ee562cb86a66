package graph_test

import (
	"strings"
	"testing"
	"time"

	"github.com/segmentd/segmentd/internal/testenv"
)

// TestIdentityOneRule (issue 13, item 11): IDs are trimmed and put in
// Unicode NFC on write and on every lookup: " u1 " finds u1 (user,
// explainMembership, users and events filters, addUsersToSegment,
// removeUsersFromSegment, identify, eventReceived), and the NFC and NFD
// forms of one ID are one user and one messageId.
func TestIdentityOneRule(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL)
		c := srv.Admin()
		segID, _ := ingSeed(t, c, "ACTIVE")
		const (
			nfc = "Zo\u00eb"  // ë as one code point
			nfd = "Zoe\u0308" // e + combining diaeresis
		)
		ws := srv.DialWS(t, testenv.AdminKey, testenv.TransportWS)
		ws.Subscribe(t, "zoe", eventReceivedQuery, map[string]any{"u": " " + nfd + " "})
		// graphql-transport-ws has no subscribe ack: warm up until the
		// stream delivers (an event named Warm, in the NFC form).
		warm := 0
		for delivered := false; !delivered; {
			if warm++; warm > 20 {
				t.Fatal("eventReceived(userId: NFD form) delivered none of 20 events of the NFC form")
			}
			ingTrack(t, c, map[string]any{"event": "Warm", "userId": nfc})
			select {
			case m := <-ws.Messages:
				if m.ID != "zoe" || (m.Type != "next" && m.Type != "data") {
					t.Fatalf("unexpected %s %s %s", m.Type, m.ID, m.Payload)
				}
				delivered = true
			case <-time.After(time.Second):
			}
		}

		ingTrack(t, c, map[string]any{"event": "Sign Up", "userId": "u1", "traits": ingFacebook})
		u := ingGetUser(t, c, " u1 ")
		if u == nil || u.UserID != "u1" || len(u.Memberships) != 1 {
			t.Fatalf(`user(userId: " u1 ") = %+v, want u1, a member`, u)
		}
		if ex := ingExplain(t, c, segID, " u1 "); !ex.Member || strings.Contains(ex.Reason, "never seen") {
			t.Fatalf(`explainMembership(userId: " u1 "): %+v`, ex)
		}

		// One user and one message, whichever form the ID arrives in.
		first := ingTrack(t, c, map[string]any{"event": "Sign Up", "userId": nfd, "messageId": "m-" + nfd, "traits": ingFacebook})
		if first.Event.UserID == nil || *first.Event.UserID != nfc || first.Event.MessageID != "m-"+nfc {
			t.Fatalf("stored as userId %v, messageId %q; want both in NFC", first.Event.UserID, first.Event.MessageID)
		}
		again := ingTrack(t, c, map[string]any{"event": "Sign Up", "userId": " " + nfc, "messageId": " m-" + nfc + " "})
		if !again.Duplicate {
			t.Fatalf("the NFC form of the NFD messageId is a new event: %+v", again)
		}
		other := ingTrack(t, c, map[string]any{"event": "View", "userId": nfc})
		if other.Duplicate || other.Event.UserID == nil || *other.Event.UserID != nfc {
			t.Fatalf("a View of %q: %+v", nfc, other)
		}
		if n := ingUserCount(t, c); n != 2 {
			t.Fatalf("%d users, want 2 (u1 and %s)", n, nfc)
		}
		ofZoe := 2 + warm
		for _, form := range []string{nfc, nfd, " " + nfd + "\t"} {
			if u := ingGetUser(t, c, form); u == nil || u.UserID != nfc || len(u.Memberships) != 1 {
				t.Fatalf("user(userId: %q) = %+v", form, u)
			}
			if n := ingEventCount(t, c, map[string]any{"userID": form}); n != ofZoe {
				t.Fatalf("events(where: {userID: %q}): %d, want %d", form, n, ofZoe)
			}
			var us struct{ Users struct{ TotalCount int } }
			c.MustDo(t, `query($w: UserWhereInput) { users(where: $w) { totalCount } }`,
				map[string]any{"w": map[string]any{"or": []any{map[string]any{"userIDIn": []string{form}}}}}, &us)
			if us.Users.TotalCount != 1 {
				t.Fatalf("users(where: {or: [{userIDIn: [%q]}]}): %d, want 1", form, us.Users.TotalCount)
			}
		}
		if n := ingEventCount(t, c, map[string]any{"messageID": "m-" + nfd}); n != 1 {
			t.Fatalf("events(where: {messageID: NFD form}): %d, want 1", n)
		}
		id := ingIdentify(t, c, map[string]any{"userId": nfd + " ", "traits": map[string]any{"plan": "pro"}})
		if id.UserID != nfc || id.Traits["plan"] != "pro" || id.Traits["Channel"] != "Facebook" {
			t.Fatalf("identify(userId: NFD form): %+v", id)
		}

		// Static segments: add by one form, remove by the other.
		var static struct{ CreateSegment struct{ ID string } }
		c.MustDo(t, `mutation { createSegment(input: {name: "Hand-picked", kind: STATIC}) { id } }`, nil, &static)
		change := func(op string, ids ...string) memberResult {
			var out map[string]memberResult
			c.MustDo(t, `mutation($s: ID!, $u: [String!]!) { r: `+op+`(segmentId: $s, userIds: $u) { added removed unchanged } }`,
				map[string]any{"s": static.CreateSegment.ID, "u": ids}, &out)
			return out["r"]
		}
		if r := change("addUsersToSegment", " "+nfd, nfc); r.Added != 1 || r.Unchanged != 0 {
			t.Fatalf("adding both forms: %+v, want one added", r)
		}
		if r := change("removeUsersFromSegment", nfc+" "); r.Removed != 1 {
			t.Fatalf("removing by the NFC form: %+v", r)
		}
		if n := ingUserCount(t, c); n != 2 {
			t.Fatalf("%d users after the static changes, want 2", n)
		}

		// Anonymous IDs follow the rule too.
		ingTrack(t, c, map[string]any{"event": "View", "anonymousId": " a\u0301 "})
		if n := ingEventCount(t, c, map[string]any{"anonymousID": "\u00e1"}); n != 1 {
			t.Fatalf("events(where: {anonymousID: á}): %d, want 1", n)
		}

		// The stream filtered by " Zoë " (NFD) got the user's three events
		// (the sign-up, the view, the identify) and nothing else.
		for i := 0; i < 3; {
			var p liveEvent
			ws.NextData(t, "zoe", 5*time.Second, &p)
			if u := p.EventReceived.UserID; u == nil || *u != nfc {
				t.Fatalf("eventReceived(userId: NFD form) event %d is of %v", i, u)
			}
			if p.EventReceived.Name != "Warm" { // more warm-ups may have been on their way
				i++
			}
		}
		ws.Quiet(t, 300*time.Millisecond)
	})
}
