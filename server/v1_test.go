package server_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/segmentd/segmentd/auth"
	"github.com/segmentd/segmentd/internal/testenv"
	"github.com/segmentd/segmentd/server"
)

// v1Endpoints are the Segment-compatible endpoints.
var v1Endpoints = []string{"track", "identify", "page", "screen", "group", "alias", "batch"}

// baseMessage is a valid message of typ, as Segment's HTTP API takes it.
func baseMessage(typ string) map[string]any {
	m := map[string]any{"userId": "bad-input-user", "timestamp": "2025-06-01T12:00:00Z", "context": map[string]any{"ip": "10.0.0.1"}}
	switch typ {
	case "track":
		m["event"] = "Sign Up"
		m["properties"] = map[string]any{"plan": "pro"}
	case "identify":
		m["traits"] = map[string]any{"plan": "pro"}
	case "page", "screen":
		m["name"] = "Home"
		m["properties"] = map[string]any{"path": "/"}
	case "group":
		m["groupId"] = "g-1"
		m["traits"] = map[string]any{"name": "Acme"}
	case "alias":
		m["previousId"] = "anon-1"
	}
	return m
}

// deleted marks a field to remove from the base message.
type deleted struct{}

// v1Body is the body of /v1/<ep> with the base message changed by
// overrides; for /v1/batch the message is a track, the batch's only item.
func v1Body(t testing.TB, ep string, overrides map[string]any) []byte {
	t.Helper()
	typ := ep
	if ep == "batch" {
		typ = "track"
	}
	m := baseMessage(typ)
	for k, v := range overrides {
		if _, ok := v.(deleted); ok {
			delete(m, k)
			continue
		}
		m[k] = v
	}
	if ep == "batch" {
		m["type"] = "track"
		return mustJSON(t, map[string]any{"batch": []any{m}})
	}
	return mustJSON(t, m)
}

// at names a field of the message: "userId", or "batch[0].userId" in a batch.
func at(ep, field string) string {
	if ep != "batch" {
		return field
	}
	if field == "" {
		return "batch[0]"
	}
	return "batch[0]." + field
}

// nested returns a map nested levels deep.
func nested(levels int) map[string]any {
	var v any = "deep"
	for i := levels; i >= 1; i-- {
		v = map[string]any{fmt.Sprintf("l%d", i): v}
	}
	return v.(map[string]any)
}

type badInput struct {
	name    string
	body    []byte
	headers map[string]string // merged over the write key's Authorization
	status  int
	code    string
	field   string
}

