package main

// Tests of the command line through realMain, as a user runs it: the keys
// subcommands against a temporary SQLite file, and serve on that same file.

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentd/segmentd/internal/testenv"
	"github.com/segmentd/segmentd/store"
)

// newDatabase creates a SQLite database with segmentd's schema, as the
// first start of segmentd serve does, and returns its path: the admin
// commands refuse a database that does not exist.
func newDatabase(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "segmentd.db")
	ctx := context.Background()
	st, err := store.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return path
}

// run runs realMain with args and returns what it printed.
func run(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errb bytes.Buffer
	err = realMain(context.Background(), args, &out, &errb)
	return out.String(), errb.String(), err
}

var createdRE = regexp.MustCompile(`^Created (ADMIN|WRITE|READ) key (key_\S+) \((.*)\)\. The key is shown only this once:\n(sgd_[A-Za-z0-9_-]{43})\n$`)

// createKey runs `keys create` and returns the key's ID and secret.
func createKey(t *testing.T, db, role, name string) (id, secret string) {
	t.Helper()
	out, errOut, err := run(t, "keys", "create", "--role", role, "--name", name, "--database-url", db)
	if err != nil {
		t.Fatalf("keys create --role %s: %v (stderr %q)", role, err, errOut)
	}
	m := createdRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("keys create printed %q; want the role, ID, name and the key on a line of its own", out)
	}
	if m[1] != strings.ToUpper(role) || m[3] != name {
		t.Fatalf("keys create printed role %s name %q, want %s %q", m[1], m[3], strings.ToUpper(role), name)
	}
	if strings.Count(out, m[4]) != 1 {
		t.Fatalf("the key is printed more than once: %q", out)
	}
	return m[2], m[4]
}

// listed is one row of `keys list`.
type listed struct{ id, name, role, hint, created, lastUsed, revoked string }

// listKeys runs `keys list` and parses its table: columns are separated by
// at least two spaces (names may contain single ones).
func listKeys(t *testing.T, db string) (map[string]listed, string) {
	t.Helper()
	out, errOut, err := run(t, "keys", "list", "--database-url", db)
	if err != nil {
		t.Fatalf("keys list: %v (stderr %q)", err, errOut)
	}
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if got := columnsRE.Split(strings.TrimSpace(lines[0]), -1); strings.Join(got, "|") != "ID|NAME|ROLE|KEY|CREATED|LAST USED|REVOKED" {
		t.Fatalf("keys list header %q", lines[0])
	}
	rows := map[string]listed{}
	for _, l := range lines[1:] {
		f := columnsRE.Split(strings.TrimSpace(l), -1)
		if len(f) != 7 {
			t.Fatalf("keys list row %q: want 7 columns", l)
		}
		rows[f[0]] = listed{f[0], f[1], f[2], f[3], f[4], f[5], f[6]}
	}
	return rows, out
}

var columnsRE = regexp.MustCompile(`\s{2,}`)

