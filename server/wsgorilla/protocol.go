package wsgorilla

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sync"
)

// TransportWS is the graphql-transport-ws subprotocol
// (https://github.com/enisdenjo/graphql-ws/blob/master/PROTOCOL.md).
const TransportWS = "graphql-transport-ws"

// The close codes graphql-transport-ws gives protocol violations.
const (
	CloseInvalidMessage   = 4400 // a message that is not JSON, or not a valid client message
	CloseUnauthorized     = 4401 // subscribe before connection_ack
	CloseForbidden        = 4403 // connection_init refused (set by the InitFunc)
	CloseInitTimeout      = 4408 // no connection_init within the init timeout
	CloseSubscriberExists = 4409 // subscribe with an id already in use
	CloseTooManyInits     = 4429 // a second connection_init
)

// gqlgenInitTimeout is the reason gqlgen gives its close (with 1002) when
// no connection_init arrives in time.
const gqlgenInitTimeout = "connection initialisation timeout"

// transportWS enforces graphql-transport-ws on one connection, in front of
// gqlgen, which closes with 1002 (or not at all) where the protocol gives
// a code of its own, and lets a second subscribe with an id in use replace
// the first silently. It sees every message the client sends (incoming)
// before gqlgen does, and every message gqlgen sends (outgoing).
type transportWS struct {
	mu           sync.Mutex
	initReceived bool
	acked        bool
	active       map[string]bool // ids of the operations running
	// stopped counts, per id, the operations the client completed whose
	// complete gqlgen has still to send (it answers a client's complete
	// with one, which the protocol does not: the id may be in use again).
	stopped map[string]int
}

func newTransportWS() *transportWS {
	return &transportWS{active: map[string]bool{}, stopped: map[string]int{}}
}

// violation is a protocol violation: the connection closes with code and reason.
type violation struct {
	code   int
	reason string
}

// incoming checks a client message. It returns the violation to close the
// connection with, or nil; pong reports a ping that arrived before
// connection_ack, which the caller answers itself (gqlgen reads nothing but
// connection_init until then).
func (p *transportWS) incoming(data []byte) (v *violation, pong bool) {
	invalid := func(format string, args ...any) *violation {
		return &violation{CloseInvalidMessage, "Invalid message received: " + fmt.Sprintf(format, args...)}
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(data, &m) != nil || m == nil {
		return invalid("not a JSON object"), false
	}
	var typ string
	if json.Unmarshal(m["type"], &typ) != nil || typ == "" {
		return invalid("no type"), false
	}
	id, hasID := stringField(m["id"])

	p.mu.Lock()
	defer p.mu.Unlock()
	switch typ {
	case "connection_init":
		if p.initReceived {
			return &violation{CloseTooManyInits, "Too many initialisation requests"}, false
		}
		if k := kind(m["payload"]); k != "object" && k != "null" {
			return invalid("the connection_init payload must be an object"), false
		}
		p.initReceived = true
	case "subscribe":
		if !p.acked {
			return &violation{CloseUnauthorized, "Unauthorized"}, false
		}
		if !hasID || id == "" {
			return invalid("subscribe needs an id"), false
		}
		if kind(m["payload"]) != "object" {
			return invalid("subscribe needs a payload object"), false
		}
		if msg := checkSubscribePayload(m["payload"]); msg != "" {
			return invalid("%s", msg), false
		}
		if p.active[id] {
			return &violation{CloseSubscriberExists, "Subscriber for " + id + " already exists"}, false
		}
		p.active[id] = true
	case "complete":
		if !hasID || id == "" {
			return invalid("complete needs an id"), false
		}
		if p.active[id] {
			delete(p.active, id)
			p.stopped[id]++
		}
	case "ping":
		return nil, !p.acked
	case "pong":
	default:
		return invalid("unknown type %q", typ), false
	}
	return nil, false
}

// outgoing notes a message gqlgen is about to send, and reports whether to
// send it: the complete that gqlgen sends after an operation's error, or
// after the client completed it, is dropped (the protocol ends an
// operation with one message, from either side).
func (p *transportWS) outgoing(data []byte) (send bool) {
	if bytes.HasSuffix(data, []byte(`"type":"next"}`)) {
		return true // the common case, as gqlgen encodes it
	}
	var m struct{ Type, ID string }
	if json.Unmarshal(data, &m) != nil {
		return true
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	switch m.Type {
	case "connection_ack":
		p.acked = true
	case "error", "complete":
		// gqlgen ends an operation with one of these, or both (an error,
		// then complete), and answers a client's complete with one.
		if p.stopped[m.ID] > 0 {
			if p.stopped[m.ID]--; p.stopped[m.ID] == 0 {
				delete(p.stopped, m.ID)
			}
			return false
		}
		if p.active[m.ID] {
			delete(p.active, m.ID)
			return true
		}
		return m.Type == "error"
	}
	return true
}

// closeCode maps gqlgen's close codes to the protocol's.
func (p *transportWS) closeCode(code int, reason string) (int, string) {
	if code == 1002 && reason == gqlgenInitTimeout {
		return CloseInitTimeout, "Connection initialisation timeout"
	}
	return code, reason
}

// checkSubscribePayload returns what is wrong with a subscribe payload, as
// the protocol's reference server checks it: query a string,
// operationName a string or null, variables and extensions objects or null.
func checkSubscribePayload(raw json.RawMessage) string {
	var p map[string]json.RawMessage
	if json.Unmarshal(raw, &p) != nil {
		return "subscribe needs a payload object"
	}
	if _, ok := stringField(p["query"]); !ok {
		return "the subscribe payload needs a query string"
	}
	if k := kind(p["operationName"]); k != "null" {
		if _, ok := stringField(p["operationName"]); !ok {
			return "operationName must be a string"
		}
	}
	for _, f := range []string{"variables", "extensions"} {
		if k := kind(p[f]); k != "object" && k != "null" {
			return f + " must be an object"
		}
	}
	return ""
}

func stringField(raw json.RawMessage) (string, bool) {
	var s string
	if raw == nil || json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

// kind names the kind of a JSON value: "object", "null" (also for an
// absent one), or "other".
func kind(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	switch {
	case len(raw) == 0, string(raw) == "null":
		return "null"
	case raw[0] == '{':
		return "object"
	}
	return "other"
}
