package main

// Tests of what segmentd refuses before it touches anything: a database
// that does not exist (keys, verify) and a bad configuration (serve). They
// run the real main in a child process (this test binary, re-executed) to
// see its exit code.

import (
	"context"
	"database/sql"
	"errors"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/segmentd/segmentd/internal/testenv"
)

func TestMain(m *testing.M) {
	if os.Getenv("SEGMENTD_TEST_RUN_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runMain runs segmentd's main with args in a child process, with the
// environment cleared of segmentd's variables and then env set, in dir,
// and returns its exit code and output. A child still running after 15 s
// (a server that started) is killed and fails the test.
func runMain(t *testing.T, dir string, env []string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], args...)
	cmd.Dir = dir
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "SEGMENTD_") || k == "DATABASE_URL" || k == "LOG_LEVEL" || k == "LOG_FORMAT" {
			continue
		}
		cmd.Env = append(cmd.Env, kv)
	}
	cmd.Env = append(cmd.Env, "SEGMENTD_TEST_RUN_MAIN=1")
	cmd.Env = append(cmd.Env, env...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("segmentd %v (env %v) was still running after 15 s: it did not refuse\nstdout %s\nstderr %s", args, env, out.String(), errb.String())
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("run segmentd: %v", err)
	}
	return cmd.ProcessState.ExitCode(), out.String(), errb.String()
}

// TestAdminCommandsRefuseMissingDatabase: verify and every keys command,
// given a --database-url that names no segmentd database (a mistyped
// SQLite path, an empty file, a PostgreSQL database that does not exist,
// one without segmentd's tables), exit 2 with a message that says so, and
// create nothing: no file, no tables. verify used to create and migrate a
// new database and report "no discrepancies" with exit 0.
func TestAdminCommandsRefuseMissingDatabase(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.db")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	pgBase, err := url.Parse(testenv.PostgresURL())
	if err != nil {
		t.Fatal(err)
	}
	pgMissing := *pgBase
	pgMissing.Path = "/segmentd_no_such_database"
	pgNoSchema := testenv.DatabaseURL(t, "postgres") // an empty schema
	commands := [][]string{
		{"verify"},
		{"keys", "list"},
		{"keys", "create", "--role", "READ", "--name", "dashboard"},
		{"keys", "revoke", "key_01JD3V6N5Q8K4Z2R7W9X1Y0B3C"},
	}
	for _, tc := range []struct {
		name, db, want string
	}{
		{"a mistyped SQLite path", filepath.Join(dir, "segmnetd.db"), "does not exist"},
		{"the same as sqlite://", "sqlite://" + filepath.Join(dir, "segmnetd.db"), "does not exist"},
		{"an empty SQLite file", empty, "no segmentd tables"},
		{"a PostgreSQL database that does not exist", pgMissing.String(), "does not exist"},
		{"a PostgreSQL database without segmentd's tables", pgNoSchema, "no segmentd tables"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, args := range commands {
				args = append(args, "--database-url", tc.db)
				code, stdout, stderr := runMain(t, dir, nil, args...)
				if code != 2 || !strings.Contains(stderr, tc.want) {
					t.Errorf("segmentd %v: exit %d, stderr %q; want exit 2 and %q", args, code, stderr, tc.want)
				}
				if strings.Contains(stdout, "no discrepancies") || strings.Contains(stdout, "sgd_") {
					t.Errorf("segmentd %v printed %q", args, stdout)
				}
			}
		})
	}
	// Nothing was created.
	if _, err := os.Stat(filepath.Join(dir, "segmnetd.db")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the mistyped SQLite file exists after the commands: %v", err)
	}
	if fi, err := os.Stat(empty); err != nil || fi.Size() != 0 {
		t.Errorf("the empty SQLite file was written: %v", err)
	}
	db, err := sql.Open("postgres", pgNoSchema)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var tables int
	if err := db.QueryRow(`SELECT COUNT(*) FROM pg_catalog.pg_tables WHERE schemaname = ANY (current_schemas(false))`).Scan(&tables); err != nil {
		t.Fatal(err)
	}
	if tables != 0 {
		t.Errorf("the commands created %d tables in the empty PostgreSQL schema", tables)
	}
}

