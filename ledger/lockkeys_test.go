package ledger

import (
	"testing"

	"github.com/segmentd/segmentd/changelog"
)

// The counter lock is taken exclusive by transactions that hold the log
// writers' lock shared: the two keys must differ, or such a transaction
// would wait for every other one.
func TestCounterLockIsNotTheWritersLock(t *testing.T) {
	if counterLock == changelog.PostgresWriterKey {
		t.Fatalf("counterLock and changelog.PostgresWriterKey are both %#x", counterLock)
	}
}