// badInputs lists every kind of bad input for one endpoint.
func badInputs(t testing.TB, ep, writeKey, readKey string) []badInput {
	t.Helper()
	bad := func(name string, overrides map[string]any, field string) badInput {
		return badInput{name: name, body: v1Body(t, ep, overrides), status: 400, code: "BAD_USER_INPUT", field: field}
	}
	raw := func(name, body, field string) badInput {
		return badInput{name: name, body: []byte(body), status: 400, code: "BAD_USER_INPUT", field: field}
	}
	good := v1Body(t, ep, nil)
	bomb := gzipped(t, bytes.Repeat([]byte(" "), 10<<20)) // 10 MB of spaces, about 10 KB gzipped

	typ := ep
	if ep == "batch" {
		typ = "track"
	}
	cases := []badInput{
		raw("invalid JSON", `{"userId": "u", "event": `, ""),
		raw("not an object", `[{"userId": "u"}]`, ""),
		raw("a JSON string", `"hello"`, ""),
		raw("empty body", ``, ""),
		bad("userId a boolean", map[string]any{"userId": true}, at(ep, "userId")),
		bad("anonymousId an object", map[string]any{"userId": deleted{}, "anonymousId": map[string]any{"a": 1}}, at(ep, "anonymousId")),
		bad("messageId a number", map[string]any{"messageId": 12}, at(ep, "messageId")),
		bad("properties a list", map[string]any{"properties": []any{1, 2}}, at(ep, "properties")),
		bad("properties a string", map[string]any{"properties": "plan=pro"}, at(ep, "properties")),
		bad("context a number", map[string]any{"context": 7}, at(ep, "context")),
		bad("timestamp a number", map[string]any{"timestamp": 1700000000}, at(ep, "timestamp")),
		bad("timestamp not a date", map[string]any{"timestamp": "last tuesday"}, at(ep, "timestamp")),
		bad("timestamp out of range", map[string]any{"timestamp": "0000-01-01T00:00:00+01:00"}, at(ep, "timestamp")),
		bad("sentAt not a date", map[string]any{"sentAt": "now"}, at(ep, "sentAt")),
		bad("missing userId and anonymousId", map[string]any{"userId": deleted{}}, at(ep, "userId")),
		bad("blank userId and anonymousId", map[string]any{"userId": "", "anonymousId": ""}, at(ep, "userId")),
		// Checked by the ingestion service, after decoding.
		bad("userId too long", map[string]any{"userId": strings.Repeat("u", 257)}, at(ep, "userId")),
		bad("userId with a control character", map[string]any{"userId": "a\x00b"}, at(ep, "userId")),
		bad("properties nested too deep", map[string]any{"properties": nested(11)}, at(ep, "properties")),
		bad("message over 32 KB", map[string]any{"properties": map[string]any{"blob": strings.Repeat("x", 33<<10)}}, at(ep, "")),
		// Issue 13: what no store can keep readable, named to the part.
		bad("property 1e400", map[string]any{"properties": map[string]any{"big": json.Number("1e400")}}, at(ep, "properties.big")),
		bad("property 1e200000", map[string]any{"properties": map[string]any{"big": json.Number("-1e200000")}}, at(ep, "properties.big")),
		bad("context number 1e400", map[string]any{"context": map[string]any{"screen": map[string]any{"width": json.Number("1e400")}}}, at(ep, "context.screen.width")),
		bad("property with a NUL", map[string]any{"properties": map[string]any{"note": "a\x00b"}}, at(ep, "properties.note")),
		bad("property name with a NUL", map[string]any{"properties": map[string]any{"na\x00me": 1}}, at(ep, `properties["na\x00me"]`)),
		bad("NUL in a list in context", map[string]any{"context": map[string]any{"tags": []any{"ok", "\x00"}}}, at(ep, "context.tags[1]")),
	}
	switch typ {
	case "track":
		cases = append(cases,
			bad("event a number", map[string]any{"event": 5}, at(ep, "event")),
			bad("event missing", map[string]any{"event": deleted{}}, at(ep, "event")),
			bad("event too long", map[string]any{"event": strings.Repeat("e", 257)}, at(ep, "event")),
			bad("context.traits a string", map[string]any{"context": map[string]any{"traits": "Facebook"}}, at(ep, "context.traits")),
			bad("context.traits 1e400", map[string]any{"context": map[string]any{"traits": map[string]any{"score": json.Number("1e400")}}}, at(ep, "context.traits.score")),
		)
	case "page", "screen":
		cases = append(cases,
			bad("name a number", map[string]any{"name": 5}, "name"),
			bad("context.traits a list", map[string]any{"context": map[string]any{"traits": []any{}}}, "context.traits"),
		)
	case "identify", "group":
		cases = append(cases,
			bad("traits a string", map[string]any{"traits": "plan=pro"}, "traits"),
			bad("traits with too many keys", map[string]any{"traits": manyKeys(1001)}, "traits"),
			bad("trait 1e400", map[string]any{"traits": map[string]any{"big": json.Number("1e400")}}, "traits.big"),
			bad("trait with a NUL", map[string]any{"traits": map[string]any{"plan": "pro\x00"}}, "traits.plan"),
			bad("trait name with a NUL", map[string]any{"traits": map[string]any{"\x00": "x"}}, `traits["\x00"]`),
		)
	case "alias":
		cases = append(cases,
			bad("previousId missing", map[string]any{"previousId": deleted{}}, "previousId"),
			bad("previousId a list", map[string]any{"previousId": []any{"a"}}, "previousId"),
		)
	}
	if typ == "group" {
		cases = append(cases, bad("groupId missing", map[string]any{"groupId": deleted{}}, "groupId"))
	}
	if ep == "batch" {
		msg := baseMessage("track")
		msg["type"] = "track"
		unknown := map[string]any{"type": "purchase", "userId": "u", "event": "Buy"}
		big := maps.Clone(msg)
		big["properties"] = map[string]any{"blob": strings.Repeat("x", 30<<10)}
		poisoned := maps.Clone(msg)
		poisoned["properties"] = map[string]any{"big": json.Number("1e400")}
		withNUL := maps.Clone(msg)
		withNUL["properties"] = map[string]any{"note": "\x00"}
		var over []any
		for range 20 { // 20 × 30 KB: each message fits, the batch does not
			over = append(over, big)
		}
		cases = append(cases,
			raw("batch not a list", `{"batch": {"type": "track"}}`, "batch"),
			raw("batch missing", `{"messages": []}`, "batch"),
			raw("batch item not an object", `{"batch": ["track"]}`, "batch[0]"),
			badInput{name: "unknown type in batch, after a valid message", body: mustJSON(t, map[string]any{"batch": []any{msg, unknown}}),
				status: 400, code: "BAD_USER_INPUT", field: "batch[1].type"},
			badInput{name: "1e400 in batch, after a valid message", body: mustJSON(t, map[string]any{"batch": []any{msg, poisoned}}),
				status: 400, code: "BAD_USER_INPUT", field: "batch[1].properties.big"},
			badInput{name: "NUL in batch, after a valid message", body: mustJSON(t, map[string]any{"batch": []any{msg, withNUL}}),
				status: 400, code: "BAD_USER_INPUT", field: "batch[1].properties.note"},
			badInput{name: "type missing in batch", body: []byte(`{"batch": [{"userId": "u", "event": "E"}]}`),
				status: 400, code: "BAD_USER_INPUT", field: "batch[0].type"},
			badInput{name: "batch context a list", body: []byte(`{"context": [], "batch": []}`),
				status: 400, code: "BAD_USER_INPUT", field: "context"},
			badInput{name: "batch over 500 KB", body: mustJSON(t, map[string]any{"batch": over}), status: 400, code: "BAD_USER_INPUT"},
		)
	} else {
		cases = append(cases,
			bad("type disagrees with the endpoint", map[string]any{"type": otherType(typ)}, "type"),
			raw("body over 500 KB", `{"userId": "u", "pad": "`+strings.Repeat("x", 600<<10)+`"}`, ""),
		)
	}
	cases = append(cases,
		badInput{name: "gzip header with a plain body", body: good, headers: map[string]string{"Content-Encoding": "gzip"}, status: 400, code: "BAD_USER_INPUT"},
		badInput{name: "gzip body cut short", body: gzipped(t, good)[:20], headers: map[string]string{"Content-Encoding": "gzip"}, status: 400, code: "BAD_USER_INPUT"},
		badInput{name: "gzip bomb past the limit", body: bomb, headers: map[string]string{"Content-Encoding": "gzip"}, status: 400, code: "BAD_USER_INPUT"},
		badInput{name: "unsupported Content-Encoding", body: good, headers: map[string]string{"Content-Encoding": "br"}, status: 400, code: "BAD_USER_INPUT"},
		badInput{name: "no key", body: good, headers: map[string]string{"Authorization": ""}, status: 401, code: "UNAUTHENTICATED"},
		badInput{name: "unknown key (Basic)", body: good, headers: map[string]string{"Authorization": basic("sgd_not_a_key_at_all_0123456789")}, status: 401, code: "UNAUTHENTICATED"},
		badInput{name: "unknown key (Bearer)", body: good, headers: map[string]string{"Authorization": "Bearer sgd_not_a_key_at_all_0123456789"}, status: 401, code: "UNAUTHENTICATED"},
		badInput{name: "Basic that is not base64", body: good, headers: map[string]string{"Authorization": "Basic %%%"}, status: 401, code: "UNAUTHENTICATED"},
		badInput{name: "write key as the password", body: good, headers: map[string]string{"Authorization": "Basic " + b64(":"+writeKey)}, status: 401, code: "UNAUTHENTICATED"},
		badInput{name: "READ key (Basic)", body: good, headers: map[string]string{"Authorization": basic(readKey)}, status: 403, code: "FORBIDDEN"},
		badInput{name: "READ key (Bearer)", body: good, headers: map[string]string{"Authorization": "Bearer " + readKey}, status: 403, code: "FORBIDDEN"},
	)
	return cases
}

