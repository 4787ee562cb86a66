package crashtest_test

import (
	"context"
	"io"
	"log/slog"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/segmentd/segmentd/internal/testenv"
	"github.com/segmentd/segmentd/service"
	"github.com/segmentd/segmentd/store"
)

// killDuringSweep kills segmentd (SIGKILL) up to kills times while its
// sweeper makes total changes, restarting it (start) after each kill, and
// returns the process running after the last kill and how many kills
// landed mid-sweep: with some of the changes made since the last restart
// and some left. made counts the changes made so far. proc must be paused
// (testenv.Process.Pause) when the changes come due, so that the sweep
// runs only in the steps here.
//
// The server runs in short steps and is frozen (SIGSTOP) between them
// while the test counts the changes; a kill comes in a frozen moment that
// shows changes made since the last restart and changes left, so it lands
// mid-sweep however slowly CI schedules the test's polls (before, a loaded
// CI let a whole sweep pass between two polls). A restarted server may
// finish the sweep before it reports ready; then there is nothing left to
// interrupt and the kills stop.
func killDuringSweep(t *testing.T, proc *testenv.Process, start func() *testenv.Process, made func() int, total, kills int) (*testenv.Process, int) {
	t.Helper()
	killed, midSweep := 0, 0
	for killed < kills && made() < total {
		last := made()
		stepping := time.Now()
		for time.Since(stepping) < 2*time.Minute {
			proc.Resume()
			time.Sleep(time.Duration(1+rand.IntN(20)) * time.Millisecond)
			proc.Pause()
			if now := made(); now > last {
				break
			}
		}
		// A last short step, so that the kill falls inside a sweep
		// transaction as often as between two.
		proc.Resume()
		time.Sleep(time.Duration(rand.IntN(15)) * time.Millisecond)
		proc.Pause()
		now := made()
		proc.Kill()
		killed++
		if now > last && now < total {
			midSweep++
		}
		t.Logf("kill %d: %d of %d changes made", killed, now, total)
		proc = start()
	}
	return proc, midSweep
}

// verifiedService opens a service on st (as `segmentd verify` does),
// reports the findings of its Verify as errors (the first ten, and how
// many), and returns it.
func verifiedService(t *testing.T, ctx context.Context, st *store.Store) *service.Service {
	t.Helper()
	svc, err := service.New(st, service.Config{Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := svc.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i, f := range rep.Findings {
		if i == 10 {
			t.Errorf("verify: %d findings in all", len(rep.Findings))
			break
		}
		t.Errorf("verify: %+v", f)
	}
	return svc
}
