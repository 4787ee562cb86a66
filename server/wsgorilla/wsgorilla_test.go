package wsgorilla_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler/testserver"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/gorilla/websocket"

	"github.com/segmentd/segmentd/server/wsgorilla"
)

const (
	transportWS = "graphql-transport-ws"
	legacyWS    = "graphql-ws"
)

// message is a frame of either GraphQL websocket protocol.
type message struct {
	Type    string          `json:"type"`
	ID      string          `json:"id,omitempty"`
	Payload json.RawMessage `json:"payload,omitempty"`
}

// protocol names the message types that differ between the two subprotocols.
type protocol struct {
	name, subscribe, data, stop string
}

var protocols = []protocol{
	{name: transportWS, subscribe: "subscribe", data: "next", stop: "complete"},
	{name: legacyWS, subscribe: "start", data: "data", stop: "stop"},
}

// testServer is gqlgen's test schema (it has a subscription), counting the
// operations it has started.
type testServer struct {
	*testserver.TestServer
	started atomic.Int64
}

// publish sends one event to a subscription once n operations have started.
// (The test server drops the event if no resolver takes it within a second,
// which a subscribe message still in flight on a loaded machine can miss.)
func (s *testServer) publish(t *testing.T, n int64) {
	t.Helper()
	waitFor(t, 5*time.Second, func() bool { return s.started.Load() >= n }, fmt.Sprintf("%d operations to start", n))
	s.SendNextSubscriptionMessage()
}

// newServer serves the test schema with ws as its only transport, using the
// gorilla implementation unless ws sets one.
func newServer(t *testing.T, ws transport.Websocket) (*testServer, *httptest.Server) {
	t.Helper()
	if ws.Implementation == nil {
		ws.Implementation = wsgorilla.Implementation{}
	}
	h := &testServer{TestServer: testserver.New()}
	h.AddTransport(ws)
	h.AroundOperations(func(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
		h.started.Add(1)
		return next(ctx)
	})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return h, srv
}

func wsURL(srv *httptest.Server) string {
	return "ws" + strings.TrimPrefix(srv.URL, "http")
}

