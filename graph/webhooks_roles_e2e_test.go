package graph_test

import (
	"strings"
	"testing"
	"time"

	"github.com/segmentd/segmentd/auth"
	"github.com/segmentd/segmentd/internal/testenv"
)

// TestWebhookFieldsAreAdminOnly: every webhook field is refused to READ and
// WRITE keys, over HTTP and (READ; a WRITE key cannot open a websocket at
// all, TestWebsocketConnectionInit) over both websocket protocols, with
// nothing applied; the ADMIN key is answered.
func TestWebhookFieldsAreAdminOnly(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := startHooks(t, dbURL)
		admin := srv.Admin()
		seg := ingCreateSegment(t, admin, map[string]any{"name": "Static", "kind": "STATIC"})
		rc := newReceiver(t, nil)
		ep, secret := createHook(t, admin, map[string]any{"url": rc.URL, "topics": []string{"MEMBERSHIP_ENTERED"}})
		addUsers(t, admin, seg, "a")
		rc.waitFor(t, 1)
		ds := waitDeliveries(t, admin, ep.ID, "delivered", func(ds []hookDelivery) bool { return len(ds) == 1 })
		_, readKey := newKey(t, srv, "reader", auth.RoleRead)
		_, writeKey := newKey(t, srv, "writer", auth.RoleWrite)
		id, del := ep.ID, ds[0].ID
		in := `{url: "http://127.0.0.1:9/x", topics: [MEMBERSHIP_ENTERED]}`
		ops := map[string]string{
			"webhookEndpoints":          `{ webhookEndpoints { totalCount edges { node { id url } } } }`,
			"webhookEndpoints typename": `{ webhookEndpoints { __typename } }`,
			"node WebhookEndpoint":      `{ node(id: "` + id + `") { ... on WebhookEndpoint { url topics enabled deliveries { edges { node { payload } } } } } }`,
			"node WebhookDelivery":      `{ node(id: "` + del + `") { ... on WebhookDelivery { webhookId payload } } }`,
			"createWebhookEndpoint":     `mutation { createWebhookEndpoint(input: ` + in + `) { secret } }`,
			"updateWebhookEndpoint":     `mutation { updateWebhookEndpoint(id: "` + id + `", input: {enabled: false}) { id } }`,
			"deleteWebhookEndpoint":     `mutation { deleteWebhookEndpoint(id: "` + id + `") }`,
			"rotateWebhookSecret":       `mutation { rotateWebhookSecret(id: "` + id + `") { secret } }`,
			"replayWebhookDeliveries":   `mutation { replayWebhookDeliveries(endpointId: "` + id + `", since: "2020-01-01T00:00:00Z") }`,
		}
		for _, key := range []string{readKey, writeKey} {
			c := srv.Client(key)
			for name, q := range ops {
				r := c.Do(t, q, nil)
				noData(t, name, r)
				if len(r.Errors) == 0 {
					t.Errorf("%s: answered", name)
				}
				for _, e := range r.Errors {
					if e.Code() != "FORBIDDEN" {
						t.Errorf("%s: %+v; want FORBIDDEN", name, e)
					}
				}
			}
			// A node of an admin type, asked for by interface only: its
			// fields are refused where it resolves.
			r := c.Do(t, `{ node(id: "`+id+`") { id } }`, nil)
			if len(r.Errors) == 0 || r.Errors[0].Code() != "FORBIDDEN" || strings.Contains(string(r.Data), "whe_") {
				t.Errorf("node { id } of an endpoint: %s %+v", r.Data, r.Errors)
			}
		}
		// READ keys still read Node fields of other types through node.
		var n struct{ Node struct{ ID string } }
		srv.Client(readKey).MustDo(t, `query($id: ID!) { node(id: $id) { id } }`, map[string]any{"id": seg}, &n)
		if n.Node.ID != seg {
			t.Errorf("READ node(segment) = %+v", n)
		}
		for _, proto := range testenv.Subprotocols {
			ws := srv.DialWS(t, readKey, proto)
			for name, q := range ops {
				ws.Subscribe(t, name, q, nil)
				errs := ws.NextError(t, name, 10*time.Second)
				if len(errs) == 0 || errs[0].Code() != "FORBIDDEN" {
					t.Errorf("%s %s over a websocket: %+v; want FORBIDDEN", proto, name, errs)
				}
				skipComplete(t, ws, name)
			}
		}
		// Nothing was applied: the endpoint is there, enabled, with its
		// secret, and one delivery.
		var out struct{ Node hookEndpoint }
		admin.MustDo(t, `query($id: ID!) { node(id: $id) { ... on WebhookEndpoint { `+hookFields+` } } }`, map[string]any{"id": id}, &out)
		if out.Node.ID != id || !out.Node.Enabled {
			t.Errorf("after the refusals: %+v", out.Node)
		}
		if got := hookDeliveries(t, admin, id, ""); len(got) != 1 {
			t.Errorf("after the refusals: %d deliveries", len(got))
		}
		addUsers(t, admin, seg, "b")
		if r := rc.waitFor(t, 2)[1]; !verified(t, r, secret) {
			t.Error("the secret changed")
		}
		// ADMIN over a websocket: answered.
		ws := srv.DialWS(t, testenv.AdminKey, testenv.TransportWS)
		ws.Subscribe(t, "q", `{ webhookEndpoints { totalCount } }`, nil)
		var list struct{ WebhookEndpoints struct{ TotalCount int } }
		ws.NextData(t, "q", 10*time.Second, &list)
		if list.WebhookEndpoints.TotalCount != 1 {
			t.Errorf("ADMIN over a websocket: %+v", list)
		}
	})
}
