package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/segmentd/segmentd/auth"
	"github.com/segmentd/segmentd/internal/testenv"
)

// interopSummary is what interop/test.mjs prints.
type interopSummary struct {
	Run     string
	Segment *sdkRun
	Rudder  *sdkRun
	Replay  map[string]struct {
		Status int
		Body   string
	}
	Subscription struct {
		Entries []struct {
			Cursor, Kind, Source, SegmentID, UserID string
			MessageID                               *string
			Event                                   *string
		}
		Expected []string
	}
	Query struct {
		Status     int
		TotalUsers int
		TotalCount int
		Members    []struct {
			UserID string
			Source string
			Traits map[string]any
		}
	}
	Errors []string
}

type sdkRun struct {
	SDK   string
	Users struct{ Identified, Context, Google, Anonymous string }
	// Requests are the SDK's HTTP requests, as it sent them.
	Requests []struct {
		URL   string
		Bytes int
		Gzip  bool
	}
	Statuses []int
	Messages []struct {
		Type        string
		UserID      *string
		AnonymousID *string
		MessageID   string
		Event       *string
		Traits      map[string]any
	}
}

// interopDir is the Node project, or "" (and the test is skipped) when its
// modules are not installed, unless SEGMENTD_TEST_REQUIRE_NODE=1 (as in CI).
func interopDir(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "interop")) // go test runs in the package's folder
	if err != nil {
		t.Fatal(err)
	}
	missing := func(why string) {
		if os.Getenv("SEGMENTD_TEST_REQUIRE_NODE") == "1" {
			t.Fatalf("the Node interop test is required (SEGMENTD_TEST_REQUIRE_NODE=1), but %s", why)
		}
		t.Skipf("skipping the Node interop test: %s (run `npm ci --prefix interop`; set SEGMENTD_TEST_REQUIRE_NODE=1 to make this a failure)", why)
	}
	if _, err := exec.LookPath("node"); err != nil {
		missing("node is not on PATH")
	}
	for _, pkg := range []string{"@segment/analytics-node", "@apollo/client", "@urql/core", "graphql-request"} {
		if _, err := os.Stat(filepath.Join(dir, "node_modules", pkg)); err != nil {
			missing(dir + "/node_modules is not installed (or is missing " + pkg + ")")
		}
	}
	return dir
}

