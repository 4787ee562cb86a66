//go:build race

package server_test

// raceEnabled reports whether the race detector is on: it slows the server
// several times, so throughput is reported, not asserted.
const raceEnabled = true
