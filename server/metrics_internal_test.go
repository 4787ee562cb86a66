package server

import (
	"net/http/httptest"
	"strings"
	"testing"
)

// The webhook metrics are out of the exposition until webhooks count
// them, and then a call each brings them in.
func TestWebhookMetricsAppearWhenCounted(t *testing.T) {
	m := newMetrics()
	body := func() string {
		rec := httptest.NewRecorder()
		m.handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		return rec.Body.String()
	}
	if b := body(); strings.Contains(b, "segmentd_webhook") {
		t.Fatalf("webhook metrics before any webhook:\n%s", b)
	}
	m.WebhookDeliveries("DELIVERED", 2)
	m.WebhookBacklog(3)
	b := body()
	for _, want := range []string{`segmentd_webhook_deliveries_total{status="DELIVERED"} 2`, "segmentd_webhook_backlog 3"} {
		if !strings.Contains(b, want) {
			t.Errorf("no %q in:\n%s", want, b)
		}
	}
}