func dial(t *testing.T, srv *httptest.Server, subprotocol string) *websocket.Conn {
	t.Helper()
	c, resp, err := dialer(subprotocol).Dial(wsURL(srv), nil)
	if err != nil {
		t.Fatalf("dial %s: %v (response %v)", subprotocol, err, resp)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func dialer(subprotocol string) *websocket.Dialer {
	d := *websocket.DefaultDialer
	if subprotocol != "" {
		d.Subprotocols = []string{subprotocol}
	}
	return &d
}

func send(t *testing.T, c *websocket.Conn, m message) {
	t.Helper()
	if err := c.WriteJSON(m); err != nil {
		t.Fatalf("send %s: %v", m.Type, err)
	}
}

// read returns the next message other than the legacy protocol's keep-alive.
func read(t *testing.T, c *websocket.Conn) message {
	t.Helper()
	for {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		var m message
		if err := c.ReadJSON(&m); err != nil {
			t.Fatalf("read: %v", err)
		}
		if m.Type != "ka" {
			return m
		}
	}
}

// expect reads the next message and checks its type (and id when given).
func expect(t *testing.T, c *websocket.Conn, typ, id string) message {
	t.Helper()
	m := read(t, c)
	if m.Type != typ || m.ID != id {
		t.Fatalf("got message %+v (payload %s), want type %q id %q", m, m.Payload, typ, id)
	}
	return m
}

// initConn sends connection_init and waits for connection_ack.
func initConn(t *testing.T, c *websocket.Conn, payload string) {
	t.Helper()
	send(t, c, message{Type: "connection_init", Payload: json.RawMessage(payload)})
	expect(t, c, "connection_ack", "")
}

// closeError reads until the server closes the connection and returns the
// close frame the client received, skipping data messages. It fails the test
// if the connection ends without a close frame or stays open for 5 seconds.
func closeError(t *testing.T, c *websocket.Conn) *websocket.CloseError {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		_, data, err := c.ReadMessage()
		if err == nil {
			t.Logf("message before close: %s", data)
			continue
		}
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code == websocket.CloseAbnormalClosure {
			t.Fatalf("connection ended without a close frame: %v", err)
		}
		return ce
	}
}

// errorLog collects what gqlgen reports to ErrorFunc and CloseFunc.
type errorLog struct {
	mu     sync.Mutex
	errs   []error
	closed chan int
}

func newErrorLog() *errorLog { return &errorLog{closed: make(chan int, 16)} }

func (l *errorLog) errorFunc(_ context.Context, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.errs = append(l.errs, err)
}

func (l *errorLog) closeFunc(_ context.Context, code int) { l.closed <- code }

func (l *errorLog) readErrors() []error {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []error
	for _, err := range l.errs {
		var wsErr transport.WebsocketError
		if errors.As(err, &wsErr) && wsErr.IsReadError {
			out = append(out, err)
		}
	}
	return out
}

func (l *errorLog) waitClosed(t *testing.T) int {
	t.Helper()
	select {
	case code := <-l.closed:
		return code
	case <-time.After(5 * time.Second):
		t.Fatal("gqlgen did not close the connection within 5s")
		return 0
	}
}

func TestSubscriptionRunsEndToEndOverBothSubprotocols(t *testing.T) {
	for _, p := range protocols {
		t.Run(p.name, func(t *testing.T) {
			var gotAuth atomic.Value
			h, srv := newServer(t, transport.Websocket{
				InitTimeout: 5 * time.Second,
				InitFunc: func(ctx context.Context, payload transport.InitPayload) (context.Context, *transport.InitPayload, error) {
					gotAuth.Store(payload.Authorization())
					return ctx, nil, nil
				},
			})
			c := dial(t, srv, p.name)
			if c.Subprotocol() != p.name {
				t.Fatalf("negotiated subprotocol %q, want %q", c.Subprotocol(), p.name)
			}

			initConn(t, c, `{"Authorization":"Bearer k1"}`)
			if got := gotAuth.Load(); got != "Bearer k1" {
				t.Errorf("InitFunc saw Authorization %q, want %q", got, "Bearer k1")
			}

			send(t, c, message{Type: p.subscribe, ID: "s1", Payload: json.RawMessage(`{"query":"subscription { name }"}`)})
			for range 3 {
				h.publish(t, 1)
				m := expect(t, c, p.data, "s1")
				if string(m.Payload) != `{"data":{"name":"test"}}` {
					t.Errorf("payload %s, want {\"data\":{\"name\":\"test\"}}", m.Payload)
				}
			}
			h.SendCompleteSubscriptionMessage()
			expect(t, c, "complete", "s1")

			// The connection outlives the subscription: a second one works too.
			send(t, c, message{Type: p.subscribe, ID: "s2", Payload: json.RawMessage(`{"query":"subscription { name }"}`)})
			h.publish(t, 2)
			expect(t, c, p.data, "s2")
			send(t, c, message{Type: p.stop, ID: "s2"})
		})
	}
}

func TestInitFuncCloseCodeReachesClient(t *testing.T) {
	for _, p := range protocols {
		t.Run(p.name, func(t *testing.T) {
			t.Parallel()
			_, srv := newServer(t, transport.Websocket{
				InitTimeout: 5 * time.Second,
				InitFunc: func(ctx context.Context, payload transport.InitPayload) (context.Context, *transport.InitPayload, error) {
					if payload.Authorization() != "Bearer good" {
						ctx = transport.WithWebsocketCloseCode(ctx, 4403)
						ctx = transport.AppendCloseReason(ctx, "forbidden: bad api key")
						return ctx, nil, errors.New("bad api key")
					}
					return ctx, nil, nil
				},
			})

			good := dial(t, srv, p.name)
			initConn(t, good, `{"Authorization":"Bearer good"}`)

			bad := dial(t, srv, p.name)
			send(t, bad, message{Type: "connection_init", Payload: json.RawMessage(`{"Authorization":"Bearer wrong"}`)})
			ce := closeError(t, bad)
			if ce.Code != 4403 || ce.Text != "forbidden: bad api key" {
				t.Fatalf("close frame %d %q, want 4403 %q", ce.Code, ce.Text, "forbidden: bad api key")
			}
		})
	}
}

// A socket that sends no connection_init in time is closed with 4408 on
// graphql-transport-ws (its protocol's code; gqlgen asks for 1002) and with
// gqlgen's 1002 on graphql-ws.
func TestInitTimeoutClosesSilentSocket(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		proto string
		code  int
		text  string
	}{
		{transportWS, 4408, "Connection initialisation timeout"},
		{legacyWS, websocket.CloseProtocolError, "connection initialisation timeout"},
	} {
		t.Run(tc.proto, func(t *testing.T) {
			t.Parallel()
			log := newErrorLog()
			_, srv := newServer(t, transport.Websocket{InitTimeout: 200 * time.Millisecond, CloseFunc: log.closeFunc})
			start := time.Now() // before the server's timer starts
			c := dial(t, srv, tc.proto)
			ce := closeError(t, c)
			elapsed := time.Since(start)
			if ce.Code != tc.code || ce.Text != tc.text {
				t.Fatalf("close frame %d %q, want %d %q", ce.Code, ce.Text, tc.code, tc.text)
			}
			if elapsed < 200*time.Millisecond || elapsed > 3*time.Second {
				t.Errorf("closed after %v, want about 200ms", elapsed)
			}
			if code := log.waitClosed(t); code != websocket.CloseProtocolError {
				t.Errorf("CloseFunc code %d, want gqlgen's 1002", code)
			}
		})
	}
}

