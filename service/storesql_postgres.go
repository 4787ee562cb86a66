package service

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	entsql "entgo.io/ent/dialect/sql"

	"github.com/segmentd/segmentd/ent"
	"github.com/segmentd/segmentd/ent/importjob"
	"github.com/segmentd/segmentd/ent/predicate"
	"github.com/segmentd/segmentd/ent/schema/pulid"
)

// postgresSQL is the service's SQL on PostgreSQL, where several server
// replicas may write one database at once.
type postgresSQL struct{}

// rebind numbers the placeholders: PostgreSQL takes $1, $2, ….
func (postgresSQL) rebind(query string) string { return numberPlaceholders(query) }

// numberPlaceholders turns ? placeholders into PostgreSQL's $1, $2, ….
func numberPlaceholders(q string) string {
	var b strings.Builder
	n := 0
	for _, r := range q {
		if r == '?' {
			n++
			fmt.Fprintf(&b, "$%d", n)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// lockForUpdate selects FOR UPDATE: transactions of other replicas run
// beside ours, so a row read to decide a write must be locked.
func (postgresSQL) lockForUpdate(s *entsql.Selector) { s.ForUpdate() }

// lockForNoKeyUpdate selects FOR NO KEY UPDATE: as exclusive as FOR
// UPDATE among the rows' writers, but an insert that refers to a row
// (its foreign key check takes FOR KEY SHARE) goes on.
func (postgresSQL) lockForNoKeyUpdate(s *entsql.Selector) { s.For(entsql.LockNoKeyUpdate) }

// importOwnerLocks is the first key of the PostgreSQL advisory locks that
// say a server is alive (pg_advisory_lock(importOwnerLocks, owner)).
const importOwnerLocks = 0x5e6d

// claimImportOwner takes a free session advisory lock (importOwnerLocks,
// key) on a connection of its own. PostgreSQL ends a dead client's
// session, and its locks, when the connection drops, so whether the lock
// is held says whether the server is alive (ownerDead).
func (postgresSQL) claimImportOwner(ctx context.Context, db *sql.DB) (*sql.Conn, int64, error) {
	if db == nil {
		return nil, 0, errors.New("service.DB is not set")
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, 0, err
	}
	for range 100 {
		key := rand.Int64N(1 << 31)
		var got bool
		if err := conn.QueryRowContext(ctx, `SELECT pg_try_advisory_lock($1, $2)`, importOwnerLocks, key).Scan(&got); err != nil {
			conn.Close()
			return nil, 0, err
		}
		if got {
			return conn, key, nil
		}
	}
	conn.Close()
	return nil, 0, errors.New("no free owner key")
}

// ownerDead is the SQL condition (PostgreSQL) that the job's owner holds
// its lock no longer: it is not among the granted advisory locks of this
// database.
var ownerDead = fmt.Sprintf(`owner_key IS NOT NULL AND NOT EXISTS (
  SELECT 1 FROM pg_locks l
  WHERE l.locktype = 'advisory' AND l.granted AND l.classid = %d AND l.objsubid = 2
    AND l.objid::text::bigint = import_jobs.owner_key
    AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()))`, importOwnerLocks)

// writersTakeTurns is false: PostgreSQL's writers run beside each other,
// waiting only on the rows they share.
func (postgresSQL) writersTakeTurns() bool { return false }

// importsNeedHeartbeats is true: other replicas judge a job by its
// heartbeat as well as by its owner's lock.
func (postgresSQL) importsNeedHeartbeats() bool { return true }

// staleImport selects the jobs without a heartbeat, with one older than
// importStale, or whose owner's advisory lock nobody holds: other replicas'
// running jobs are alive and stay.
func (postgresSQL) staleImport(now time.Time) predicate.ImportJob {
	return importjob.Or(importjob.HeartbeatAtIsNil(), importjob.HeartbeatAtLT(now.Add(-importStale)),
		func(sel *entsql.Selector) { sel.Where(entsql.ExprP(ownerDead)) })
}

// stageImport stages with COPY, PostgreSQL's bulk load.
func (postgresSQL) stageImport(ctx context.Context, st *stager) error { return st.copyPostgres(ctx) }

// erasureLock is the advisory lock key of lockAgainstErasure (one key,
// apart from the migrations' 0x5e6d_0001, the ledger's counter lock
// 0x5e6d_0002 and the log writers' changelog.PostgresWriterKey
// 0x5e6d_0004).
const erasureLock = 0x5e6d_0003

// lockAgainstErasure takes the transaction-scoped advisory lock
// erasureLock: shared for an import's apply, exclusive for an erasure.
func (postgresSQL) lockAgainstErasure(ctx context.Context, tx *ent.Tx, erasure bool) error {
	q := "SELECT pg_advisory_xact_lock_shared($1)"
	if erasure {
		q = "SELECT pg_advisory_xact_lock($1)"
	}
	if _, err := tx.ExecContext(ctx, q, erasureLock); err != nil {
		return fmt.Errorf("lock against erasure: %w", err)
	}
	return nil
}

// eventsPosition: none. On PostgreSQL a segment's behaviour states are
// built inside its create or update transaction, which blocks no
// ingestion there (writers run beside each other); a catch-up by log
// position would need the live readers' horizon.
func (postgresSQL) eventsPosition(context.Context, *sql.DB) (int64, bool, error) {
	return 0, false, nil
}

func (postgresSQL) usersWithEventsAfter(context.Context, *ent.Tx, int64, []string) ([]pulid.ID, error) {
	return nil, errors.New("usersWithEventsAfter: not on PostgreSQL")
}

// eventNameLocks is the first key of the two-key advisory locks of
// lockEventNames; the second is a hash of the name (a collision only makes
// two names wait for each other).
const eventNameLocks = 0x5e6e

// lockEventNames takes the transaction-scoped advisory locks (eventNameLocks,
// fnv32a(name)) of names, in one statement, in key order (so that two
// exclusive takers cannot deadlock on each other).
func (postgresSQL) lockEventNames(ctx context.Context, tx *ent.Tx, names []string, exclusive bool) error {
	if len(names) == 0 {
		return nil
	}
	keys := make([]int64, 0, len(names))
	for _, n := range names {
		h := fnv.New32a()
		h.Write([]byte(n))
		keys = append(keys, int64(int32(h.Sum32())))
	}
	slices.Sort(keys)
	keys = slices.Compact(keys)
	fn := "pg_advisory_xact_lock_shared"
	if exclusive {
		fn = "pg_advisory_xact_lock"
	}
	var list strings.Builder
	for i, k := range keys {
		if i > 0 {
			list.WriteString(",")
		}
		list.WriteString(strconv.FormatInt(k, 10))
	}
	q := fmt.Sprintf(`SELECT count(%s(%d, k::int)) FROM unnest('{%s}'::int[]) WITH ORDINALITY AS u(k, i)`, fn, eventNameLocks, list.String())
	if _, err := tx.ExecContext(ctx, q); err != nil {
		return fmt.Errorf("lock event names: %w", err)
	}
	return nil
}
