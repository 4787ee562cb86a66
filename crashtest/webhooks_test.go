package crashtest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentd/segmentd/changelog"
	"github.com/segmentd/segmentd/internal/testenv"
	"github.com/segmentd/segmentd/store"
)

// TestCrashDuringWebhookDeliveries kills segmentd (SIGKILL) 5 times while
// it adds users to a segment and sends their entries to a webhook
// endpoint, and restarts it on the same database. Then every entry of the
// log reaches the receiver at least once; the first arrivals are in log
// order; a message that arrives again has the same webhook-id and body;
// and no id arrives that is not a change of the log.
func TestCrashDuringWebhookDeliveries(t *testing.T) {
	if testing.Short() {
		t.Skip("kills real processes")
	}
	kills := defaultKills
	bin := testenv.BuildSegmentd(t, "..")
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		rnd := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 17))
		var mu sync.Mutex
		var order []string
		bodies := map[string]string{}
		arrivals := map[string]int{}
		badBody := 0
		rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			id := r.Header.Get("webhook-id")
			mu.Lock()
			defer mu.Unlock()
			if prev, ok := bodies[id]; ok && prev != string(b) {
				badBody++
			}
			if arrivals[id] == 0 {
				order = append(order, id)
				bodies[id] = string(b)
			}
			arrivals[id]++
			time.Sleep(time.Millisecond) // a receiver that takes a moment: kills land mid-send
		}))
		defer rc.Close()
		env := []string{"SEGMENTD_RATE_LIMIT=-1", "SEGMENTD_WEBHOOK_ALLOW_PRIVATE=true", "SEGMENTD_WEBHOOK_TIMEOUT=1s"}
		proc := testenv.StartProcess(t, bin, dbURL, env...)
		admin := proc.Server.Admin()
		var seg struct{ CreateSegment struct{ ID string } }
		admin.MustDo(t, `mutation { createSegment(input: {name: "Crash hooks", kind: STATIC}) { id } }`, nil, &seg)
		admin.MustDo(t, `mutation($u: String!) { createWebhookEndpoint(input: {url: $u, topics: [MEMBERSHIP_ENTERED, MEMBERSHIP_EXITED]}) { secret } }`,
			map[string]any{"u": rc.URL}, nil)
		batch := 0
		add := func(c *testenv.Client) {
			batch++
			users := make([]string, 20)
			for i := range users {
				users[i] = fmt.Sprintf("u-%d-%d", batch, i)
			}
			// Killed mid-call: whatever committed is in the log; the
			// check reads the log.
			_ = c.Do(t, `mutation($s: ID!, $u: [String!]!) { addUsersToSegment(segmentId: $s, userIds: $u) { __typename } }`,
				map[string]any{"s": seg.CreateSegment.ID, "u": users})
			if batch%4 == 0 {
				_ = c.Do(t, `mutation($s: ID!, $u: [String!]!) { removeUsersFromSegment(segmentId: $s, userIds: $u) { __typename } }`,
					map[string]any{"s": seg.CreateSegment.ID, "u": users[:5]})
			}
		}
		for k := 0; k < kills; k++ {
			c := proc.Server.Admin()
			c.HTTP = &http.Client{Timeout: 5 * time.Second}
			done := make(chan struct{})
			go func() {
				defer close(done)
				deadline := time.Now().Add(time.Duration(200+rnd.IntN(800)) * time.Millisecond)
				for time.Now().Before(deadline) {
					add(c)
				}
			}()
			<-done
			time.Sleep(time.Duration(rnd.IntN(50)) * time.Millisecond) // deliveries in flight
			proc.Kill()
			proc = testenv.StartProcess(t, bin, dbURL, env...)
		}
		add(proc.Server.Admin())

		ctx := context.Background()
		st, err := store.Open(ctx, dbURL)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		q := `SELECT '0', id FROM membership_changes WHERE segment_ref = ?`
		if st.Dialect != "sqlite3" {
			q = `SELECT log_txid::text, id FROM membership_changes WHERE segment_ref = $1`
		}
		rows, err := st.DB.QueryContext(ctx, q, seg.CreateSegment.ID)
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
			want["mc_"+tx+"."+strconv.FormatInt(id, 10)] = true
		}
		rows.Close()
		// Up to 2 minutes: every kill may leave a lease of 7 s to run out.
		deadline := time.Now().Add(2 * time.Minute)
		for {
			mu.Lock()
			n := 0
			for id := range want {
				if arrivals[id] > 0 {
					n++
				}
			}
			mu.Unlock()
			if n == len(want) || time.Now().After(deadline) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		mu.Lock()
		defer mu.Unlock()
		missing, dups := 0, 0
		for id := range want {
			if arrivals[id] == 0 {
				missing++
			}
		}
		for id, n := range arrivals {
			if !want[id] {
				t.Errorf("received %s, which is not a change of the log", id)
			}
			dups += n - 1
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
			var b struct{ ID string }
			if err := json.Unmarshal([]byte(bodies[id]), &b); err != nil || "mc_"+b.ID != id {
				t.Errorf("%s: body id %q (%v)", id, b.ID, err)
			}
		}
		if missing > 0 {
			t.Errorf("%d of %d changes never arrived", missing, len(want))
		}
		if badBody > 0 {
			t.Errorf("%d repeats carried another body than the first", badBody)
		}
		t.Logf("%d kills; %d changes in the log, all delivered; %d repeats (same id and body)", kills, len(want), dups)
	})
}
