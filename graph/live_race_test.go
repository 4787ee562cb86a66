//go:build race

package graph_test

// liveRace reports whether the race detector is on: timing tests skip.
const liveRace = true
