package testenv

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/segmentd/segmentd/server"
)

// StartStoppableServer is StartServer with a stop function: stop ends the
// server (as a shutdown would: websockets close, tailers stop, the store
// closes) and waits for it. It is safe to call more than once; the test's
// cleanup calls it too. A new server on the same databaseURL continues from
// what this one left.
func StartStoppableServer(t testing.TB, databaseURL string, opts ...func(*server.Config)) (*Server, func()) {
	t.Helper()
	cfg := server.Config{Addr: "127.0.0.1:0", DatabaseURL: databaseURL, AdminKey: AdminKey}
	for _, o := range opts {
		o(&cfg)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("SEGMENTD_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := server.New(ctx, cfg, log)
	if err != nil {
		cancel()
		t.Fatalf("start server: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("server stopped with: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return &Server{Server: srv, URL: "http://" + srv.Addr()}, stop
}

// WSDialOptions tune DialWSConn.
type WSDialOptions struct {
	// ReadBuffer, if not zero, is the client socket's receive buffer
	// (SO_RCVBUF, set before connecting) in bytes: a small one makes a
	// client that does not read push back on the server quickly, as a slow
	// client across a network would.
	ReadBuffer int
}

// DialWSConn opens a websocket to /graphql with proto and returns the bare
// gorilla connection, with no reader: nothing reads from it unless the test
// does (a client that stops reading, or one dropped without a close frame).
// If key is not empty it sends connection_init with it and reads up to the
// connection_ack first. The connection is closed when the test ends.
func (s *Server) DialWSConn(t testing.TB, key, proto string, o WSDialOptions) *websocket.Conn {
	t.Helper()
	url := "ws" + strings.TrimPrefix(s.URL, "http") + "/graphql"
	nd := &net.Dialer{Timeout: 5 * time.Second}
	if o.ReadBuffer > 0 {
		nd.Control = func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, o.ReadBuffer)
			})
			if err != nil {
				return err
			}
			return serr
		}
	}
	d := websocket.Dialer{Subprotocols: []string{proto}, HandshakeTimeout: 5 * time.Second, NetDialContext: nd.DialContext}
	conn, resp, err := d.Dial(url, http.Header{})
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	resp.Body.Close()
	t.Cleanup(func() { conn.Close() })
	if key == "" {
		return conn
	}
	if err := conn.WriteJSON(WSMessage{Type: "connection_init", Payload: mustJSON(map[string]any{"Authorization": "Bearer " + key})}); err != nil {
		t.Fatalf("write connection_init: %v", err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	defer conn.SetReadDeadline(time.Time{})
	for {
		var m WSMessage
		if err := conn.ReadJSON(&m); err != nil {
			t.Fatalf("read connection_ack: %v", err)
		}
		switch m.Type {
		case "connection_ack":
			return conn
		case "ka", "ping", "pong":
			continue
		default:
			t.Fatalf("expected connection_ack, got %+v", m)
		}
	}
}

// SubscribeMessage is the message that starts operation id on proto.
func SubscribeMessage(proto, id, query string, vars map[string]any) WSMessage {
	typ := "subscribe"
	if proto == LegacyWS {
		typ = "start"
	}
	return WSMessage{ID: id, Type: typ, Payload: mustJSON(map[string]any{"query": query, "variables": vars})}
}

// NextError returns the errors that end operation id: the payload of an
// "error" message (graphql-transport-ws), or the errors of a result that
// has no data (either subprotocol). It fails on anything else.
func (c *WSClient) NextError(t testing.TB, id string, timeout time.Duration) []GQLError {
	t.Helper()
	m := c.Next(t, timeout)
	if m.ID != id {
		t.Fatalf("expected an error of %s, got %s %s %s", id, m.Type, m.ID, m.Payload)
	}
	var errs []GQLError
	switch m.Type {
	case "error":
		// graphql-transport-ws: a list of errors; graphql-ws: one error.
		if err := json.Unmarshal(m.Payload, &errs); err != nil {
			var one GQLError
			if err := json.Unmarshal(m.Payload, &one); err != nil {
				t.Fatalf("decode %s: %v", m.Payload, err)
			}
			errs = []GQLError{one}
		}
	case "next", "data":
		var p struct {
			Data   json.RawMessage `json:"data"`
			Errors []GQLError      `json:"errors"`
		}
		if err := json.Unmarshal(m.Payload, &p); err != nil {
			t.Fatalf("decode %s: %v", m.Payload, err)
		}
		if len(p.Data) > 0 && string(p.Data) != "null" {
			t.Fatalf("expected errors of %s, got data %s", id, p.Data)
		}
		errs = p.Errors
	default:
		t.Fatalf("expected an error of %s, got %s %s", id, m.Type, m.Payload)
	}
	if len(errs) == 0 {
		t.Fatalf("expected errors of %s, got %s %s", id, m.Type, m.Payload)
	}
	return errs
}

// Process is a segmentd binary running as a child process.
type Process struct {
	*Server // only URL is set; DialWS and Client work
	Cmd     *exec.Cmd
	stderr  *syncBuffer
}

var listening = regexp.MustCompile(`segmentd is listening\. GraphiQL: http://([0-9.]+:[0-9]+)/`)

// StartProcess runs the segmentd binary bin on databaseURL, on a free
// loopback port, with AdminKey, and waits until it says it is listening.
// It is killed when the test ends; its stderr is logged if the test fails.
func StartProcess(t testing.TB, bin, databaseURL string, env ...string) *Process {
	t.Helper()
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "DATABASE_URL="+databaseURL, "SEGMENTD_ADDR=127.0.0.1:0",
		"SEGMENTD_ADMIN_KEY="+AdminKey, "LOG_LEVEL=warn")
	cmd.Env = append(cmd.Env, env...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("stdout pipe: %v", err)
	}
	p := &Process{Cmd: cmd, stderr: &syncBuffer{}}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			t.Logf("segmentd (pid %d) stderr:\n%s", cmd.Process.Pid, p.stderr.String())
		}
	})
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		found := false
		for sc.Scan() {
			if m := listening.FindStringSubmatch(sc.Text()); m != nil && !found {
				found = true
				addr <- m[1]
			}
		}
		close(addr)
	}()
	select {
	case a, ok := <-addr:
		if !ok {
			t.Fatalf("segmentd exited before listening: %v\n%s", cmd.Wait(), p.stderr.String())
		}
		p.Server = &Server{URL: "http://" + a}
	case <-time.After(30 * time.Second):
		t.Fatalf("segmentd did not say it was listening within 30s\n%s", p.stderr.String())
	}
	return p
}

