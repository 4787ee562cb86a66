package server_test

import (
	"strings"
	"testing"

	"github.com/segmentd/segmentd/auth"
	"github.com/segmentd/segmentd/internal/testenv"
)

// TestDuplicateMessageIDShowsNothingOfAnotherMessage: a WRITE key that
// sends a messageId another client already used for another user gets a
// duplicate answer made of what it sent, not the stored event (its user,
// properties, traits and outcomes belong to someone else), and identify
// with it is refused; a retry for the same user still gets the stored
// event with its outcomes. Nothing is stored twice.
func TestDuplicateMessageIDShowsNothingOfAnotherMessage(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL)
		alice := srv.Client(newKey(t, srv, "alice's app", auth.RoleWrite))
		mallory := srv.Client(newKey(t, srv, "mallory's app", auth.RoleWrite))
		const track = `mutation($in: TrackInput!) { trackEvent(input: $in) { duplicate event {
			id messageId name userId properties traits context outcomes { reason } } } }`
		type result struct {
			TrackEvent struct {
				Duplicate bool
				Event     struct {
					ID, MessageID, Name, UserID string
					Properties, Traits, Context map[string]any
					Outcomes                    []struct{ Reason string }
				}
			}
		}
		var first result
		alice.MustDo(t, track, map[string]any{"in": map[string]any{"event": "Order Completed", "userId": "alice", "messageId": "m-shared",
			"properties": map[string]any{"card": "4242-secret"}, "traits": map[string]any{"email": "alice@example.com"}}}, &first)
		if first.TrackEvent.Duplicate || first.TrackEvent.Event.Properties["card"] != "4242-secret" {
			t.Fatalf("alice's event: %+v", first.TrackEvent)
		}

		var stolen result
		mallory.MustDo(t, track, map[string]any{"in": map[string]any{"event": "Ping", "userId": "mallory", "messageId": "m-shared"}}, &stolen)
		got := stolen.TrackEvent
		raw := strings.Join([]string{got.Event.Name, got.Event.UserID}, " ")
		if !got.Duplicate || got.Event.Name != "Ping" || got.Event.UserID != "mallory" || len(got.Event.Properties) != 0 ||
			len(got.Event.Traits) != 0 || len(got.Event.Outcomes) != 0 || got.Event.MessageID != "m-shared" {
			t.Fatalf("mallory's duplicate shows %s: %+v; want a duplicate of what mallory sent", raw, got)
		}

		var retry result
		alice.MustDo(t, track, map[string]any{"in": map[string]any{"event": "Order Completed", "userId": "alice", "messageId": "m-shared"}}, &retry)
		if !retry.TrackEvent.Duplicate || retry.TrackEvent.Event.ID != first.TrackEvent.Event.ID || retry.TrackEvent.Event.Properties["card"] != "4242-secret" {
			t.Fatalf("alice's retry: %+v, want the stored event", retry.TrackEvent)
		}
		// identify reusing it for a user never seen: nothing is stored, and
		// the answer says why (not an internal error).
		r := mallory.Do(t, `mutation { identify(input: {userId: "nobody-yet", messageId: "m-shared", traits: {plan: "pro"}}) { userId traits } }`, nil)
		if len(r.Errors) != 1 || r.Errors[0].Extensions["code"] != "CONFLICT" || !strings.Contains(r.Errors[0].Message, "messageId") {
			t.Fatalf("identify with a taken messageId: %+v, want one CONFLICT naming messageId", r.Errors)
		}
		var count struct{ Events struct{ TotalCount int } }
		srv.Admin().MustDo(t, `{ events(first: 10) { totalCount } }`, nil, &count)
		if count.Events.TotalCount != 1 {
			t.Fatalf("%d events stored, want 1", count.Events.TotalCount)
		}
	})
}
