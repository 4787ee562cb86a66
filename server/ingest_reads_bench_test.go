package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentd/segmentd/auth"
	"github.com/segmentd/segmentd/internal/testenv"
	"github.com/segmentd/segmentd/server"
)

// The expensive reads of BenchmarkIngestUnderReads: the nested lists of
// TestNestedListsLoadInBatches with pages of 100 members, and a count that
// scans every user with 90 substring filters.
var expensiveReads = []string{
	strings.Replace(nestedListsQuery, "members(first: 20)", "members(first: 100)", 1),
	`{ users(where: {or: [` + strings.Repeat(`{userIDContains: "zz"}, `, 89) + `{userIDContains: "zy"}]}) { totalCount } }`,
}

// BenchmarkIngestUnderReads measures what expensive reads cost ingestion:
// the acknowledgement latency of trackEvent (one client, one event at a
// time) with no reads, then while two clients run the expensive reads in a
// loop, on SQLite and PostgreSQL in one run, and prints the table. Run it
// with -benchtime 1x; SEGMENTD_BENCH_EVENTS sets the events per phase
// (default 400).
//
//	go test ./server -run '^$' -bench BenchmarkIngestUnderReads -benchtime 1x
func BenchmarkIngestUnderReads(b *testing.B) {
	events := 400
	if v := os.Getenv("SEGMENTD_BENCH_EVENTS"); v != "" {
		fmt.Sscan(v, &events)
	}
	type row struct {
		store                 string
		quiet, loaded         []time.Duration
		reads                 int64
		readTime              time.Duration
		quietErrs, loadedErrs int
	}
	var rows []row
	for range b.N {
		rows = rows[:0]
		for _, st := range testenv.Stores {
			srv := testenv.StartServer(b, testenv.DatabaseURL(b, st), func(c *server.Config) { c.RateLimit = -1 })
			admin := srv.Admin()
			seedSignUp(b, admin)
			seedNested(b, admin, 50, 200)
			fillUsers(b, srv.Store().DB, srv.Store().Dialect, 200_000)
			key := newKey(b, srv, "ingestion", auth.RoleWrite)
			client := &http.Client{Timeout: time.Minute}
			track := func(i int, phase string) (time.Duration, error) {
				body, _ := json.Marshal(map[string]any{
					"query": `mutation($in: TrackInput!) { trackEvent(input: $in) { duplicate enteredSegments { name } } }`,
					"variables": map[string]any{"in": map[string]any{"event": "Sign Up", "userId": fmt.Sprintf("%s-%d", phase, i),
						"messageId": fmt.Sprintf("%s-%d", phase, i), "traits": map[string]any{"Channel": "Facebook"}}},
				})
				req, _ := http.NewRequest(http.MethodPost, srv.URL+"/graphql", bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", "Bearer "+key)
				t0 := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					return 0, err
				}
				raw, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				d := time.Since(t0)
				if resp.StatusCode != 200 || !bytes.Contains(raw, []byte(`"enteredSegments":[{"name"`)) {
					return d, fmt.Errorf("trackEvent: %d %s", resp.StatusCode, raw)
				}
				return d, nil
			}
			phase := func(name string) ([]time.Duration, int) {
				var lat []time.Duration
				errs := 0
				for i := range events {
					d, err := track(i, name)
					if err != nil {
						errs++
						if errs == 1 {
							b.Logf("%s %s: %v", st, name, err)
						}
						continue
					}
					lat = append(lat, d)
				}
				return lat, errs
			}
			r := row{store: st}
			phase("warm")
			r.quiet, r.quietErrs = phase("quiet")

			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			var reads, readNanos atomic.Int64
			for w := range 2 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					rc := &http.Client{Timeout: 5 * time.Minute}
					for i := w; ctx.Err() == nil; i++ {
						body, _ := json.Marshal(map[string]any{"query": expensiveReads[i%len(expensiveReads)]})
						req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/graphql", bytes.NewReader(body))
						req.Header.Set("Content-Type", "application/json")
						req.Header.Set("Authorization", "Bearer "+testenv.AdminKey)
						t0 := time.Now()
						resp, err := rc.Do(req)
						if err != nil {
							continue
						}
						_, _ = io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						reads.Add(1)
						readNanos.Add(int64(time.Since(t0)))
					}
				}()
			}
			time.Sleep(500 * time.Millisecond) // the reads are running
			r.loaded, r.loadedErrs = phase("loaded")
			cancel()
			wg.Wait()
			r.reads = reads.Load()
			if r.reads > 0 {
				r.readTime = time.Duration(readNanos.Load() / r.reads)
			}
			rows = append(rows, r)
		}
	}
	pct := func(l []time.Duration, p float64) time.Duration {
		if len(l) == 0 {
			return 0
		}
		s := append([]time.Duration(nil), l...)
		sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
		return s[min(len(s)-1, int(p*float64(len(s))))]
	}
	ms := func(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }
	var out strings.Builder
	fmt.Fprintf(&out, "\n| store | trackEvent ack, no reads: p50 / p99 | while 2 clients loop expensive reads: p50 / p99 | p99 ratio | reads done (mean time) | errors |\n|---|---|---|---|---|---|\n")
	for _, r := range rows {
		ratio := float64(pct(r.loaded, 0.99)) / float64(max(1, pct(r.quiet, 0.99)))
		fmt.Fprintf(&out, "| %s | %s / %s | %s / %s | %.2f× | %d (%s) | %d |\n", r.store,
			ms(pct(r.quiet, 0.5)), ms(pct(r.quiet, 0.99)), ms(pct(r.loaded, 0.5)), ms(pct(r.loaded, 0.99)),
			ratio, r.reads, ms(r.readTime), r.quietErrs+r.loadedErrs)
		b.ReportMetric(ratio, r.store+"-p99-ratio")
	}
	fmt.Fprintf(&out, "\n%d events per phase, one at a time.\n", events)
	fmt.Print(out.String())
}
