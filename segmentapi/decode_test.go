package segmentapi_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/segmentd/segmentd/segmentapi"
)

// received is the server's clock in these tests.
var received = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func decodeOK(t *testing.T, typ, body string) []segmentapi.Message {
	t.Helper()
	msgs, err := segmentapi.Decode(typ, []byte(body), received)
	if err != nil {
		t.Fatalf("Decode(%s, %s): %v", typ, body, err)
	}
	return msgs
}

func decodeOne(t *testing.T, typ, body string) segmentapi.Message {
	t.Helper()
	msgs := decodeOK(t, typ, body)
	if len(msgs) != 1 {
		t.Fatalf("Decode(%s) = %d messages, want 1", typ, len(msgs))
	}
	return msgs[0]
}

func TestDecodeClockSkew(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, body string
		want       time.Time
	}{
		{
			// The client's clock is 1 hour fast: it says it sent the message
			// at 13:00:05, 5 s after the event at 13:00:00. The event happened
			// 5 s before we received it.
			name: "client clock ahead",
			body: `{"userId":"u1","event":"Sign Up","timestamp":"2025-06-01T13:00:00Z","sentAt":"2025-06-01T13:00:05Z"}`,
			want: received.Add(-5 * time.Second),
		},
		{
			name: "client clock behind, with offsets and fractions",
			body: `{"userId":"u1","event":"Sign Up","timestamp":"2020-01-01T00:00:00.250+02:00","sentAt":"2020-01-01T00:00:01.500+02:00"}`,
			want: received.Add(-1250 * time.Millisecond),
		},
		{
			name: "no sentAt: the client's timestamp stands",
			body: `{"userId":"u1","event":"Sign Up","timestamp":"2025-05-01T10:00:00+02:00"}`,
			want: time.Date(2025, 5, 1, 8, 0, 0, 0, time.UTC),
		},
		{
			name: "originalTimestamp (RudderStack) when there is no timestamp",
			body: `{"userId":"u1","event":"Sign Up","originalTimestamp":"2025-06-01T11:00:00Z","sentAt":"2025-06-01T11:00:02Z"}`,
			want: received.Add(-2 * time.Second),
		},
		{
			name: "timestamp wins over originalTimestamp",
			body: `{"userId":"u1","event":"Sign Up","timestamp":"2025-05-01T00:00:00Z","originalTimestamp":"2024-01-01T00:00:00Z"}`,
			want: time.Date(2025, 5, 1, 0, 0, 0, 0, time.UTC),
		},
		{
			name: "no timestamp: zero, the server uses its receive time",
			body: `{"userId":"u1","event":"Sign Up","sentAt":"2025-06-01T11:00:02Z"}`,
		},
		{
			name: "local date-time without a zone is UTC",
			body: `{"userId":"u1","event":"Sign Up","timestamp":"2025-05-01T10:00:00.123"}`,
			want: time.Date(2025, 5, 1, 10, 0, 0, 123e6, time.UTC),
		},
		{
			name: "a date",
			body: `{"userId":"u1","event":"Sign Up","timestamp":"2025-05-01"}`,
			want: time.Date(2025, 5, 1, 0, 0, 0, 0, time.UTC),
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := decodeOne(t, "track", tc.body)
			if !m.Timestamp.Equal(tc.want) {
				t.Errorf("Timestamp = %v, want %v", m.Timestamp, tc.want)
			}
			if !m.Timestamp.IsZero() && m.Timestamp.Location() != time.UTC {
				t.Errorf("Timestamp %v is not in UTC", m.Timestamp)
			}
		})
	}
}

