package store

import (
	"testing"

	"github.com/segmentd/segmentd/changelog"
)

// The migrations' lock and the log writers' must differ: a migration runs
// beside transactions that hold the writers' lock shared.
func TestMigrationLockIsNotTheWritersLock(t *testing.T) {
	if migrationLock == changelog.PostgresWriterKey {
		t.Fatalf("migrationLock and changelog.PostgresWriterKey are both %#x", migrationLock)
	}
}
