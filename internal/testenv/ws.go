package testenv

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// The websocket subprotocols segmentd speaks.
const (
	TransportWS = "graphql-transport-ws"
	LegacyWS    = "graphql-ws"
)

// Subprotocols lists both, for tests that run per subprotocol.
var Subprotocols = []string{TransportWS, LegacyWS}

// WSMessage is one protocol message.
type WSMessage struct {
	ID      string          `json:"id,omitempty"`
	Type    string          `json:"type"`
	Payload json.RawMessage `json:"payload,omitempty"`
}

// WSClient is a real websocket GraphQL client for one subprotocol. It
// answers pings and queues every other message.
type WSClient struct {
	Conn     *websocket.Conn
	Proto    string
	Messages chan WSMessage
	// Closed receives the close error when the connection ends.
	Closed chan error
	// writeMu serializes writes: gorilla's Conn takes one writer at a
	// time, and the reader answers pings while the test sends.
	writeMu sync.Mutex
}

// DialWS opens a websocket to /graphql with proto and, if key is not empty,
// completes connection_init with it.
func (s *Server) DialWS(t testing.TB, key, proto string) *WSClient {
	t.Helper()
	url := "ws" + strings.TrimPrefix(s.URL, "http") + "/graphql"
	d := websocket.Dialer{Subprotocols: []string{proto}, HandshakeTimeout: 5 * time.Second}
	conn, resp, err := d.Dial(url, http.Header{})
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	resp.Body.Close()
	c := &WSClient{Conn: conn, Proto: proto, Messages: make(chan WSMessage, 100000), Closed: make(chan error, 1)}
	go c.read()
	t.Cleanup(func() { conn.Close() })
	if key != "" {
		c.Send(t, WSMessage{Type: "connection_init", Payload: mustJSON(map[string]any{"Authorization": "Bearer " + key})})
		m := c.Next(t, 5*time.Second)
		if m.Type != "connection_ack" {
			t.Fatalf("expected connection_ack, got %+v", m)
		}
	}
	return c
}

func (c *WSClient) read() {
	for {
		var m WSMessage
		if err := c.Conn.ReadJSON(&m); err != nil {
			c.Closed <- err
			close(c.Messages)
			return
		}
		switch m.Type {
		case "ping":
			_ = c.write(WSMessage{Type: "pong"})
			continue
		case "ka", "pong":
			continue
		}
		c.Messages <- m
	}
}

// Send writes one message.
func (c *WSClient) Send(t testing.TB, m WSMessage) {
	t.Helper()
	if err := c.write(m); err != nil {
		t.Fatalf("write: %v", err)
	}
}

func (c *WSClient) write(m WSMessage) error {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	return c.Conn.WriteJSON(m)
}

// Subscribe starts an operation with id.
func (c *WSClient) Subscribe(t testing.TB, id, query string, vars map[string]any) {
	t.Helper()
	typ := "subscribe"
	if c.Proto == LegacyWS {
		typ = "start"
	}
	c.Send(t, WSMessage{ID: id, Type: typ, Payload: mustJSON(map[string]any{"query": query, "variables": vars})})
}

// MinWait is the least Next waits for a message. Live delivery on
// PostgreSQL waits for the cluster's oldest running transaction, and on a
// shared cluster (CI runs every package's tests on one) another test's long
// import can hold it back for seconds; waiting longer costs nothing when a
// message comes.
const MinWait = 30 * time.Second

// Next returns the next message, failing the test after timeout (at least
// MinWait).
func (c *WSClient) Next(t testing.TB, timeout time.Duration) WSMessage {
	t.Helper()
	timeout = max(timeout, MinWait)
	select {
	case m, ok := <-c.Messages:
		if !ok {
			t.Fatalf("connection closed: %v", <-c.Closed)
		}
		return m
	case <-time.After(timeout):
		t.Fatalf("no message within %s", timeout)
	}
	return WSMessage{}
}

// NextData returns the data of the next result message of operation id,
// failing on errors or other messages.
func (c *WSClient) NextData(t testing.TB, id string, timeout time.Duration, out any) {
	t.Helper()
	m := c.Next(t, timeout)
	if m.ID != id || (m.Type != "next" && m.Type != "data") {
		t.Fatalf("expected a result of %s, got %s %s %s", id, m.Type, m.ID, m.Payload)
	}
	var p struct {
		Data   json.RawMessage `json:"data"`
		Errors []GQLError      `json:"errors"`
	}
	if err := json.Unmarshal(m.Payload, &p); err != nil {
		t.Fatalf("decode %s: %v", m.Payload, err)
	}
	if len(p.Errors) > 0 {
		t.Fatalf("errors: %+v", p.Errors)
	}
	if err := json.Unmarshal(p.Data, out); err != nil {
		t.Fatalf("decode %s: %v", p.Data, err)
	}
}

// Quiet fails the test if a message arrives within d.
func (c *WSClient) Quiet(t testing.TB, d time.Duration) {
	t.Helper()
	select {
	case m, ok := <-c.Messages:
		if ok {
			t.Fatalf("unexpected message: %s %s %s", m.Type, m.ID, m.Payload)
		}
	case <-time.After(d):
	}
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
