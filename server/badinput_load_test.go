package server_test

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/segmentd/segmentd/auth"
	"github.com/segmentd/segmentd/internal/testenv"
	"github.com/segmentd/segmentd/server"
)

var loadSeconds = flag.Int("load-seconds", 0,
	"seconds of bad-input load per store in TestBadInputLoad (default: $SEGMENTD_TEST_LOAD_SECONDS, else 5)")

// loadDuration is how long the load runs, and whether it was asked for
// (a flag or SEGMENTD_TEST_LOAD_SECONDS): only then, and without the race
// detector, is the rate asserted, since a default run shares the machine
// with every other test package.
func loadDuration(t *testing.T) (time.Duration, bool) {
	t.Helper()
	n := *loadSeconds
	if n == 0 {
		if v := os.Getenv("SEGMENTD_TEST_LOAD_SECONDS"); v != "" {
			var err error
			if n, err = strconv.Atoi(v); err != nil || n <= 0 {
				t.Fatalf("SEGMENTD_TEST_LOAD_SECONDS=%q: want a positive number of seconds", v)
			}
		}
	}
	if n <= 0 {
		return 5 * time.Second, false
	}
	return time.Duration(n) * time.Second, true
}

// loadRequest is one kind of bad request and the status it must get.
type loadRequest struct {
	kind    string
	path    string
	body    []byte
	headers map[string]string
	status  int
	every   int // sent once in every `every` picks (heavy bodies); 0 or 1: always
}

