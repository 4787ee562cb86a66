package graphiql_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler/testserver"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/gorilla/websocket"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/segmentd/segmentd/server/graphiql"
	"github.com/segmentd/segmentd/server/wsgorilla"
)

// The browser tests run the IDE in a real headless Chromium that can reach
// 127.0.0.1 only (every other host name fails to resolve). They are skipped
// only when /usr/bin/chromium is absent. GRAPHIQL_SCREENSHOT=file.png keeps a
// screenshot of the end-to-end run.
const chromiumPath = "/usr/bin/chromium"

func needChromium(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(chromiumPath); errors.Is(err, os.ErrNotExist) {
		t.Skipf("%s not installed", chromiumPath)
	}
}

// chromium returns a command for headless Chromium, offline but for
// 127.0.0.1, run in its own process group, which is killed when ctx ends or
// the test finishes.
func chromium(t *testing.T, ctx context.Context, args ...string) *exec.Cmd {
	t.Helper()
	flags := []string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage",
		"--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
		"--user-data-dir=" + t.TempDir(),
		"--window-size=1280,800",
	}
	cmd := exec.CommandContext(ctx, chromiumPath, append(flags, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	t.Cleanup(func() {
		if cmd.Process != nil {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		}
	})
	return cmd
}

func TestBrowserRendersIDEOffline(t *testing.T) {
	needChromium(t)
	t.Parallel()
	srv := httptest.NewServer(graphiql.Handler("/graphql"))
	t.Cleanup(srv.Close)

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := chromium(t, ctx, "--virtual-time-budget=10000", "--dump-dom", srv.URL+"/graphiql")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium --dump-dom: %v\n%s", err, stderr.String())
	}
	dom := stdout.String()
	for _, want := range []string{"graphiql-container", "graphiql-query-editor", "CodeMirror-code", `id="segmentd-api-key"`} {
		if !strings.Contains(dom, want) {
			t.Errorf("rendered DOM lacks %q: GraphiQL did not start. DOM:\n%.3000s", want, dom)
		}
	}
}

// ideBackend is a GraphQL endpoint for the browser: gqlgen's test schema over
// POST and websocket (gorilla, default same-origin check), recording the
// credentials each request carried.
type ideBackend struct {
	*testserver.TestServer
	introspection []byte

	mu           sync.Mutex
	httpAuth     []string // Authorization of each POST, introspection marked with "introspection:"
	wsInitAuth   []string // Authorization in each connection_init payload
	subscription atomic.Int64
}

func newIDEBackend(t *testing.T) *ideBackend {
	t.Helper()
	introspection, err := os.ReadFile("testdata/introspection.json")
	if err != nil {
		t.Fatal(err)
	}
	b := &ideBackend{TestServer: testserver.New(), introspection: introspection}
	b.AddTransport(transport.POST{})
	b.AddTransport(transport.Websocket{
		Implementation: wsgorilla.Implementation{},
		InitTimeout:    5 * time.Second,
		InitFunc: func(ctx context.Context, p transport.InitPayload) (context.Context, *transport.InitPayload, error) {
			b.mu.Lock()
			b.wsInitAuth = append(b.wsInitAuth, p.Authorization())
			b.mu.Unlock()
			return ctx, nil, nil
		},
	})
	// Number the subscription events so the page shows something no query returns.
	b.AroundResponses(func(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
		resp := next(ctx)
		if resp != nil && graphql.GetOperationContext(ctx).Operation.Operation == ast.Subscription {
			resp.Data = fmt.Appendf(nil, `{"name":"tick %d"}`, b.subscription.Add(1))
		}
		return resp
	})
	return b
}

func (b *ideBackend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		b.TestServer.ServeHTTP(w, r)
		return
	}
	raw, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(raw))
	var params struct {
		OperationName string `json:"operationName"`
	}
	_ = json.Unmarshal(raw, &params)
	auth := r.Header.Get("Authorization")
	if params.OperationName == "IntrospectionQuery" {
		auth = "introspection:" + auth
	}
	b.mu.Lock()
	b.httpAuth = append(b.httpAuth, auth)
	b.mu.Unlock()
	if params.OperationName == "IntrospectionQuery" {
		// The test schema has no introspection resolvers: answer with its
		// schema, built by graphql-js (see testdata/README.md).
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(b.introspection)
		return
	}
	b.TestServer.ServeHTTP(w, r)
}

func (b *ideBackend) saw(list *[]string, want string) func() bool {
	return func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		for _, got := range *list {
			if got == want {
				return true
			}
		}
		return false
	}
}