// TestKeysCommands: keys create prints a new key once; keys list shows every
// key with its role and a hint, never the secret; keys revoke marks a key
// revoked; bad roles, names, IDs and subcommands are errors that change
// nothing.
func TestKeysCommands(t *testing.T) {
	t.Chdir(t.TempDir()) // a command that fell back to ./segmentd.db would write there, not in the source tree
	db := newDatabase(t)
	readID, readSecret := createKey(t, db, "READ", "dashboard")
	adminID, adminSecret := createKey(t, db, "admin", "ops") // roles are case-insensitive
	if readSecret == adminSecret || readID == adminID {
		t.Fatalf("two keys share a secret or an ID")
	}

	rows, out := listKeys(t, db)
	if len(rows) != 2 {
		t.Fatalf("keys list shows %d keys, want 2:\n%s", len(rows), out)
	}
	for id, want := range map[string]struct{ name, role, secret string }{readID: {"dashboard", "READ", readSecret}, adminID: {"ops", "ADMIN", adminSecret}} {
		r, ok := rows[id]
		if !ok || r.name != want.name || r.role != want.role || r.revoked != "-" || r.lastUsed != "-" {
			t.Fatalf("keys list row of %s: %+v", id, r)
		}
		if r.hint != want.secret[:8]+"…" {
			t.Fatalf("hint %q, want the first 8 characters of the key and an ellipsis", r.hint)
		}
		if _, err := time.Parse(time.RFC3339, r.created); err != nil {
			t.Fatalf("created %q: %v", r.created, err)
		}
		if strings.Contains(out, want.secret) || strings.Contains(out, want.secret[8:20]) {
			t.Fatalf("keys list shows the secret of %s:\n%s", id, out)
		}
	}

	// Refused commands.
	refused := []struct {
		name  string
		args  []string
		check func(err error, stderr string) bool
	}{
		{"unknown role", []string{"keys", "create", "--role", "OWNER", "--name", "x"},
			func(err error, _ string) bool {
				return err != nil && strings.Contains(err.Error(), `unknown role "OWNER"`)
			}},
		{"no role", []string{"keys", "create", "--name", "x"},
			func(err error, _ string) bool { return err != nil && strings.Contains(err.Error(), "role") }},
		{"no name", []string{"keys", "create", "--role", "READ"},
			func(err error, _ string) bool { return err != nil && strings.Contains(err.Error(), "name") }},
		{"revoke an unknown ID", []string{"keys", "revoke", "--database-url", db, "key_01JD3V6N5Q8K4Z2R7W9X1Y0B3C"},
			func(err error, _ string) bool { return err != nil && strings.Contains(err.Error(), "no API key") }},
		{"revoke without an ID", []string{"keys", "revoke", "--database-url", db},
			func(err error, stderr string) bool {
				return errors.Is(err, errUsage) && strings.Contains(stderr, "usage")
			}},
		{"unknown subcommand", []string{"keys", "rotate", "--database-url", db},
			func(err error, stderr string) bool {
				return errors.Is(err, errUsage) && strings.Contains(stderr, `"rotate"`)
			}},
		{"keys alone", []string{"keys"},
			func(err error, stderr string) bool {
				return errors.Is(err, errUsage) && strings.Contains(stderr, "usage")
			}},
	}
	for _, tc := range refused {
		args := tc.args
		if strings.HasPrefix(tc.name, "no ") || tc.name == "unknown role" {
			args = append(args, "--database-url", db)
		}
		stdout, stderr, err := run(t, args...)
		if !tc.check(err, stderr) {
			t.Errorf("%s: err %v, stderr %q", tc.name, err, stderr)
		}
		if strings.Contains(stdout, "sgd_") {
			t.Errorf("%s printed a key: %q", tc.name, stdout)
		}
	}
	if rows, _ := listKeys(t, db); len(rows) != 2 {
		t.Fatalf("refused commands changed the keys: %d", len(rows))
	}

	// Revoke.
	// Flags come before the ID: Go's flag parsing stops at the first argument.
	stdout, _, err := run(t, "keys", "revoke", "--database-url", db, readID)
	if err != nil || stdout != "Revoked key "+readID+".\n" {
		t.Fatalf("keys revoke: %q %v", stdout, err)
	}
	rows, _ = listKeys(t, db)
	if r := rows[readID]; r.revoked == "-" {
		t.Fatalf("revoked key listed as %+v", r)
	} else if at, err := time.Parse(time.RFC3339, r.revoked); err != nil || time.Since(at) > time.Minute {
		t.Fatalf("revoked at %q (%v)", r.revoked, err)
	}
	if rows[adminID].revoked != "-" {
		t.Fatalf("revoking one key revoked another: %+v", rows[adminID])
	}
	// Revoking twice is harmless.
	if _, _, err := run(t, "keys", "revoke", "--database-url", db, readID); err != nil {
		t.Fatalf("revoking again: %v", err)
	}
}

// TestKeysAuthenticateAgainstServer: keys made by the CLI authenticate a
// server on the same database file, with their roles, and a key the CLI
// revokes while the server runs stops working at once.
func TestKeysAuthenticateAgainstServer(t *testing.T) {
	t.Chdir(t.TempDir()) // a command that fell back to ./segmentd.db would write there, not in the source tree
	path := newDatabase(t)
	_, adminSecret := createKey(t, path, "ADMIN", "ops")
	srv := testenv.StartServer(t, "sqlite://"+path)

	admin := srv.Client(adminSecret)
	var seg struct{ CreateSegment struct{ ID string } }
	admin.MustDo(t, `mutation { createSegment(input: {name: "From the CLI key", kind: STATIC}) { id } }`, nil, &seg)
	if seg.CreateSegment.ID == "" {
		t.Fatalf("no segment created")
	}
	// Keys existed, so the server made no ADMIN key of its own.
	if r := srv.Admin().Do(t, `{ segments { totalCount } }`, nil); r.Status != 401 || r.Errors[0].Code() != "UNAUTHENTICATED" {
		t.Fatalf("the server created its own ADMIN key although keys existed: HTTP %d %+v", r.Status, r.Errors)
	}

	// Keys created while the server runs work at once, with their role.
	readID, readSecret := createKey(t, path, "READ", "dashboard")
	_, writeSecret := createKey(t, path, "WRITE", "tracker")
	var list struct{ Segments struct{ TotalCount int } }
	srv.Client(readSecret).MustDo(t, `{ segments { totalCount } }`, nil, &list)
	if list.Segments.TotalCount != 1 {
		t.Fatalf("READ key sees %d segments", list.Segments.TotalCount)
	}
	srv.Client(readSecret).MustFail(t, "FORBIDDEN", `mutation { createSegment(input: {name: "x", kind: STATIC}) { id } }`, nil)
	srv.Client(writeSecret).MustFail(t, "FORBIDDEN", `{ segments { totalCount } }`, nil)

	// keys list shows that the keys were used.
	rows, _ := listKeys(t, path)
	if rows[readID].lastUsed == "-" {
		t.Fatalf("the READ key was used but lists as never used: %+v", rows[readID])
	}

	// Revoked by the CLI while the server runs: refused from the next request.
	if _, _, err := run(t, "keys", "revoke", "--database-url", path, readID); err != nil {
		t.Fatal(err)
	}
	r := srv.Client(readSecret).Do(t, `{ segments { totalCount } }`, nil)
	if r.Status != 401 || len(r.Errors) != 1 || r.Errors[0].Code() != "UNAUTHENTICATED" {
		t.Fatalf("revoked key: HTTP %d %+v", r.Status, r.Errors)
	}
	admin.MustDo(t, `{ segments { totalCount } }`, nil, nil)
}

