package server

import (
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/segmentd/segmentd/changelog"
	"github.com/segmentd/segmentd/ent/event"
	"github.com/segmentd/segmentd/service"
)

// metrics are the server's Prometheus metrics, on a registry of its own
// (tests run many servers in one process). Every label value comes from a
// fixed set: route templates, status codes, event types, transports,
// change kinds and sources, subscription fields, import results. None
// carries user data (no IDs, names, keys or traits).
//
// The webhook deliveries are counted by the webhook package through
// webhook.Config.Metrics, after each attempt's record commits, and it sets
// the backlog every second (the PENDING deliveries in the store). Another
// metric is one line here with a helper (counterVec, gaugeFunc), e.g.
//
//	m.x = m.counterVec("segmentd_x_total", "What it counts.", "label")
//
// and, if the service counts it, a method on service.Metrics.
type metrics struct {
	reg *prometheus.Registry

	eventsIngested    *prometheus.CounterVec
	eventsDuplicate   *prometheus.CounterVec
	membershipChanges *prometheus.CounterVec
	activations       prometheus.Counter
	httpRequests      *prometheus.CounterVec
	httpDuration      *prometheus.HistogramVec
	subscriptions     *prometheus.GaugeVec
	deliveryLag       prometheus.Histogram
	importRows        *prometheus.CounterVec
	webhookDeliveries *prometheus.CounterVec
	// webhookBacklog has no labels; as a vector it stays out of the
	// exposition until the webhook package first sets it (a second after
	// start), rather than saying 0 before anyone counted.
	webhookBacklog *prometheus.GaugeVec
}

var _ service.Metrics = (*metrics)(nil)

func newMetrics() *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	m.eventsIngested = m.counterVec("segmentd_events_ingested_total",
		"Events stored, by event type (track, identify, page, screen, group, alias) and transport (graphql, v1).", "type", "transport")
	m.eventsDuplicate = m.counterVec("segmentd_events_duplicate_total",
		"Messages that repeated a stored messageId (or one earlier in their batch) and stored nothing, by transport.", "transport")
	m.membershipChanges = m.counterVec("segmentd_membership_changes_total",
		"Membership changes committed by this process, by kind (ENTERED, EXITED) and source (EVENT, MANUAL, IMPORT, BACKFILL, TRAITS, TIME, ERASURE).", "kind", "source")
	m.activations = prometheus.NewCounter(prometheus.CounterOpts{Name: "segmentd_campaign_activations_total",
		Help: "Campaign activations committed by this process."})
	m.httpRequests = m.counterVec("segmentd_http_requests_total",
		"HTTP requests, by route template and status code (websockets: 101, counted when they close).", "route", "code")
	m.httpDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "segmentd_http_request_duration_seconds",
		Help:    "Time to answer an HTTP request, by route template (websockets are not timed).",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}}, []string{"route"})
	m.subscriptions = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "segmentd_live_subscriptions",
		Help: "Open GraphQL subscriptions, by subscription field."}, []string{"subscription"})
	m.deliveryLag = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "segmentd_live_delivery_lag_seconds",
		Help:    "Time from a membership change to its hand-off to a membershipChanged subscriber (live, not replayed).",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}})
	m.importRows = m.counterVec("segmentd_import_rows_total",
		"Rows of finished imports' files (dry runs too), by result: valid (a distinct user ID), duplicate (an ID repeated in the file), invalid.", "result")
	m.webhookDeliveries = m.counterVec("segmentd_webhook_deliveries_total",
		"Webhook delivery attempts, by how they ended: DELIVERED, FAILED, or PENDING (to be retried).", "status")
	m.webhookBacklog = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "segmentd_webhook_backlog",
		Help: "Webhook deliveries waiting to be attempted."}, nil)
	m.reg.MustRegister(m.activations, m.httpDuration, m.subscriptions, m.deliveryLag, m.webhookBacklog)
	return m
}

// counterVec declares and registers a counter with labels.
func (m *metrics) counterVec(name, help string, labels ...string) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	m.reg.MustRegister(c)
	return c
}

// gaugeFunc declares and registers a gauge read at each scrape.
func (m *metrics) gaugeFunc(name, help string, f func() float64) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f))
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

func (m *metrics) MembershipChanges(kind changelog.Kind, source changelog.Source, n int) {
	m.membershipChanges.WithLabelValues(string(kind), string(source)).Add(float64(n))
}

func (m *metrics) Activations(n int) { m.activations.Add(float64(n)) }

func (m *metrics) EventsIngested(transport string, typ event.Type, n int) {
	m.eventsIngested.WithLabelValues(strings.ToLower(string(typ)), transport).Add(float64(n))
}

func (m *metrics) EventsDuplicate(transport string, n int) {
	m.eventsDuplicate.WithLabelValues(transport).Add(float64(n))
}

func (m *metrics) ImportRows(result string, n int) {
	m.importRows.WithLabelValues(result).Add(float64(n))
}

func (m *metrics) DeliveryLag(d time.Duration) { m.deliveryLag.Observe(d.Seconds()) }

func (m *metrics) WebhookDeliveries(status string, n int) {
	m.webhookDeliveries.WithLabelValues(status).Add(float64(n))
}

func (m *metrics) WebhookBacklog(n int) { m.webhookBacklog.WithLabelValues().Set(float64(n)) }