// TestInteropNodeSDKs points the unmodified @segment/analytics-node and
// @rudderstack/rudder-sdk-node at a running segmentd, follows the segment
// with the graphql-ws client and reads it with fetch (interop/test.mjs),
// then checks in the database that exactly the matching users of both SDKs
// entered the segment and activated its campaign, identify's traits landed,
// every message the SDKs sent is one event with the SDK's messageId (a
// replayed batch added nothing), and the subscription saw each entry.
func TestInteropNodeSDKs(t *testing.T) {
	dir := interopDir(t)
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL)
		admin := srv.Admin()
		segID, campID := seedSignUp(t, admin)
		writeKey := newKey(t, srv, "node sdks", auth.RoleWrite)
		readKey := newKey(t, srv, "node dashboard", auth.RoleRead)

		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "node", "test.mjs")
		cmd.Dir = dir
		run := "it-" + filepath.Base(t.Name())
		cmd.Env = append(os.Environ(),
			"SEGMENTD_URL="+srv.URL, "SEGMENTD_KEY="+writeKey, "SEGMENTD_READ_KEY="+readKey,
			"SEGMENTD_SEGMENT_ID="+segID, "SEGMENTD_RUN_ID="+run)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		start := time.Now()
		err := cmd.Run()
		t.Logf("node test.mjs ran %v", time.Since(start).Round(time.Millisecond))
		var sum interopSummary
		if jerr := json.Unmarshal(stdout.Bytes(), &sum); jerr != nil {
			t.Fatalf("node test.mjs: %v; stdout is not the JSON summary (%v):\n%s\nstderr:\n%s", err, jerr, stdout.String(), stderr.String())
		}
		var exit *exec.ExitError
		if err != nil || len(sum.Errors) > 0 {
			if errors.As(err, &exit) || err == nil {
				t.Fatalf("node test.mjs failed (%v):\n%s\nstderr:\n%s", err, strings.Join(sum.Errors, "\n"), stderr.String())
			}
			t.Fatalf("node test.mjs: %v", err)
		}
		if sum.Segment == nil || sum.Rudder == nil {
			t.Fatalf("summary without both SDKs: %s", stdout.String())
		}

		// Both SDKs posted gzip or plain JSON batches to /v1/batch, all 200.
		for _, s := range []*sdkRun{sum.Segment, sum.Rudder} {
			if len(s.Requests) == 0 || len(s.Statuses) != len(s.Requests) {
				t.Errorf("%s: %d requests, statuses %v", s.SDK, len(s.Requests), s.Statuses)
			}
			for _, r := range s.Requests {
				if r.URL != srv.URL+"/v1/batch" {
					t.Errorf("%s posted to %s", s.SDK, r.URL)
				}
			}
			for _, st := range s.Statuses {
				if st != 200 {
					t.Errorf("%s: status %d", s.SDK, st)
				}
			}
		}
		if !sum.Rudder.Requests[0].Gzip {
			t.Errorf("the RudderStack SDK did not gzip: the test no longer covers gzip bodies")
		}

		// Exactly the Facebook users of both SDKs are members, by event.
		want := map[string]bool{}
		for _, s := range []*sdkRun{sum.Segment, sum.Rudder} {
			want[s.Users.Identified] = true
			want[s.Users.Context] = true
		}
		if got := members(t, admin, segID); !mapsEqual(got, want) {
			t.Errorf("members %v, want %v", keys(got), keys(want))
		}
		if n := activationCount(t, admin, campID); n != len(want) {
			t.Errorf("campaign activations %d, want %d", n, len(want))
		}

		// identify's traits landed on the users.
		for _, s := range []*sdkRun{sum.Segment, sum.Rudder} {
			tr := userTraits(t, admin, s.Users.Identified)
			if tr["Channel"] != "Facebook" || tr["plan"] != "pro" || tr["email"] != s.Users.Identified+"@example.com" {
				t.Errorf("%s: traits of %s: %v", s.SDK, s.Users.Identified, tr)
			}
			if tr := userTraits(t, admin, s.Users.Google); tr["Channel"] != "Google" || tr["plan"] != "free" {
				t.Errorf("%s: traits of %s: %v", s.SDK, s.Users.Google, tr)
			}
			if tr := userTraits(t, admin, s.Users.Context); tr["Channel"] != "Facebook" {
				t.Errorf("%s: context.traits of %s did not land: %v", s.SDK, s.Users.Context, tr)
			}
		}

		// Every message is one event, with the SDK's own messageId; the
		// replayed batches were duplicates.
		for name, r := range sum.Replay {
			if r.Status != 200 || r.Body != `{"success":true}` {
				t.Errorf("replay of a %s batch: %d %s", name, r.Status, r.Body)
			}
		}
		sent := map[string]bool{}
		for _, s := range []*sdkRun{sum.Segment, sum.Rudder} {
			types := map[string]int{}
			for _, m := range s.Messages {
				types[m.Type]++
				if sent[m.MessageID] {
					t.Errorf("%s sent messageId %s twice", s.SDK, m.MessageID)
				}
				sent[m.MessageID] = true
				ev := eventByMessageID(t, admin, m.MessageID)
				if ev.Type != strings.ToUpper(m.Type) || deref(ev.UserID) != deref(m.UserID) || deref(ev.AnonymousID) != deref(m.AnonymousID) {
					t.Errorf("%s: message %s (%s %s/%s) stored as %s %s/%s", s.SDK, m.MessageID, m.Type,
						deref(m.UserID), deref(m.AnonymousID), ev.Type, deref(ev.UserID), deref(ev.AnonymousID))
				}
				if m.Type != "identify" && deref(ev.Name) != deref(m.Event) {
					t.Errorf("%s: message %s named %q, stored %q", s.SDK, m.MessageID, deref(m.Event), deref(ev.Name))
				}
				if d := time.Since(ev.Timestamp); d < -5*time.Second || d > 2*time.Minute {
					t.Errorf("%s: message %s timestamp %v is not about now", s.SDK, m.MessageID, ev.Timestamp)
				}
			}
			if types["identify"] != 2 || types["track"] != 4 || types["page"] != 1 {
				t.Errorf("%s sent %v, want 2 identify, 4 track, 1 page", s.SDK, types)
			}
		}
		stored := eventsWhere(t, admin, map[string]any{"or": []any{
			map[string]any{"userIDHasPrefix": run},
			map[string]any{"anonymousIDHasPrefix": run},
		}})
		if len(stored) != len(sent) {
			t.Errorf("%d events stored for this run, %d distinct messages sent: replays were not duplicates", len(stored), len(sent))
		}
		for _, ev := range stored {
			if !sent[ev.MessageID] {
				t.Errorf("event %s (%s) was not sent by an SDK", ev.MessageID, ev.Type)
			}
		}

		// The graphql-ws client saw each entry once, with its event.
		seen := map[string]int{}
		for _, e := range sum.Subscription.Entries {
			seen[e.UserID]++
			if e.Kind != "ENTERED" || e.Source != "EVENT" || e.SegmentID != segID || e.MessageID == nil || !sent[*e.MessageID] || deref(e.Event) != "Sign Up" {
				t.Errorf("subscription entry %+v", e)
			}
		}
		for u := range want {
			if seen[u] != 1 {
				t.Errorf("the subscription saw %s enter %d times, want once", u, seen[u])
			}
		}
		if len(seen) != len(want) {
			t.Errorf("the subscription saw %v, want %v", keys(seen), keys(want))
		}

		// And the plain fetch read the same segment.
		got := map[string]bool{}
		for _, m := range sum.Query.Members {
			got[m.UserID] = true
		}
		if sum.Query.Status != 200 || sum.Query.TotalCount != len(want) || sum.Query.TotalUsers != len(want) || !mapsEqual(got, want) {
			t.Errorf("fetch query: status %d, totalCount %d, totalUsers %d, members %v; want %v",
				sum.Query.Status, sum.Query.TotalCount, sum.Query.TotalUsers, keys(got), keys(want))
		}
	})
}

func mapsEqual[V comparable](a map[string]V, b map[string]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
