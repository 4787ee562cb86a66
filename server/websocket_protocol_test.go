package server_test

// The graphql-transport-ws protocol as its specification defines it
// (https://github.com/enisdenjo/graphql-ws/blob/master/PROTOCOL.md), checked
// with a raw gorilla client: the close code of each protocol violation, the
// subprotocol a client offering both gets, and where the key may be sent
// (issue 13, item 16).

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/segmentd/segmentd/auth"
	"github.com/segmentd/segmentd/internal/testenv"
	"github.com/segmentd/segmentd/server"
)

// rawWS opens a websocket to /graphql offering protos in that order, with
// header on the upgrade request.
func rawWS(t *testing.T, srv *testenv.Server, header http.Header, protos ...string) *websocket.Conn {
	t.Helper()
	u := "ws" + strings.TrimPrefix(srv.URL, "http") + "/graphql"
	d := websocket.Dialer{Subprotocols: protos, HandshakeTimeout: 5 * time.Second}
	conn, resp, err := d.Dial(u, header)
	if err != nil {
		t.Fatalf("dial %s: %v", u, err)
	}
	resp.Body.Close()
	t.Cleanup(func() { conn.Close() })
	return conn
}

func wsSend(t *testing.T, conn *websocket.Conn, raw string) {
	t.Helper()
	if err := conn.WriteMessage(websocket.TextMessage, []byte(raw)); err != nil {
		t.Fatalf("send %s: %v", raw, err)
	}
}

// wsMsg is a protocol message as received.
type wsMsg struct {
	Type    string          `json:"type"`
	ID      string          `json:"id"`
	Payload json.RawMessage `json:"payload"`
}

// wsNext returns the next message other than ping, pong and ka.
func wsNext(t *testing.T, conn *websocket.Conn) wsMsg {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		var m wsMsg
		if err := conn.ReadJSON(&m); err != nil {
			t.Fatalf("read: %v", err)
		}
		switch m.Type {
		case "ping", "pong", "ka":
			continue
		}
		return m
	}
}

// wsClose reads until the server closes the connection and returns the
// close frame's code and reason, failing if there is none within 5 s.
func wsClose(t *testing.T, conn *websocket.Conn) (int, string) {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		_, _, err := conn.ReadMessage()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if !errors.As(err, &ce) {
			t.Fatalf("no close frame: %v", err)
		}
		return ce.Code, ce.Text
	}
}

// wsAck sends connection_init with payload and expects connection_ack.
func wsAck(t *testing.T, conn *websocket.Conn, payload string) {
	t.Helper()
	wsSend(t, conn, `{"type":"connection_init","payload":`+payload+`}`)
	if m := wsNext(t, conn); m.Type != "connection_ack" {
		t.Fatalf("after connection_init %s: got %s %s, want connection_ack", payload, m.Type, m.Payload)
	}
}

func bearerPayload(key string) string { return `{"Authorization":"Bearer ` + key + `"}` }

const liveSub = `{"query":"subscription { eventReceived { messageId } }"}`

