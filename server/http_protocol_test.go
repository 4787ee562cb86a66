package server_test

// What a GraphQL client that sends a malformed or unsupported HTTP request
// sees (issue 13, items 12, 13 and 17): a coded client error at once, never
// INTERNAL, and nothing above debug in the log; automatic persisted queries
// as Apollo's PersistedQueryLink sends them.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentd/segmentd/auth"
	"github.com/segmentd/segmentd/internal/testenv"
	"github.com/segmentd/segmentd/server"
)

// logRecords is an slog.Handler that keeps every record, at every level.
type logRecords struct {
	mu      sync.Mutex
	records []string // "LEVEL message attrs..."
	levels  []slog.Level
}

func (l *logRecords) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecords) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logRecords) WithGroup(string) slog.Handler            { return l }
func (l *logRecords) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Level.String() + " " + r.Message)
	r.Attrs(func(a slog.Attr) bool {
		b.WriteString(" " + a.String())
		return true
	})
	l.mu.Lock()
	defer l.mu.Unlock()
	l.records = append(l.records, b.String())
	l.levels = append(l.levels, r.Level)
	return nil
}

// above returns the records logged above debug, but for the request log
// (one INFO line per request, whatever its outcome), and whether any
// record at all contains s.
func (l *logRecords) above(s string) (loud []string, contains bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, r := range l.records {
		if l.levels[i] > slog.LevelDebug && !strings.HasPrefix(r, "INFO request ") {
			loud = append(loud, r)
		}
		if strings.Contains(r, s) {
			contains = true
		}
	}
	return loud, contains
}

// startLoggedServer starts a segmentd whose log the test reads.
func startLoggedServer(t *testing.T, dbURL string, opts ...func(*server.Config)) (*testenv.Server, *logRecords) {
	t.Helper()
	cfg := server.Config{Addr: "127.0.0.1:0", DatabaseURL: dbURL, AdminKey: testenv.AdminKey}
	for _, o := range opts {
		o(&cfg)
	}
	logs := &logRecords{}
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := server.New(ctx, cfg, slog.New(logs))
	if err != nil {
		cancel()
		t.Fatalf("start server: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server stopped with: %v", err)
		}
	})
	return &testenv.Server{Server: srv, URL: "http://" + srv.Addr()}, logs
}

// gqlReply is a GraphQL HTTP answer as a client reads it.
type gqlReply struct {
	Status int
	Header http.Header
	Raw    string
	Data   json.RawMessage    `json:"data"`
	Errors []testenv.GQLError `json:"errors"`
}

