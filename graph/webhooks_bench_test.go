package graph_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentd/segmentd/internal/testenv"
	"github.com/segmentd/segmentd/server"
)

// BenchmarkWebhookBacklog: a backlog of SEGMENTD_BENCH_WEBHOOK_BACKLOG
// entries (default 100,000) waits for a disabled endpoint (a receiver
// outage); the endpoint is enabled and the test times how long until a
// local receiver has them all: deliveries/s, dispatch (queueing from the
// log) and sending together. Run with -benchtime 1x.
//
//	go test ./graph -run '^$' -bench 'BenchmarkWebhookBacklog' -benchtime 1x -timeout 30m
func BenchmarkWebhookBacklog(b *testing.B) {
	n := 100000
	if v, err := strconv.Atoi(os.Getenv("SEGMENTD_BENCH_WEBHOOK_BACKLOG")); err == nil && v > 0 {
		n = v
	}
	for _, storeName := range testenv.Stores {
		b.Run(storeName, func(b *testing.B) {
			srv := testenv.StartServer(b, testenv.DatabaseURL(b, storeName), func(c *server.Config) { c.WebhookAllowPrivate = true })
			admin := srv.Admin()
			var got atomic.Int64
			rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.Copy(io.Discard, r.Body)
				got.Add(1)
			}))
			defer rc.Close()
			var seg struct{ CreateSegment struct{ ID string } }
			admin.MustDo(b, `mutation { createSegment(input: {name: "Backlog", kind: STATIC}) { id } }`, nil, &seg)
			var ep struct {
				CreateWebhookEndpoint struct{ Endpoint struct{ ID string } }
			}
			admin.MustDo(b, `mutation($u: String!) { createWebhookEndpoint(input: {url: $u, topics: [MEMBERSHIP_ENTERED], enabled: false}) { endpoint { id } } }`,
				map[string]any{"u": rc.URL}, &ep)
			for start := 0; start < n; start += 10000 {
				users := make([]string, 0, 10000)
				for i := start; i < min(start+10000, n); i++ {
					users = append(users, "u"+strconv.Itoa(i))
				}
				admin.MustDo(b, `mutation($s: ID!, $u: [String!]!) { addUsersToSegment(segmentId: $s, userIds: $u) { __typename } }`,
					map[string]any{"s": seg.CreateSegment.ID, "u": users}, nil)
			}
			b.ResetTimer()
			start := time.Now()
			admin.MustDo(b, `mutation($id: ID!) { updateWebhookEndpoint(id: $id, input: {enabled: true}) { id } }`,
				map[string]any{"id": ep.CreateWebhookEndpoint.Endpoint.ID}, nil)
			deadline := start.Add(20 * time.Minute)
			for got.Load() < int64(n) && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			el := time.Since(start)
			b.StopTimer()
			if got.Load() < int64(n) {
				b.Fatalf("%d of %d delivered in %s", got.Load(), n, el)
			}
			b.ReportMetric(float64(n)/el.Seconds(), "deliveries/s")
			b.ReportMetric(el.Seconds(), "s-to-drain")
		})
	}
}

