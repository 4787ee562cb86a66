package service

import (
	"context"
	"fmt"
	"time"

	"github.com/segmentd/segmentd/ent"
	"github.com/segmentd/segmentd/ledger"
)

// The maintained aggregates (segment_counters) are written by the ledger
// (ledger/counters.go); the service reads them (stats.go, growth.go,
// segmentlist.go) with the ledger's bucket arithmetic.
const (
	counterBucket = ledger.CounterBucket
	totalsBucket  = ledger.TotalsBucket
	counterShards = ledger.CounterShards
	dayBase       = ledger.DayBase
	secondsPerDay = ledger.SecondsPerDay
)

var (
	bucketOf = ledger.BucketOf
	dayKey   = ledger.DayKey
	floorDiv = ledger.FloorDiv
)

// EnsureCounters builds the counters of a database whose memberships
// predate them (an upgrade), once: it does nothing when counters exist or
// there are no memberships.
func (s *Service) EnsureCounters(ctx context.Context) error {
	err := s.inTx(ctx, func(tx *ent.Tx) error { return s.ledger().EnsureCounters(ctx, tx, s.log) })
	if err != nil {
		return fmt.Errorf("service.EnsureCounters: %w", err)
	}
	return nil
}

// RebuildCounters recomputes every counter from the membership rows (members
// by entry bucket, totals) and the change log (entries and exits by bucket),
// in one transaction. It repairs counters after a restore of partial data;
// a healthy database never needs it.
func (s *Service) RebuildCounters(ctx context.Context) error {
	err := s.inTx(ctx, func(tx *ent.Tx) error { return s.ledger().RebuildCounters(ctx, tx) })
	if err != nil {
		return fmt.Errorf("service.RebuildCounters: %w", err)
	}
	return nil
}

// CompactCounters folds the shards of buckets (and days) that ended before
// olderThan into shard 0 (see ledger.CompactCounters).
func (s *Service) CompactCounters(ctx context.Context, olderThan time.Time) (int64, error) {
	n, err := s.ledger().CompactCounters(ctx, s.client, olderThan)
	if err != nil {
		return 0, fmt.Errorf("service.CompactCounters: %w", err)
	}
	return n, nil
}

// CompactCountersEvery compacts the counters of buckets more than an hour
// old every interval, until ctx ends; a store with one shard has nothing to
// compact.
func (s *Service) CompactCountersEvery(ctx context.Context, interval time.Duration) {
	if !s.ledger().Shards() {
		return
	}
	every(ctx, interval, func() {
		if _, err := s.CompactCounters(ctx, s.clock().Add(-time.Hour)); err != nil && ctx.Err() == nil {
			s.log.Warn("compacting segment counters", "err", err)
		}
	})
}
