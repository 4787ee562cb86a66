package segmentapi_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/segmentd/segmentd"
	"github.com/segmentd/segmentd/segmentapi"
)

// FuzzDecode feeds arbitrary bodies to every endpoint. Decode must never
// panic; it either fails with a *segmentapi.Error or returns messages that
// are valid (a known type, a userId or an anonymousId, a UTC timestamp) and
// stable: a message encoded back into Segment's format decodes to the same
// message.
func FuzzDecode(f *testing.F) {
	seeds := []struct{ typ, body string }{
		{"track", `{"userId":"u1","event":"Sign Up","properties":{"plan":"pro","n":1.5},"timestamp":"2025-01-02T03:04:05Z","sentAt":"2025-01-02T03:04:06.5+01:00","messageId":"m1","context":{"traits":{"Channel":"Facebook"}}}`},
		{"identify", `{"userId":42,"traits":{"Sign Up Date":"2025-02-01","nested":{"a":[1,2,{"b":null}]}}}`},
		{"page", `{"anonymousId":"a","name":"Home","properties":{"path":"/"},"originalTimestamp":"2025-01-02"}`},
		{"screen", `{"userId":"u","name":"Main","timestamp":"2025-01-02T03:04:05.123456789"}`},
		{"group", `{"userId":"u","groupId":"g1","traits":{"name":"Acme"}}`},
		{"alias", `{"userId":"u","previousId":"anon"}`},
		{"batch", `{"batch":[{"type":"identify","userId":"u","traits":{"x":1}},{"type":"track","userId":"u","event":"E","timestamp":"2025-01-01T00:00:00Z"}],"context":{"library":{"name":"analytics-node"}},"sentAt":"2025-01-01T00:00:01Z"}`},
		{"batch", `{"batch":[{"type":"purchase","userId":"u"}]}`},
		{"batch", `{"batch":{}}`},
		{"track", `{"userId":"u","event":"E","timestamp":"0000-01-01T00:00:00+01:00"}`},
		{"track", `{"userId":1e999,"event":"E"}`},
		{"track", `{"USERID":"u","Event":"E","userId":null}`},
		{"track", "{\"userId\":\"\xff\xfe\",\"event\":\"\\ud800\"}"},
		{"track", `[]`},
		{"track", ``},
		{"identify", `{"userId":"u","traits":null,"context":{"traits":"x"}}`},
		{"purchase", `{"userId":"u"}`},
		// Issue 13: numbers outside float64 and NUL characters, which no
		// store can keep readable, anywhere in a message.
		{"track", `{"userId":"u","event":"E","properties":{"big":1e400}}`},
		{"identify", `{"userId":"u","traits":{"n":-1e200000,"ok":1e308}}`},
		{"track", `{"userId":"u","event":"E","context":{"traits":{"a":[1,{"b":1e999}]}}}`},
		{"batch", `{"batch":[{"type":"track","userId":"u","event":"E"},{"type":"page","userId":"u","properties":{"w":1E+400}}]}`},
		{"batch", `{"context":{"x":1e400},"batch":[{"type":"track","userId":"u","event":"E"}]}`},
		{"track", `{"userId":"u","event":"E","properties":{"note":"a\u0000b"}}`},
		{"group", `{"userId":"u","groupId":"g","traits":{"na\u0000me":"x"}}`},
		{"screen", `{"userId":"u","name":"S","context":{"tags":["\u0000"]}}`},
		{"track", `{"userId":"u","event":"E","properties":{"tiny":1e-400,"long":1.000000000000000000000000000001}}`},
	}
	for _, s := range seeds {
		f.Add(s.typ, []byte(s.body))
	}
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, typ string, body []byte) {
		msgs, err := segmentapi.Decode(typ, body, now)
		if err != nil {
			var e *segmentapi.Error
			if !errors.As(err, &e) {
				t.Fatalf("error %v is a %T, not a *segmentapi.Error", err, err)
			}
			if msgs != nil {
				t.Fatalf("messages returned with an error")
			}
			return
		}
		if typ != "batch" && len(msgs) != 1 {
			t.Fatalf("/v1/%s decoded %d messages", typ, len(msgs))
		}
		for i, m := range msgs {
			checkValid(t, i, typ, m)
			again := reencode(t, m)
			if len(again) > segmentapi.MaxMessageBytes {
				continue // grew past the limit (escaped text, merged batch context)
			}
			back, err := segmentapi.Decode(m.Type, again, now.Add(time.Hour))
			if err != nil {
				t.Fatalf("message %d re-encoded as %s does not decode: %v", i, again, err)
			}
			if !reflect.DeepEqual(back[0], m) {
				t.Fatalf("message %d is not stable:\n first %#v\nsecond %#v\n  via %s", i, m, back[0], again)
			}
		}
	})
}

func checkValid(t *testing.T, i int, typ string, m segmentapi.Message) {
	t.Helper()
	if !slices.Contains(segmentapi.Types, m.Type) {
		t.Fatalf("message %d has type %q", i, m.Type)
	}
	if typ != "batch" && m.Type != typ {
		t.Fatalf("/v1/%s decoded a %q", typ, m.Type)
	}
	if m.UserID == "" && m.AnonymousID == "" {
		t.Fatalf("message %d has neither userId nor anonymousId", i)
	}
	if m.Type == "track" && m.Event == "" {
		t.Fatalf("message %d: a track without an event", i)
	}
	if m.Properties == nil || m.Context == nil {
		t.Fatalf("message %d: nil properties or context", i)
	}
	for name, v := range map[string]map[string]any{"properties": m.Properties, "traits": m.Traits, "context": m.Context} {
		if err := segmentd.CheckValue(name, v); err != nil {
			t.Fatalf("message %d holds what no store can keep: %v", i, err)
		}
	}
	if !m.Timestamp.IsZero() && m.Timestamp.Location() != time.UTC {
		t.Fatalf("message %d: timestamp %v not in UTC", i, m.Timestamp)
	}
	if y := m.Timestamp.Year(); !m.Timestamp.IsZero() && (y < 1 || y > 9999) {
		t.Fatalf("message %d: timestamp %v outside years 1 to 9999", i, m.Timestamp)
	}
}

// reencode writes a decoded message back in Segment's format, without
// sentAt (its timestamp is already corrected).
func reencode(t *testing.T, m segmentapi.Message) []byte {
	t.Helper()
	out := map[string]any{"type": m.Type, "properties": m.Properties, "context": m.Context}
	if m.UserID != "" {
		out["userId"] = m.UserID
	}
	if m.AnonymousID != "" {
		out["anonymousId"] = m.AnonymousID
	}
	if m.MessageID != "" {
		out["messageId"] = m.MessageID
	}
	switch m.Type {
	case "track":
		out["event"] = m.Event
	case "page", "screen":
		out["name"] = m.Event
	case "identify", "group":
		out["traits"] = m.Traits
	}
	switch m.Type {
	case "group":
		out["groupId"] = m.Properties["groupId"]
	case "alias":
		out["previousId"] = m.Properties["previousId"]
	}
	if !m.Timestamp.IsZero() {
		out["timestamp"] = m.Timestamp.Format(time.RFC3339Nano)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(out); err != nil {
		t.Fatalf("encode %#v: %v", m, err)
	}
	return bytes.TrimSpace(buf.Bytes())
}
