// Package testenv gives tests real databases and real running servers:
// a fresh SQLite file, or a fresh schema in the PostgreSQL named by
// SEGMENTD_TEST_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/test).
// Tests that run per store call ForEachStore, so that the same test code runs
// against both. Without PostgreSQL the PostgreSQL half is skipped, unless
// SEGMENTD_TEST_REQUIRE_POSTGRES=1 (as in CI), where it fails.
package testenv

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/lib/pq"

	"github.com/segmentd/segmentd/server"
)

// Stores names the stores every store test runs against.
var Stores = []string{"sqlite", "postgres"}

// PostgresURL is the server that PostgreSQL tests create their schemas in.
func PostgresURL() string {
	if u := os.Getenv("SEGMENTD_TEST_POSTGRES_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
}

// ForEachStore runs fn as a subtest per store, in parallel.
func ForEachStore(t *testing.T, fn func(t *testing.T, databaseURL string)) {
	t.Helper()
	for _, name := range Stores {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			fn(t, DatabaseURL(t, name))
		})
	}
}

// DatabaseURL returns the URL of a new, empty database of the named store,
// removed when the test ends.
func DatabaseURL(t testing.TB, store string) string {
	t.Helper()
	switch store {
	case "sqlite":
		return "sqlite://" + filepath.Join(t.TempDir(), "segmentd.db")
	case "postgres":
		return postgresSchema(t)
	}
	t.Fatalf("unknown store %q", store)
	return ""
}

var (
	pgOnce sync.Once
	pgErr  error
)