// Drives the page like a user: sets an API key, runs a query and a
// subscription, reloads. Checks the key reaches the server on HTTP and in
// connection_init, subscription events reach the page, the browser requests
// nothing off the site, and the page breaks no CSP rule.
func TestBrowserIDEEndToEnd(t *testing.T) {
	needChromium(t)
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	backend := newIDEBackend(t)
	mux := http.NewServeMux()
	mux.Handle("/graphiql", graphiql.Handler("/graphql"))
	mux.Handle("/graphiql/", graphiql.Handler("/graphql"))
	mux.Handle("/graphql", backend)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	page := openDevTools(t, ctx)
	page.call(t, "Network.enable", nil)
	page.call(t, "Page.enable", nil)
	page.call(t, "Page.addScriptToEvaluateOnNewDocument", map[string]any{"source": `
		window.__cspViolations = [];
		document.addEventListener('securitypolicyviolation', e =>
			window.__cspViolations.push(e.violatedDirective + ' ' + e.blockedURI));`})

	page.call(t, "Page.navigate", map[string]any{"url": srv.URL + "/graphiql"})
	page.waitJS(t, `!!document.querySelector('.graphiql-container .graphiql-query-editor .CodeMirror')`, "GraphiQL to render")
	waitFor(t, backend.saw(&backend.httpAuth, "introspection:"), "schema introspection without a key")

	// Set the API key as a user would; GraphiQL reloads the schema with it.
	page.eval(t, `(() => {
		const input = document.getElementById('segmentd-api-key');
		input.value = 'k1';
		input.dispatchEvent(new Event('change', {bubbles: true}));
	})()`)
	waitFor(t, backend.saw(&backend.httpAuth, "introspection:Bearer k1"), "introspection with Authorization: Bearer k1")
	if got := page.eval(t, `localStorage.getItem('segmentd:apiKey')`); got != `"k1"` {
		t.Errorf("localStorage segmentd:apiKey = %s, want \"k1\"", got)
	}

	// A query over HTTP.
	runInIDE(t, page, `{ name }`)
	waitFor(t, backend.saw(&backend.httpAuth, "Bearer k1"), "the query to arrive with Authorization: Bearer k1")
	page.waitJS(t, `document.querySelector('.result-window').innerText.includes('"test"')`, "the query result in the result pane")

	// A subscription over the websocket.
	runInIDE(t, page, `subscription { name }`)
	waitFor(t, backend.saw(&backend.wsInitAuth, "Bearer k1"), `connection_init with {"Authorization":"Bearer k1"}`)
	// Each send waits up to a second for the resolver to take it; the count
	// of events sent lags a little, so one more may go out.
	waitFor(t, func() bool {
		backend.SendNextSubscriptionMessage()
		return backend.subscription.Load() >= 3
	}, "three subscription events to be sent")
	page.waitJS(t, `/"tick ([3-9]|\d\d+)"/.test(document.querySelector('.result-window').innerText)`, "the third subscription event in the result pane")

	if path := os.Getenv("GRAPHIQL_SCREENSHOT"); path != "" {
		var shot struct{ Data string }
		_ = json.Unmarshal(page.call(t, "Page.captureScreenshot", map[string]any{"format": "png"}), &shot)
		png, _ := base64.StdEncoding.DecodeString(shot.Data)
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Error(err)
		}
	}

	// Open more of the UI (the settings dialog adds an inline <style>), for
	// the CSP check below.
	page.eval(t, `document.querySelector('[aria-label="Show Documentation Explorer"]').click()`)
	page.waitJS(t, `document.querySelector('.graphiql-doc-explorer').innerText.includes('Subscription')`, "the documentation explorer to show the schema")
	page.eval(t, `document.querySelector('[aria-label="Open settings dialog"]').click()`)
	page.waitJS(t, `!!document.querySelector('[role="dialog"]')`, "the settings dialog")

	if v := page.eval(t, `JSON.stringify(window.__cspViolations)`); v != `"[]"` {
		t.Errorf("Content-Security-Policy violations: %s", v)
	}

	// The key survives a reload.
	page.call(t, "Page.reload", nil)
	page.waitJS(t, `!!document.querySelector('.graphiql-container') && document.getElementById('segmentd-api-key').value === 'k1'`, "the page to come back with the stored key")

	host := strings.TrimPrefix(srv.URL, "http://")
	for _, u := range page.requested() {
		parsed, err := url.Parse(u)
		if err != nil || (parsed.Host != host && parsed.Scheme != "data") {
			t.Errorf("browser requested %.100s, off the site", u)
		}
	}
	if !slices.Contains(page.requested(), "ws://"+host+"/graphql") {
		t.Errorf("the page opened no websocket to ws://%s/graphql", host)
	}
}

// runInIDE replaces the query editor's text and presses the run button.
// GraphiQL parses the editor's text a moment after it changes, and picks
// HTTP or websocket from that parse: pressing at once would run the new
// text as if it were the previous operation type.
func runInIDE(t *testing.T, page *devtools, query string) {
	t.Helper()
	q, _ := json.Marshal(query)
	page.eval(t, fmt.Sprintf(`document.querySelector('.graphiql-query-editor .CodeMirror').CodeMirror.setValue(%s)`, q))
	time.Sleep(time.Second)
	page.eval(t, `document.querySelector('.graphiql-execute-button').click()`)
}

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// devtools is a minimal Chrome DevTools Protocol client for one page.
type devtools struct {
	conn    *websocket.Conn
	writeMu sync.Mutex
	nextID  atomic.Int64

	mu      sync.Mutex
	pending map[int64]chan devtoolsReply
	urls    []string // every URL the page requested (HTTP and websocket)
}

