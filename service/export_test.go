package service

import (
	"time"

	"github.com/segmentd/segmentd/ent"
	"github.com/segmentd/segmentd/ledger"
)

// SetCountersOff switches the maintained counters' writes off (true) or on,
// for benchmarks that measure what they cost.
func SetCountersOff(off bool) { ledger.SetCountersOff(off) }

// BucketOf exposes bucketOf to the tests.
var BucketOf = bucketOf

// SetCounterShards sets how many shards PostgreSQL writers spread over (1 to
// counterShards); 0 restores the default.
func SetCounterShards(n int) { ledger.SetCounterShards(n) }

// ClockNow reads the service's clock (Config.Now).
func (s *Service) ClockNow() time.Time { return s.clock() }

// EntClient is the service's ent client (its store's).
func (s *Service) EntClient() *ent.Client { return s.client }

// StoreDialect is the service's store's dialect.
func (s *Service) StoreDialect() string { return s.dialect }
