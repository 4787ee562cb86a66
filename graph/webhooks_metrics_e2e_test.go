package graph_test

import (
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/segmentd/segmentd/internal/testenv"
	"github.com/segmentd/segmentd/server"
)

// webhookBacklog is segmentd_webhook_backlog, or -1 when the series is
// absent.
func webhookBacklog(fams map[string]*dto.MetricFamily) float64 {
	for _, m := range fams["segmentd_webhook_backlog"].GetMetric() {
		return m.GetGauge().GetValue()
	}
	return -1
}

// waitBacklog scrapes /metrics until segmentd_webhook_backlog is want.
func waitBacklog(t *testing.T, srv *testenv.Server, want float64) {
	t.Helper()
	deadline := time.Now().Add(hookWait)
	for {
		got := webhookBacklog(scrapeMetrics(t, srv))
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("segmentd_webhook_backlog = %v after %s, want %v", got, hookWait, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestWebhookBacklogGauge: /metrics says how many deliveries wait. Three
// entries wait while the receiver answers 500 (retried every 200 ms), the
// gauge says 3; once it answers 204 they are delivered and it says 0.
func TestWebhookBacklogGauge(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := startHooks(t, dbURL, func(c *server.Config) {
			c.WebhookSchedule = make([]time.Duration, 50)
			for i := range c.WebhookSchedule {
				c.WebhookSchedule[i] = 200 * time.Millisecond
			}
		})
		admin := srv.Admin()
		var down atomic.Bool
		down.Store(true)
		rc := newReceiver(t, func(int, hookReq) (int, map[string]string, time.Duration) {
			if down.Load() {
				return 500, nil, 0
			}
			return 204, nil, 0
		})
		seg := ingCreateSegment(t, admin, map[string]any{"name": "Static", "kind": "STATIC"})
		createHook(t, admin, map[string]any{"url": rc.URL, "topics": []string{"MEMBERSHIP_ENTERED"}})
		addUsers(t, admin, seg, "a", "b", "c")
		waitBacklog(t, srv, 3)
		down.Store(false)
		waitBacklog(t, srv, 0)
		ok := map[string]bool{}
		for _, r := range rc.all() {
			ok[r.ID] = true
		}
		if len(ok) != 3 {
			t.Errorf("%d distinct messages arrived, want 3", len(ok))
		}
	})
}