func postgresSchema(t testing.TB) string {
	t.Helper()
	base := PostgresURL()
	db, err := sql.Open("postgres", base)
	if err == nil {
		pgOnce.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			pgErr = db.PingContext(ctx)
		})
		err = pgErr
	}
	if err != nil {
		if os.Getenv("SEGMENTD_TEST_REQUIRE_POSTGRES") == "1" {
			t.Fatalf("PostgreSQL at %s is required (SEGMENTD_TEST_REQUIRE_POSTGRES=1): %v", base, err)
		}
		t.Skipf("PostgreSQL at %s is not reachable (%v); set SEGMENTD_TEST_POSTGRES_URL", base, err)
	}
	defer db.Close()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	schema := "t_" + hex.EncodeToString(b)
	if _, err := db.Exec("CREATE SCHEMA " + schema); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		db, err := sql.Open("postgres", base)
		if err != nil {
			return
		}
		defer db.Close()
		_, _ = db.Exec("DROP SCHEMA " + schema + " CASCADE")
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("parse %s: %v", base, err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// AdminKey is the ADMIN key of every test server.
const AdminKey = "sgd_test_admin_key_0123456789abcdef"

// Server is a segmentd serving on a loopback port for one test.
type Server struct {
	*server.Server
	URL string // http://127.0.0.1:port
}

// StartServer starts a segmentd on databaseURL, stopped when the test ends.
func StartServer(t testing.TB, databaseURL string, opts ...func(*server.Config)) *Server {
	t.Helper()
	return StartServerLogging(t, databaseURL, nil, opts...)
}

// StartServerLogging is StartServer with the server's log, at debug level,
// written to logTo as well (nil: nowhere), for tests that read it.
func StartServerLogging(t testing.TB, databaseURL string, logTo io.Writer, opts ...func(*server.Config)) *Server {
	t.Helper()
	cfg := server.Config{Addr: "127.0.0.1:0", DatabaseURL: databaseURL, AdminKey: AdminKey}
	for _, o := range opts {
		o(&cfg)
	}
	var sinks []io.Writer
	if logTo != nil {
		sinks = append(sinks, logTo)
	}
	if os.Getenv("SEGMENTD_TEST_LOG") != "" {
		sinks = append(sinks, os.Stderr)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if len(sinks) > 0 {
		log = slog.New(slog.NewTextHandler(io.MultiWriter(sinks...), &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := server.New(ctx, cfg, log)
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
	return &Server{Server: srv, URL: "http://" + srv.Addr()}
}

// Response is a GraphQL response.
type Response struct {
	Status int
	Data   json.RawMessage `json:"data"`
	Errors []GQLError      `json:"errors"`
}

// GQLError is one GraphQL error.
type GQLError struct {
	Message    string         `json:"message"`
	Path       []any          `json:"path"`
	Extensions map[string]any `json:"extensions"`
}

// Code returns the error's extensions.code.
func (e GQLError) Code() string { s, _ := e.Extensions["code"].(string); return s }

// Client sends GraphQL requests over real HTTP with one key.
type Client struct {
	URL  string
	Key  string
	HTTP *http.Client
}

// Client returns a client of s with key.
func (s *Server) Client(key string) *Client {
	return &Client{URL: s.URL + "/graphql", Key: key, HTTP: &http.Client{Timeout: 30 * time.Second}}
}

// Admin returns a client with the ADMIN key.
func (s *Server) Admin() *Client { return s.Client(AdminKey) }

// Do posts a query and returns the decoded response.
func (c *Client) Do(t testing.TB, query string, vars map[string]any) *Response {
	t.Helper()
	body, err := json.Marshal(map[string]any{"query": query, "variables": vars})
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	return c.post(t, "application/json", bytes.NewReader(body))
}

// MustDo posts a query, fails the test on any GraphQL error, and decodes
// data into out (if not nil).
func (c *Client) MustDo(t testing.TB, query string, vars map[string]any, out any) {
	t.Helper()
	r := c.Do(t, query, vars)
	if len(r.Errors) > 0 {
		t.Fatalf("unexpected errors: %+v\nquery: %s", r.Errors, query)
	}
	if out != nil {
		if err := json.Unmarshal(r.Data, out); err != nil {
			t.Fatalf("decode data %s: %v", r.Data, err)
		}
	}
}

// MustFail posts a query, expects exactly one error with code, and returns it.
func (c *Client) MustFail(t testing.TB, code, query string, vars map[string]any) GQLError {
	t.Helper()
	r := c.Do(t, query, vars)
	if len(r.Errors) == 0 {
		t.Fatalf("expected a %s error, got data %s", code, r.Data)
	}
	if got := r.Errors[0].Code(); got != code {
		t.Fatalf("expected code %s, got %s: %+v", code, got, r.Errors)
	}
	return r.Errors[0]
}

// Field returns the "field" extension of an error.
func (e GQLError) Field() string { s, _ := e.Extensions["field"].(string); return s }

// Contains reports whether the message contains all of subs.
func (e GQLError) Contains(subs ...string) error {
	for _, s := range subs {
		if !strings.Contains(e.Message, s) {
			return fmt.Errorf("error %q does not contain %q", e.Message, s)
		}
	}
	return nil
}

// Upload posts a GraphQL multipart request (the spec that curl -F
// operations=... -F map=... -F 0=@file follows) with one file, bound to the
// variable fileVar, and returns the decoded response.
func (c *Client) Upload(t testing.TB, query string, vars map[string]any, fileVar, fileName string, content io.Reader) *Response {
	t.Helper()
	if vars == nil {
		vars = map[string]any{}
	}
	vars[fileVar] = nil
	ops, err := json.Marshal(map[string]any{"query": query, "variables": vars})
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		err := func() error {
			if err := mw.WriteField("operations", string(ops)); err != nil {
				return err
			}
			if err := mw.WriteField("map", `{"0":["variables.`+fileVar+`"]}`); err != nil {
				return err
			}
			part, err := mw.CreateFormFile("0", fileName)
			if err != nil {
				return err
			}
			if _, err := io.Copy(part, content); err != nil {
				return err
			}
			return mw.Close()
		}()
		pw.CloseWithError(err)
	}()
	return c.post(t, mw.FormDataContentType(), pr)
}

// post sends a body to the GraphQL endpoint with the client's key and
// decodes the GraphQL response.
func (c *Client) post(t testing.TB, contentType string, body io.Reader) *Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, c.URL, body)
	if err != nil {
		t.Fatalf("request: %v", err)
	}
	req.Header.Set("Content-Type", contentType)
	if c.Key != "" {
		req.Header.Set("Authorization", "Bearer "+c.Key)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", c.URL, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	var r Response
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatalf("decode %q (status %d): %v", raw, resp.StatusCode, err)
	}
	r.Status = resp.StatusCode
	return &r
}

// LogBuffer collects a server's log; it is safe for concurrent use.
type LogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *LogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns what was logged so far.
func (b *LogBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