func TestDecodeIDs(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, body    string
		user, anon    string
		wantErrField  string
		wantErrSubstr string
	}{
		{name: "string userId", body: `{"userId":"u-1","event":"E"}`, user: "u-1"},
		{name: "numeric userId kept as its text", body: `{"userId":12345,"event":"E"}`, user: "12345"},
		{name: "large numeric userId not rounded", body: `{"userId":9007199254740993,"event":"E"}`, user: "9007199254740993"},
		{name: "decimal numeric anonymousId", body: `{"anonymousId":1.5,"event":"E"}`, anon: "1.5"},
		{name: "anonymous only", body: `{"anonymousId":"a-1","event":"E"}`, anon: "a-1"},
		{name: "both", body: `{"userId":"u","anonymousId":"a","event":"E"}`, user: "u", anon: "a"},
		{name: "null userId with anonymousId", body: `{"userId":null,"anonymousId":"a","event":"E"}`, anon: "a"},
		{name: "neither", body: `{"event":"E"}`, wantErrField: "userId", wantErrSubstr: "userId or an anonymousId"},
		{name: "empty strings", body: `{"userId":"","anonymousId":"","event":"E"}`, wantErrField: "userId"},
		{name: "boolean userId", body: `{"userId":true,"event":"E"}`, wantErrField: "userId", wantErrSubstr: "string"},
		{name: "object userId", body: `{"userId":{"id":1},"event":"E"}`, wantErrField: "userId"},
		{name: "list anonymousId", body: `{"anonymousId":["a"],"event":"E"}`, wantErrField: "anonymousId"},
		{name: "numeric messageId", body: `{"userId":"u","event":"E","messageId":7}`, wantErrField: "messageId"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			msgs, err := segmentapi.Decode("track", []byte(tc.body), received)
			if tc.wantErrField != "" {
				checkErr(t, err, tc.wantErrField, tc.wantErrSubstr)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if m := msgs[0]; m.UserID != tc.user || m.AnonymousID != tc.anon {
				t.Errorf("userId, anonymousId = %q, %q; want %q, %q", m.UserID, m.AnonymousID, tc.user, tc.anon)
			}
		})
	}
}

func checkErr(t *testing.T, err error, field, substr string) {
	t.Helper()
	var e *segmentapi.Error
	if !errors.As(err, &e) {
		t.Fatalf("err = %v (%T), want a *segmentapi.Error for %q", err, err, field)
	}
	if e.Field != field {
		t.Errorf("field = %q, want %q (%v)", e.Field, field, e)
	}
	if !strings.Contains(e.Message, substr) {
		t.Errorf("message %q does not contain %q", e.Message, substr)
	}
}