// loadMix is the mixed bad input: every kind of refusal, cheap and heavy.
func loadMix(t *testing.T, writeKey, readKey string) []loadRequest {
	t.Helper()
	w := map[string]string{"Authorization": basic(writeKey)}
	with := func(extra map[string]string) map[string]string {
		h := map[string]string{"Authorization": basic(writeKey)}
		for k, v := range extra {
			h[k] = v
		}
		return h
	}
	gql := func(q string) []byte { return mustJSON(t, map[string]any{"query": q}) }
	admin := map[string]string{"Authorization": "Bearer " + testenv.AdminKey}
	big := `{"type":"track","userId":"u","event":"E","properties":{"p":"` + strings.Repeat("x", 30<<10) + `"}}`
	overBatch := []byte(`{"batch":[` + strings.Repeat(big+",", 19) + big + `]}`)
	return []loadRequest{
		{kind: "invalid JSON", path: "/v1/track", body: []byte(`{"userId": "u", "event": `), headers: w, status: 400},
		{kind: "not an object", path: "/v1/identify", body: []byte(`[1,2,3]`), headers: w, status: 400},
		{kind: "wrong types", path: "/v1/batch", body: []byte(`{"batch":[{"type":"track","userId":true,"event":5,"properties":[]}]}`), headers: w, status: 400},
		{kind: "unknown type in batch", path: "/v1/batch", body: []byte(`{"batch":[{"type":"track","userId":"u","event":"E"},{"type":"purchase","userId":"u"}]}`), headers: w, status: 400},
		{kind: "no user", path: "/v1/page", body: []byte(`{"name":"Home","properties":{"a":1}}`), headers: w, status: 400},
		{kind: "bad timestamp", path: "/v1/screen", body: []byte(`{"userId":"u","name":"S","timestamp":"yesterday"}`), headers: w, status: 400},
		{kind: "properties too deep", path: "/v1/track", body: mustJSON(t, map[string]any{"userId": "u", "event": "E", "properties": nested(11)}), headers: w, status: 400},
		{kind: "message over 32 KB", path: "/v1/track", body: []byte(`{"userId":"u","event":"E","properties":{"p":"` + strings.Repeat("x", 33<<10) + `"}}`), headers: w, status: 400, every: 5},
		{kind: "batch over 500 KB", path: "/v1/batch", body: overBatch, headers: w, status: 400, every: 50},
		{kind: "gzip bomb", path: "/v1/batch", body: gzipped(t, bytes.Repeat([]byte(" "), 10<<20)), headers: with(map[string]string{"Content-Encoding": "gzip"}), status: 400, every: 20},
		{kind: "not gzip", path: "/v1/track", body: []byte(`{"userId":"u","event":"E"}`), headers: with(map[string]string{"Content-Encoding": "gzip"}), status: 400},
		{kind: "unsupported encoding", path: "/v1/alias", body: []byte(`{"userId":"u","previousId":"p"}`), headers: with(map[string]string{"Content-Encoding": "br"}), status: 400},
		{kind: "no key", path: "/v1/track", body: []byte(`{"userId":"u","event":"E"}`), status: 401},
		{kind: "unknown key", path: "/v1/group", body: []byte(`{"userId":"u","groupId":"g"}`), headers: map[string]string{"Authorization": basic("sgd_not_a_key_0123456789abcdef")}, status: 401},
		{kind: "READ key", path: "/v1/track", body: []byte(`{"userId":"u","event":"E"}`), headers: map[string]string{"Authorization": basic(readKey)}, status: 403},
		{kind: "unknown endpoint", path: "/v1/purchase", body: []byte(`{"userId":"u"}`), headers: w, status: 400},
		{kind: "GraphQL first over 1000", path: "/graphql", body: gql(`{ events(first: 5000) { totalCount } }`), headers: admin, status: 200},
		{kind: "GraphQL syntax", path: "/graphql", body: gql(`{ segments { `), headers: admin, status: 422},
		{kind: "GraphQL unknown enum", path: "/graphql", body: gql(`{ segments(where: {kind: SMART}) { totalCount } }`), headers: admin, status: 422},
		{kind: "GraphQL too deep", path: "/graphql", body: gql("{ segments { edges { node { " + strings.Repeat("campaigns { segment { ", 7) + "id" + strings.Repeat(" } }", 7) + " } } } }"), headers: admin, status: 200},
		{kind: "GraphQL 1001 events", path: "/graphql", body: mustJSON(t, map[string]any{
			"query":     `mutation($in: [TrackInput!]!) { trackEvents(inputs: $in) { accepted } }`,
			"variables": map[string]any{"in": manyTracks(1001)}}), headers: map[string]string{"Authorization": "Bearer " + writeKey}, status: 200, every: 10},
		{kind: "GraphQL no key", path: "/graphql", body: gql(`{ __typename }`), status: 401},
		{kind: "GraphQL WRITE key querying", path: "/graphql", body: gql(`{ segments { totalCount } }`), headers: map[string]string{"Authorization": "Bearer " + writeKey}, status: 200},
		// The attacks of issue 12 (bounds_test.go, upload_test.go).
		{kind: "GraphQL body not JSON, with a key and a trait", path: "/graphql", body: []byte(`{"query":"mutation { identify(input: {userId: \"u\", traits: {ssn: \"` + loadTrait + `\"}}) { userId } }","key":"` + writeKey + `"`),
			headers: map[string]string{"Authorization": "Bearer " + writeKey}, status: 400},
		{kind: "nodes(ids:) of 30,000", path: "/graphql", body: mustJSON(t, map[string]any{"query": `query($ids: [ID!]!) { nodes(ids: $ids) { id } }`, "variables": map[string]any{"ids": repeated("seg_01J0000000000000000000000", 30000)}}),
			headers: admin, status: 200, every: 20},
		{kind: "where IN of 50,000", path: "/graphql", body: mustJSON(t, map[string]any{"query": `query($w: SegmentWhereInput) { segments(where: $w) { totalCount } }`, "variables": map[string]any{"w": map[string]any{"nameIn": repeated("a segment", 50000)}}}),
			headers: admin, status: 200, every: 20},
		{kind: "where 1,000 deep", path: "/graphql", body: mustJSON(t, map[string]any{"query": `query($w: SegmentWhereInput) { segments(where: $w) { totalCount } }`, "variables": map[string]any{"w": deepWhere(1000)}}),
			headers: admin, status: 200},
		{kind: "upload by a READ key", path: "/graphql", body: uploadBody, headers: map[string]string{"Authorization": "Bearer " + readKey, "Content-Type": uploadType}, status: 403, every: 10},
		{kind: "upload into an unknown segment", path: "/graphql", body: uploadBody, headers: map[string]string{"Authorization": "Bearer " + testenv.AdminKey, "Content-Type": uploadType}, status: 404, every: 10},
	}
}

// loadTrait is a trait value the load sends that must never reach the log.
const loadTrait = "load-trait-secret-5521"

func repeated(s string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}

func deepWhere(n int) map[string]any {
	w := map[string]any{"name": "x"}
	for range n {
		w = map[string]any{"not": w}
	}
	return w
}

// uploadBody is an importSegmentUsers multipart request with a 1 MB file,
// into an unknown segment; uploadType is its Content-Type.
var uploadBody, uploadType = func() ([]byte, string) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	_ = mw.WriteField("operations", `{"query":"mutation($f: Upload!) { importSegmentUsers(segmentId: \"seg_01J0000000000000000000000\", file: $f) { id } }","variables":{"f":null}}`)
	_ = mw.WriteField("map", `{"0":["variables.f"]}`)
	part, _ := mw.CreateFormFile("0", "users.csv")
	_, _ = part.Write(bytes.Repeat([]byte("u-123456\n"), 1<<17))
	_ = mw.Close()
	return buf.Bytes(), mw.FormDataContentType()
}()

