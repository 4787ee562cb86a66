// Package wsgorilla adapts github.com/gorilla/websocket to gqlgen's websocket
// transport (transport.Websocket.Implementation), in place of gqlgen's default
// coder/websocket implementation.
//
// The connection it returns enforces gqlgen's PayloadReadLimit (SetReadLimit)
// and PingPongInterval (SetReadDeadline), serializes writes, bounds every write
// with a timeout, and closes with the code and reason gqlgen asks for (4403
// from an InitFunc, ...) so the client sees them: the close frame is sent
// first and the TCP connection is closed only after the peer answers it or a
// short grace period ends.
//
// A client offering several subprotocols gets the first one it lists that
// gqlgen speaks. On graphql-transport-ws the connection enforces the
// protocol's close codes in front of gqlgen (see protocol.go): 4400 for an
// invalid message, 4401 for a subscribe before connection_ack, 4408 for the
// init timeout, 4409 for an id already in use, 4429 for a second
// connection_init.
package wsgorilla

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/gorilla/websocket"
)

const (
	// DefaultWriteTimeout bounds a single write when Implementation.WriteTimeout is zero.
	DefaultWriteTimeout = 10 * time.Second

	// closeGracePeriod is how long a closing connection waits for the peer to
	// answer its close frame before the TCP connection is closed anyway.
	closeGracePeriod = time.Second

	// maxCloseReason is the longest reason that fits in a close frame
	// (125-byte control frame payload minus the 2-byte code).
	maxCloseReason = 123

	// closeGoingAway is what browsers send when a tab is closed or navigated away.
	closeGoingAway = 1001
)

// Implementation accepts gqlgen websocket connections with gorilla/websocket.
// The zero value is ready to use and accepts same-origin requests only.
type Implementation struct {
	// CheckOrigin decides whether a browser's Origin may open a websocket.
	// nil means SameOrigin: the Origin header is absent, or its host equals
	// r.Host. A refused request gets HTTP 403.
	CheckOrigin func(r *http.Request) bool

	// ReadBufferSize and WriteBufferSize are gorilla's I/O buffer sizes;
	// zero means gorilla's default (4 KiB). They do not limit message size:
	// gqlgen's PayloadReadLimit does.
	ReadBufferSize, WriteBufferSize int

	// EnableCompression negotiates permessage-deflate when the client offers it.
	EnableCompression bool

	// WriteTimeout bounds each message write, so a client that stops reading
	// cannot block gqlgen's writers forever. A write that fails (timeout or
	// network error) closes the connection. Zero means DefaultWriteTimeout.
	WriteTimeout time.Duration
}

var _ transport.WebsocketImplementation = Implementation{}

// Accept upgrades r to a websocket, negotiating one of opts.Subprotocols
// (graphql-transport-ws and graphql-ws when called by gqlgen) in gqlgen's
// order of preference, and sends opts.ResponseHeader with the 101 response.
// On failure (not a websocket request, origin refused) gorilla has already
// written the HTTP error response (400, 403, ...) and the error is returned.
//
// The connection is closed (code 1011) at the latest a second after r's
// context ends, that is after the HTTP handler that called Accept returns, so
// a gqlgen path that returns without closing it cannot leak the socket.
func (i Implementation) Accept(w http.ResponseWriter, r *http.Request, opts transport.WebsocketAcceptOptions) (transport.WebsocketConn, error) {
	checkOrigin := i.CheckOrigin
	if checkOrigin == nil {
		checkOrigin = SameOrigin
	}
	readBuf := i.ReadBufferSize
	if readBuf == 0 {
		readBuf = 1024 // GraphQL messages from clients are small
	}
	// gorilla picks the first of its own list that the client offers; the
	// client's order is the one that counts.
	protocols := slices.Clone(opts.Subprotocols)
	for _, offered := range websocket.Subprotocols(r) {
		if slices.Contains(opts.Subprotocols, offered) {
			protocols = []string{offered}
			break
		}
	}
	upgrader := websocket.Upgrader{
		ReadBufferSize:    readBuf,
		WriteBufferSize:   i.WriteBufferSize,
		WriteBufferPool:   writeBuffers,
		EnableCompression: i.EnableCompression,
		Subprotocols:      protocols,
		CheckOrigin:       checkOrigin,
	}
	ws, err := upgrader.Upgrade(w, r, opts.ResponseHeader)
	if err != nil {
		return nil, fmt.Errorf("wsgorilla.Accept: %w", err)
	}

	writeTimeout := i.WriteTimeout
	if writeTimeout <= 0 {
		writeTimeout = DefaultWriteTimeout
	}
	c := &conn{ws: ws, writeTimeout: writeTimeout}
	if ws.Subprotocol() == TransportWS {
		c.proto = newTransportWS()
	}
	// Safety net: gqlgen closes the connection before (or, from a goroutine,
	// just after) its handler returns, except on a few error paths (a
	// connection_init payload that is not an object). Close those too, after
	// leaving gqlgen time to send its own close code.
	context.AfterFunc(r.Context(), func() {
		time.AfterFunc(closeGracePeriod, func() {
			_ = c.WriteClose(websocket.CloseInternalServerErr, "connection abandoned")
		})
	})
	return c, nil
}

