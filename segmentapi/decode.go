// Package segmentapi decodes the bodies of Segment's HTTP Tracking API
// (track, identify, page, screen, group, alias, batch), so that Segment and
// RudderStack SDKs and webhook destinations can send to segmentd unchanged.
// It knows nothing of HTTP or storage: it turns bytes into validated
// messages, with the clock-skew correction Segment applies.
package segmentapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/segmentd/segmentd"
)

// Segment's limits.
const (
	MaxMessageBytes = 32 << 10  // one message
	MaxBatchBytes   = 500 << 10 // a whole batch request
	MaxBatchLen     = 1000      // messages in a batch (segmentd's own cap)
)

// Types are the message types, as Segment names them.
var Types = []string{"track", "identify", "page", "screen", "group", "alias"}

// Message is one decoded, validated message.
type Message struct {
	Type        string // track, identify, page, screen, group, alias
	Event       string // track: the event; page/screen: the name
	UserID      string
	AnonymousID string
	MessageID   string
	Properties  map[string]any
	Traits      map[string]any // identify: the user's traits; group: the group's; others: context.traits
	Context     map[string]any
	GroupID     string // group: the group the user joins (also in Properties["groupId"])
	// Timestamp is when the event happened, corrected for the client's
	// clock skew when sentAt is given; zero if the message had none.
	Timestamp time.Time
}

// Error is a bad body: Field says where ("batch[2].userId").
type Error struct {
	Field   string
	Message string
}

func (e *Error) Error() string {
	if e.Field == "" {
		return e.Message
	}
	return e.Field + ": " + e.Message
}

func errf(field, format string, args ...any) *Error {
	return &Error{Field: field, Message: fmt.Sprintf(format, args...)}
}

// raw is a message as sent. Fields are raw so that a wrong type is reported
// with the field's name rather than as a JSON error.
type raw struct {
	Type              json.RawMessage `json:"type"`
	Event             json.RawMessage `json:"event"`
	Name              json.RawMessage `json:"name"`
	UserID            json.RawMessage `json:"userId"`
	AnonymousID       json.RawMessage `json:"anonymousId"`
	MessageID         json.RawMessage `json:"messageId"`
	Properties        json.RawMessage `json:"properties"`
	Traits            json.RawMessage `json:"traits"`
	Context           json.RawMessage `json:"context"`
	Timestamp         json.RawMessage `json:"timestamp"`
	OriginalTimestamp json.RawMessage `json:"originalTimestamp"`
	SentAt            json.RawMessage `json:"sentAt"`
	GroupID           json.RawMessage `json:"groupId"`
	PreviousID        json.RawMessage `json:"previousId"`
}

// Decode decodes the body of /v1/<typ> (typ "batch" for /v1/batch) received
// at now. Every message is validated; the first bad one fails the whole
// body, so that nothing of a bad request is stored.
func Decode(typ string, body []byte, now time.Time) ([]Message, error) {
	if typ == "batch" {
		if len(body) > MaxBatchBytes {
			return nil, errf("", "a batch is at most %d bytes, got %d", MaxBatchBytes, len(body))
		}
		var b struct {
			Batch   []json.RawMessage `json:"batch"`
			Context json.RawMessage   `json:"context"`
			SentAt  json.RawMessage   `json:"sentAt"`
		}
		if err := unmarshalObject(body, &b); err != nil {
			return nil, err
		}
		if b.Batch == nil {
			return nil, errf("batch", "is required: a list of messages")
		}
		if len(b.Batch) > MaxBatchLen {
			return nil, errf("batch", "at most %d messages, got %d", MaxBatchLen, len(b.Batch))
		}
		shared, err := optObject("context", b.Context)
		if err != nil {
			return nil, err
		}
		out := make([]Message, 0, len(b.Batch))
		for i, m := range b.Batch {
			field := fmt.Sprintf("batch[%d]", i)
			if len(m) > MaxMessageBytes {
				return nil, errf(field, "a message is at most %d bytes, got %d", MaxMessageBytes, len(m))
			}
			msg, err := decodeOne("", m, field, now, b.SentAt, shared)
			if err != nil {
				return nil, err
			}
			out = append(out, msg)
		}
		return out, nil
	}
	if !validType(typ) {
		return nil, errf("type", "unknown message type %q", typ)
	}
	if len(body) > MaxMessageBytes {
		return nil, errf("", "a message is at most %d bytes, got %d", MaxMessageBytes, len(body))
	}
	msg, err := decodeOne(typ, body, "", now, nil, nil)
	if err != nil {
		return nil, err
	}
	return []Message{msg}, nil
}

