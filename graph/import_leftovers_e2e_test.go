//go:build unix

package graph_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/segmentd/segmentd/internal/testenv"
	"github.com/segmentd/segmentd/server"
	"github.com/segmentd/segmentd/store"
)

// TestImportLeftoversCleaned (issue 13, item 9): an import interrupted by
// kill -9 left its staged rows (2.1M kept) and its upload copy (21 MB in
// the temp folder) forever. A server cleans both at start: the staged rows
// of every job that no live process runs, and the upload copies that no
// live process holds; it leaves a running replica's (PostgreSQL) and
// anything else in the folder alone.
func TestImportLeftoversCleaned(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		dir := t.TempDir()
		withDir := func(c *server.Config) { c.UploadDir = dir }
		srv, stop := testenv.StartStoppableServer(t, dbURL, withDir)
		c := srv.Admin()
		segID := createStatic(t, c, "Interrupted")
		dead := runImport(t, c, segID, "ADD", false, "u1\n").ID
		alive := runImport(t, c, segID, "ADD", false, "u2\n").ID
		// A job removes its copy just after it records its end.
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			entries, _ := os.ReadDir(dir)
			if len(entries) == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("upload folder after finished imports: %v", entries)
			}
		}
		st := srv.Store()
		sqlite := st.Dialect == "sqlite3"
		q := func(s string) string {
			if sqlite {
				return s
			}
			for i := 1; strings.Contains(s, "?"); i++ {
				s = strings.Replace(s, "?", "$"+string(rune('0'+i)), 1)
			}
			return s
		}
		exec := func(s string, args ...any) {
			t.Helper()
			if _, err := st.DB.Exec(q(s), args...); err != nil {
				t.Fatalf("%s: %v", s, err)
			}
		}
		staged := func(job string) int {
			t.Helper()
			var n int
			if err := st.DB.QueryRow(q(`SELECT count(*) FROM import_ids WHERE job_ref = ?`), job).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		}
		stop()

		// What kill -9 during two imports leaves: RUNNING jobs (on
		// PostgreSQL one whose server's owner lock is gone, one whose
		// server, another replica, holds it), their staged rows, and
		// their upload copies.
		st, err := store.Open(context.Background(), dbURL)
		if err != nil {
			t.Fatal(err)
		}
		exec(`UPDATE import_jobs SET status = 'RUNNING', finished_at = NULL, heartbeat_at = ? WHERE id = ?`, time.Now().Add(-2*time.Hour).UTC(), dead)
		exec(`UPDATE import_jobs SET status = 'RUNNING', finished_at = NULL, heartbeat_at = ? WHERE id = ?`, time.Now().UTC(), alive)
		if !sqlite {
			// The live replica that runs it holds its owner lock.
			other, err := store.Open(context.Background(), dbURL)
			if err != nil {
				t.Fatal(err)
			}
			defer other.Close()
			replica, err := other.DB.Conn(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			defer replica.Close()
			if _, err := replica.ExecContext(context.Background(), `SELECT pg_advisory_lock(24173, 777)`); err != nil {
				t.Fatal(err)
			}
			exec(`UPDATE import_jobs SET owner_key = 777 WHERE id = ?`, alive)
			// The dead one's server held 778: gone with its session, the
			// job is dead however recent its heartbeat.
			exec(`UPDATE import_jobs SET owner_key = 778, heartbeat_at = ? WHERE id = ?`, time.Now().UTC(), dead)
		}
		for i, job := range []string{dead, dead, alive} {
			exec(`INSERT INTO import_ids (job_ref, user_id, k) VALUES (?, ?, ?)`, job, "staged-"+string(rune('a'+i)), "k"+string(rune('a'+i)))
		}
		write := func(name string) string {
			p := filepath.Join(dir, name)
			if err := os.WriteFile(p, []byte("u1\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			return p
		}
		deadCopy := write("segmentd-import-0123456789abcdef0123.csv")
		liveCopy := write("segmentd-import-aaaaaaaaaaaaaaaaaaaa.csv")
		other := write("someone-elses.csv")
		held, err := os.Open(liveCopy) //nolint:gosec // the test's own file
		if err != nil {
			t.Fatal(err)
		}
		defer held.Close()
		if err := syscall.Flock(int(held.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			t.Fatal(err)
		}
		st.Close()

		srv = testenv.StartServer(t, dbURL, withDir)
		st = srv.Store()
		if n := staged(dead); n != 0 {
			t.Errorf("%d staged rows of the interrupted import kept", n)
		}
		if _, err := os.Stat(deadCopy); !os.IsNotExist(err) {
			t.Errorf("the interrupted import's upload copy is still there (%v)", err)
		}
		if _, err := os.Stat(liveCopy); err != nil {
			t.Errorf("a copy a live process holds was removed: %v", err)
		}
		if _, err := os.Stat(other); err != nil {
			t.Errorf("another program's file was removed: %v", err)
		}
		wantAlive := 1 // PostgreSQL: another replica runs it
		if sqlite {
			wantAlive = 0 // one server per file: nobody runs it any more
		}
		if n := staged(alive); n != wantAlive {
			t.Errorf("staged rows of the current job: %d, want %d", n, wantAlive)
		}
	})
}