// writeBuffers lends write buffers to connections only while they write a
// message: thousands of mostly idle subscriptions would otherwise each hold
// one.
var writeBuffers = &sync.Pool{}

// SameOrigin reports whether r carries no Origin header, or one whose host
// (with port) equals r.Host, compared case-insensitively. It is the default
// Implementation.CheckOrigin.
func SameOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil {
		return false
	}
	return strings.EqualFold(u.Host, r.Host)
}

// conn is a transport.WebsocketConn over a gorilla connection.
//
// gorilla allows one concurrent reader and one concurrent writer; readMu and
// writeMu enforce that (gqlgen already serializes its writes, and reads from
// its init-timeout goroutine and later from its run loop). Close frames go
// through WriteControl, which gorilla allows concurrently with everything.
type conn struct {
	ws           *websocket.Conn
	writeTimeout time.Duration
	proto        *transportWS // graphql-transport-ws only; nil on graphql-ws

	readMu  sync.Mutex
	readErr error // first error from gorilla's NextReader; gorilla's errors are permanent

	writeMu sync.Mutex

	mu      sync.Mutex
	closing bool // a close has started; closeLater (or Close) owns the net.Conn
}

var (
	_ transport.WebsocketConn          = (*conn)(nil)
	_ transport.WebsocketReadLimiter   = (*conn)(nil)
	_ transport.WebsocketReadDeadliner = (*conn)(nil)
)

// NextReader returns the next data message, read in full. A peer's close with
// code 1000, 1001 or 1005, and any read on a connection this side is closing,
// return transport.ErrWebsocketClosed; other failures (oversized message,
// read deadline, abnormal close) return the error, which gqlgen reports to its
// ErrorFunc.
func (c *conn) NextReader() (int, io.Reader, error) {
	c.readMu.Lock()
	defer c.readMu.Unlock()

	if c.readErr == nil && c.isClosing() {
		return 0, nil, transport.ErrWebsocketClosed
	}
	if c.readErr != nil {
		return 0, nil, c.mapReadError(c.readErr)
	}

	for {
		messageType, r, err := c.ws.NextReader()
		if err == nil {
			var data []byte
			// Reading the whole message keeps gorilla's reader out of the
			// caller's hands, so closeLater can take over reading safely.
			if data, err = io.ReadAll(r); err == nil {
				if c.proto != nil {
					v, pong := c.proto.incoming(data)
					if v != nil {
						_ = c.WriteClose(v.code, v.reason)
						return 0, nil, transport.ErrWebsocketClosed
					}
					if pong {
						// A ping before connection_ack: gqlgen reads
						// only connection_init until then.
						_ = c.writeMessage([]byte(`{"type":"pong"}`))
						continue
					}
				}
				return messageType, bytes.NewReader(data), nil
			}
		}
		c.readErr = err
		return messageType, nil, c.mapReadError(err)
	}
}

