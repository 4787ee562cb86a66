package webhook

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/segmentd/segmentd/changelog"
	"github.com/segmentd/segmentd/ent"
	"github.com/segmentd/segmentd/ent/schema/jsonmap"
	"github.com/segmentd/segmentd/ent/schema/pulid"
	"github.com/segmentd/segmentd/ent/webhookdelivery"
	"github.com/segmentd/segmentd/service"
)

// Log prefixes of webhook ids: a membership change's id is "mc_" and its
// cursor, an activation's "ca_" and its cursor. Every attempt and every
// replay of one change carries the same id.
const (
	changePrefix     = "mc_"
	activationPrefix = "ca_"
)

// WebhookID is the webhook-id of the change or activation at cursor c.
func WebhookID(activation bool, c changelog.Cursor) string {
	if activation {
		return activationPrefix + c.String()
	}
	return changePrefix + c.String()
}

// message is one change or activation ready to be queued.
type message struct {
	topic     webhookdelivery.Topic
	webhookID string
	segment   string   // the segment's id, for filters
	campaign  string   // the campaign's id, for filters ("" for changes)
	user      pulid.ID // the user the payload names, for erasure
	at        time.Time
	payload   jsonmap.Map
}

func ref(id, name string) map[string]any { return map[string]any{"id": id, "name": name} }

func userPart(u *ent.User) any {
	if u == nil || service.IsErased(u) {
		return nil // erased: the message names no one
	}
	traits := map[string]any(u.Traits)
	if traits == nil {
		traits = map[string]any{}
	}
	return map[string]any{"userId": u.UserID, "traits": traits}
}

func eventPart(e *ent.Event) any {
	if e == nil {
		return nil
	}
	name := ""
	if e.Name != nil {
		name = *e.Name
	}
	return map[string]any{"messageId": e.MessageID, "name": name}
}

// changeMessage is the SEGMENTD body of a membership change; nil when its
// segment or user is gone.
func changeMessage(c *ent.MembershipChange, cur changelog.Cursor) *message {
	if c.Edges.Segment == nil {
		return nil
	}
	topic, typ := webhookdelivery.TopicMEMBERSHIP_ENTERED, "membership.entered"
	if c.Kind == changelog.KindExited {
		topic, typ = webhookdelivery.TopicMEMBERSHIP_EXITED, "membership.exited"
	}
	return &message{
		topic: topic, webhookID: WebhookID(false, cur), segment: string(c.SegmentRef), user: c.UserRef, at: c.At,
		payload: jsonmap.Map{
			"type": typ, "id": cur.String(), "timestamp": c.At.UTC().Format(time.RFC3339Nano),
			"data": map[string]any{
				"segment":  ref(string(c.Edges.Segment.ID), c.Edges.Segment.Name),
				"campaign": nil,
				"user":     userPart(c.Edges.User),
				"source":   string(c.Source),
				"reason":   c.Reason,
				"event":    eventPart(c.Edges.Event),
			},
		},
	}
}

// activationMessage is the SEGMENTD body of an activation; nil when its
// campaign or segment is gone.
func activationMessage(a *ent.CampaignActivation, cur changelog.Cursor) *message {
	if a.Edges.Campaign == nil || a.Edges.Segment == nil {
		return nil
	}
	return &message{
		topic: webhookdelivery.TopicCAMPAIGN_ACTIVATED, webhookID: WebhookID(true, cur),
		segment: string(a.SegmentRef), campaign: string(a.CampaignRef), user: a.UserRef, at: a.ActivatedAt,
		payload: jsonmap.Map{
			"type": "campaign.activated", "id": cur.String(), "timestamp": a.ActivatedAt.UTC().Format(time.RFC3339Nano),
			"data": map[string]any{
				"segment":  ref(string(a.Edges.Segment.ID), a.Edges.Segment.Name),
				"campaign": ref(string(a.Edges.Campaign.ID), a.Edges.Campaign.Name),
				"user":     userPart(a.Edges.User),
				"source":   nil,
				"reason":   nil,
				"event":    eventPart(a.Edges.Event),
				"entry":    a.Entry,
			},
		},
	}
}

// segmentEvents names the track calls of the SEGMENT format.
var segmentEvents = map[string]string{
	"membership.entered": "Audience Entered",
	"membership.exited":  "Audience Exited",
	"campaign.activated": "Campaign Activated",
}

// body renders a delivery's payload in an endpoint's format: the SEGMENTD
// JSON as stored, or a Segment HTTP Tracking API batch of one track call
// whose messageId is the webhook id.
func body(format string, webhookID string, payload jsonmap.Map, now time.Time) ([]byte, error) {
	if format != "SEGMENT" {
		return json.Marshal(payload)
	}
	typ, _ := payload["type"].(string)
	data, _ := payload["data"].(map[string]any)
	props := map[string]any{}
	for _, k := range []string{"segment", "campaign", "source", "reason", "event", "entry"} {
		if v, ok := data[k]; ok && v != nil {
			props[k] = v
		}
	}
	if seg, ok := data["segment"].(map[string]any); ok {
		props["audience_key"] = seg["name"]
	}
	props["cursor"] = payload["id"]
	call := map[string]any{
		"type": "track", "event": segmentEvents[typ], "messageId": webhookID,
		"timestamp": payload["timestamp"], "properties": props,
		"context": map[string]any{"library": map[string]any{"name": "segmentd", "version": "1"}},
	}
	if user, ok := data["user"].(map[string]any); ok {
		call["userId"] = user["userId"]
		call["context"].(map[string]any)["traits"] = user["traits"]
	} else {
		// An erased user: not named; an anonymous ID stands in.
		call["anonymousId"] = "erased-" + webhookID
	}
	b, err := json.Marshal(map[string]any{"batch": []any{call}, "sentAt": now.UTC().Format(time.RFC3339Nano)})
	if err != nil {
		return nil, fmt.Errorf("webhook: SEGMENT body: %w", err)
	}
	return b, nil
}