func validType(t string) bool {
	for _, v := range Types {
		if t == v {
			return true
		}
	}
	return false
}

func unmarshalObject(body []byte, v any) error {
	body = bytes.TrimSpace(body)
	if len(body) == 0 || body[0] != '{' {
		return errf("", "the body must be a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return errf(te.Field, "must be %s, not %s", jsonKind(te.Type.Kind().String()), te.Value)
		}
		return errf("", "invalid JSON: %v", err)
	}
	if dec.More() {
		return errf("", "invalid JSON: data after the object")
	}
	return nil
}

func jsonKind(k string) string {
	switch k {
	case "slice":
		return "a list"
	case "struct", "map":
		return "an object"
	}
	return "a " + k
}

func join(prefix, field string) string {
	if prefix == "" {
		return field
	}
	return prefix + "." + field
}

// decodeOne decodes one message. typ is the endpoint's type, or "" inside a
// batch, where each message says its own.
func decodeOne(typ string, body []byte, prefix string, now time.Time, batchSentAt json.RawMessage, sharedContext map[string]any) (Message, error) {
	var r raw
	if err := unmarshalObject(body, &r); err != nil {
		var e *Error
		if errors.As(err, &e) {
			e.Field = join(prefix, e.Field)
			if prefix != "" && e.Field == prefix+"." {
				e.Field = prefix
			}
		}
		return Message{}, err
	}
	var m Message
	var err error
	mt, err := str(join(prefix, "type"), r.Type)
	if err != nil {
		return m, err
	}
	switch {
	case typ == "" && mt == "":
		return m, errf(join(prefix, "type"), "is required in a batch: one of %s", strings.Join(Types, ", "))
	case typ == "":
		if !validType(mt) {
			return m, errf(join(prefix, "type"), "unknown message type %q: use one of %s", mt, strings.Join(Types, ", "))
		}
		typ = mt
	case mt != "" && mt != typ:
		return m, errf(join(prefix, "type"), "is %q, but this endpoint takes %q", mt, typ)
	}
	m.Type = typ
	if m.UserID, err = id(join(prefix, "userId"), r.UserID); err != nil {
		return m, err
	}
	if m.AnonymousID, err = id(join(prefix, "anonymousId"), r.AnonymousID); err != nil {
		return m, err
	}
	if m.UserID == "" && m.AnonymousID == "" {
		return m, errf(join(prefix, "userId"), "a message needs a userId or an anonymousId")
	}
	if m.MessageID, err = str(join(prefix, "messageId"), r.MessageID); err != nil {
		return m, err
	}
	switch typ {
	case "track":
		if m.Event, err = str(join(prefix, "event"), r.Event); err != nil {
			return m, err
		}
		if strings.TrimSpace(m.Event) == "" {
			return m, errf(join(prefix, "event"), "is required for a track")
		}
	case "page", "screen":
		if m.Event, err = str(join(prefix, "name"), r.Name); err != nil {
			return m, err
		}
	}
	if m.Properties, err = optObject(join(prefix, "properties"), r.Properties); err != nil {
		return m, err
	}
	if m.Context, err = optObject(join(prefix, "context"), r.Context); err != nil {
		return m, err
	}
	for k, v := range sharedContext {
		if _, ok := m.Context[k]; !ok {
			m.Context[k] = v
		}
	}
	switch typ {
	case "identify", "group":
		if m.Traits, err = optObject(join(prefix, "traits"), r.Traits); err != nil {
			return m, err
		}
	default:
		if t, ok := m.Context["traits"]; ok && t != nil {
			traits, ok := t.(map[string]any)
			if !ok {
				return m, errf(join(prefix, "context.traits"), "must be an object")
			}
			m.Traits = traits
		}
	}
	switch typ {
	case "group":
		g, err := id(join(prefix, "groupId"), r.GroupID)
		if err != nil {
			return m, err
		}
		if g == "" {
			return m, errf(join(prefix, "groupId"), "is required for a group")
		}
		m.Properties["groupId"] = g
		m.GroupID = g
	case "alias":
		p, err := id(join(prefix, "previousId"), r.PreviousID)
		if err != nil {
			return m, err
		}
		if p == "" {
			return m, errf(join(prefix, "previousId"), "is required for an alias")
		}
		m.Properties["previousId"] = p
	}
	ts := r.Timestamp
	if len(ts) == 0 || string(ts) == "null" {
		ts = r.OriginalTimestamp
	}
	client, err := timestamp(join(prefix, "timestamp"), ts)
	if err != nil {
		return m, err
	}
	sentRaw := r.SentAt
	if len(sentRaw) == 0 || string(sentRaw) == "null" {
		sentRaw = batchSentAt
	}
	sent, err := timestamp(join(prefix, "sentAt"), sentRaw)
	if err != nil {
		return m, err
	}
	m.Timestamp = correct(client, sent, now)
	return m, nil
}