// syncBuffer is a bytes.Buffer safe to write from the server's goroutines
// while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var listeningRE = regexp.MustCompile(`segmentd is listening\. GraphiQL: (http://127\.0\.0\.1:\d+/)`)

// startServe runs `segmentd serve` on db until the returned stop is called, and
// returns its base URL and everything it printed to stdout by then.
func startServe(t *testing.T, db string) (baseURL string, stdout *syncBuffer, stop func()) {
	t.Helper()
	stdout, stderr := &syncBuffer{}, &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- realMain(ctx, []string{"serve", "--addr", "127.0.0.1:0", "--database-url", db, "--log-level", "warn"}, stdout, stderr)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if m := listeningRE.FindStringSubmatch(stdout.String()); m != nil {
			baseURL = m[1]
			break
		}
		select {
		case err := <-done:
			cancel()
			t.Fatalf("serve stopped at once: %v\nstdout %s\nstderr %s", err, stdout, stderr)
		default:
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("serve did not say it was listening:\nstdout %s\nstderr %s", stdout, stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("serve returned %v", err)
				}
			case <-time.After(15 * time.Second):
				t.Errorf("serve did not stop")
			}
		})
	}
	t.Cleanup(stop)
	return baseURL, stdout, stop
}

var firstKeyRE = regexp.MustCompile(`Created the first ADMIN API key\. It is shown only this once; keep it safe:\s+(sgd_[A-Za-z0-9_-]{43})\s`)

// TestServeFirstStart: the first start on an empty database creates an
// ADMIN key and prints it once, with the GraphiQL URL; the key works; the
// next start prints no key; with SEGMENTD_ADMIN_KEY that key is created
// instead and not printed.
func TestServeFirstStart(t *testing.T) {
	t.Chdir(t.TempDir()) // a command that fell back to ./segmentd.db would write there, not in the source tree
	t.Setenv("SEGMENTD_ADMIN_KEY", "")
	db := filepath.Join(t.TempDir(), "segmentd.db")

	base, stdout, stop := startServe(t, db)
	m := firstKeyRE.FindStringSubmatch(stdout.String())
	if m == nil {
		t.Fatalf("first start did not print an ADMIN key:\n%s", stdout)
	}
	key := m[1]
	if strings.Count(stdout.String(), key) != 1 {
		t.Fatalf("the key is printed more than once:\n%s", stdout)
	}
	c := &testenv.Client{URL: base + "graphql", Key: key, HTTP: &http.Client{Timeout: 30 * time.Second}}
	c.MustDo(t, `mutation { createSegment(input: {name: "First", kind: STATIC}) { id } }`, nil, nil)
	stop()

	base, stdout, stop = startServe(t, db)
	if strings.Contains(stdout.String(), "Created the first ADMIN") || strings.Contains(stdout.String(), "sgd_") {
		t.Fatalf("second start printed a key:\n%s", stdout)
	}
	c.URL = base + "graphql"
	var out struct{ Segments struct{ TotalCount int } }
	c.MustDo(t, `{ segments { totalCount } }`, nil, &out)
	if out.Segments.TotalCount != 1 {
		t.Fatalf("after a restart: %d segments, want 1", out.Segments.TotalCount)
	}
	stop()
	if rows, _ := listKeys(t, db); len(rows) != 1 {
		t.Fatalf("keys after two starts: %+v", rows)
	}

	// SEGMENTD_ADMIN_KEY chooses the first key; it is not echoed.
	const chosen = "sgd_chosen_by_the_operator_0123456789"
	t.Setenv("SEGMENTD_ADMIN_KEY", chosen)
	db2 := filepath.Join(t.TempDir(), "other.db")
	base, stdout, _ = startServe(t, db2)
	if strings.Contains(stdout.String(), chosen) || strings.Contains(stdout.String(), "Created the first ADMIN") {
		t.Fatalf("SEGMENTD_ADMIN_KEY was printed:\n%s", stdout)
	}
	c = &testenv.Client{URL: base + "graphql", Key: chosen, HTTP: &http.Client{Timeout: 30 * time.Second}}
	c.MustDo(t, `{ segments { totalCount } }`, nil, nil)
}