func otherType(typ string) string {
	if typ == "alias" {
		return "track"
	}
	return "alias"
}

func manyKeys(n int) map[string]any {
	m := make(map[string]any, n)
	for i := range n {
		m[fmt.Sprintf("k%d", i)] = i
	}
	return m
}

// TestV1BadInput sends every kind of bad input to every /v1 endpoint and
// checks the status, error code and field of the answer, and that nothing
// at all was stored: no event, no user, no member.
func TestV1BadInput(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL, func(c *server.Config) { c.RateLimit = -1 })
		admin := srv.Admin()
		segID, _ := seedSignUp(t, admin)
		writeKey := newKey(t, srv, "sdk", auth.RoleWrite)
		readKey := newKey(t, srv, "dashboard", auth.RoleRead)
		// Something stored first, so that "unchanged" is not "still empty".
		sendV1(t, srv, writeKey, "track", map[string]any{"userId": "before", "event": "Sign Up", "context": map[string]any{"traits": map[string]any{"Channel": "Facebook"}}})
		events, users := counts(t, admin)
		if events != 1 || users != 1 {
			t.Fatalf("after one good track: %d events, %d users", events, users)
		}
		n := 0
		for _, ep := range v1Endpoints {
			// The good body of each endpoint is accepted: the bad cases differ
			// from it only where they say.
			t.Run(ep, func(t *testing.T) {
				for _, tc := range badInputs(t, ep, writeKey, readKey) {
					n++
					headers := map[string]string{"Authorization": basic(writeKey)}
					maps.Copy(headers, tc.headers)
					r := postV1(t, srv, ep, tc.body, headers)
					if r.Status != tc.status || r.Success || r.Error.Code != tc.code || r.Error.Field != tc.field {
						t.Errorf("%s: got %d %s field %q (%s); want %d %s field %q",
							tc.name, r.Status, r.Error.Code, r.Error.Field, r.Error.Message, tc.status, tc.code, tc.field)
					}
					if r.Error.Message == "" {
						t.Errorf("%s: no error message: %s", tc.name, r.Raw)
					}
					if ct := r.Header.Get("Content-Type"); ct != "application/json" {
						t.Errorf("%s: Content-Type %q", tc.name, ct)
					}
					if strings.Contains(r.Raw, writeKey) || strings.Contains(r.Raw, readKey) {
						t.Errorf("%s: the answer repeats a key: %s", tc.name, r.Raw)
					}
					if e, u := counts(t, admin); e != events || u != users {
						t.Fatalf("%s: %d events, %d users after a refused request; want %d, %d", tc.name, e, u, events, users)
					}
				}
			})
		}
		if m := members(t, admin, segID); len(m) != 1 || !m["before"] {
			t.Fatalf("members after the bad inputs: %v", m)
		}
		t.Logf("%d bad requests refused, nothing stored", n)

		// And the good bodies the bad ones were made from are accepted.
		for _, ep := range v1Endpoints {
			sendV1(t, srv, writeKey, ep, json.RawMessage(v1Body(t, ep, nil)))
		}
	})
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// TestV1MessageTypes sends one message of each type to its endpoint and
// reads each back from events with its type, name, properties, traits and
// context, by the messageId it was sent with.
func TestV1MessageTypes(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL)
		admin := srv.Admin()
		key := newKey(t, srv, "sdk", auth.RoleWrite)
		ts := "2025-05-01T10:00:00.5Z"
		ctx := map[string]any{"ip": "10.1.2.3", "library": map[string]any{"name": "test"}}
		send := func(typ string, msg map[string]any, headers map[string]string) {
			t.Helper()
			msg["messageId"] = "msg-" + typ
			msg["timestamp"] = ts
			msg["context"] = ctx
			body := mustJSON(t, msg)
			h := map[string]string{"Authorization": basic(key)}
			maps.Copy(h, headers)
			if h["Content-Encoding"] == "gzip" {
				body = gzipped(t, body)
			}
			if r := postV1(t, srv, typ, body, h); r.Status != 200 || r.Raw != `{"success":true}` {
				t.Fatalf("/v1/%s: %d %s", typ, r.Status, r.Raw)
			}
		}
		send("track", map[string]any{"userId": "u-1", "event": "Order Completed", "properties": map[string]any{"total": 42.5, "items": []any{"a", "b"}}}, nil)
		send("identify", map[string]any{"userId": "u-1", "traits": map[string]any{"plan": "pro", "age": 31}}, map[string]string{"Authorization": "Bearer " + key})
		send("page", map[string]any{"anonymousId": "anon-7", "name": "Pricing", "properties": map[string]any{"path": "/pricing"}}, map[string]string{"Content-Encoding": "gzip"})
		send("screen", map[string]any{"userId": "u-1", "name": "Settings", "properties": map[string]any{"tab": "profile"}}, nil)
		send("group", map[string]any{"userId": "u-1", "groupId": "acme", "traits": map[string]any{"employees": 12}}, nil)
		send("alias", map[string]any{"userId": "u-1", "previousId": "anon-7"}, nil)

		wantTS, _ := time.Parse(time.RFC3339Nano, ts)
		for _, tc := range []struct {
			typ, wantType, wantName, user, anon string
			props, traits                       map[string]any
		}{
			{"track", "TRACK", "Order Completed", "u-1", "", map[string]any{"total": 42.5, "items": []any{"a", "b"}}, map[string]any{}},
			{"identify", "IDENTIFY", "", "u-1", "", map[string]any{}, map[string]any{"plan": "pro", "age": 31.0}},
			{"page", "PAGE", "Pricing", "", "anon-7", map[string]any{"path": "/pricing"}, map[string]any{}},
			{"screen", "SCREEN", "Settings", "u-1", "", map[string]any{"tab": "profile"}, map[string]any{}},
			{"group", "GROUP", "", "u-1", "", map[string]any{"groupId": "acme"}, map[string]any{"employees": 12.0}},
			{"alias", "ALIAS", "", "u-1", "", map[string]any{"previousId": "anon-7"}, map[string]any{}},
		} {
			ev := eventByMessageID(t, admin, "msg-"+tc.typ)
			if ev.Type != tc.wantType || deref(ev.Name) != tc.wantName || deref(ev.UserID) != tc.user || deref(ev.AnonymousID) != tc.anon {
				t.Errorf("%s: stored type %s name %q userId %q anonymousId %q; want %s %q %q %q", tc.typ,
					ev.Type, deref(ev.Name), deref(ev.UserID), deref(ev.AnonymousID), tc.wantType, tc.wantName, tc.user, tc.anon)
			}
			if !equalJSON(ev.Properties, tc.props) {
				t.Errorf("%s: properties %v, want %v", tc.typ, ev.Properties, tc.props)
			}
			if !equalJSON(ev.Traits, tc.traits) {
				t.Errorf("%s: traits %v, want %v", tc.typ, ev.Traits, tc.traits)
			}
			if ev.Context["ip"] != "10.1.2.3" || ev.Context["library"] == nil {
				t.Errorf("%s: context %v", tc.typ, ev.Context)
			}
			if !ev.Timestamp.Equal(wantTS) {
				t.Errorf("%s: timestamp %v, want %v (no sentAt: the client's time stands)", tc.typ, ev.Timestamp, wantTS)
			}
		}
		if tr := userTraits(t, admin, "u-1"); tr["plan"] != "pro" || tr["age"] != 31.0 {
			t.Errorf("identify's traits did not land on the user: %v", tr)
		}
		if e, _ := counts(t, admin); e != 6 {
			t.Errorf("%d events, want 6", e)
		}
	})
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// equalJSON compares two values as JSON.
func equalJSON(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}