// sendGraphQL sends one request to /graphql with key and decodes the
// answer, failing if it takes longer than 5 s or is not a GraphQL response.
func sendGraphQL(t *testing.T, srv *testenv.Server, key, method, query, contentType string, body []byte) *gqlReply {
	t.Helper()
	u := srv.URL + "/graphql"
	if query != "" {
		u += "?" + query
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("%s /graphql: %v", method, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	r := &gqlReply{Status: resp.StatusCode, Header: resp.Header, Raw: string(raw)}
	if err := json.Unmarshal(raw, r); err != nil {
		t.Fatalf("%s /graphql: %d, body %q is not a GraphQL response: %v", method, resp.StatusCode, raw, err)
	}
	return r
}

// wantBadRequest checks that r is one BAD_REQUEST error with status and a
// message containing each of subs.
func wantBadRequest(t *testing.T, name string, r *gqlReply, status int, subs ...string) {
	t.Helper()
	if r.Status != status || len(r.Errors) != 1 || r.Errors[0].Code() != "BAD_REQUEST" {
		t.Errorf("%s: got %d %s; want %d with one BAD_REQUEST error", name, r.Status, r.Raw, status)
		return
	}
	if err := r.Errors[0].Contains(subs...); err != nil {
		t.Errorf("%s: %v", name, err)
	}
}

// TestBadRequestBodies: malformed JSON, a batch (a JSON array, as Apollo's
// BatchHttpLink and graphql-request's batchRequests send), a query that is
// not a string and variables that are not an object are the client's
// mistakes: HTTP 400 with BAD_REQUEST and a message saying what is wrong,
// nothing logged above debug, and the body in no log line. (It was 400 with
// INTERNAL, "internal error", logged at ERROR with the body.)
func TestBadRequestBodies(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv, logs := startLoggedServer(t, dbURL)
		const marker = "body-marker-7f3a"
		cases := []struct {
			name, body string
			subs       []string
		}{
			{"malformed JSON", `{"query": "{ __typename } ` + marker, []string{"not valid JSON"}},
			{"trailing garbage", `{"query": "{ __typename }"} ` + marker, []string{"not valid JSON"}},
			{"batch", `[{"query": "{ __typename }"}, {"query": "{ __typename } # ` + marker + `"}]`,
				[]string{"batched requests", "not supported", "one operation per request"}},
			{"query is a number", `{"query": 5, "operationName": "` + marker + `"}`, []string{"query", "must be a string", "number"}},
			{"query is an object", `{"query": {"q": "` + marker + `"}}`, []string{"query", "must be a string", "object"}},
			{"variables is an array", `{"query": "query($a: Int) { __typename }", "variables": ["` + marker + `"]}`,
				[]string{"variables", "must be an object", "array"}},
			{"variables is a string", `{"query": "{ __typename }", "variables": "` + marker + `"}`,
				[]string{"variables", "must be an object", "string"}},
			{"operationName is a number", `{"query": "{ __typename }", "operationName": 1}`, []string{"operationName", "must be a string"}},
			{"extensions is a list", `{"query": "{ __typename }", "extensions": ["` + marker + `"]}`, []string{"extensions", "must be an object"}},
			{"not an object", `"{ __typename } ` + marker + `"`, []string{"must be a JSON object"}},
			{"empty body", ``, []string{"empty"}},
		}
		for _, c := range cases {
			r := sendGraphQL(t, srv, testenv.AdminKey, http.MethodPost, "", "application/json", []byte(c.body))
			wantBadRequest(t, c.name, r, http.StatusBadRequest, c.subs...)
			if strings.Contains(r.Raw, marker) {
				t.Errorf("%s: the answer echoes the body: %s", c.name, r.Raw)
			}
		}
		// A good request still works on the same server.
		r := sendGraphQL(t, srv, testenv.AdminKey, http.MethodPost, "", "application/json; charset=utf-8", []byte(`{"query": "{ __typename }", "variables": null}`))
		if r.Status != http.StatusOK || len(r.Errors) > 0 || string(r.Data) != `{"__typename":"Query"}` {
			t.Errorf("a good request: %d %s", r.Status, r.Raw)
		}
		loud, leaked := logs.above(marker)
		if len(loud) > 0 {
			t.Errorf("client mistakes were logged above debug:\n%s", strings.Join(loud, "\n"))
		}
		if leaked {
			t.Errorf("a request body reached the log")
		}
	})
}

