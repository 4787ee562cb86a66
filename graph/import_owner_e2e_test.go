package graph_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"

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
