package service

// SetCountersOff switches the maintained counters' writes off (true) or on,
// for benchmarks that measure what they cost.
func SetCountersOff(off bool) { countersOff.Store(off) }

// BucketOf exposes bucketOf to the tests.
var BucketOf = bucketOf