// TestUnsupportedRequests: a POST that is not application/json, a broken
// multipart request, another method, and a subscription over plain HTTP
// (POST, GET or multipart) each get a BAD_REQUEST error at once. (A POST of
// another type answered "transport not supported" with no code, multipart
// errors had no code, and a subscription over POST hung until an event.)
func TestUnsupportedRequests(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv, logs := startLoggedServer(t, dbURL)
		readKey := newKey(t, srv, "reader", auth.RoleRead)
		query := []byte(`{"query": "{ __typename }"}`)

		for _, ct := range []string{"text/plain", "application/x-www-form-urlencoded", "application/graphql", ""} {
			r := sendGraphQL(t, srv, readKey, http.MethodPost, "", ct, query)
			wantBadRequest(t, "POST as "+ct, r, http.StatusUnsupportedMediaType, "Content-Type", "application/json")
		}
		r := sendGraphQL(t, srv, readKey, http.MethodPut, "", "application/json", query)
		wantBadRequest(t, "PUT", r, http.StatusMethodNotAllowed, "POST")

		// Multipart requests that break the multipart request spec.
		multipartBody := func(fields ...[2]string) ([]byte, string) {
			var b bytes.Buffer
			mw := multipart.NewWriter(&b)
			for _, f := range fields {
				if err := mw.WriteField(f[0], f[1]); err != nil {
					t.Fatal(err)
				}
			}
			if err := mw.Close(); err != nil {
				t.Fatal(err)
			}
			return b.Bytes(), mw.FormDataContentType()
		}
		body, ct := multipartBody([2]string{"map", "{}"})
		r = sendGraphQL(t, srv, testenv.AdminKey, http.MethodPost, "", ct, body)
		wantBadRequest(t, "multipart without operations", r, http.StatusUnprocessableEntity, "operations")
		body, ct = multipartBody([2]string{"operations", `{"query": 5}`}, [2]string{"map", "{}"})
		r = sendGraphQL(t, srv, testenv.AdminKey, http.MethodPost, "", ct, body)
		wantBadRequest(t, "multipart with bad operations", r, http.StatusUnprocessableEntity, "operations")
		r = sendGraphQL(t, srv, testenv.AdminKey, http.MethodPost, "", "multipart/form-data; boundary=x", []byte("not multipart"))
		wantBadRequest(t, "not multipart at all", r, http.StatusUnprocessableEntity)

		// A subscription over plain HTTP: refused at once, not held open
		// until an event (sendGraphQL gives up after 5 s).
		sub := `subscription { eventReceived { messageId } }`
		start := time.Now()
		r = sendGraphQL(t, srv, readKey, http.MethodPost, "", "application/json", mustJSON(t, map[string]any{"query": sub}))
		wantBadRequest(t, "subscription over POST", r, http.StatusBadRequest, "subscription", "websocket")
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("the subscription over POST was answered after %s", d)
		}
		r = sendGraphQL(t, srv, readKey, http.MethodGet, "query="+url.QueryEscape(sub), "", nil)
		wantBadRequest(t, "subscription over GET", r, http.StatusNotAcceptable, "GET", "query")
		body, ct = multipartBody([2]string{"operations", string(mustJSON(t, map[string]any{"query": sub}))}, [2]string{"map", "{}"})
		r = sendGraphQL(t, srv, testenv.AdminKey, http.MethodPost, "", ct, body)
		wantBadRequest(t, "subscription over multipart", r, http.StatusBadRequest, "subscription", "websocket")

		// GET with variables or extensions that are not JSON.
		r = sendGraphQL(t, srv, readKey, http.MethodGet, "query="+url.QueryEscape(`query($n: Int) { segments(first: $n) { totalCount } }`)+"&variables=%5B", "", nil)
		wantBadRequest(t, "GET with malformed variables", r, http.StatusBadRequest, "variables")
		r = sendGraphQL(t, srv, readKey, http.MethodGet, "query="+url.QueryEscape(`{ __typename }`)+"&extensions=x", "", nil)
		wantBadRequest(t, "GET with malformed extensions", r, http.StatusBadRequest, "extensions")

		// A mutation over GET is refused with a code too.
		r = sendGraphQL(t, srv, testenv.AdminKey, http.MethodGet, "query="+url.QueryEscape(`mutation { deleteSegment(id: "seg_x") }`), "", nil)
		wantBadRequest(t, "mutation over GET", r, http.StatusNotAcceptable, "GET")

		if loud, _ := logs.above(""); len(loud) > 0 {
			t.Errorf("client mistakes were logged above debug:\n%s", strings.Join(loud, "\n"))
		}
	})
}

// apqBody is a request as Apollo's PersistedQueryLink sends it: the hash,
// and the query only if withQuery.
func apqBody(t *testing.T, query string, vars map[string]any, withQuery bool) []byte {
	t.Helper()
	sum := sha256.Sum256([]byte(query))
	m := map[string]any{
		"variables":  vars,
		"extensions": map[string]any{"persistedQuery": map[string]any{"version": 1, "sha256Hash": hex.EncodeToString(sum[:])}},
	}
	if withQuery {
		m["query"] = query
	}
	return mustJSON(t, m)
}

// apqGet is the GET form (PersistedQueryLink's useGETForHashedQueries).
func apqGet(t *testing.T, query string, vars map[string]any) string {
	t.Helper()
	sum := sha256.Sum256([]byte(query))
	return "extensions=" + url.QueryEscape(string(mustJSON(t, map[string]any{"persistedQuery": map[string]any{"version": 1, "sha256Hash": hex.EncodeToString(sum[:])}}))) +
		"&variables=" + url.QueryEscape(string(mustJSON(t, vars)))
}