// TestV1ClockSkew: a client whose clock is 3 hours slow says it sent the
// event 10 s after it happened; the stored timestamp is the server's receive
// time minus those 10 s, not the client's clock.
func TestV1ClockSkew(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL)
		admin := srv.Admin()
		key := newKey(t, srv, "sdk", auth.RoleWrite)
		client := time.Now().Add(-3 * time.Hour)
		sendV1(t, srv, key, "track", map[string]any{
			"userId": "skewed", "event": "Sign Up", "messageId": "skew-1",
			"timestamp": client.Add(-10 * time.Second).Format(time.RFC3339Nano),
			"sentAt":    client.Format(time.RFC3339Nano),
		})
		ev := eventByMessageID(t, admin, "skew-1")
		if d := ev.ReceivedAt.Sub(ev.Timestamp); d < 9*time.Second || d > 11*time.Second {
			t.Errorf("receivedAt - timestamp = %v, want 10s ± 1s (timestamp %v, receivedAt %v)", d, ev.Timestamp, ev.ReceivedAt)
		}
		if d := time.Since(ev.Timestamp); d < 9*time.Second || d > 30*time.Second {
			t.Errorf("timestamp %v is %v ago, want about 10s: skew not corrected", ev.Timestamp, d)
		}

		// The batch's sentAt applies to messages without their own; a
		// message's own sentAt wins. The batch context reaches every
		// message; a message's own context keys win.
		ahead := time.Now().Add(24 * time.Hour) // this client's clock is a day fast
		sendV1(t, srv, key, "batch", map[string]any{
			"sentAt":  ahead.Format(time.RFC3339Nano),
			"context": map[string]any{"library": map[string]any{"name": "analytics-node", "version": "3.1.0"}, "ip": "10.0.0.1"},
			"batch": []any{
				map[string]any{"type": "track", "userId": "b1", "event": "A", "messageId": "batch-1",
					"timestamp": ahead.Add(-20 * time.Second).Format(time.RFC3339Nano)},
				map[string]any{"type": "identify", "userId": "b1", "messageId": "batch-2", "traits": map[string]any{"x": 1},
					"timestamp": ahead.Add(-5 * time.Second).Format(time.RFC3339Nano), "context": map[string]any{"ip": "10.9.9.9"}},
				map[string]any{"type": "page", "userId": "b1", "name": "Home", "messageId": "batch-3",
					"timestamp": ahead.Add(-time.Hour).Format(time.RFC3339Nano), "sentAt": ahead.Add(-time.Hour + 2*time.Second).Format(time.RFC3339Nano)},
			},
		})
		for _, tc := range []struct {
			id   string
			ago  time.Duration
			ipAt string
		}{{"batch-1", 20 * time.Second, "10.0.0.1"}, {"batch-2", 5 * time.Second, "10.9.9.9"}, {"batch-3", 2 * time.Second, "10.0.0.1"}} {
			ev := eventByMessageID(t, admin, tc.id)
			if d := ev.ReceivedAt.Sub(ev.Timestamp); d < tc.ago-time.Second || d > tc.ago+time.Second {
				t.Errorf("%s: receivedAt - timestamp = %v, want %v ± 1s", tc.id, d, tc.ago)
			}
			lib, _ := ev.Context["library"].(map[string]any)
			if lib["name"] != "analytics-node" || ev.Context["ip"] != tc.ipAt {
				t.Errorf("%s: context %v: want the batch's library and ip %s", tc.id, ev.Context, tc.ipAt)
			}
		}
	})
}