// BenchmarkWebhookLatency: 1,000 entries a second for 10 s (trackEvents of
// 10 events every 10 ms into a segment every event enters), one endpoint
// on a local receiver: commit (the trackEvents answer) to the receiver's
// arrival, p50 and p99. Run with -benchtime 1x.
func BenchmarkWebhookLatency(b *testing.B) {
	for _, storeName := range testenv.Stores {
		b.Run(storeName, func(b *testing.B) {
			srv := testenv.StartServer(b, testenv.DatabaseURL(b, storeName), func(c *server.Config) {
				c.WebhookAllowPrivate = true
				c.RateLimit = -1
			})
			admin := srv.Admin()
			var mu sync.Mutex
			arrived := map[string]time.Time{}
			rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				now := time.Now()
				var body struct {
					Data struct{ Event struct{ MessageID string } }
				}
				_ = json.NewDecoder(r.Body).Decode(&body)
				mu.Lock()
				arrived[body.Data.Event.MessageID] = now
				mu.Unlock()
			}))
			defer rc.Close()
			admin.MustDo(b, `mutation { createSegment(input: {name: "Hot", kind: EVENT_TRIGGERED, triggerEvents: ["Hot"]}) { id } }`, nil, nil)
			admin.MustDo(b, `mutation($u: String!) { createWebhookEndpoint(input: {url: $u, topics: [MEMBERSHIP_ENTERED]}) { secret } }`,
				map[string]any{"u": rc.URL}, nil)
			acked := map[string]time.Time{}
			b.ResetTimer()
			tick := time.NewTicker(10 * time.Millisecond)
			defer tick.Stop()
			sent := 0
			for round := 0; round < 1000; round++ {
				<-tick.C
				in := make([]map[string]any, 10)
				ids := make([]string, 10)
				for i := range in {
					ids[i] = fmt.Sprintf("m-%d-%d", round, i)
					in[i] = map[string]any{"event": "Hot", "userId": fmt.Sprintf("u-%d-%d", round, i), "messageId": ids[i]}
				}
				admin.MustDo(b, `mutation($in: [TrackInput!]!) { trackEvents(inputs: $in) { accepted } }`, map[string]any{"in": in}, nil)
				now := time.Now()
				for _, id := range ids {
					acked[id] = now
				}
				sent += 10
			}
			deadline := time.Now().Add(time.Minute)
			for {
				mu.Lock()
				n := len(arrived)
				mu.Unlock()
				if n >= sent || time.Now().After(deadline) {
					break
				}
				time.Sleep(5 * time.Millisecond)
			}
			b.StopTimer()
			mu.Lock()
			defer mu.Unlock()
			var lat []time.Duration
			for id, at := range acked {
				if a, ok := arrived[id]; ok {
					lat = append(lat, a.Sub(at))
				}
			}
			if len(lat) < sent {
				b.Fatalf("%d of %d entries arrived", len(lat), sent)
			}
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
		})
	}
}

// BenchmarkWebhookIngestOverhead: trackEvents (batches of 100 from 4
// clients, every event entering a segment) for 5 s without an endpoint,
// then 5 s with one on a local receiver: events/s of each and their ratio.
// Run with -benchtime 1x.
func BenchmarkWebhookIngestOverhead(b *testing.B) {
	for _, storeName := range testenv.Stores {
		b.Run(storeName, func(b *testing.B) {
			srv := testenv.StartServer(b, testenv.DatabaseURL(b, storeName), func(c *server.Config) {
				c.WebhookAllowPrivate = true
				c.RateLimit = -1
			})
			admin := srv.Admin()
			var got atomic.Int64
			rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.Copy(io.Discard, r.Body)
				got.Add(1)
			}))
			defer rc.Close()
			admin.MustDo(b, `mutation { createSegment(input: {name: "Hot", kind: EVENT_TRIGGERED, triggerEvents: ["Hot"]}) { id } }`, nil, nil)
			var seq atomic.Int64
			drive := func() float64 {
				var wg sync.WaitGroup
				var n atomic.Int64
				stop := time.Now().Add(5 * time.Second)
				for w := 0; w < 4; w++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for time.Now().Before(stop) {
							in := make([]map[string]any, 100)
							for i := range in {
								k := seq.Add(1)
								in[i] = map[string]any{"event": "Hot", "userId": fmt.Sprintf("u-%d", k), "messageId": fmt.Sprintf("m-%d", k)}
							}
							if r := admin.Do(b, `mutation($in: [TrackInput!]!) { trackEvents(inputs: $in) { accepted } }`, map[string]any{"in": in}); len(r.Errors) == 0 {
								n.Add(100)
							}
						}
					}()
				}
				wg.Wait()
				return float64(n.Load()) / 5
			}
			b.ResetTimer()
			without := drive()
			admin.MustDo(b, `mutation($u: String!) { createWebhookEndpoint(input: {url: $u, topics: [MEMBERSHIP_ENTERED]}) { secret } }`,
				map[string]any{"u": rc.URL}, nil)
			with := drive()
			b.StopTimer()
			b.ReportMetric(without, "events/s-without")
			b.ReportMetric(with, "events/s-with")
			b.ReportMetric(100*with/without, "%-with/without")
			b.Logf("the receiver had %d deliveries when the drive ended", got.Load())
		})
	}
}