func TestDecodeTraits(t *testing.T) {
	t.Parallel()
	t.Run("identify takes traits, not context.traits", func(t *testing.T) {
		t.Parallel()
		m := decodeOne(t, "identify", `{"userId":"u","traits":{"plan":"pro","age":30},"context":{"traits":{"plan":"free"}}}`)
		want := map[string]any{"plan": "pro", "age": json.Number("30")}
		if !reflect.DeepEqual(m.Traits, want) {
			t.Errorf("Traits = %#v, want %#v", m.Traits, want)
		}
		if m.Type != "identify" || m.Event != "" {
			t.Errorf("Type, Event = %q, %q", m.Type, m.Event)
		}
	})
	t.Run("identify without traits has empty traits", func(t *testing.T) {
		t.Parallel()
		m := decodeOne(t, "identify", `{"userId":"u"}`)
		if m.Traits == nil || len(m.Traits) != 0 {
			t.Errorf("Traits = %#v, want empty", m.Traits)
		}
	})
	t.Run("track takes context.traits", func(t *testing.T) {
		t.Parallel()
		m := decodeOne(t, "track", `{"userId":"u","event":"Sign Up","traits":{"ignored":true},"context":{"traits":{"Channel":"Facebook"},"ip":"10.0.0.1"}}`)
		if want := map[string]any{"Channel": "Facebook"}; !reflect.DeepEqual(m.Traits, want) {
			t.Errorf("Traits = %#v, want %#v", m.Traits, want)
		}
		if m.Context["ip"] != "10.0.0.1" {
			t.Errorf("Context = %#v: lost ip", m.Context)
		}
	})
	t.Run("track without context.traits has none", func(t *testing.T) {
		t.Parallel()
		if m := decodeOne(t, "track", `{"userId":"u","event":"E","context":{"traits":null}}`); m.Traits != nil {
			t.Errorf("Traits = %#v, want nil", m.Traits)
		}
	})
	t.Run("page and screen take their name, and context.traits", func(t *testing.T) {
		t.Parallel()
		for _, typ := range []string{"page", "screen"} {
			m := decodeOne(t, typ, `{"userId":"u","name":"Home","properties":{"path":"/"},"context":{"traits":{"a":1}}}`)
			if m.Type != typ || m.Event != "Home" || m.Properties["path"] != "/" || m.Traits["a"] != json.Number("1") {
				t.Errorf("%s: %+v", typ, m)
			}
		}
	})
	t.Run("group keeps groupId and traits", func(t *testing.T) {
		t.Parallel()
		m := decodeOne(t, "group", `{"userId":"u","groupId":42,"traits":{"name":"Acme"}}`)
		if m.Properties["groupId"] != "42" || m.Traits["name"] != "Acme" {
			t.Errorf("%+v", m)
		}
	})
	t.Run("alias keeps previousId", func(t *testing.T) {
		t.Parallel()
		m := decodeOne(t, "alias", `{"userId":"u","previousId":"anon-1"}`)
		if m.Properties["previousId"] != "anon-1" {
			t.Errorf("%+v", m)
		}
	})
}

func TestDecodeBatch(t *testing.T) {
	t.Parallel()
	t.Run("batch context and sentAt apply to every message; a message's own win", func(t *testing.T) {
		t.Parallel()
		body := `{
			"sentAt": "2025-06-01T13:00:10Z",
			"context": {"library": {"name": "analytics-node"}, "ip": "10.0.0.1", "traits": {"Channel": "Facebook"}},
			"batch": [
				{"type": "identify", "userId": "u1", "traits": {"plan": "pro"}, "timestamp": "2025-06-01T13:00:00Z"},
				{"type": "track", "userId": "u1", "event": "Sign Up", "timestamp": "2025-06-01T13:00:04Z",
				 "context": {"ip": "10.9.9.9"}},
				{"type": "track", "anonymousId": "a1", "event": "Other", "timestamp": "2025-06-01T13:00:04Z",
				 "sentAt": "2025-06-01T13:00:05Z", "context": {"traits": {"Channel": "Google"}}},
				{"type": "page", "userId": "u1", "name": "Home"}
			]}`
		msgs := decodeOK(t, "batch", body)
		if len(msgs) != 4 {
			t.Fatalf("%d messages, want 4", len(msgs))
		}
		id, tr, other, page := msgs[0], msgs[1], msgs[2], msgs[3]
		if id.Type != "identify" || tr.Type != "track" || other.Type != "track" || page.Type != "page" {
			t.Errorf("types %q %q %q %q", id.Type, tr.Type, other.Type, page.Type)
		}
		if !id.Timestamp.Equal(received.Add(-10*time.Second)) || !tr.Timestamp.Equal(received.Add(-6*time.Second)) {
			t.Errorf("batch sentAt not applied: %v, %v", id.Timestamp, tr.Timestamp)
		}
		if !other.Timestamp.Equal(received.Add(-time.Second)) {
			t.Errorf("a message's own sentAt must win: %v", other.Timestamp)
		}
		if !page.Timestamp.IsZero() {
			t.Errorf("no timestamp must stay zero: %v", page.Timestamp)
		}
		if tr.Context["ip"] != "10.9.9.9" || id.Context["ip"] != "10.0.0.1" {
			t.Errorf("context ip: %v, %v", tr.Context["ip"], id.Context["ip"])
		}
		for i, m := range msgs {
			lib, _ := m.Context["library"].(map[string]any)
			if lib["name"] != "analytics-node" {
				t.Errorf("message %d: batch context.library not merged: %#v", i, m.Context)
			}
		}
		if tr.Traits["Channel"] != "Facebook" || other.Traits["Channel"] != "Google" {
			t.Errorf("context.traits: %v, %v", tr.Traits, other.Traits)
		}
		if !reflect.DeepEqual(id.Traits, map[string]any{"plan": "pro"}) {
			t.Errorf("identify traits: %v", id.Traits)
		}
	})
	t.Run("a null batch context is no context", func(t *testing.T) {
		t.Parallel()
		msgs := decodeOK(t, "batch", `{"context":null,"batch":[{"type":"track","userId":"u","event":"E"}]}`)
		if len(msgs) != 1 {
			t.Fatalf("%d messages", len(msgs))
		}
	})
	t.Run("empty batch", func(t *testing.T) {
		t.Parallel()
		if msgs := decodeOK(t, "batch", `{"batch":[]}`); len(msgs) != 0 {
			t.Errorf("%d messages", len(msgs))
		}
	})
}

