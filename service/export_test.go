package service

import "github.com/segmentd/segmentd/ledger"

// SetCountersOff switches the maintained counters' writes off (true) or on,
// for benchmarks that measure what they cost.
func SetCountersOff(off bool) { ledger.SetCountersOff(off) }

// BucketOf exposes bucketOf to the tests.
var BucketOf = bucketOf

// SetCounterShards sets how many shards PostgreSQL writers spread over (1 to
// counterShards); 0 restores the default.
func SetCounterShards(n int) { ledger.SetCounterShards(n) }