type devtoolsReply struct {
	Result json.RawMessage
	Err    error
}

var devtoolsListening = regexp.MustCompile(`DevTools listening on (ws://\S+)`)

// openDevTools starts Chromium with remote debugging and connects to its page.
func openDevTools(t *testing.T, ctx context.Context) *devtools {
	t.Helper()
	cmd := chromium(t, ctx, "--remote-debugging-port=0", "about:blank")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	})

	browserURL := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := devtoolsListening.FindStringSubmatch(sc.Text()); m != nil {
				browserURL <- m[1]
			}
		}
	}()
	var wsURL string
	select {
	case wsURL = <-browserURL:
	case <-time.After(30 * time.Second):
		t.Fatal("chromium did not open its DevTools port")
	}
	u, _ := url.Parse(wsURL)

	var pageURL string
	waitFor(t, func() bool {
		resp, err := http.Get("http://" + u.Host + "/json/list")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var targets []struct{ Type, WebSocketDebuggerURL string }
		_ = json.NewDecoder(resp.Body).Decode(&targets)
		for _, target := range targets {
			if target.Type == "page" {
				pageURL = target.WebSocketDebuggerURL
				return true
			}
		}
		return false
	}, "a page target")

	conn, _, err := websocket.DefaultDialer.DialContext(ctx, pageURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	d := &devtools{conn: conn, pending: map[int64]chan devtoolsReply{}}
	go d.readLoop()
	return d
}

func (d *devtools) readLoop() {
	for {
		var msg struct {
			ID     int64
			Method string
			Params json.RawMessage
			Result json.RawMessage
			Error  *struct{ Message string }
		}
		if err := d.conn.ReadJSON(&msg); err != nil {
			d.mu.Lock()
			for id, ch := range d.pending {
				ch <- devtoolsReply{Err: err}
				delete(d.pending, id)
			}
			d.mu.Unlock()
			return
		}
		if msg.ID != 0 {
			d.mu.Lock()
			ch := d.pending[msg.ID]
			delete(d.pending, msg.ID)
			d.mu.Unlock()
			if ch != nil {
				reply := devtoolsReply{Result: msg.Result}
				if msg.Error != nil {
					reply.Err = errors.New(msg.Error.Message)
				}
				ch <- reply
			}
			continue
		}
		var p struct {
			URL     string
			Request struct{ URL string }
		}
		switch msg.Method {
		case "Network.requestWillBeSent":
			_ = json.Unmarshal(msg.Params, &p)
			d.record(p.Request.URL)
		case "Network.webSocketCreated":
			_ = json.Unmarshal(msg.Params, &p)
			d.record(p.URL)
		}
	}
}

func (d *devtools) record(u string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.urls = append(d.urls, u)
}

func (d *devtools) requested() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.urls...)
}

// call sends a DevTools command and returns its result.
func (d *devtools) call(t *testing.T, method string, params any) json.RawMessage {
	t.Helper()
	res, err := d.callErr(method, params)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// callErr is call that returns its error.
func (d *devtools) callErr(method string, params any) (json.RawMessage, error) {
	id := d.nextID.Add(1)
	ch := make(chan devtoolsReply, 1)
	d.mu.Lock()
	d.pending[id] = ch
	d.mu.Unlock()

	d.writeMu.Lock()
	err := d.conn.WriteJSON(map[string]any{"id": id, "method": method, "params": params})
	d.writeMu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", method, err)
	}
	select {
	case reply := <-ch:
		if reply.Err != nil {
			return nil, fmt.Errorf("%s: %v", method, reply.Err)
		}
		return reply.Result, nil
	case <-time.After(30 * time.Second):
		return nil, fmt.Errorf("%s: no reply", method)
	}
}

func (d *devtools) eval(t *testing.T, expr string) string {
	t.Helper()
	v, err := d.evalErr(expr)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// evalErr is eval that returns its error.
func (d *devtools) evalErr(expr string) (string, error) {
	var res struct {
		Result           struct{ Value json.RawMessage }
		ExceptionDetails *struct {
			Text      string
			Exception struct{ Description string }
		}
	}
	raw, err := d.callErr("Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true, "awaitPromise": true})
	if err != nil {
		return "", err
	}
	if err := json.Unmarshal(raw, &res); err != nil {
		return "", err
	}
	if res.ExceptionDetails != nil {
		return "", fmt.Errorf("evaluating %s: %s %s", expr, res.ExceptionDetails.Text, res.ExceptionDetails.Exception.Description)
	}
	return string(res.Result.Value), nil
}

// waitJS waits until a JavaScript expression is true in the page.
func (d *devtools) waitJS(t *testing.T, expr, what string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		// While the page navigates (a reload), an evaluation fails with
		// "Inspected target navigated or closed": not yet, not a failure.
		v, err := d.evalErr(fmt.Sprintf(`(() => { try { return !!(%s) } catch (e) { return false } })()`, expr))
		if err == nil && v == "true" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s (%s); last error: %v", what, expr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
