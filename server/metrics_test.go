package server_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/segmentd/segmentd/auth"
	"github.com/segmentd/segmentd/internal/testenv"
	"github.com/segmentd/segmentd/server"
)

// scrape reads /metrics at url (with key, if not empty) and parses it with
// the Prometheus text parser.
func scrape(t testing.TB, url, key string) (int, map[string]*dto.MetricFamily) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, nil
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return resp.StatusCode, fams
}

// sample is the value of the series of family name whose labels are
// exactly labels (a counter's or gauge's value, a histogram's count); 0
// when there is no such series.
func sample(fams map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	f := fams[name]
	if f == nil {
		return 0
	}
	for _, m := range f.GetMetric() {
		if len(m.GetLabel()) != len(labels) {
			continue
		}
		match := true
		for _, l := range m.GetLabel() {
			if labels[l.GetName()] != l.GetValue() {
				match = false
			}
		}
		if !match {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		case m.Untyped != nil:
			return m.Untyped.GetValue()
		}
	}
	return 0
}

// series lists every series of a family as name{labels}=value, for
// failure messages.
func series(fams map[string]*dto.MetricFamily, name string) string {
	var out []string
	for _, m := range fams[name].GetMetric() {
		var ls []string
		for _, l := range m.GetLabel() {
			ls = append(ls, l.GetName()+"="+l.GetValue())
		}
		v := m.GetCounter().GetValue() + m.GetGauge().GetValue() + float64(m.GetHistogram().GetSampleCount())
		out = append(out, fmt.Sprintf("{%s}=%g", strings.Join(ls, ","), v))
	}
	sort.Strings(out)
	return name + " " + strings.Join(out, " ")
}

type want struct {
	name   string
	labels map[string]string
	value  float64
}

func l(kv ...string) map[string]string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