func manyTracks(n int) []map[string]any {
	out := make([]map[string]any, n)
	for i := range out {
		out[i] = map[string]any{"event": "Sign Up", "userId": fmt.Sprintf("load-%d", i)}
	}
	return out
}

// TestBadInputLoad sends about 2,000 requests a second of mixed bad input
// (every kind of refusal: invalid JSON, wrong types, oversized messages and
// batches, gzip bombs, bad keys, bad GraphQL) from 6 workers over loopback,
// for -load-seconds (or SEGMENTD_TEST_LOAD_SECONDS; default 5) per store;
// with either set and without -race it also asserts at least 1,800 req/s.
// Every request must get its refusal (no 5xx, no dropped connection), good
// requests keep succeeding during and after, nothing is stored, and after a
// GC the heap is back within 20 MB of where it started and the goroutines
// within a few of it.
func TestBadInputLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("load test: skipped under -short")
	}
	d, asked := loadDuration(t)
	for _, store := range testenv.Stores {
		// One store at a time: the measurement needs the process to itself.
		t.Run(store, func(t *testing.T) { badInputLoad(t, testenv.DatabaseURL(t, store), d, asked && !raceEnabled) })
	}
}

func badInputLoad(t *testing.T, dbURL string, d time.Duration, checkRate bool) {
	const (
		target  = 2000 // requests per second
		workers = 6
	)
	logs := &testenv.LogBuffer{}
	srv := testenv.StartServerLogging(t, dbURL, logs, func(c *server.Config) { c.RateLimit = -1 })
	admin := srv.Admin()
	seedSignUp(t, admin)
	writeKey := newKey(t, srv, "load writer", auth.RoleWrite)
	readKey := newKey(t, srv, "load reader", auth.RoleRead)
	goodKey := newKey(t, srv, "good writer", auth.RoleWrite)
	mix := loadMix(t, writeKey, readKey)

	tr := &http.Transport{MaxIdleConns: workers * 2, MaxIdleConnsPerHost: workers * 2, IdleConnTimeout: 30 * time.Second}
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	defer tr.CloseIdleConnections()

	good := func(i int) error {
		body := mustJSON(t, map[string]any{"userId": fmt.Sprintf("good-%d", i), "event": "Sign Up", "messageId": fmt.Sprintf("good-%d", i),
			"context": map[string]any{"traits": map[string]any{"Channel": "Facebook"}}})
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/track", bytes.NewReader(body))
		req.Header.Set("Authorization", basic(goodKey))
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || string(b) != `{"success":true}` {
			return fmt.Errorf("good track: %d %s", resp.StatusCode, b)
		}
		return nil
	}
	if err := good(0); err != nil {
		t.Fatal(err)
	}
	eventsBefore, usersBefore := counts(t, admin)

	settle := func() (heap uint64, goroutines int) {
		tr.CloseIdleConnections()
		// Let the server's connection goroutines end: a connection closed
		// after refusing a body unread (uploads) lingers 500 ms in net/http
		// (its delay against TCP resets).
		time.Sleep(800 * time.Millisecond)
		for range 3 {
			runtime.GC()
		}
		debug.FreeOSMemory()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapInuse, runtime.NumGoroutine()
	}
	heapStart, goStart := settle()

	var (
		sent, bytesSent atomic.Int64
		mu              sync.Mutex
		byKind          = map[string]int{}
		failures        []string
		peakHeap        atomic.Uint64
	)
	fail := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		if len(failures) < 20 {
			failures = append(failures, fmt.Sprintf(format, args...))
		}
	}
	// The load runs for d, and on until every kind was sent at least once
	// (heavy kinds come once in `every` turns, and a loaded CI machine may
	// not reach them in d), at most 60 s or 4 d.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		minimum := time.NewTimer(d)
		defer minimum.Stop()
		select {
		case <-minimum.C:
		case <-ctx.Done():
			return
		}
		most := time.NewTimer(max(60*time.Second, 4*d) - d)
		defer most.Stop()
		for {
			mu.Lock()
			all := len(byKind) == len(mix)
			mu.Unlock()
			if all {
				cancel()
				return
			}
			select {
			case <-most.C:
				cancel()
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	lim := rate.NewLimiter(target, workers)
	var wg sync.WaitGroup
	start := time.Now()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := w
			for {
				if err := lim.Wait(ctx); err != nil {
					return
				}
				// Pick the next kind; heavy kinds only once in `every` turns.
				var r loadRequest
				for {
					n++
					r = mix[n%len(mix)]
					if r.every <= 1 || (n/len(mix))%r.every == 0 {
						break
					}
				}
				req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, srv.URL+r.path, bytes.NewReader(r.body))
				req.Header.Set("Content-Type", "application/json")
				for k, v := range r.headers {
					req.Header.Set(k, v)
				}
				resp, err := client.Do(req)
				if err != nil {
					fail("%s: %v", r.kind, err)
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				sent.Add(1)
				bytesSent.Add(int64(len(r.body)))
				if resp.StatusCode != r.status || (resp.StatusCode == 200 && !bytes.Contains(b, []byte(`"errors"`))) {
					fail("%s: %d %.200s", r.kind, resp.StatusCode, b)
				}
				mu.Lock()
				byKind[r.kind]++
				mu.Unlock()
			}
		}()
	}
	// Good requests keep working during the load; heap sampled each second.
	var goodLatencies []time.Duration
	tick := time.NewTicker(250 * time.Millisecond)
	for i := 1; ctx.Err() == nil; i++ {
		select {
		case <-ctx.Done():
		case <-tick.C:
			t0 := time.Now()
			if err := good(i); err != nil {
				fail("good request during the load: %v", err)
			}
			goodLatencies = append(goodLatencies, time.Since(t0))
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peakHeap.Load() {
				peakHeap.Store(ms.HeapInuse)
			}
		}
	}
	tick.Stop()
	wg.Wait()
	elapsed := time.Since(start)

	// After: good requests still succeed, over /v1 and GraphQL.
	if err := good(1 << 20); err != nil {
		t.Errorf("good request after the load: %v", err)
	}
	var seg struct{ Segments struct{ TotalCount int } }
	admin.MustDo(t, `{ segments { totalCount } }`, nil, &seg)
	heapEnd, goEnd := settle()

	reqRate := float64(sent.Load()) / elapsed.Seconds()
	sort.Slice(goodLatencies, func(i, j int) bool { return goodLatencies[i] < goodLatencies[j] })
	var p50, maxLat time.Duration
	if n := len(goodLatencies); n > 0 {
		p50, maxLat = goodLatencies[n/2], goodLatencies[n-1]
	}
	mb := func(b uint64) string { return fmt.Sprintf("%.1f MB", float64(b)/(1<<20)) }
	t.Logf("%d bad requests in %v: %.0f req/s (target %d, %d workers, race %v), %.0f MB/s of bodies",
		sent.Load(), elapsed.Round(time.Millisecond), reqRate, target, workers, raceEnabled, float64(bytesSent.Load())/elapsed.Seconds()/(1<<20))
	t.Logf("heap in use: start %s, peak %s, end %s; goroutines: start %d, end %d; good requests during the load: %d, p50 %v, max %v",
		mb(heapStart), mb(peakHeap.Load()), mb(heapEnd), goStart, goEnd, len(goodLatencies), p50.Round(time.Microsecond), maxLat.Round(time.Microsecond))
	kinds := make([]string, 0, len(byKind))
	for k, n := range byKind {
		kinds = append(kinds, fmt.Sprintf("%s %d", k, n))
	}
	sort.Strings(kinds)
	t.Logf("by kind: %s", strings.Join(kinds, ", "))

	for _, f := range failures {
		t.Error(f)
	}
	for _, secret := range []string{writeKey, readKey, goodKey, testenv.AdminKey, loadTrait} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("the server's log holds the secret %q", secret)
		}
	}
	if len(byKind) != len(mix) {
		t.Errorf("only %d of %d kinds were sent", len(byKind), len(mix))
	}
	if heapEnd > heapStart+20<<20 {
		t.Errorf("heap in use after the load %s, start %s: more than 20 MB more", mb(heapEnd), mb(heapStart))
	}
	if goEnd > goStart+10 {
		t.Errorf("goroutines after the load %d, start %d", goEnd, goStart)
		if os.Getenv("DUMPG") != "" {
			_ = pprof.Lookup("goroutine").WriteTo(os.Stderr, 1)
		}
	}
	if checkRate && reqRate < 0.9*target {
		t.Errorf("sustained %.0f req/s, want at least %d", reqRate, int(0.9*target))
	}
	// Nothing of the bad input was stored: only the good tracks.
	events, users := counts(t, admin)
	goodSent := len(goodLatencies) + 1
	if events != eventsBefore+goodSent || users != usersBefore+goodSent {
		t.Errorf("after the load: %d events, %d users; want %d, %d (only the good requests)", events, users, eventsBefore+goodSent, usersBefore+goodSent)
	}
}