// TestTransportWSCloseCodes: each violation of graphql-transport-ws closes
// the socket with the code the protocol gives it: 4400 for an invalid
// message, 4401 for a subscribe before connection_ack, 4403 for a refused
// key, 4408 when no connection_init comes in time, 4409 for a second
// subscribe with an id in use, 4429 for a second connection_init. (gqlgen
// closed with 1002 for most, and let a duplicate id replace the first
// subscription silently.)
func TestTransportWSCloseCodes(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL, func(c *server.Config) { c.WebsocketInitTimeout = 700 * time.Millisecond })
		cases := []struct {
			name string
			// init is the connection_init payload to be acknowledged first,
			// or "" for none.
			init     string
			send     []string
			code     int
			reasonIn string
		}{
			{name: "not JSON", send: []string{`hello`}, code: 4400, reasonIn: "Invalid message"},
			{name: "not JSON after ack", init: bearerPayload(testenv.AdminKey), send: []string{`{"type":`}, code: 4400, reasonIn: "Invalid message"},
			{name: "JSON but not an object", send: []string{`[1,2]`}, code: 4400},
			{name: "no type", send: []string{`{"payload":{}}`}, code: 4400},
			{name: "unknown type", init: bearerPayload(testenv.AdminKey), send: []string{`{"type":"start","id":"1","payload":` + liveSub + `}`}, code: 4400, reasonIn: "start"},
			{name: "server-only type", init: bearerPayload(testenv.AdminKey), send: []string{`{"type":"next","id":"1","payload":{}}`}, code: 4400},
			{name: "subscribe without id", init: bearerPayload(testenv.AdminKey), send: []string{`{"type":"subscribe","payload":` + liveSub + `}`}, code: 4400, reasonIn: "id"},
			{name: "subscribe without payload", init: bearerPayload(testenv.AdminKey), send: []string{`{"type":"subscribe","id":"1"}`}, code: 4400, reasonIn: "payload"},
			{name: "query not a string", init: bearerPayload(testenv.AdminKey), send: []string{`{"type":"subscribe","id":"1","payload":{"query":5}}`}, code: 4400, reasonIn: "query"},
			{name: "variables not an object", init: bearerPayload(testenv.AdminKey), send: []string{`{"type":"subscribe","id":"1","payload":{"query":"{ __typename }","variables":[1]}}`}, code: 4400, reasonIn: "variables"},
			{name: "init payload not an object", send: []string{`{"type":"connection_init","payload":"Bearer x"}`}, code: 4400, reasonIn: "payload"},
			{name: "subscribe before init", send: []string{`{"type":"subscribe","id":"1","payload":` + liveSub + `}`}, code: 4401, reasonIn: "Unauthorized"},
			{name: "bad key", send: []string{`{"type":"connection_init","payload":` + bearerPayload("sgd_wrong") + `}`}, code: 4403, reasonIn: "Forbidden"},
			{name: "no init in time", code: 4408, reasonIn: "Connection initialisation timeout"},
			{name: "duplicate id", init: bearerPayload(testenv.AdminKey),
				send: []string{`{"type":"subscribe","id":"a","payload":` + liveSub + `}`, `{"type":"subscribe","id":"a","payload":` + liveSub + `}`},
				code: 4409, reasonIn: "Subscriber for a already exists"},
			{name: "second init", init: bearerPayload(testenv.AdminKey), send: []string{`{"type":"connection_init","payload":` + bearerPayload(testenv.AdminKey) + `}`},
				code: 4429, reasonIn: "Too many initialisation requests"},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				conn := rawWS(t, srv, nil, testenv.TransportWS)
				if c.init != "" {
					wsAck(t, conn, c.init)
				}
				for _, m := range c.send {
					wsSend(t, conn, m)
				}
				start := time.Now()
				code, reason := wsClose(t, conn)
				if code != c.code || !strings.Contains(reason, c.reasonIn) {
					t.Errorf("closed with %d %q, want %d with %q", code, reason, c.code, c.reasonIn)
				}
				if c.code == 4408 && time.Since(start) < 500*time.Millisecond {
					t.Errorf("closed for a timeout after %s; the timeout is 700ms", time.Since(start))
				}
			})
		}

		// A ping is answered at any time, before connection_init too.
		t.Run("ping before init", func(t *testing.T) {
			t.Parallel()
			conn := rawWS(t, srv, nil, testenv.TransportWS)
			wsSend(t, conn, `{"type":"ping"}`)
			_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			var m wsMsg
			if err := conn.ReadJSON(&m); err != nil || m.Type != "pong" {
				t.Fatalf("ping before init: got %+v, %v; want pong", m, err)
			}
			wsAck(t, conn, bearerPayload(testenv.AdminKey))
		})

		// An id is free again once its operation completes: a query
		// operation completes at once; the same id may then be reused.
		t.Run("id reused after complete", func(t *testing.T) {
			t.Parallel()
			conn := rawWS(t, srv, nil, testenv.TransportWS)
			wsAck(t, conn, bearerPayload(testenv.AdminKey))
			for range 3 {
				wsSend(t, conn, `{"type":"subscribe","id":"q","payload":{"query":"{ __typename }"}}`)
				if m := wsNext(t, conn); m.Type != "next" || m.ID != "q" || !strings.Contains(string(m.Payload), `"__typename":"Query"`) {
					t.Fatalf("got %s %s %s, want the result of q", m.Type, m.ID, m.Payload)
				}
				if m := wsNext(t, conn); m.Type != "complete" || m.ID != "q" {
					t.Fatalf("got %s %s, want complete of q", m.Type, m.ID)
				}
			}
			// And a subscription the client completed frees its id too.
			wsSend(t, conn, `{"type":"subscribe","id":"s","payload":`+liveSub+`}`)
			wsSend(t, conn, `{"type":"complete","id":"s"}`)
			wsSend(t, conn, `{"type":"subscribe","id":"s","payload":`+liveSub+`}`)
			wsSend(t, conn, `{"type":"ping"}`)
			_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			for {
				var m wsMsg
				if err := conn.ReadJSON(&m); err != nil {
					t.Fatalf("the reused id closed the connection: %v", err)
				}
				if m.Type == "pong" {
					break
				}
			}
		})
	})
}