// Kill kills the process (SIGKILL: no graceful shutdown) and reaps it. It
// is safe to call more than once.
func (p *Process) Kill() {
	if p.Cmd.ProcessState != nil {
		return
	}
	_ = p.Cmd.Process.Kill() // SIGKILL ends a stopped process too
	_ = p.Cmd.Wait()
}

// Pause freezes the process (SIGSTOP) where it is, mid-transaction or not,
// so that a test can look at the database and then Kill it at a moment it
// has seen; Resume (SIGCONT) lets it run on.
func (p *Process) Pause() {
	if p.Cmd.ProcessState == nil {
		_ = p.Cmd.Process.Signal(syscall.SIGSTOP)
	}
}

// Resume lets a paused process run on.
func (p *Process) Resume() {
	if p.Cmd.ProcessState == nil {
		_ = p.Cmd.Process.Signal(syscall.SIGCONT)
	}
}

// Stderr returns what the process logged so far.
func (p *Process) Stderr() string { return p.stderr.String() }

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// BuildSegmentd builds the segmentd command of the module at moduleRoot
// once per test binary run, into a directory removed when the first caller
// ends, and returns its path (rebuilt if a later caller finds it removed).
func BuildSegmentd(t testing.TB, moduleRoot string) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if builtBin != "" {
		if _, err := os.Stat(builtBin); err == nil {
			return builtBin
		}
	}
	bin := t.TempDir() + "/segmentd"
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/segmentd")
	cmd.Dir = moduleRoot
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/segmentd: %v\n%s", err, out)
	}
	builtBin = bin
	return bin
}

var (
	buildMu  sync.Mutex
	builtBin string
)

// String describes the process for test logs.
func (p *Process) String() string {
	return fmt.Sprintf("segmentd pid %d at %s", p.Cmd.Process.Pid, p.URL)
}
