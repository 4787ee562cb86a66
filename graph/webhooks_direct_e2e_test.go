package graph_test

// Deliveries sent straight from the log (nothing of the endpoint pending)
// keep the claim path's promises: a receiver that fails midway through a
// page gets the failed message again, with the same webhook-id, before
// any later one, and every message arrives; a slow endpoint delays no
// other.

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentd/segmentd/changelog"
	"github.com/segmentd/segmentd/internal/testenv"
)

// cursorOf reads the log position a webhook-id (mc_TX.SEQ) names.
func cursorOf(t *testing.T, id string) changelog.Cursor {
	t.Helper()
	c, err := changelog.ParseCursor(strings.TrimPrefix(id, "mc_"))
	if err != nil {
		t.Fatalf("webhook-id %q: %v", id, err)
	}
	return c
}

func TestWebhookDirectSendsThroughAFailureInOrder(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := startHooks(t, dbURL)
		admin := srv.Admin()
		seg := ingCreateSegment(t, admin, map[string]any{"name": "Static", "kind": "STATIC"})
		// Requests 7, 8 and 9 fail: the 8th message, in the middle of the
		// second page of 5, is refused three times (within the schedule
		// of three retries), then accepted.
		rc := newReceiver(t, func(n int, _ hookReq) (int, map[string]string, time.Duration) {
			if n >= 7 && n < 10 {
				return 500, nil, 0
			}
			return 204, nil, 0
		})
		ep, _ := createHook(t, admin, map[string]any{"url": rc.URL, "topics": []string{"MEMBERSHIP_ENTERED"}})
		const rounds, per = 6, 5
		want := map[string]bool{}
		for r := range rounds {
			users := make([]string, per)
			for i := range users {
				users[i] = fmt.Sprintf("u-%d-%d", r, i)
				want[users[i]] = true
			}
			addUsers(t, admin, seg, users...)
			// Each call one commit, read (mostly) as a page of its own.
			time.Sleep(150 * time.Millisecond)
		}
		reqs := rc.waitFor(t, rounds*per+3)
		rc.quiet(t, rounds*per+3, 300*time.Millisecond)

		// In log order: a request never carries a message before one
		// already sent (retries repeat it; nothing is sent twice after).
		userOf := map[string]string{}
		for i, r := range reqs {
			u := r.body(t).Data.User.UserID
			if prev, ok := userOf[r.ID]; ok && prev != u {
				t.Fatalf("webhook-id %s carried %s, then %s", r.ID, prev, u)
			}
			userOf[r.ID] = u
			if i > 0 && cursorOf(t, r.ID).Less(cursorOf(t, reqs[i-1].ID)) {
				t.Errorf("request %d (%s, %s) went after %s: out of log order", i, r.ID, u, reqs[i-1].ID)
			}
		}
		for i := 7; i <= 10; i++ {
			if reqs[i].ID != reqs[7].ID {
				t.Errorf("request %d has webhook-id %s; the failed message's is %s", i, reqs[i].ID, reqs[7].ID)
			}
		}
		for _, u := range userOf {
			delete(want, u)
		}
		if len(want) > 0 {
			t.Errorf("never delivered: %v", want)
		}
		ds := waitDeliveries(t, admin, ep.ID, "all delivered", func(ds []hookDelivery) bool {
			if len(ds) != rounds*per {
				return false
			}
			for _, d := range ds {
				if d.Status != "DELIVERED" {
					return false
				}
			}
			return true
		})
		for _, d := range ds {
			wantAttempts := 1
			if d.WebhookID == reqs[7].ID {
				wantAttempts = 4
			}
			if d.Attempts != wantAttempts || d.LastStatusCode == nil || *d.LastStatusCode != 204 || d.LastError != nil || d.DeliveredAt == nil {
				t.Errorf("delivery %s: attempts %d (want %d), status %v, error %v, delivered at %v",
					d.WebhookID, d.Attempts, wantAttempts, d.LastStatusCode, d.LastError, d.DeliveredAt)
			}
		}
		fams := scrapeMetrics(t, srv)
		for status, want := range map[string]float64{"PENDING": 3, "DELIVERED": rounds * per, "FAILED": 0} {
			if got := webhookAttempts(fams, status); got != want {
				t.Errorf("segmentd_webhook_deliveries_total{status=%q} = %v, want %v", status, got, want)
			}
		}
	})
}

func TestWebhookSlowEndpointDelaysNoOther(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := startHooks(t, dbURL)
		admin := srv.Admin()
		seg := ingCreateSegment(t, admin, map[string]any{"name": "Static", "kind": "STATIC"})
		var slowGot atomic.Int32
		slow := newReceiver(t, func(int, hookReq) (int, map[string]string, time.Duration) {
			slowGot.Add(1)
			return 204, nil, 1500 * time.Millisecond // under the 2 s timeout
		})
		fast := newReceiver(t, nil)
		createHook(t, admin, map[string]any{"url": slow.URL, "topics": []string{"MEMBERSHIP_ENTERED"}})
		createHook(t, admin, map[string]any{"url": fast.URL, "topics": []string{"MEMBERSHIP_ENTERED"}})
		addUsers(t, admin, seg, "a")
		slow.waitFor(t, 1) // the slow one is busy with a's
		start := time.Now()
		addUsers(t, admin, seg, "b", "c")
		got := fast.waitFor(t, 3)
		if took := time.Since(start); took > time.Second {
			t.Errorf("the fast endpoint had b and c %s after they entered, while the slow one was answering", took)
		}
		for i, u := range []string{"a", "b", "c"} {
			if got[i].body(t).Data.User.UserID != u {
				t.Errorf("fast endpoint, request %d: %s; want %s", i, got[i].body(t).Data.User.UserID, u)
			}
		}
		slow.waitFor(t, 3)
		if n := slowGot.Load(); n != 3 {
			t.Errorf("the slow endpoint had %d requests; want 3", n)
		}
	})
}
