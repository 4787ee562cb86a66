package ledger

import (
	"context"
	"fmt"
	"time"

	"entgo.io/ent/dialect"
	"entgo.io/ent/dialect/sql"

	"github.com/segmentd/segmentd/ent"
	"github.com/segmentd/segmentd/ent/schema/pulid"
)

// store is what differs between the stores the ledger writes: each
// implementation (sqlite.go, postgres.go) is a file of plain SQL. A third
// store is one more file and one more case in storeFor.
type store interface {
	// dialect is the ent dialect name.
	dialect() string
	// serialized reports whether the store runs one write transaction at
	// a time, so that reads in a write transaction stay true until commit
	// without row locks.
	serialized() bool
	// shard picks the counter shard a transaction writes; shards reports
	// whether there is more than one.
	shard() int
	shards() bool
	// lockRows makes a query lock the rows it reads against concurrent
	// updates (FOR NO KEY UPDATE) until the transaction ends.
	lockRows(s *sql.Selector)
	// lockSkipping makes a query lock the rows it reads with strength,
	// skipping rows another transaction has locked (SKIP LOCKED): the
	// deadline sweeper's reads, which must never wait.
	lockSkipping(s *sql.Selector, strength sql.LockStrength)
	// lockKeys makes a query lock the rows it reads against deletion and
	// key changes (FOR KEY SHARE) until the transaction ends: what a
	// foreign key check takes on the row it finds.
	lockKeys(s *sql.Selector)
	// withoutForeignKeyChecks runs f, a staged entry's inserts, with the
	// per-row foreign key checks off for this transaction where the store
	// can turn them off (PostgreSQL: session_replication_role = replica,
	// for a role allowed to set it; otherwise f runs with them). The
	// caller must have made every reference f writes valid until commit
	// (rows it locked, rows it created, users, which are never deleted).
	withoutForeignKeyChecks(ctx context.Context, tx *ent.Tx, f func() error) error
	// enterStaged writes what EnterStaged writes for a staged set (see
	// enterStagedEach: memberships, log rows, deadlines if set.ExpiresAt,
	// an activation of each ONCE campaign of camps) in one statement, and
	// returns how many entered and each campaign's activations; ok is
	// false if the store has no such statement (the caller then runs
	// enterStagedEach).
	enterStaged(ctx context.Context, tx *ent.Tx, set StagedSet, camps []pulid.ID) (entered int, activated []int, ok bool, err error)
	// lockSegment reads a segment's row FOR UPDATE (see LockAudience),
	// and reports whether it exists.
	lockSegment(ctx context.Context, tx *ent.Tx, id pulid.ID) (bool, error)
	// lockCounterRebuilds makes transactions that rebuild or compact the
	// counters take turns.
	lockCounterRebuilds(ctx context.Context, tx *ent.Tx) error
	// lockMembershipWriters holds off writers of memberships and their log
	// until tx ends.
	lockMembershipWriters(ctx context.Context, tx *ent.Tx) error
	// compactCounters folds the shards of 15-minute buckets below bucket
	// and day rows below day into shard 0.
	compactCounters(ctx context.Context, client *ent.Client, bucket, day int64) (int64, error)
	// exitStaged deletes the memberships that where selects ($1 the job,
	// $2 the segment), logs their exits at $3 with reason $4, and returns
	// how many left by the time they had entered.
	exitStaged(ctx context.Context, tx *ent.Tx, where string, job, seg string, at time.Time, reason string) ([]enteredCount, error)
	// takeDue reads up to limit expiry deadlines due at now, earliest
	// first, each with its membership; where writers run at once it locks
	// the deadlines, then their users, then their memberships, skipping
	// rows another transaction holds (such a deadline comes back with no
	// membership and not gone).
	takeDue(ctx context.Context, tx *ent.Tx, now time.Time, limit int) ([]dueDeadline, error)
	// exitExpired deletes the exits' memberships (which takeDue locked)
	// and the deadlines with the ids given, and logs the exits; it fails
	// unless every membership was deleted and logged exactly once.
	exitExpired(ctx context.Context, tx *ent.Tx, exits []Exit, deadlines []int64) error
}

// enteredCount is how many of the members removed had entered at one time.
type enteredCount struct {
	enteredAt time.Time
	n         int
}

func storeFor(dialectName string) (store, error) {
	switch dialectName {
	case dialect.SQLite:
		return sqlite{}, nil
	case dialect.Postgres:
		return postgres{}, nil
	default:
		return nil, fmt.Errorf("no ledger SQL for dialect %q (want %q or %q)", dialectName, dialect.SQLite, dialect.Postgres)
	}
}