func TestDecodeErrors(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("x", segmentapi.MaxMessageBytes)
	msg := `{"type":"track","userId":"u","event":"E","properties":{"p":"` + strings.Repeat("y", 400<<10/1000) + `"}}`
	many := make([]string, 0, 1400)
	for len(many) < 1400 {
		many = append(many, msg)
	}
	for _, tc := range []struct {
		name, typ, body string
		field, substr   string
	}{
		{"empty body", "track", ``, "", "JSON object"},
		{"invalid JSON", "track", `{"userId":`, "", "invalid JSON"},
		{"trailing data", "track", `{"userId":"u","event":"E"} {}`, "", "data after"},
		{"not an object", "track", `["userId"]`, "", "JSON object"},
		{"a string", "identify", `"u"`, "", "JSON object"},
		{"unknown endpoint", "purchase", `{"userId":"u"}`, "type", "unknown message type"},
		{"type that disagrees with the endpoint", "track", `{"type":"identify","userId":"u","event":"E"}`, "type", "this endpoint takes"},
		{"track without event", "track", `{"userId":"u"}`, "event", "required"},
		{"track with blank event", "track", `{"userId":"u","event":"  "}`, "event", "required"},
		{"numeric event", "track", `{"userId":"u","event":5}`, "event", "string"},
		{"properties a list", "track", `{"userId":"u","event":"E","properties":[1]}`, "properties", "object"},
		{"properties a string", "page", `{"userId":"u","properties":"x"}`, "properties", "object"},
		{"traits a string", "identify", `{"userId":"u","traits":"x"}`, "traits", "object"},
		{"context a number", "track", `{"userId":"u","event":"E","context":1}`, "context", "object"},
		{"context.traits a list", "track", `{"userId":"u","event":"E","context":{"traits":[]}}`, "context.traits", "object"},
		{"timestamp a number", "track", `{"userId":"u","event":"E","timestamp":1700000000}`, "timestamp", "string"},
		{"timestamp not a date", "track", `{"userId":"u","event":"E","timestamp":"yesterday"}`, "timestamp", "ISO 8601"},
		{"sentAt not a date", "track", `{"userId":"u","event":"E","sentAt":"soon"}`, "sentAt", "ISO 8601"},
		{"group without groupId", "group", `{"userId":"u"}`, "groupId", "required"},
		{"alias without previousId", "alias", `{"userId":"u"}`, "previousId", "required"},
		{"message over 32 KB", "track", `{"userId":"u","event":"E","properties":{"p":"` + big + `"}}`, "", "at most 32768 bytes"},
		{"batch not a list", "batch", `{"batch":{"type":"track"}}`, "batch", "a list"},
		{"batch missing", "batch", `{"messages":[]}`, "batch", "required"},
		{"batch context a list", "batch", `{"context":[],"batch":[]}`, "context", "object"},
		{"batch item not an object", "batch", `{"batch":[1]}`, "batch[0]", "JSON object"},
		{"batch item without type", "batch", `{"batch":[{"userId":"u","event":"E"}]}`, "batch[0].type", "required"},
		{"batch item of unknown type", "batch", `{"batch":[{"type":"track","userId":"u","event":"E"},{"type":"purchase","userId":"u"}]}`, "batch[1].type", "unknown message type"},
		{"batch item without ids", "batch", `{"batch":[{"type":"track","event":"E"}]}`, "batch[0].userId", "userId or an anonymousId"},
		{"batch item with a bad timestamp", "batch", `{"batch":[{"type":"track","userId":"u","event":"E","timestamp":"x"}]}`, "batch[0].timestamp", "ISO 8601"},
		{"batch sentAt not a date", "batch", `{"sentAt":"x","batch":[{"type":"track","userId":"u","event":"E","timestamp":"2025-01-01T00:00:00Z"}]}`, "batch[0].sentAt", "ISO 8601"},
		{"batch item over 32 KB", "batch", `{"batch":[{"type":"track","userId":"u","event":"E","properties":{"p":"` + big + `"}}]}`, "batch[0]", "at most 32768 bytes"},
		{"batch over 500 KB", "batch", `{"batch":[` + strings.Join(many, ",") + `]}`, "", "at most 512000 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			msgs, err := segmentapi.Decode(tc.typ, []byte(tc.body), received)
			if err == nil {
				t.Fatalf("no error; decoded %+v", msgs)
			}
			if msgs != nil {
				t.Errorf("messages returned with an error: %+v", msgs)
			}
			checkErr(t, err, tc.field, tc.substr)
		})
	}
}