// TestServeRefusesBadConfig: serve parses every variable strictly and
// validates the whole configuration before it creates the database file
// or opens its port: each mistake exits 2 naming the variable (a bad number
// used to be replaced by the default, and a short SEGMENTD_ADMIN_KEY was
// refused only after the database was created).
func TestServeRefusesBadConfig(t *testing.T) {
	for _, tc := range []struct{ env, name string }{
		{"SEGMENTD_MAX_BODY_BYTES=1MB", "SEGMENTD_MAX_BODY_BYTES"},
		{"SEGMENTD_MAX_BODY_BYTES=-5", "SEGMENTD_MAX_BODY_BYTES"},
		{"SEGMENTD_MAX_UPLOAD_BYTES=lots", "SEGMENTD_MAX_UPLOAD_BYTES"},
		{"SEGMENTD_RATE_LIMIT=fast", "SEGMENTD_RATE_LIMIT"},
		{"SEGMENTD_RATE_BURST=ten", "SEGMENTD_RATE_BURST"},
		{"SEGMENTD_RATE_BURST=-3", "SEGMENTD_RATE_BURST"},
		{"SEGMENTD_INTROSPECTION=maybe", "SEGMENTD_INTROSPECTION"},
		{"SEGMENTD_ADMIN_KEY=short", "SEGMENTD_ADMIN_KEY"},
		{"SEGMENTD_ADDR=localhost", "SEGMENTD_ADDR"},
		{"SEGMENTD_ALLOWED_ORIGINS=app.example.com", "SEGMENTD_ALLOWED_ORIGINS"},
		{"SEGMENTD_PPROF_ADDR=6060", "SEGMENTD_PPROF_ADDR"},
		{"SEGMENTD_METRICS_ADDR=9090", "SEGMENTD_METRICS_ADDR"},
		{"SEGMENTD_SLOW_REQUEST=soon", "SEGMENTD_SLOW_REQUEST"},
		{"SEGMENTD_SLOW_REQUEST=0", "SEGMENTD_SLOW_REQUEST"},
		{"LOG_LEVEL=loud", "LOG_LEVEL"},
		{"DATABASE_URL=mysql://db/segmentd", "DATABASE_URL"},
	} {
		t.Run(tc.env, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			env := []string{"DATABASE_URL=" + filepath.Join(dir, "segmentd.db"), "SEGMENTD_ADDR=127.0.0.1:0", tc.env}
			code, stdout, stderr := runMain(t, dir, env, "serve")
			if code != 2 || !strings.Contains(stderr, tc.name) {
				t.Errorf("exit %d, stderr %q; want exit 2 and a message naming %s", code, stderr, tc.name)
			}
			if strings.Contains(stdout, "listening") {
				t.Errorf("serve started: %s", stdout)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Errorf("serve created %v before refusing its configuration", entries)
			}
		})
	}
	// A good configuration still starts: the child serves until killed.
	t.Run("good", func(t *testing.T) {
		dir := t.TempDir()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		cmd := exec.CommandContext(ctx, os.Args[0], "serve")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "SEGMENTD_TEST_RUN_MAIN=1", "DATABASE_URL="+filepath.Join(dir, "segmentd.db"),
			"SEGMENTD_ADDR=127.0.0.1:0", "SEGMENTD_MAX_BODY_BYTES=2048", "SEGMENTD_RATE_LIMIT=-1", "SEGMENTD_INTROSPECTION=off",
			"SEGMENTD_ALLOWED_ORIGINS=https://app.example.com, *", "SEGMENTD_ADMIN_KEY=sgd_a_good_long_admin_key_1234", "LOG_LEVEL=warn",
			"SEGMENTD_METRICS_ADDR=127.0.0.1:0", "SEGMENTD_SLOW_REQUEST=250ms")
		out := &syncBuffer{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { cancel(); _ = cmd.Wait() }()
		deadline := time.Now().Add(15 * time.Second)
		for !strings.Contains(out.String(), "listening") {
			if time.Now().After(deadline) {
				t.Fatalf("serve did not start with a good configuration:\n%s", out)
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}