func TestPayloadReadLimitClosesOnOversizedMessage(t *testing.T) {
	subscribe := func(id string, size int) message {
		query := "subscription { name }" + strings.Repeat(" ", size)
		payload, _ := json.Marshal(map[string]string{"query": query})
		return message{Type: "subscribe", ID: id, Payload: payload}
	}
	limit := int64(1024)
	cases := []struct {
		name      string
		limit     *int64
		fits, big int // padding of a message that fits and of one that does not
	}{
		{name: "explicit 1 KiB", limit: &limit, fits: 900, big: 2048},
		// 8 MiB outruns the socket buffers: the client is still sending when
		// the server refuses the message, and must still read code 1009
		// rather than a connection reset.
		{name: "default 1 MiB", limit: nil, fits: 512 << 10, big: 8 << 20},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			log := newErrorLog()
			h, srv := newServer(t, transport.Websocket{PayloadReadLimit: tc.limit, ErrorFunc: log.errorFunc, CloseFunc: log.closeFunc})
			c := dial(t, srv, transportWS)
			initConn(t, c, `{}`)

			send(t, c, subscribe("fits", tc.fits))
			h.publish(t, 1)
			expect(t, c, "next", "fits")

			send(t, c, subscribe("big", tc.big))
			ce := closeError(t, c)
			if ce.Code != websocket.CloseMessageTooBig {
				t.Fatalf("close frame %d %q, want 1009 (message too big)", ce.Code, ce.Text)
			}
			log.waitClosed(t)
			errs := log.readErrors()
			if len(errs) != 1 || !errors.Is(errs[0], websocket.ErrReadLimit) {
				t.Errorf("ErrorFunc read errors %v, want one websocket.ErrReadLimit", errs)
			}
		})
	}
}