// correct applies Segment's clock-skew correction: when the client says
// when it sent the message (sentAt), the event happened (sentAt - timestamp)
// before the server received it, measured on the client's clock:
// timestamp = receivedAt - (sentAt - timestamp). Without sentAt the client's
// timestamp stands; without a timestamp, the event happened on receipt.
func correct(client, sent, received time.Time) time.Time {
	switch {
	case client.IsZero():
		return time.Time{}
	case sent.IsZero():
		return client.UTC()
	}
	return received.Add(-sent.Sub(client)).UTC()
}

func str(field string, v json.RawMessage) (string, error) {
	if len(v) == 0 || string(v) == "null" {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		return "", errf(field, "must be a string")
	}
	return s, nil
}

// id reads an ID: a string, or a number (some SDKs send numeric user IDs),
// kept as its decimal text.
func id(field string, v json.RawMessage) (string, error) {
	if len(v) == 0 || string(v) == "null" {
		return "", nil
	}
	if v[0] == '"' {
		return str(field, v)
	}
	var n json.Number
	if err := json.Unmarshal(v, &n); err != nil {
		return "", errf(field, "must be a string")
	}
	if _, err := strconv.ParseFloat(n.String(), 64); err != nil {
		return "", errf(field, "must be a string")
	}
	return n.String(), nil
}

func object(field string, v json.RawMessage) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(v))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil || m == nil {
		return nil, errf(field, "must be an object")
	}
	// What no store could keep readable (a number outside float64, a NUL
	// character): refused here, naming the part, as the GraphQL API does.
	var bad *segmentd.Error
	if errors.As(segmentd.CheckValue(field, m), &bad) {
		return nil, errf(bad.Field, "%s", bad.Message)
	}
	return m, nil
}

func optObject(field string, v json.RawMessage) (map[string]any, error) {
	if len(v) == 0 || string(v) == "null" {
		return map[string]any{}, nil
	}
	return object(field, v)
}

func timestamp(field string, v json.RawMessage) (time.Time, error) {
	s, err := str(field, v)
	if err != nil || s == "" {
		return time.Time{}, err
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			// An offset can move year 0000 or 9999 out of the four-digit
			// years that RFC 3339 (and so every reader of the event) can
			// represent.
			if y := t.UTC().Year(); y < 1 || y > 9999 {
				return time.Time{}, errf(field, "must be between the years 0001 and 9999 in UTC, not %q", s)
			}
			return t, nil
		}
	}
	return time.Time{}, errf(field, "must be an ISO 8601 date-time such as 2025-01-02T15:04:05Z, not %q", s)
}