// The metrics count what a scripted workload did, exactly: N trackEvents
// over GraphQL (one of them repeated), V messages over /v1, the entries
// and activations they cause, manual entries, an import of K rows (one
// repeated, one invalid), a live subscription and its deliveries, and the
// HTTP requests by route template. Label values are from fixed sets: no
// user, segment or key ID appears in the exposition.
func TestMetricsCountTheWorkload(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL)
		readKey := newKey(t, srv, "scraper", auth.RoleRead)
		writeKey := newKey(t, srv, "ingest", auth.RoleWrite)
		c := srv.Admin()
		graphqlPosts := 0 // every GraphQL POST this test makes; all answer 200
		do := func(query string, vars map[string]any, out any) {
			t.Helper()
			graphqlPosts++
			c.MustDo(t, query, vars, out)
		}
		scrapes := 0
		scrapeOK := func() map[string]*dto.MetricFamily {
			t.Helper()
			scrapes++
			code, fams := scrape(t, srv.URL, readKey)
			if code != http.StatusOK {
				t.Fatalf("GET /metrics with a READ key: %d", code)
			}
			return fams
		}

		// /metrics on the main listener needs a READ or ADMIN key.
		if code, _ := scrape(t, srv.URL, ""); code != http.StatusUnauthorized {
			t.Errorf("GET /metrics without a key: %d, want 401", code)
		}
		if code, _ := scrape(t, srv.URL, writeKey); code != http.StatusForbidden {
			t.Errorf("GET /metrics with a WRITE key: %d, want 403", code)
		}

		// An EVENT_TRIGGERED segment with an ACTIVE campaign (2 posts).
		graphqlPosts += 2
		seedSignUp(t, c)
		var static struct{ CreateSegment struct{ ID string } }
		do(`mutation { createSegment(input: {name: "Imported", kind: STATIC}) { id } }`, nil, &static)
		staticID := static.CreateSegment.ID

		// A live subscriber of the static segment, from now on. The
		// protocol has no subscribe ack: manual entries probe until the
		// first one arrives.
		ws := srv.DialWS(t, readKey, testenv.TransportWS)
		ws.Subscribe(t, "chg", `subscription($s: ID) { membershipChanged(segmentId: $s) { kind user { userId } } }`, map[string]any{"s": staticID})
		// On PostgreSQL a transaction held open anywhere on the cluster
		// (another test's) holds live delivery back: probe for a minute.
		received, probes := 0, 0
		for start := time.Now(); received == 0; {
			if time.Since(start) > time.Minute {
				t.Fatalf("the subscriber received none of %d entries in a minute", probes)
			}
			do(`mutation($s: ID!, $u: [String!]!) { addUsersToSegment(segmentId: $s, userIds: $u) { added } }`,
				map[string]any{"s": staticID, "u": []string{fmt.Sprintf("probe-%d", probes)}}, nil)
			probes++
			select {
			case m, ok := <-ws.Messages:
				if !ok {
					t.Fatal("the websocket closed")
				}
				if m.Type == "next" {
					received++
				}
			case <-time.After(200 * time.Millisecond):
			}
		}

		// N events over GraphQL, then the first one again.
		const n = 7
		inputs := make([]map[string]any, n)
		for i := range inputs {
			inputs[i] = map[string]any{"event": "Sign Up", "userId": fmt.Sprintf("u-%d", i), "messageId": fmt.Sprintf("m-%d", i),
				"traits": map[string]any{"Channel": "Facebook", "password": "hunter2-secret"}}
		}
		do(`mutation($in: [TrackInput!]!) { trackEvents(inputs: $in) { accepted duplicates } }`, map[string]any{"in": inputs}, nil)
		do(`mutation($in: TrackInput!) { trackEvent(input: $in) { duplicate } }`, map[string]any{"in": inputs[0]}, nil)

		// V messages over /v1: tracks and an identify, in one batch.
		const v = 4
		batch := []map[string]any{{"type": "identify", "userId": "v-id", "messageId": "v-identify", "traits": map[string]any{"plan": "pro"}}}
		for i := range v {
			batch = append(batch, map[string]any{"type": "track", "event": "Page Viewed", "userId": fmt.Sprintf("v-%d", i), "messageId": fmt.Sprintf("v-%d", i)})
		}
		sendV1(t, srv, writeKey, "batch", map[string]any{"batch": batch})

		// An import of K rows into the static segment, plus a repeated ID
		// and a malformed row.
		const k = 5
		var csv strings.Builder
		for i := range k {
			fmt.Fprintf(&csv, "imp-%d\n", i)
		}
		csv.WriteString("imp-0\na,b\n")
		graphqlPosts++
		r := c.Upload(t, `mutation($s: ID!, $f: Upload!) { importSegmentUsers(segmentId: $s, file: $f) { id } }`,
			map[string]any{"s": staticID}, "f", "users.csv", strings.NewReader(csv.String()))
		if len(r.Errors) > 0 {
			t.Fatalf("import: %+v", r.Errors)
		}
		var job struct{ ImportSegmentUsers struct{ ID string } }
		if err := json.Unmarshal(r.Data, &job); err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(30 * time.Second); ; {
			var st struct {
				ImportJob struct{ Status, Failure string }
			}
			do(`query($id: ID!) { importJob(id: $id) { status failure } }`, map[string]any{"id": job.ImportSegmentUsers.ID}, &st)
			if st.ImportJob.Status == "SUCCEEDED" {
				break
			}
			if st.ImportJob.Status == "FAILED" || time.Now().After(deadline) {
				t.Fatalf("import: %+v", st.ImportJob)
			}
			time.Sleep(20 * time.Millisecond)
		}
		// The subscriber gets the K imported entries (and any probe that
		// was delivered after the first).
		imported := 0
		for deadline := time.After(time.Minute); imported < k; {
			select {
			case m, ok := <-ws.Messages:
				if !ok {
					t.Fatal("the websocket closed")
				}
				if m.Type != "next" {
					continue
				}
				received++
				if strings.Contains(string(m.Payload), `"imp-`) {
					imported++
				}
			case <-deadline:
				t.Fatalf("the subscriber got %d of the %d imported entries", imported, k)
			}
		}
		ws.Quiet(t, 300*time.Millisecond)
		for len(ws.Messages) > 0 {
			if m := <-ws.Messages; m.Type == "next" {
				received++
			}
		}

		check := func(fams map[string]*dto.MetricFamily, wants []want) []string {
			var bad []string
			for _, w := range wants {
				if got := sample(fams, w.name, w.labels); got != w.value {
					bad = append(bad, fmt.Sprintf("%s%v = %g, want %g\n    %s", w.name, w.labels, got, w.value, series(fams, w.name)))
				}
			}
			return bad
		}
		wants := []want{
			{"segmentd_events_ingested_total", l("type", "track", "transport", "graphql"), n},
			{"segmentd_events_ingested_total", l("type", "track", "transport", "v1"), v},
			{"segmentd_events_ingested_total", l("type", "identify", "transport", "v1"), 1},
			{"segmentd_events_duplicate_total", l("transport", "graphql"), 1},
			{"segmentd_events_duplicate_total", l("transport", "v1"), 0},
			{"segmentd_membership_changes_total", l("kind", "ENTERED", "source", "EVENT"), n},
			{"segmentd_membership_changes_total", l("kind", "ENTERED", "source", "MANUAL"), float64(probes)},
			{"segmentd_membership_changes_total", l("kind", "ENTERED", "source", "IMPORT"), k},
			{"segmentd_membership_changes_total", l("kind", "EXITED", "source", "IMPORT"), 0},
			{"segmentd_campaign_activations_total", nil, n},
			{"segmentd_import_rows_total", l("result", "valid"), k},
			{"segmentd_import_rows_total", l("result", "duplicate"), 1},
			{"segmentd_import_rows_total", l("result", "invalid"), 1},
			{"segmentd_live_subscriptions", l("subscription", "membershipChanged"), 1},
			{"segmentd_live_delivery_lag_seconds", nil, float64(received)},
			{"segmentd_http_request_duration_seconds", l("route", "/v1/{type}"), 1},
		}
		// The import's counts follow its commit by a moment: poll until
		// they match (or the deadline), then every value must be exact.
		var fams map[string]*dto.MetricFamily
		var bad []string
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			fams = scrapeOK()
			if bad = check(fams, wants); len(bad) == 0 || time.Now().After(deadline) {
				break
			}
		}
		if len(bad) > 0 {
			t.Errorf("after the workload:\n  %s", strings.Join(bad, "\n  "))
		}
		// HTTP requests by route template: every GraphQL POST, the /v1
		// batch, the scrapes before this one and the two refused ones.
		httpWants := []want{
			{"segmentd_http_requests_total", l("route", "/graphql", "code", "200"), float64(graphqlPosts)},
			{"segmentd_http_request_duration_seconds", l("route", "/graphql"), float64(graphqlPosts)},
			{"segmentd_http_requests_total", l("route", "/v1/{type}", "code", "200"), 1},
			{"segmentd_http_requests_total", l("route", "/metrics", "code", "200"), float64(scrapes - 1)},
			{"segmentd_http_requests_total", l("route", "/metrics", "code", "401"), 1},
			{"segmentd_http_requests_total", l("route", "/metrics", "code", "403"), 1},
		}
		if bad := check(fams, httpWants); len(bad) > 0 {
			t.Errorf("HTTP requests:\n  %s", strings.Join(bad, "\n  "))
		}
		// The Go and process collectors.
		for _, name := range []string{"go_goroutines", "go_memstats_alloc_bytes", "process_cpu_seconds_total", "process_resident_memory_bytes"} {
			if fams[name] == nil {
				t.Errorf("no %s in /metrics", name)
			}
		}
		// No label value names a user, a segment, a key or a trait.
		for name, f := range fams {
			for _, m := range f.GetMetric() {
				for _, lb := range m.GetLabel() {
					for _, leak := range []string{"u-", "v-", "imp-", "probe-", "seg_", "key_", "sgd_", "Facebook", "hunter2", "Sign Up"} {
						if strings.Contains(lb.GetValue(), leak) {
							t.Errorf("%s has the label %s=%q", name, lb.GetName(), lb.GetValue())
						}
					}
				}
			}
		}

		// Closing the websocket ends its subscription and counts it as a
		// request (101) when it closes.
		ws.Conn.Close()
		closed := []want{
			{"segmentd_live_subscriptions", l("subscription", "membershipChanged"), 0},
			{"segmentd_http_requests_total", l("route", "/graphql", "code", "101"), 1},
		}
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			if bad = check(scrapeOK(), closed); len(bad) == 0 || time.Now().After(deadline) {
				break
			}
		}
		if len(bad) > 0 {
			t.Errorf("after the websocket closed:\n  %s", strings.Join(bad, "\n  "))
		}
	})
}

// With --metrics-addr, /metrics is served there to anyone who reaches it,
// and no longer on the main listener.
func TestMetricsOnTheirOwnListener(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL, func(c *server.Config) { c.MetricsAddr = "127.0.0.1:0" })
		if srv.MetricsAddr() == "" {
			t.Fatal("no metrics listener")
		}
		c := srv.Admin()
		c.MustDo(t, `mutation { trackEvent(input: {event: "Opened", userId: "u-1"}) { duplicate } }`, nil, nil)
		code, fams := scrape(t, "http://"+srv.MetricsAddr(), "")
		if code != http.StatusOK {
			t.Fatalf("GET /metrics on the metrics listener without a key: %d", code)
		}
		if got := sample(fams, "segmentd_events_ingested_total", l("type", "track", "transport", "graphql")); got != 1 {
			t.Errorf("events ingested: %g, want 1\n%s", got, series(fams, "segmentd_events_ingested_total"))
		}
		if code, _ := scrape(t, srv.URL, testenv.AdminKey); code != http.StatusNotFound {
			t.Errorf("GET /metrics on the main listener with --metrics-addr set: %d, want 404", code)
		}
	})
}