func TestCheckOrigin(t *testing.T) {
	t.Parallel()
	handlerWith := func(impl wsgorilla.Implementation) *httptest.Server {
		_, srv := newServer(t, transport.Websocket{Implementation: impl})
		return srv
	}
	allowApp := func(r *http.Request) bool { return r.Header.Get("Origin") == "https://app.example" }
	defaultSrv := handlerWith(wsgorilla.Implementation{})
	customSrv := handlerWith(wsgorilla.Implementation{CheckOrigin: allowApp})

	cases := []struct {
		name   string
		srv    *httptest.Server
		origin string // "" sends no Origin header; "self" sends the server's own origin
		want   int
	}{
		{"default refuses cross-origin", defaultSrv, "https://evil.example", http.StatusForbidden},
		{"default refuses same host on another port", defaultSrv, "http://127.0.0.1:1", http.StatusForbidden},
		{"default allows same origin", defaultSrv, "self", http.StatusSwitchingProtocols},
		{"default allows no Origin (non-browser client)", defaultSrv, "", http.StatusSwitchingProtocols},
		{"CheckOrigin allows its origin", customSrv, "https://app.example", http.StatusSwitchingProtocols},
		{"CheckOrigin refuses others", customSrv, "https://evil.example", http.StatusForbidden},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			header := http.Header{}
			switch tc.origin {
			case "":
			case "self":
				header.Set("Origin", tc.srv.URL)
			default:
				header.Set("Origin", tc.origin)
			}
			c, resp, err := dialer(transportWS).Dial(wsURL(tc.srv), header)
			if c != nil {
				defer c.Close()
			}
			if resp == nil {
				t.Fatalf("no HTTP response: %v", err)
			}
			if resp.StatusCode != tc.want {
				t.Fatalf("HTTP %d (err %v), want %d", resp.StatusCode, err, tc.want)
			}
			if tc.want == http.StatusSwitchingProtocols {
				initConn(t, c, `{}`)
			}
		})
	}
}

func TestSameOrigin(t *testing.T) {
	t.Parallel()
	cases := []struct {
		host, origin string
		want         bool
	}{
		{"segmentd.example:8080", "", true},
		{"segmentd.example:8080", "https://segmentd.example:8080", true},
		{"segmentd.example:8080", "https://SEGMENTD.example:8080", true},
		{"segmentd.example:8080", "https://segmentd.example", false},
		{"segmentd.example", "https://evil.example", false},
		{"segmentd.example", "null", false},
		{"segmentd.example", "://bad", false},
	}
	for _, tc := range cases {
		r := httptest.NewRequest(http.MethodGet, "/graphql", nil)
		r.Host = tc.host
		if tc.origin != "" {
			r.Header.Set("Origin", tc.origin)
		}
		if got := wsgorilla.SameOrigin(r); got != tc.want {
			t.Errorf("SameOrigin(host %q, origin %q) = %v, want %v", tc.host, tc.origin, got, tc.want)
		}
	}
}

func TestPingPongClosesClientThatStopsAnswering(t *testing.T) {
	t.Parallel()
	// Long enough for an answering client to keep up on a loaded machine.
	const interval = 250 * time.Millisecond

	t.Run("silent client is closed", func(t *testing.T) {
		t.Parallel()
		log := newErrorLog()
		_, srv := newServer(t, transport.Websocket{PingPongInterval: interval, ErrorFunc: log.errorFunc, CloseFunc: log.closeFunc})
		c := dial(t, srv, transportWS)
		initConn(t, c, `{}`)

		start := time.Now()
		pings := 0
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		for {
			var m message
			if err := c.ReadJSON(&m); err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					t.Fatalf("still open after %v and %d pings", time.Since(start), pings)
				}
				break // closed by the server
			}
			if m.Type == "ping" {
				pings++
			}
		}
		if pings == 0 {
			t.Error("closed without sending a ping first")
		}
		log.waitClosed(t)
		errs := log.readErrors()
		var ne net.Error
		if len(errs) != 1 || !errors.As(errs[0], &ne) || !ne.Timeout() {
			t.Errorf("ErrorFunc read errors %v, want one read timeout", errs)
		}
	})

	t.Run("answering client stays open", func(t *testing.T) {
		t.Parallel()
		h, srv := newServer(t, transport.Websocket{PingPongInterval: interval})
		c := dial(t, srv, transportWS)
		initConn(t, c, `{}`)

		pings := 0
		for end := time.Now().Add(8 * interval); time.Now().Before(end); {
			expect(t, c, "ping", "")
			pings++
			send(t, c, message{Type: "pong"})
		}
		if pings < 4 {
			t.Errorf("got %d pings in %v, want about 8", pings, 8*interval)
		}
		send(t, c, message{Type: "subscribe", ID: "alive", Payload: json.RawMessage(`{"query":"subscription { name }"}`)})
		h.publish(t, 1)
		for {
			m := read(t, c)
			if m.Type == "ping" {
				send(t, c, message{Type: "pong"})
				continue
			}
			if m.Type != "next" || m.ID != "alive" {
				t.Fatalf("got %+v, want next for subscription alive", m)
			}
			break
		}
	})
}