// TestDecodeUnstorableValues (issue 13): a number outside float64 or a NUL
// character anywhere in properties, traits or context is refused, naming
// the part; numbers that fit, however written, are kept.
func TestDecodeUnstorableValues(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ typ, body, field string }{
		{"track", `{"userId":"u","event":"E","properties":{"big":1e400}}`, "properties.big"},
		{"track", `{"userId":"u","event":"E","properties":{"a b":[0,-1e200000]}}`, `properties["a b"][1]`},
		{"identify", `{"userId":"u","traits":{"score":1E+309}}`, "traits.score"},
		{"track", `{"userId":"u","event":"E","context":{"traits":{"n":1e400}}}`, "context.traits.n"},
		{"batch", `{"batch":[{"type":"track","userId":"u","event":"E"},{"type":"screen","userId":"u","properties":{"w":1e400}}]}`, "batch[1].properties.w"},
		{"batch", `{"context":{"x":1e400},"batch":[]}`, "context.x"},
		{"track", `{"userId":"u","event":"E","properties":{"note":"a\u0000b"}}`, "properties.note"},
		{"group", `{"userId":"u","groupId":"g","traits":{"na\u0000me":"x"}}`, `traits["na\x00me"]`},
		{"page", `{"userId":"u","context":{"tags":["ok","\u0000"]}}`, "context.tags[1]"},
	} {
		_, err := segmentapi.Decode(tc.typ, []byte(tc.body), received)
		var e *segmentapi.Error
		if !errors.As(err, &e) || e.Field != tc.field {
			t.Errorf("Decode(%s, %s) = %v, want an error at %s", tc.typ, tc.body, err, tc.field)
		}
	}
	m := decodeOne(t, "track", `{"userId":"u","event":"E","properties":{"max":1.7976931348623157e308,"tiny":1e-400}}`)
	if m.Properties["max"] != json.Number("1.7976931348623157e308") || m.Properties["tiny"] != json.Number("1e-400") {
		t.Fatalf("numbers inside float64: %v", m.Properties)
	}
}