func (c *conn) mapReadError(err error) error {
	if websocket.IsCloseError(err, websocket.CloseNormalClosure, closeGoingAway, websocket.CloseNoStatusReceived) || c.isClosing() {
		return transport.ErrWebsocketClosed
	}
	return err
}

// WriteJSON writes v as one text message. A failed write closes the connection.
func (c *conn) WriteJSON(v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if c.proto != nil && !c.proto.outgoing(data) {
		return nil
	}
	return c.writeMessage(data)
}

// writeMessage writes data as one text message. A failed write closes the
// connection.
func (c *conn) writeMessage(data []byte) error {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	if err := c.ws.SetWriteDeadline(time.Now().Add(c.writeTimeout)); err != nil {
		return err
	}
	err := c.ws.WriteMessage(websocket.TextMessage, data)
	if err != nil && !errors.Is(err, websocket.ErrCloseSent) {
		// The stream is broken (or the peer stopped reading): end the
		// connection so the read loop, and gqlgen with it, finishes too.
		c.mu.Lock()
		c.closing = true
		c.mu.Unlock()
		_ = c.ws.Close()
	}
	return err
}

// WriteClose sends a close frame with code and reason (truncated to fit),
// then closes the connection in the background once the peer answers or after
// a grace period. It does not block on the peer. Calls after the first do
// nothing.
func (c *conn) WriteClose(code int, reason string) error {
	if c.proto != nil {
		code, reason = c.proto.closeCode(code, reason)
	}
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return nil
	}
	c.closing = true
	deadline := time.Now().Add(closeGracePeriod)
	// Unblock a read in progress (gqlgen's) by the deadline at the latest; this
	// deadline is not overridden by SetReadDeadline now that closing is set.
	_ = c.ws.SetReadDeadline(deadline)
	c.mu.Unlock()

	err := c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, truncateReason(reason)), deadline)
	go c.closeLater()
	if errors.Is(err, websocket.ErrCloseSent) {
		err = nil // gorilla already sent one (answering the peer, or on a read limit)
	}
	return err
}

// closeLater waits for the peer's answer to our close frame (or the read
// deadline), so the client reads the close frame rather than a TCP reset, and
// then closes the connection.
func (c *conn) closeLater() {
	c.readMu.Lock()
	defer c.readMu.Unlock()

	if c.readErr == nil {
		for {
			// Discards data messages still in flight until the close frame.
			if _, _, err := c.ws.NextReader(); err != nil {
				c.readErr = err
				break
			}
		}
	}
	if errors.Is(c.readErr, websocket.ErrReadLimit) {
		// gorilla stopped parsing mid-message: drain the raw bytes instead,
		// until the peer closes the TCP connection or the deadline passes.
		_, _ = io.Copy(io.Discard, c.ws.NetConn())
	}
	_ = c.ws.Close()
}

// Close closes the connection. After WriteClose it does nothing: the close
// already started owns the connection and finishes on its own.
func (c *conn) Close() error {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return nil
	}
	c.closing = true
	c.mu.Unlock()
	return c.ws.Close()
}

// Subprotocol returns the negotiated subprotocol, "" if none was.
func (c *conn) Subprotocol() string {
	return c.ws.Subprotocol()
}

// SetReadLimit makes a message larger than limit bytes fail the read; gorilla
// then sends close code 1009 (message too big) to the peer.
func (c *conn) SetReadLimit(limit int64) {
	c.readMu.Lock()
	defer c.readMu.Unlock()
	c.ws.SetReadLimit(limit)
}

// SetReadDeadline makes a read still waiting at t fail; the zero time clears
// it. Once a close has started it does nothing.
func (c *conn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return nil
	}
	return c.ws.SetReadDeadline(t)
}

func (c *conn) isClosing() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closing
}

func truncateReason(reason string) string {
	if len(reason) <= maxCloseReason {
		return reason
	}
	// Cut at a rune boundary so the reason stays valid UTF-8.
	i := maxCloseReason
	for i > 0 && !utf8.RuneStart(reason[i]) {
		i--
	}
	return reason[:i]
}