func TestNormalClientCloseIsNotAnError(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name      string
		close     func(c *websocket.Conn) error
		wantError bool
	}{
		{"1000 normal closure", closeWith(websocket.CloseNormalClosure), false},
		{"1001 going away (browser tab closed)", closeWith(websocket.CloseGoingAway), false},
		{"1005 close frame without code", closeWith(websocket.CloseNoStatusReceived), false},
		{"TCP dropped without close frame", func(c *websocket.Conn) error { return c.NetConn().Close() }, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			log := newErrorLog()
			_, srv := newServer(t, transport.Websocket{ErrorFunc: log.errorFunc, CloseFunc: log.closeFunc})
			c := dial(t, srv, transportWS)
			initConn(t, c, `{}`)

			if err := tc.close(c); err != nil {
				t.Fatal(err)
			}
			log.waitClosed(t)
			if errs := log.readErrors(); (len(errs) > 0) != tc.wantError {
				t.Errorf("ErrorFunc read errors %v, want errors: %v", errs, tc.wantError)
			}
		})
	}
}

func closeWith(code int) func(c *websocket.Conn) error {
	return func(c *websocket.Conn) error {
		return c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, ""), time.Now().Add(time.Second))
	}
}

// gqlgen returns without closing the socket when the connection_init payload
// is not an object; on graphql-ws the adapter closes it anyway once the
// handler is done (1011); on graphql-transport-ws it refuses the message
// first, with the protocol's 4400.
func TestAbandonedConnectionIsClosed(t *testing.T) {
	t.Parallel()
	_, srv := newServer(t, transport.Websocket{})
	for proto, code := range map[string]int{legacyWS: websocket.CloseInternalServerErr, transportWS: 4400} {
		c := dial(t, srv, proto)
		send(t, c, message{Type: "connection_init", Payload: json.RawMessage(`5`)})
		if ce := closeError(t, c); ce.Code != code {
			t.Fatalf("%s: close frame %d %q, want %d", proto, ce.Code, ce.Text, code)
		}
	}
}

