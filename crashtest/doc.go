// Package crashtest holds segmentd's crash test: the real binary is killed
// with SIGKILL at random moments while several clients ingest, restarted on
// the same database, and the data is then checked against what the clients
// were told (see crash_test.go). It has no code of its own.
package crashtest
