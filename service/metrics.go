package service

import (
	"context"
	"time"

	"github.com/segmentd/segmentd/changelog"
	"github.com/segmentd/segmentd/ent/event"
	"github.com/segmentd/segmentd/ledger"
)

// Metrics is told what the service did, after it committed: the server
// counts it for /metrics. Its methods must be cheap and safe for concurrent
// use. Arguments are counts and names from fixed sets (transports, event
// types, kinds, sources, results): never user data.
type Metrics interface {
	ledger.Observer
	// EventsIngested counts n new events of type typ that came in by
	// transport (see WithTransport).
	EventsIngested(transport string, typ event.Type, n int)
	// EventsDuplicate counts n messages that repeated a stored messageId
	// (or one earlier in their batch) and stored nothing.
	EventsDuplicate(transport string, n int)
	// ImportRows counts n rows of a finished import's file with result
	// "valid" (a distinct user ID), "duplicate" (an ID repeated in the
	// file) or "invalid".
	ImportRows(result string, n int)
	// DeliveryLag is the time from a membership change to its hand-off to
	// a live subscriber (one that started without a cursor: replays are
	// not lag).
	DeliveryLag(d time.Duration)
	// WebhookDeliveries counts n webhook delivery attempts that ended
	// with status (DELIVERED, FAILED, or PENDING for one to retry), and
	// WebhookBacklog says how many deliveries wait (PENDING in the
	// store). The webhook package reports both (webhook.Config.Metrics).
	WebhookDeliveries(status string, n int)
	WebhookBacklog(n int)
}

// noMetrics counts nothing.
type noMetrics struct{}

func (noMetrics) MembershipChanges(changelog.Kind, changelog.Source, int) {}
func (noMetrics) Activations(int)                                         {}
func (noMetrics) EventsIngested(string, event.Type, int)                  {}
func (noMetrics) EventsDuplicate(string, int)                             {}
func (noMetrics) ImportRows(string, int)                                  {}
func (noMetrics) DeliveryLag(time.Duration)                               {}
func (noMetrics) WebhookDeliveries(string, int)                           {}
func (noMetrics) WebhookBacklog(int)                                      {}

type transportKey struct{}

// Transport names, for WithTransport.
const (
	TransportGraphQL = "graphql"
	TransportV1      = "v1"
)

// WithTransport says by which transport the events ingested under ctx came
// in (TransportGraphQL, TransportV1), for Metrics.EventsIngested.
func WithTransport(ctx context.Context, name string) context.Context {
	return context.WithValue(ctx, transportKey{}, name)
}

func transportOf(ctx context.Context) string {
	if t, _ := ctx.Value(transportKey{}).(string); t != "" {
		return t
	}
	return "other"
}

// countIngested reports a committed batch to the metrics.
func (s *Service) countIngested(ctx context.Context, evs []*incoming, out *TrackBatchResult) {
	tr := transportOf(ctx)
	if out.Duplicates > 0 {
		s.metrics.EventsDuplicate(tr, out.Duplicates)
	}
	if out.Accepted == 0 {
		return
	}
	var byType map[event.Type]int
	for i, r := range out.Results {
		if r == nil || r.Duplicate {
			continue
		}
		if byType == nil {
			byType = map[event.Type]int{}
		}
		byType[evs[i].typ]++
	}
	for t, n := range byType {
		s.metrics.EventsIngested(tr, t, n)
	}
}