// The conn used directly, as gqlgen does: response headers and subprotocols
// from the options, writes from many goroutines, a long close reason.
func TestAcceptedConnDirectly(t *testing.T) {
	t.Parallel()
	const writers, perWriter = 20, 50
	longReason := strings.Repeat("é", 100) // 200 bytes: must be cut to <= 123, on a rune boundary
	done := make(chan error, 1)

	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, err := wsgorilla.Implementation{}.Accept(w, r, transport.WebsocketAcceptOptions{
			ResponseHeader: http.Header{"X-Segmentd": {"yes"}},
			Subprotocols:   []string{transportWS, legacyWS},
		})
		if err != nil {
			done <- err
			return
		}
		defer conn.Close()
		_, rd, err := conn.NextReader()
		if err != nil {
			done <- err
			return
		}
		var hello message
		if err := json.NewDecoder(rd).Decode(&hello); err != nil {
			done <- err
			return
		}
		var wg sync.WaitGroup
		for w := range writers {
			wg.Go(func() {
				for i := range perWriter {
					_ = conn.WriteJSON(message{Type: hello.Type, ID: strings.Repeat("x", w*perWriter+i)})
				}
			})
		}
		wg.Wait()
		done <- conn.WriteClose(4000, longReason)
	}))
	t.Cleanup(srv.Close)

	c, resp, err := dialer(legacyWS).Dial(wsURL(srv), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Subprotocol() != legacyWS {
		t.Errorf("subprotocol %q, want %q", c.Subprotocol(), legacyWS)
	}
	if got := resp.Header.Get("X-Segmentd"); got != "yes" {
		t.Errorf("response header X-Segmentd %q, want yes", got)
	}

	send(t, c, message{Type: "echo"})
	seen := map[int]bool{}
	for range writers * perWriter {
		m := read(t, c)
		if m.Type != "echo" {
			t.Fatalf("got %+v, want an echo", m)
		}
		seen[len(m.ID)] = true
	}
	if len(seen) != writers*perWriter {
		t.Errorf("got %d distinct messages, want %d", len(seen), writers*perWriter)
	}
	ce := closeError(t, c)
	if ce.Code != 4000 || len(ce.Text) > 123 || !utf8.ValidString(ce.Text) || !strings.HasPrefix(longReason, ce.Text) || len(ce.Text) < 120 {
		t.Errorf("close frame %d %q (%d bytes), want 4000 and the reason cut to at most 123 valid bytes", ce.Code, ce.Text, len(ce.Text))
	}
	if err := <-done; err != nil {
		t.Errorf("server side: %v", err)
	}
}

// Opens 200 subscriptions, drops the clients (half with a close frame, half
// by cutting TCP), and checks every subscription ends and the goroutine count
// returns to where it was.
func TestNoGoroutineLeakAfterManySubscriptions(t *testing.T) {
	const n = 200
	// The ping goroutines must end too; clients here never answer pings, so the
	// interval is long enough not to close them while the test runs.
	h, srv := newServer(t, transport.Websocket{InitTimeout: 5 * time.Second, PingPongInterval: time.Minute})
	var started, ended atomic.Int64
	h.AroundOperations(func(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
		started.Add(1)
		responses := next(ctx)
		return func(ctx context.Context) *graphql.Response {
			resp := responses(ctx)
			if resp == nil {
				ended.Add(1)
			}
			return resp
		}
	})

	baseline := runtime.NumGoroutine()
	conns := make([]*websocket.Conn, n)
	for i := range conns {
		c, _, err := dialer(transportWS).Dial(wsURL(srv), nil)
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		conns[i] = c
		initConn(t, c, `{}`)
		send(t, c, message{Type: "subscribe", ID: "s", Payload: json.RawMessage(`{"query":"subscription { name }"}`)})
	}
	waitFor(t, 15*time.Second, func() bool { return started.Load() == n }, "all subscriptions to start")
	during := runtime.NumGoroutine()
	if during < baseline+2*n {
		t.Fatalf("only %d goroutines with %d subscriptions open (baseline %d): the test measures nothing", during, n, baseline)
	}

	for i, c := range conns {
		if i%2 == 0 {
			_ = closeWith(websocket.CloseNormalClosure)(c)
		}
		_ = c.Close()
	}
	waitFor(t, 15*time.Second, func() bool { return ended.Load() == n }, "all subscriptions to end")
	waitFor(t, 15*time.Second, func() bool { return runtime.NumGoroutine() <= baseline+5 }, "goroutines to return to baseline")
	t.Logf("goroutines: baseline %d, with %d subscriptions %d, after close %d", baseline, n, during, runtime.NumGoroutine())
}

func waitFor(t *testing.T, timeout time.Duration, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
