package graph_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/segmentd/segmentd/auth"
	"github.com/segmentd/segmentd/internal/testenv"
)

// TestWebhookSegmentFormatIntoAnotherSegmentd: an endpoint in the SEGMENT
// format pointed at a second segmentd's /v1/batch, with that server's
// WRITE key: the second server stores "Audience Entered" and "Campaign
// Activated" track calls with messageId the webhook id, and a replay adds
// nothing there (dedupe on messageId).
func TestWebhookSegmentFormatIntoAnotherSegmentd(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := startHooks(t, dbURL)
		admin := srv.Admin()
		other := testenv.StartServer(t, testenv.DatabaseURL(t, storeOf(dbURL)))
		_, otherWrite := newKey(t, other, "from segmentd", auth.RoleWrite)
		seg := ingCreateSegment(t, admin, map[string]any{"name": "Signed up", "kind": "EVENT_TRIGGERED", "triggerEvents": []string{"Sign Up"}})
		camp := ingCreateCampaign(t, admin, "Welcome", seg, "ACTIVE")
		ep, _ := createHook(t, admin, map[string]any{"url": other.URL + "/v1/batch", "format": "SEGMENT", "writeKey": otherWrite,
			"topics": []string{"MEMBERSHIP_ENTERED", "MEMBERSHIP_EXITED", "CAMPAIGN_ACTIVATED"}})
		if ep.Format != "SEGMENT" {
			t.Fatalf("format %s", ep.Format)
		}
		start := time.Now()
		ingTrack(t, admin, map[string]any{"event": "Sign Up", "userId": "u-42", "messageId": "m-1", "traits": map[string]any{"plan": "pro"}})
		removeUsers(t, admin, seg, "u-42")

		ds := waitDeliveries(t, admin, ep.ID, "delivered", func(ds []hookDelivery) bool {
			if len(ds) != 3 {
				return false
			}
			for _, d := range ds {
				if d.Status != "DELIVERED" {
					return false
				}
			}
			return true
		})
		o := other.Admin()
		names := map[string]string{"MEMBERSHIP_ENTERED": "Audience Entered", "MEMBERSHIP_EXITED": "Audience Exited", "CAMPAIGN_ACTIVATED": "Campaign Activated"}
		for _, d := range ds {
			e := ingEventByMessage(t, o, d.WebhookID)
			if e.Type != "TRACK" || e.Name == nil || *e.Name != names[d.Topic] || e.UserID == nil || *e.UserID != "u-42" {
				t.Errorf("%s: stored as %+v", d.WebhookID, e)
			}
			props, _ := json.Marshal(e.Properties)
			var p struct {
				Segment  struct{ ID, Name string }
				Campaign *struct{ ID, Name string }
				Source   string
			}
			_ = json.Unmarshal(props, &p)
			if p.Segment.ID != seg || p.Segment.Name != "Signed up" {
				t.Errorf("%s: properties %s", d.WebhookID, props)
			}
			if d.Topic == "CAMPAIGN_ACTIVATED" && (p.Campaign == nil || p.Campaign.ID != camp.ID) {
				t.Errorf("%s: properties %s", d.WebhookID, props)
			}
		}
		if n := ingEventCount(t, o, nil); n != 3 {
			t.Fatalf("the other segmentd stored %d events; want 3", n)
		}
		var u struct {
			User *struct{ Traits map[string]any }
		}
		o.MustDo(t, `{ user(userId: "u-42") { traits } }`, nil, &u)
		if u.User == nil || u.User.Traits["plan"] != "pro" {
			t.Errorf("the other segmentd's user: %+v", u.User)
		}

		// A replay sends all three again; the other segmentd dedupes them.
		var r struct{ ReplayWebhookDeliveries int }
		admin.MustDo(t, `mutation($id: ID!, $s: Time) { replayWebhookDeliveries(endpointId: $id, since: $s) }`,
			map[string]any{"id": ep.ID, "s": start.Add(-time.Second).UTC().Format(time.RFC3339Nano)}, &r)
		if r.ReplayWebhookDeliveries != 3 {
			t.Fatalf("replay queued %d", r.ReplayWebhookDeliveries)
		}
		waitDeliveries(t, admin, ep.ID, "replayed", func(ds []hookDelivery) bool {
			if len(ds) != 6 {
				return false
			}
			for _, d := range ds {
				if d.Status != "DELIVERED" {
					return false
				}
			}
			return true
		})
		if n := ingEventCount(t, o, nil); n != 3 {
			t.Errorf("after the replay the other segmentd holds %d events; want 3", n)
		}
	})
}
