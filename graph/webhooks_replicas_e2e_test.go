package graph_test

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentd/segmentd/changelog"
	"github.com/segmentd/segmentd/internal/testenv"
	"github.com/segmentd/segmentd/server"
)

// startReplica starts a segmentd on dbURL that the test can stop early.
func startReplica(t *testing.T, dbURL string) (*testenv.Server, func()) {
	t.Helper()
	cfg := server.Config{Addr: "127.0.0.1:0", DatabaseURL: dbURL, AdminKey: testenv.AdminKey,
		WebhookAllowPrivate: true, WebhookTimeout: 2 * time.Second,
		WebhookSchedule: []time.Duration{100 * time.Millisecond, 100 * time.Millisecond, 100 * time.Millisecond}}
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := server.New(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		cancel()
		t.Fatalf("start replica: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("replica stopped with: %v", err)
		}
	}
	t.Cleanup(stop)
	return &testenv.Server{Server: srv, URL: "http://" + srv.Addr()}, stop
}

// TestWebhookTwoReplicasShareAndTakeOver: two segmentd on one PostgreSQL
// database send one endpoint's backlog of 300 entries: each message once
// while both run, in log order; then one stops mid-backlog (leaving its
// leases) and the other finishes, every message at least once, a message
// again only with its webhook-id. This is a graceful stop (the replica
// records the answers it had); crashtest's
// TestWebhookReplicaKilledMidBacklog kills one with SIGKILL instead.
func TestWebhookTwoReplicasShareAndTakeOver(t *testing.T) {
	dbURL := testenv.DatabaseURL(t, "postgres")
	a, stopA := startReplica(t, dbURL)
	b, _ := startReplica(t, dbURL)
	admin := a.Admin()
	seg := ingCreateSegment(t, admin, map[string]any{"name": "Static", "kind": "STATIC"})
	rc := newReceiver(t, func(int, hookReq) (int, map[string]string, time.Duration) {
		return 200, nil, 5 * time.Millisecond
	})
	ep, _ := createHook(t, b.Admin(), map[string]any{"url": rc.URL, "topics": []string{"MEMBERSHIP_ENTERED"}})
	const n = 300
	users := make([]string, n)
	for i := range users {
		users[i] = "u" + strconv.Itoa(i)
	}
	addUsers(t, admin, seg, users[:n/2]...)
	addUsers(t, admin, seg, users[n/2:]...)

	rc.waitFor(t, n/3)
	stopA()
	reqs := rc.all()
	deadline := time.Now().Add(hookWait + 15*time.Second)
	for {
		seen := map[string]bool{}
		for _, r := range reqs {
			seen[r.ID] = true
		}
		if len(seen) >= n || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
		reqs = rc.all()
	}
	seen := map[string]int{}
	var last changelog.Cursor
	for i, r := range reqs {
		seen[r.ID]++
		c, err := changelog.ParseCursor(strings.TrimPrefix(r.ID, "mc_"))
		if err != nil {
			t.Fatalf("webhook-id %q: %v", r.ID, err)
		}
		if c.Less(last) && seen[r.ID] == 1 {
			t.Errorf("request %d: %s arrived after %s (out of log order)", i, c, last)
		}
		if last.Less(c) {
			last = c
		}
	}
	if len(seen) != n {
		t.Fatalf("%d distinct messages of %d arrived (%d requests)", len(seen), n, len(reqs))
	}
	dups := 0
	for _, k := range seen {
		dups += k - 1
	}
	t.Logf("%d requests for %d messages: %d sent again after the stop", len(reqs), n, dups)
	if dups > 101 {
		t.Errorf("%d duplicates; a sender records its answers every 100 (and one may be in flight)", dups)
	}
	ds := waitDeliveries(t, b.Admin(), ep.ID, "all delivered", func(ds []hookDelivery) bool {
		for _, d := range ds {
			if d.Status != "DELIVERED" {
				return false
			}
		}
		return len(ds) == 100 // the first page
	})
	_ = ds
}
