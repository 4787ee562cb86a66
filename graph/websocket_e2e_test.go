package graph_test

// The websocket handshake at /graphql with a real gorilla client: the init
// timeout, connection_init with good and bad keys, both subprotocols.

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

// dialGraphQLWS opens a websocket to /graphql offering proto only, and fails
// unless the server accepts that subprotocol. Nothing is sent.
func dialGraphQLWS(t *testing.T, srv *testenv.Server, proto string) *websocket.Conn {
	t.Helper()
	u := "ws" + strings.TrimPrefix(srv.URL, "http") + "/graphql"
	d := websocket.Dialer{Subprotocols: []string{proto}, HandshakeTimeout: 5 * time.Second}
	conn, resp, err := d.Dial(u, http.Header{})
	if err != nil {
		t.Fatalf("dial %s (%s): %v", u, proto, err)
	}
	resp.Body.Close()
	t.Cleanup(func() { conn.Close() })
	if conn.Subprotocol() != proto {
		t.Fatalf("server chose subprotocol %q, want %q", conn.Subprotocol(), proto)
	}
	return conn
}

// wsInit sends connection_init with an Authorization payload ("" for none).
func wsInit(t *testing.T, conn *websocket.Conn, authorization string) {
	t.Helper()
	payload := map[string]any{}
	if authorization != "" {
		payload["Authorization"] = authorization
	}
	if err := conn.WriteJSON(map[string]any{"type": "connection_init", "payload": payload}); err != nil {
		t.Fatalf("send connection_init: %v", err)
	}
}

// wsReadUntilClose reads messages until the connection closes (or timeout)
// and returns the message types seen and the close error.
func wsReadUntilClose(t *testing.T, conn *websocket.Conn, timeout time.Duration) ([]string, *websocket.CloseError) {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(timeout))
	var types []string
	for {
		var m struct{ Type string }
		_, raw, err := conn.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				return types, ce
			}
			t.Fatalf("no close frame within %s (messages %q): %v", timeout, types, err)
		}
		if json.Unmarshal(raw, &m) != nil {
			t.Fatalf("not a protocol message: %q", raw)
		}
		types = append(types, m.Type)
	}
}

// wsNextType returns the type of the next message other than a keep-alive.
func wsNextType(t *testing.T, conn *websocket.Conn, timeout time.Duration) string {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(timeout))
	for {
		var m struct{ Type string }
		if err := conn.ReadJSON(&m); err != nil {
			t.Fatalf("read: %v", err)
		}
		if m.Type != "ka" {
			return m.Type
		}
	}
}

// TestWebsocketInitTimeout: a client that opens a websocket and never sends
// connection_init is closed by the server after WebsocketInitTimeout, with
// 4408 "Connection initialisation timeout" on graphql-transport-ws (as its
// protocol defines) and 1002 "connection initialisation timeout" on the
// legacy graphql-ws; one that sends it in time stays open past the timeout.
func TestWebsocketInitTimeout(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		const timeout = time.Second
		srv := testenv.StartServer(t, dbURL, func(c *server.Config) { c.WebsocketInitTimeout = timeout })
		for _, proto := range testenv.Subprotocols {
			t.Run(proto, func(t *testing.T) {
				t.Parallel()
				silent := dialGraphQLWS(t, srv, proto)
				start := time.Now()

				// A client that does init, half-way through the timeout.
				polite := dialGraphQLWS(t, srv, proto)
				time.Sleep(timeout / 2)
				wsInit(t, polite, "Bearer "+testenv.AdminKey)
				if got := wsNextType(t, polite, 5*time.Second); got != "connection_ack" {
					t.Fatalf("polite client got %q, want connection_ack", got)
				}

				types, ce := wsReadUntilClose(t, silent, 10*timeout)
				elapsed := time.Since(start)
				wantCode, wantText := websocket.CloseProtocolError, "connection initialisation timeout"
				if proto == testenv.TransportWS {
					wantCode, wantText = 4408, "Connection initialisation timeout"
				}
				if ce.Code != wantCode || ce.Text != wantText {
					t.Fatalf("closed with %d %q, want %d %q", ce.Code, ce.Text, wantCode, wantText)
				}
				if elapsed < timeout-100*time.Millisecond || elapsed > 4*timeout {
					t.Fatalf("closed after %s; the timeout is %s", elapsed, timeout)
				}
				for _, typ := range types {
					if typ == "connection_ack" {
						t.Fatalf("a client that never sent connection_init got %q", types)
					}
				}

				// The polite client is still open after the timeout: a
				// graphql-transport-ws ping is answered; a graphql-ws
				// client just does not get closed.
				time.Sleep(timeout)
				if proto == testenv.TransportWS {
					if err := polite.WriteJSON(map[string]any{"type": "ping"}); err != nil {
						t.Fatalf("ping: %v", err)
					}
					if got := wsNextType(t, polite, 5*time.Second); got != "pong" {
						t.Fatalf("after the timeout the initialised client got %q, want pong", got)
					}
				} else {
					_ = polite.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
					for {
						var m struct{ Type string }
						err := polite.ReadJSON(&m)
						var ce *websocket.CloseError
						if errors.As(err, &ce) {
							t.Fatalf("the initialised client was closed: %v", ce)
						}
						if err != nil {
							break // read deadline: still open
						}
					}
				}
			})
		}
	})
}

// TestWebsocketConnectionInit: connection_init with no key, a wrong key, a
// revoked key or a WRITE key (which may not subscribe) is closed with 4403
// and never acknowledged; ADMIN and READ keys get connection_ack. On both
// subprotocols.
func TestWebsocketConnectionInit(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL)
		_, readKey := newKey(t, srv, "ws reader", auth.RoleRead)
		_, writeKey := newKey(t, srv, "ws writer", auth.RoleWrite)
		revoked, revokedKey := newKey(t, srv, "ws revoked", auth.RoleAdmin)
		if err := auth.NewKeys(srv.Store().Client).Revoke(t.Context(), revoked.ID); err != nil {
			t.Fatal(err)
		}
		for _, proto := range testenv.Subprotocols {
			t.Run(proto, func(t *testing.T) {
				refused := map[string]string{
					"no key":      "",
					"wrong key":   "Bearer sgd_not_a_real_key_at_all_0123456789",
					"revoked key": "Bearer " + revokedKey,
					"WRITE key":   "Bearer " + writeKey,
				}
				for name, authorization := range refused {
					conn := dialGraphQLWS(t, srv, proto)
					wsInit(t, conn, authorization)
					types, ce := wsReadUntilClose(t, conn, 5*time.Second)
					if ce.Code != 4403 {
						t.Errorf("%s: closed with %d %q, want 4403", name, ce.Code, ce.Text)
					}
					for _, typ := range types {
						if typ == "connection_ack" {
							t.Errorf("%s: got connection_ack (messages %q)", name, types)
						}
					}
				}
				for name, key := range map[string]string{"ADMIN": testenv.AdminKey, "READ": readKey} {
					conn := dialGraphQLWS(t, srv, proto)
					wsInit(t, conn, "Bearer "+key)
					if got := wsNextType(t, conn, 5*time.Second); got != "connection_ack" {
						t.Errorf("%s key: got %q, want connection_ack", name, got)
					}
				}
			})
		}
	})
}
