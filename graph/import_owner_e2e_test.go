package graph_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/segmentd/segmentd/internal/testenv"
	"github.com/segmentd/segmentd/server"
	"github.com/segmentd/segmentd/store"
)

// TestSecondServerOnSQLiteFile (issue 13, item 8): a second server started
// on the SQLite file of a running one took the first's running import for
// an interrupted one and marked it FAILED, while the first went on to
// apply it. The second is now refused, with a message that says why, and
// touches nothing; once the first stops, a server starts on the file.
func TestSecondServerOnSQLiteFile(t *testing.T) {
	dbURL := testenv.DatabaseURL(t, "sqlite")
	first, stop := testenv.StartStoppableServer(t, dbURL)
	c := first.Admin()
	segID := createStatic(t, c, "Running import")
	id := startImport(t, c, segID, "ADD", false, "users.csv", "u1\nu2\n")
	waitImport(t, c, id)
	// As if the import were still running in the first server.
	if _, err := first.Store().DB.Exec(`UPDATE import_jobs SET status = 'RUNNING', failure = NULL, finished_at = NULL WHERE id = ?`, id); err != nil {
		t.Fatal(err)
	}

	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	second, err := server.New(context.Background(), server.Config{Addr: "127.0.0.1:0", DatabaseURL: dbURL, AdminKey: testenv.AdminKey}, log)
	if err == nil {
		second.Serve(canceled())
		t.Fatal("a second server started on the same SQLite file")
	}
	if !errors.Is(err, store.ErrInUse) {
		t.Fatalf("second server: %v, want ErrInUse", err)
	}
	t.Logf("refused: %v", err)
	var status string
	if err := first.Store().DB.QueryRow(`SELECT status FROM import_jobs WHERE id = ?`, id).Scan(&status); err != nil {
		t.Fatal(err)
	}
	if status != "RUNNING" {
		t.Fatalf("the first server's running import is %s after the second tried to start", status)
	}

	stop()
	testenv.StartServer(t, dbURL) // the file is free again
}

func canceled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

// TestImportMarkedFailedMeanwhile (issue 13, item 8, the other half): when
// another server marks a running import FAILED (it took its server for
// dead: a stale heartbeat on PostgreSQL), the job's server used to apply
// the file anyway and record SUCCEEDED over the failure text. Only the
// job's owner may finish it, and only while it is RUNNING: it now rolls
// the apply back, and the job stays FAILED with the other server's reason,
// the segment as it was. PostgreSQL only: a second server on a SQLite
// file is refused (TestSecondServerOnSQLiteFile).
func TestImportMarkedFailedMeanwhile(t *testing.T) {
	t.Parallel()
	dbURL := testenv.DatabaseURL(t, "postgres")
	dir := t.TempDir()
	srv := testenv.StartServer(t, dbURL, func(c *server.Config) { c.UploadDir = dir })
	c := srv.Admin()
	segID := createStatic(t, c, "Taken over")
	var b strings.Builder
	for i := range 30_000 {
		fmt.Fprintf(&b, "taken-%d\n", i)
	}
	st := srv.Store()
	q := func(s string) string {
		if st.Dialect == "sqlite3" {
			return s
		}
		return strings.NewReplacer("?1", "$1", "?2", "$2").Replace(s)
	}
	id := startImport(t, c, segID, "ADD", false, "big.csv", b.String())
	const reason = "interrupted: the server running the import stopped (test)"
	res, err := st.DB.Exec(q(`UPDATE import_jobs SET status = 'FAILED', failure = ?1 WHERE id = ?2 AND status IN ('PENDING', 'RUNNING')`), reason, id)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("the job had ended before it was marked FAILED (%d rows)", n)
	}
	// The job's server removes its copy of the file when it is done.
	deadline := time.Now().Add(60 * time.Second)
	for {
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the import did not end within 60 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	j := waitImport(t, c, id)
	if j.Status != "FAILED" || j.Failure != reason {
		t.Fatalf("job: %s %q, want FAILED %q", j.Status, j.Failure, reason)
	}
	if n := len(members(t, c, segID)); n != 0 {
		t.Fatalf("the FAILED job's segment has %d members", n)
	}
}