// TestPersistedQueries: automatic persisted queries as Apollo sends them.
// An unknown hash is answered PERSISTED_QUERY_NOT_FOUND (so the client
// retries with the query); the query with its hash runs and is kept; then
// the hash alone runs it, by POST and by GET, for any key. A hash that does
// not match its query, and a bad persistedQuery extension, are BAD_REQUEST.
// (Every hash-only request failed with "no operation provided".)
func TestPersistedQueries(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv, logs := startLoggedServer(t, dbURL)
		readKey := newKey(t, srv, "apq reader", auth.RoleRead)
		const q = `query Named($n: Int) { segments(first: $n) { totalCount } }`
		vars := map[string]any{"n": 5}
		post := func(key string, body []byte) *gqlReply {
			return sendGraphQL(t, srv, key, http.MethodPost, "", "application/json", body)
		}
		wantData := func(name string, r *gqlReply, want string) {
			t.Helper()
			if r.Status != http.StatusOK || len(r.Errors) > 0 || string(r.Data) != want {
				t.Errorf("%s: %d %s; want data %s", name, r.Status, r.Raw, want)
			}
		}
		wantNotFound := func(name string, r *gqlReply) {
			t.Helper()
			if r.Status != http.StatusOK || len(r.Errors) != 1 || r.Errors[0].Code() != "PERSISTED_QUERY_NOT_FOUND" || r.Errors[0].Message != "PersistedQueryNotFound" {
				t.Errorf("%s: %d %s; want 200 with PERSISTED_QUERY_NOT_FOUND", name, r.Status, r.Raw)
			}
		}

		wantNotFound("unknown hash by POST", post(readKey, apqBody(t, q, vars, false)))
		wantNotFound("unknown hash by GET", sendGraphQL(t, srv, readKey, http.MethodGet, apqGet(t, q, vars), "", nil))
		wantData("query with its hash", post(readKey, apqBody(t, q, vars, true)), `{"segments":{"totalCount":0}}`)
		wantData("hash alone by POST", post(readKey, apqBody(t, q, vars, false)), `{"segments":{"totalCount":0}}`)
		wantData("hash alone by GET", sendGraphQL(t, srv, readKey, http.MethodGet, apqGet(t, q, vars), "", nil), `{"segments":{"totalCount":0}}`)
		wantData("hash alone with another key", post(testenv.AdminKey, apqBody(t, q, vars, false)), `{"segments":{"totalCount":0}}`)

		// A persisted mutation: roles still apply to what the hash stands for.
		const m = `mutation($in: CreateSegmentInput!) { createSegment(input: $in) { name } }`
		mvars := map[string]any{"in": map[string]any{"name": "APQ", "kind": "STATIC"}}
		wantNotFound("unknown mutation hash", post(testenv.AdminKey, apqBody(t, m, mvars, false)))
		wantData("mutation with its hash", post(testenv.AdminKey, apqBody(t, m, mvars, true)), `{"createSegment":{"name":"APQ"}}`)
		mvars["in"].(map[string]any)["name"] = "APQ 2"
		wantData("mutation by hash alone", post(testenv.AdminKey, apqBody(t, m, mvars, false)), `{"createSegment":{"name":"APQ 2"}}`)
		if r := post(readKey, apqBody(t, m, mvars, false)); len(r.Errors) != 1 || r.Errors[0].Code() != "FORBIDDEN" {
			t.Errorf("a READ key ran a persisted mutation: %d %s", r.Status, r.Raw)
		}

		// Client mistakes in the extension.
		wrong := map[string]any{"query": "{ __typename }", "extensions": map[string]any{"persistedQuery": map[string]any{"version": 1, "sha256Hash": strings.Repeat("0", 64)}}}
		r := post(readKey, mustJSON(t, wrong))
		if len(r.Errors) != 1 || r.Errors[0].Code() != "BAD_REQUEST" || r.Errors[0].Contains("hash does not match") != nil {
			t.Errorf("a hash that does not match its query: %d %s", r.Status, r.Raw)
		}
		badVersion := map[string]any{"query": "{ __typename }", "extensions": map[string]any{"persistedQuery": map[string]any{"version": 2, "sha256Hash": "x"}}}
		if r := post(readKey, mustJSON(t, badVersion)); len(r.Errors) != 1 || r.Errors[0].Code() != "BAD_REQUEST" || r.Errors[0].Contains("version") != nil {
			t.Errorf("persistedQuery version 2: %d %s", r.Status, r.Raw)
		}
		if loud, _ := logs.above(""); len(loud) > 0 {
			t.Errorf("logged above debug:\n%s", strings.Join(loud, "\n"))
		}
	})
}
