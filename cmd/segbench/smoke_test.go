package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/segmentd/segmentd/internal/testenv"
	segserver "github.com/segmentd/segmentd/server"
)

// TestSeedSmoke runs the seed scenario, tiny, against a real server on each
// store: every transport's events are acknowledged, every entry reaches the
// subscriber, and both baselines (the raw INSERT into a copy of the events
// table, and { __typename }) are measured beside them.
func TestSeedSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("drives a server")
	}
	progress = io.Discard
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL, func(c *segserver.Config) { c.RateLimit = -1 })
		// The subscriber may wait long: on PostgreSQL live delivery waits
		// for the cluster's oldest transaction, which another package's
		// test may hold for a while.
		c := config{scenario: "seed", batch: 20, workers: 2, events: 100, duration: 20 * time.Second, subWait: 3 * time.Minute}
		tg := &target{url: srv.URL, key: testenv.AdminKey, writeKey: testenv.AdminKey, databaseURL: dbURL}
		var tb table
		if err := seed(context.Background(), c, tg, &tb); err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		tb.print(&b, true)
		out := b.String()
		t.Log("\n" + out)
		for _, tr := range []string{"trackEvents", "trackEvent", "v1batch"} {
			var rows []row
			for _, r := range tb.rows {
				if r.scenario == "seed · "+tr {
					rows = append(rows, r)
				}
			}
			figures := map[string]row{}
			for _, r := range rows {
				figures[r.figure] = r
			}
			per := 20
			if tr == "trackEvent" {
				per = 1
			}
			if r := figures["errors"]; !strings.HasPrefix(r.value, "0 of ") {
				t.Errorf("%s: errors %q", tr, r.value)
			}
			if r := figures["event→subscriber p50 / p95 / p99"]; r.baseline != "50 of 50 entries received" {
				t.Errorf("%s: subscriber %q, want 50 of 50 entries received", tr, r.baseline)
			}
			ev := figures["events/s ("+tr+", "+itoa(per)+" per request)"]
			if !strings.HasPrefix(ev.baseline, "raw INSERT") || !strings.HasSuffix(ev.ratio, "×") {
				t.Errorf("%s: events/s row %+v: want a raw INSERT baseline and a ratio", tr, ev)
			}
		}
		if !strings.Contains(out, "| seed · baseline | GraphQL { __typename } round trips |") {
			t.Errorf("no { __typename } baseline row")
		}
	})
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

// TestImportAvailability: segbench finds importSegmentUsers in a server's
// schema exactly when schema.graphqls declares it.
func TestImportAvailability(t *testing.T) {
	schema, err := os.ReadFile("../../schema.graphqls")
	if err != nil {
		t.Fatal(err)
	}
	srv := testenv.StartServer(t, testenv.DatabaseURL(t, "sqlite"))
	tg := &target{url: srv.URL, key: testenv.AdminKey}
	got, err := hasMutation(context.Background(), tg, "importSegmentUsers")
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.Contains(string(schema), "importSegmentUsers("); got != want {
		t.Fatalf("hasMutation = %v, schema.graphqls declares it: %v", got, want)
	}
}

