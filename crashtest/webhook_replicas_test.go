package crashtest_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentd/segmentd/changelog"
	"github.com/segmentd/segmentd/internal/testenv"
	"github.com/segmentd/segmentd/store"
)

// TestWebhookReplicaKilledMidBacklog: two segmentd processes on one
// PostgreSQL database share one endpoint's backlog of 600 entries; one is
// killed (SIGKILL, leaving the leases of the deliveries it was sending),
// and the other finishes: every change of the log arrives at least once,
// first arrivals in log order, a message again only with its webhook-id,
// and at most 101 repeats (a sender records its answers every 100, and
// one request may be in flight when it dies).
func TestWebhookReplicaKilledMidBacklog(t *testing.T) {
	if testing.Short() {
		t.Skip("kills real processes")
	}
	bin := testenv.BuildSegmentd(t, "..")
	dbURL := testenv.DatabaseURL(t, "postgres")
	var mu sync.Mutex
	var order []string
	arrivals := map[string]int{}
	rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		id := r.Header.Get("webhook-id")
		mu.Lock()
		if arrivals[id] == 0 {
			order = append(order, id)
		}
		arrivals[id]++
		mu.Unlock()
		time.Sleep(3 * time.Millisecond) // the backlog takes a few seconds: the kill lands mid-send
	}))
	defer rc.Close()
	distinct := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(order)
	}
	// A lease is twice the timeout and 5 s: 6 s to wait out.
	env := []string{"SEGMENTD_RATE_LIMIT=-1", "SEGMENTD_WEBHOOK_ALLOW_PRIVATE=true", "SEGMENTD_WEBHOOK_TIMEOUT=500ms"}
	a := testenv.StartProcess(t, bin, dbURL, env...)
	admin := a.Server.Admin()
	var seg struct{ CreateSegment struct{ ID string } }
	admin.MustDo(t, `mutation { createSegment(input: {name: "Replicated hooks", kind: STATIC}) { id } }`, nil, &seg)
	admin.MustDo(t, `mutation($u: String!) { createWebhookEndpoint(input: {url: $u, topics: [MEMBERSHIP_ENTERED]}) { secret } }`,
		map[string]any{"u": rc.URL}, nil)
	const n = 600
	users := make([]string, n)
	for i := range users {
		users[i] = fmt.Sprintf("u-%d", i)
	}
	admin.MustDo(t, `mutation($s: ID!, $u: [String!]!) { addUsersToSegment(segmentId: $s, userIds: $u) { __typename } }`,
		map[string]any{"s": seg.CreateSegment.ID, "u": users}, nil)
	// A sends alone first, so that it holds a lease when it dies; B starts
	// while A is mid-backlog and claims what A leaves between its claims.
	waitFor(t, 20*time.Second, "A's first deliveries", func() bool { return distinct() >= 50 })
	testenv.StartProcess(t, bin, dbURL, env...) // B
	waitFor(t, 20*time.Second, "a third of the backlog", func() bool { return distinct() >= n/3 })
	a.Kill()
	killedAt := distinct()

	ctx := context.Background()
	st, err := store.Open(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var leased int
	if err := st.DB.QueryRowContext(ctx, `SELECT count(*) FROM webhook_deliveries WHERE status = 'PENDING' AND lease_until > now()`).Scan(&leased); err != nil {
		t.Fatal(err)
	}
	rows, err := st.DB.QueryContext(ctx, `SELECT log_txid::text, id FROM membership_changes WHERE segment_ref = $1`, seg.CreateSegment.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for rows.Next() {
		var tx string
		var id int64
		if err := rows.Scan(&tx, &id); err != nil {
			t.Fatal(err)
		}
		want[fmt.Sprintf("mc_%s.%d", tx, id)] = true
	}
	rows.Close()
	if len(want) != n {
		t.Fatalf("%d changes in the log, want %d", len(want), n)
	}
	waitFor(t, time.Minute, "B to finish the backlog", func() bool { return distinct() >= n })

	mu.Lock()
	defer mu.Unlock()
	dups := 0
	for id, k := range arrivals {
		if !want[id] {
			t.Errorf("received %s, which is not a change of the log", id)
		}
		dups += k - 1
	}
	var last changelog.Cursor
	for i, id := range order {
		c, err := changelog.ParseCursor(strings.TrimPrefix(id, "mc_"))
		if err != nil {
			t.Fatalf("webhook-id %q: %v", id, err)
		}
		if c.Less(last) {
			t.Errorf("arrival %d: %s first arrived after %s", i, c, last)
		}
		last = c
	}
	if dups > 101 {
		t.Errorf("%d repeats; a sender records its answers every 100 (and one may be in flight)", dups)
	}
	t.Logf("killed A with %d of %d delivered and %d deliveries leased; B finished: %d repeats (same webhook-id)", killedAt, n, leased, dups)
}

func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s", limit, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
