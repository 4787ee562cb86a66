package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// buildSegmentd builds cmd/segmentd into a temp directory.
func buildSegmentd(ctx context.Context) (string, error) {
	dir, err := os.MkdirTemp("", "segbench")
	if err != nil {
		return "", fmt.Errorf("temp dir: %w", err)
	}
	bin := filepath.Join(dir, "segmentd")
	fmt.Fprintln(progress, "building cmd/segmentd ...")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/segmentd")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("build segmentd (run segbench from the repository root): %w", err)
	}
	return bin, nil
}

// freshDatabase returns a new, empty database for a scenario: a temp
// SQLite file, or a new schema in the PostgreSQL database of -database-url.
// drop removes it (unless -keep).
func freshDatabase(ctx context.Context, c config, scenario string) (dbURL string, drop func(), err error) {
	if c.databaseURL == "" || !isPostgres(c.databaseURL) {
		dir, err := os.MkdirTemp("", "segbench-db")
		if err != nil {
			return "", nil, fmt.Errorf("temp dir: %w", err)
		}
		name := "bench.db"
		if c.databaseURL != "" {
			// A SQLite path: use its directory, a file per scenario.
			os.RemoveAll(dir)
			dir = filepath.Dir(strings.TrimPrefix(c.databaseURL, "sqlite://"))
			name = fmt.Sprintf("segbench-%s-%d.db", scenario, time.Now().Unix())
		}
		path := filepath.Join(dir, name)
		return "sqlite://" + path, func() {
			if c.keep {
				fmt.Fprintf(progress, "kept %s\n", path)
				return
			}
			for _, s := range []string{"", "-wal", "-shm"} {
				os.Remove(path + s)
			}
			if c.databaseURL == "" {
				os.RemoveAll(dir)
			}
		}, nil
	}
	db, err := sql.Open("postgres", pgDSN(c.databaseURL))
	if err != nil {
		return "", nil, fmt.Errorf("open %s: %w", c.databaseURL, err)
	}
	defer db.Close()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	schema := "segbench_" + scenario + "_" + hex.EncodeToString(b)
	if _, err := db.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		return "", nil, fmt.Errorf("create schema %s: %w", schema, err)
	}
	u, _ := url.Parse(pgDSN(c.databaseURL))
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String(), func() {
		if c.keep {
			fmt.Fprintf(progress, "kept schema %s\n", schema)
			return
		}
		db, err := sql.Open("postgres", pgDSN(c.databaseURL))
		if err != nil {
			return
		}
		defer db.Close()
		if _, err := db.Exec("DROP SCHEMA " + schema + " CASCADE"); err != nil {
			fmt.Fprintf(progress, "drop schema %s: %v\n", schema, err)
		}
	}, nil
}

// pgDSN adds sslmode=disable on loopback, as segmentd does.
func pgDSN(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	q := u.Query()
	if q.Get("sslmode") == "" && isLoopback(u.Hostname()) {
		q.Set("sslmode", "disable")
		u.RawQuery = q.Encode()
	}
	return u.String()
}

type server struct {
	cmd              *exec.Cmd
	pprof            string
	url              string
	key, writeKey    string
	bin, databaseURL string
	stop             func()
}

var listeningRE = regexp.MustCompile(`GraphiQL: (http://[0-9.:]+)/`)

// startServer starts bin on databaseURL on a free loopback port, without a
// rate limit, and creates an ADMIN and a WRITE key with `segmentd keys`.
// env is added to its environment.
func startServer(ctx context.Context, bin, databaseURL string, env ...string) (*server, error) {
	pprofAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "--addr", "127.0.0.1:0", "--database-url", databaseURL, "--log-level", "warn", "--rate-limit", "-1")
	cmd.Env = append(append(os.Environ(), "SEGMENTD_PPROF_ADDR="+pprofAddr), env...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("stdout: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	s := &server{cmd: cmd, pprof: pprofAddr, bin: bin, databaseURL: databaseURL}
	s.stop = func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if m := listeningRE.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case found <- m[1]:
				default:
				}
			}
		}
		close(found)
	}()
	select {
	case u, ok := <-found:
		if !ok {
			s.stop()
			return nil, errors.New("segmentd exited before it listened")
		}
		s.url = u
	case <-time.After(60 * time.Second):
		s.stop()
		return nil, errors.New("segmentd did not listen within 60 s")
	case <-ctx.Done():
		s.stop()
		return nil, ctx.Err()
	}
	if s.key, err = createKey(ctx, bin, databaseURL, "ADMIN"); err != nil {
		s.stop()
		return nil, err
	}
	if s.writeKey, err = createKey(ctx, bin, databaseURL, "WRITE"); err != nil {
		s.stop()
		return nil, err
	}
	return s, nil
}

var keyRE = regexp.MustCompile(`(?m)^(sgd_\S+)$`)

func createKey(ctx context.Context, bin, databaseURL, role string) (string, error) {
	out, err := exec.CommandContext(ctx, bin, "keys", "create", "--role", role, "--name", "segbench "+strings.ToLower(role), "--database-url", databaseURL).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("segmentd keys create --role %s: %w\n%s", role, err, out)
	}
	m := keyRE.FindSubmatch(out)
	if m == nil {
		return "", fmt.Errorf("segmentd keys create printed no key: %s", out)
	}
	return string(m[1]), nil
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("free port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}