// TestUploadMultipart: the import request follows the GraphQL multipart
// request spec: operations (with the file variable null), map, and the
// file as part 0.
func TestUploadMultipart(t *testing.T) {
	var ops struct {
		Query     string
		Variables map[string]any
	}
	var mapping map[string][]string
	var file string
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mr, err := r.MultipartReader()
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		var order []string
		for {
			p, err := mr.NextPart()
			if err == io.EOF {
				break
			}
			if err != nil {
				http.Error(w, err.Error(), 400)
				return
			}
			b, _ := io.ReadAll(p)
			order = append(order, p.FormName())
			switch p.FormName() {
			case "operations":
				_ = json.Unmarshal(b, &ops)
			case "map":
				_ = json.Unmarshal(b, &mapping)
			case "0":
				file = string(b)
			}
		}
		if strings.Join(order, ",") != "operations,map,0" {
			http.Error(w, "parts in order "+strings.Join(order, ","), 400)
			return
		}
		_, _ = io.WriteString(w, `{"data":{"importSegmentUsers":{"__typename":"ImportJob"}}}`)
	}))
	defer hs.Close()
	res, err := upload(context.Background(), &target{url: hs.URL, key: "k"}, "seg_1", "ADD", []byte("userId\nu1\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(res, "ImportJob") || file != "userId\nu1\n" || len(mapping["0"]) != 1 || mapping["0"][0] != "variables.f" {
		t.Fatalf("result %s, file %q, map %v", res, file, mapping)
	}
	if v, ok := ops.Variables["f"]; !ok || v != nil || ops.Variables["s"] != "seg_1" ||
		!strings.Contains(ops.Query, "importSegmentUsers(segmentId: $s, file: $f, dryRun: false, mode: ADD)") {
		t.Fatalf("operations %+v", ops)
	}
}

// TestWebhookSmoke runs the webhook scenario, tiny, against a real server
// on each store: every figure is printed, every entry is delivered, and
// the backlog drains whole.
func TestWebhookSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("drives a server")
	}
	progress = io.Discard
	outageRetryAfter = 1
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL, func(c *segserver.Config) { c.RateLimit = -1; c.WebhookAllowPrivate = true })
		c := config{scenario: "webhook", batch: 20, workers: 2, events: 200, duration: time.Second, webhookBacklog: 500}
		tg := &target{url: srv.URL, key: testenv.AdminKey, writeKey: testenv.AdminKey, databaseURL: dbURL}
		var tb table
		if err := webhookScenario(context.Background(), c, tg, &tb); err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		tb.print(&b, true)
		out := b.String()
		t.Log("\n" + out)
		for _, want := range []string{"commit → delivered p50 / p99 at 1000 entries/s", "events/s with an endpoint (3 drives of 1s)",
			"deliveries/s while draining", "500 requests for 500 messages; 0 FAILED"} {
			if !strings.Contains(out, want) {
				t.Errorf("no %q in the table", want)
			}
		}
		if strings.Contains(out, "not all arrived") || strings.Contains(out, "errors (") {
			t.Errorf("deliveries missing or errors")
		}
	})
}

// TestImportLiveSmoke runs the importlive scenario, tiny, against a real
// server on PostgreSQL (the scenario is PostgreSQL's): every drive is
// reported, every entry of the other segment reaches its subscriber, and
// the import succeeds.
func TestImportLiveSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("drives a server")
	}
	progress = io.Discard
	dbURL := testenv.DatabaseURL(t, "postgres")
	srv := testenv.StartServer(t, dbURL, func(c *segserver.Config) { c.RateLimit = -1 })
	c := config{scenario: "importlive", batch: 10, workers: 2, events: 200, duration: time.Second, importRows: 3000}
	tg := &target{url: srv.URL, key: testenv.AdminKey, writeKey: testenv.AdminKey, databaseURL: dbURL}
	var tb table
	if err := importLive(context.Background(), c, tg, &tb); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	tb.print(&b, true)
	out := b.String()
	t.Log("\n" + out)
	for _, want := range []string{"at 1000/s, nothing else running", "at 500/s, during a 3000-row import",
		"at 500/s, right after the 3000-row import committed", "3000 rows, 3000 added"} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in the table", want)
		}
	}
	received := regexp.MustCompile(`(\d+) of (\d+) entries received`).FindAllStringSubmatch(out, -1)
	if len(received) != 4 {
		t.Errorf("%d drives report their entries, want 4", len(received))
	}
	for _, m := range received {
		if m[1] != m[2] || m[1] == "0" {
			t.Errorf("the subscriber of the other segment received %s of %s entries", m[1], m[2])
		}
	}
	for _, m := range regexp.MustCompile(`errors\s+(\d+) of \d+ requests`).FindAllStringSubmatch(out, -1) {
		if m[1] != "0" {
			t.Errorf("%s requests failed", m[1])
		}
	}
}