// TestTransportWSSubprotocolChoice: a client that offers both subprotocols
// gets the first one it lists, and can then speak it. (The legacy
// graphql-ws always won, and a client that then spoke graphql-transport-ws
// was closed with no message.)
func TestTransportWSSubprotocolChoice(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL)
		for _, protos := range [][]string{
			{testenv.TransportWS, testenv.LegacyWS},
			{testenv.LegacyWS, testenv.TransportWS},
			{"graphql-unknown", testenv.TransportWS},
		} {
			conn := rawWS(t, srv, nil, protos...)
			want := protos[0]
			if want == "graphql-unknown" {
				want = protos[1]
			}
			if got := conn.Subprotocol(); got != want {
				t.Errorf("offered %v, got %q; want %q", protos, got, want)
				continue
			}
			wsAck(t, conn, bearerPayload(testenv.AdminKey))
			typ, result := "subscribe", "next"
			if want == testenv.LegacyWS {
				typ, result = "start", "data"
			}
			wsSend(t, conn, `{"type":"`+typ+`","id":"1","payload":{"query":"{ __typename }"}}`)
			if m := wsNext(t, conn); m.Type != result || !strings.Contains(string(m.Payload), `"__typename":"Query"`) {
				t.Errorf("offered %v: got %s %s, want %s with data", protos, m.Type, m.Payload, result)
			}
		}
	})
}

// TestWebsocketKeyForms: the key may come as the Authorization header of
// the upgrade request (server-side clients), as {"headers":
// {"Authorization": ...}} in connection_init (the form Hasura's and Apollo's
// docs show), or as {"Authorization": ...}; anything else is closed with
// 4403, and a key sent both ways is taken from connection_init. On both
// subprotocols.
func TestWebsocketKeyForms(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL)
		readKey := newKey(t, srv, "ws reader", auth.RoleRead)
		writeKey := newKey(t, srv, "ws writer", auth.RoleWrite)
		bearer := func(k string) http.Header { return http.Header{"Authorization": {"Bearer " + k}} }
		for _, proto := range testenv.Subprotocols {
			accepted := []struct {
				name    string
				header  http.Header
				payload string
			}{
				{"upgrade header, empty payload", bearer(readKey), `{}`},
				{"upgrade header, no payload", bearer(readKey), `null`},
				{"headers.Authorization", nil, `{"headers":{"Authorization":"Bearer ` + readKey + `"}}`},
				{"headers.authorization", nil, `{"headers":{"authorization":"Bearer ` + readKey + `"}}`},
				{"Authorization", nil, bearerPayload(readKey)},
				{"payload wins over header", bearer(writeKey), bearerPayload(readKey)},
			}
			for _, c := range accepted {
				conn := rawWS(t, srv, c.header, proto)
				wsAck(t, conn, c.payload)
			}
			refused := []struct {
				name    string
				header  http.Header
				payload string
			}{
				{"no key anywhere", nil, `{}`},
				{"key under another name", nil, `{"token":"` + readKey + `"}`},
				{"headers is not an object", nil, `{"headers":"Bearer ` + readKey + `"}`},
				{"WRITE key in the header", bearer(writeKey), `{}`},
				{"wrong key in headers", nil, `{"headers":{"Authorization":"Bearer sgd_wrong"}}`},
				{"payload key wins and is wrong", bearer(readKey), bearerPayload("sgd_wrong")},
			}
			for _, c := range refused {
				conn := rawWS(t, srv, c.header, proto)
				wsSend(t, conn, `{"type":"connection_init","payload":`+c.payload+`}`)
				if code, reason := wsClose(t, conn); code != 4403 || !strings.HasPrefix(reason, "Forbidden") {
					t.Errorf("%s %s: closed with %d %q, want 4403 Forbidden", proto, c.name, code, reason)
				}
			}
		}
	})
}