// TestV1TrackIsTrackEvent: a track on /v1 enters segments and activates
// campaigns exactly as the trackEvent mutation does, identify's traits count
// for later tracks, and a messageId is one event whichever way it arrives.
func TestV1TrackIsTrackEvent(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL)
		admin := srv.Admin()
		segID, campID := seedSignUp(t, admin)
		key := newKey(t, srv, "sdk", auth.RoleWrite)
		writer := srv.Client(key)
		facebook := map[string]any{"Channel": "Facebook"}

		// The same event both ways.
		sendV1(t, srv, key, "track", map[string]any{"userId": "via-v1", "event": "Sign Up", "messageId": "m-v1",
			"properties": map[string]any{"plan": "pro"}, "context": map[string]any{"traits": facebook}})
		var tr struct {
			TrackEvent struct {
				Duplicate       bool
				EnteredSegments []struct{ ID string }
			}
		}
		writer.MustDo(t, `mutation($in: TrackInput!) { trackEvent(input: $in) { duplicate enteredSegments { id } } }`,
			map[string]any{"in": map[string]any{"userId": "via-graphql", "event": "Sign Up", "messageId": "m-gql",
				"properties": map[string]any{"plan": "pro"}, "traits": facebook}}, &tr)
		if tr.TrackEvent.Duplicate || len(tr.TrackEvent.EnteredSegments) != 1 {
			t.Fatalf("trackEvent: %+v", tr)
		}
		// Not matching: no entry.
		sendV1(t, srv, key, "track", map[string]any{"userId": "google", "event": "Sign Up", "context": map[string]any{"traits": map[string]any{"Channel": "Google"}}})
		// Identify first, then a track with no traits of its own.
		sendV1(t, srv, key, "identify", map[string]any{"userId": "identified", "traits": facebook})
		sendV1(t, srv, key, "track", map[string]any{"userId": "identified", "event": "Sign Up"})
		// Identify and track in one batch, in that order.
		sendV1(t, srv, key, "batch", map[string]any{"batch": []any{
			map[string]any{"type": "identify", "userId": "batched", "traits": facebook},
			map[string]any{"type": "track", "userId": "batched", "event": "Sign Up", "messageId": "m-batched"},
		}})

		want := map[string]bool{"via-v1": true, "via-graphql": true, "identified": true, "batched": true}
		got := members(t, admin, segID)
		if !maps.Equal(got, want) {
			t.Fatalf("members %v, want %v", got, want)
		}
		if n := activationCount(t, admin, campID); n != len(want) {
			t.Fatalf("campaign activations %d, want %d", n, len(want))
		}
		v1Ev, gqlEv := eventByMessageID(t, admin, "m-v1"), eventByMessageID(t, admin, "m-gql")
		if v1Ev.Type != gqlEv.Type || deref(v1Ev.Name) != deref(gqlEv.Name) || !equalJSON(v1Ev.Properties, gqlEv.Properties) || !equalJSON(v1Ev.Traits, gqlEv.Traits) {
			t.Errorf("the same event stored differently:\n/v1:     %+v\nGraphQL: %+v", v1Ev, gqlEv)
		}

		// Duplicates, whichever way they come: acknowledged, nothing changes.
		events, users := counts(t, admin)
		sendV1(t, srv, key, "track", map[string]any{"userId": "via-v1", "event": "Sign Up", "messageId": "m-v1",
			"properties": map[string]any{"plan": "changed"}})
		sendV1(t, srv, key, "batch", map[string]any{"batch": []any{
			map[string]any{"type": "track", "userId": "someone-else", "event": "Sign Up", "messageId": "m-gql", "context": map[string]any{"traits": facebook}},
			map[string]any{"type": "track", "userId": "batched", "event": "Sign Up", "messageId": "m-batched"},
		}})
		writer.MustDo(t, `mutation($in: TrackInput!) { trackEvent(input: $in) { duplicate enteredSegments { id } } }`,
			map[string]any{"in": map[string]any{"userId": "via-v1", "event": "Sign Up", "messageId": "m-v1"}}, &tr)
		if !tr.TrackEvent.Duplicate || len(tr.TrackEvent.EnteredSegments) != 0 {
			t.Errorf("trackEvent with a messageId first sent to /v1: %+v, want a duplicate", tr)
		}
		if e, u := counts(t, admin); e != events || u != users {
			t.Errorf("after duplicates: %d events, %d users; want %d, %d", e, u, events, users)
		}
		if ev := eventByMessageID(t, admin, "m-v1"); ev.Properties["plan"] != "pro" {
			t.Errorf("a duplicate changed the stored event: %v", ev.Properties)
		}
		if got := members(t, admin, segID); !maps.Equal(got, want) {
			t.Errorf("members after duplicates %v, want %v", got, want)
		}
		if n := activationCount(t, admin, campID); n != len(want) {
			t.Errorf("campaign activations after duplicates %d, want %d", n, len(want))
		}
	})
}
