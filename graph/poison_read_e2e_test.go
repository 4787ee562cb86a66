package graph_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/segmentd/segmentd/ent/event"
	"github.com/segmentd/segmentd/ent/schema/pulid"
	"github.com/segmentd/segmentd/internal/testenv"
)

// TestPoisonStoredValueReadable (issue 13, item 1): a number outside
// float64 that is already in the database (written there directly: an old
// version, a restore, a hand edit) never blocks anything: the user reads
// (the value as its text), ingests, joins a segment, lists; a null trait
// removes it; the eventReceived stream delivers the bad event and those
// after it; verify runs to its report.
func TestPoisonStoredValueReadable(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL)
		c := srv.Admin()
		segID, _ := ingSeed(t, c, "ACTIVE")
		ingTrack(t, c, map[string]any{"event": "View", "userId": "poisoned", "messageId": "before"})
		ws := srv.DialWS(t, testenv.AdminKey, testenv.TransportWS)
		ws.Subscribe(t, "events", eventReceivedQuery, nil)
		// graphql-transport-ws has no subscribe ack: warm up until the
		// stream delivers.
		warm := 0
		for delivered := false; !delivered; {
			if warm++; warm > 20 {
				t.Fatal("eventReceived delivered none of 20 warm-up events")
			}
			ingTrack(t, c, map[string]any{"event": "Warm", "anonymousId": "warm"})
			select {
			case <-ws.Messages:
				delivered = true
			case <-time.After(time.Second):
			}
		}

		st := srv.Store()
		ctx := context.Background()
		if _, err := st.DB.ExecContext(ctx, `UPDATE users SET traits = '{"big": 1e400, "Channel": "Facebook", "Sign Up Date": "2025-03-01"}' WHERE user_id = 'poisoned'`); err != nil {
			t.Fatalf("poison the user: %v", err)
		}
		// An event row with a poisoned property, as the old code stored
		// one (ent writes a json.Number as it is).
		uid := "poisoned"
		if err := st.Client.Event.Create().SetID(pulid.New("evt")).SetMessageID("poison").SetType(event.TypeTRACK).
			SetName("View").SetUserID(uid).SetProperties(map[string]any{"big": json.Number("-1e400")}).
			SetTimestamp(time.Now()).Exec(ctx); err != nil {
			t.Fatalf("store the poisoned event: %v", err)
		}

		// The stream delivers the bad event and the ones after it (of
		// another user: the stream is everyone's).
		ingTrack(t, c, map[string]any{"event": "View", "userId": "bystander", "messageId": "bystander"})
		var got []string
		for len(got) == 0 || got[len(got)-1] != "bystander" {
			var p liveEvent
			ws.NextData(t, "events", 5*time.Second, &p)
			if p.EventReceived.Name != "Warm" && p.EventReceived.MessageID != "before" {
				got = append(got, p.EventReceived.MessageID)
			}
		}
		if strings.Join(got, ",") != "poison,bystander" {
			t.Fatalf("eventReceived delivered %v, want [poison bystander]", got)
		}

		u := ingGetUser(t, c, "poisoned")
		if u == nil || u.Traits["Channel"] != "Facebook" {
			t.Fatalf("user(userId) of the poisoned user: %+v", u)
		}
		if s, ok := u.Traits["big"].(string); !ok || !strings.HasPrefix(s, "1") {
			t.Fatalf("the bad trait reads as %#v, want its text", u.Traits["big"])
		}
		var list struct {
			Users struct{ TotalCount int }
		}
		c.MustDo(t, `{ users(first: 10) { totalCount edges { node { userId traits } } } }`, nil, &list)
		if list.Users.TotalCount != 2 {
			t.Fatalf("users: %+v", list.Users)
		}
		ev := ingEventByMessage(t, c, "poison")
		if s, ok := ev.Properties["big"].(string); !ok || !strings.HasPrefix(s, "-1") {
			t.Fatalf("the bad property reads as %#v, want its text", ev.Properties["big"])
		}

		// Later events of the user are stored and evaluated.
		r := ingTrack(t, c, map[string]any{"event": "Sign Up", "userId": "poisoned", "messageId": "after"})
		if len(r.EnteredSegments) != 1 || r.EnteredSegments[0].ID != segID {
			t.Fatalf("the poisoned user's sign-up: %+v", r)
		}
		var static struct{ CreateSegment struct{ ID string } }
		c.MustDo(t, `mutation { createSegment(input: {name: "Hand-picked", kind: STATIC}) { id } }`, nil, &static)
		var added struct{ AddUsersToSegment memberResult }
		c.MustDo(t, `mutation($s: ID!) { addUsersToSegment(segmentId: $s, userIds: ["poisoned"]) { added } }`,
			map[string]any{"s": static.CreateSegment.ID}, &added)
		if added.AddUsersToSegment.Added != 1 {
			t.Fatalf("addUsersToSegment: %+v", added.AddUsersToSegment)
		}

		var p liveEvent
		ws.NextData(t, "events", 5*time.Second, &p)
		if p.EventReceived.MessageID != "after" {
			t.Fatalf("eventReceived delivered %q, want after", p.EventReceived.MessageID)
		}

		// verify reads everything and reports.
		rep, err := newService(t, st).Verify(ctx)
		if err != nil {
			t.Fatalf("verify: %v", err)
		}
		if rep.Users != 2 || rep.Events != 4+warm {
			t.Fatalf("verify read %d events and %d users, want %d and 2:\n%s", rep.Events, rep.Users, 4+warm, rep)
		}

		// A null trait repairs the user.
		fixed := ingIdentify(t, c, map[string]any{"userId": "poisoned", "traits": map[string]any{"big": nil}})
		if _, ok := fixed.Traits["big"]; ok || fixed.Traits["Channel"] != "Facebook" {
			t.Fatalf("after a null trait: %+v", fixed.Traits)
		}
	})
}
