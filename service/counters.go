package service

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync/atomic"
	"time"

	"entgo.io/ent/dialect"
	"entgo.io/ent/dialect/sql"

	"github.com/segmentd/segmentd/changelog"
	"github.com/segmentd/segmentd/ent"
	"github.com/segmentd/segmentd/ent/membership"
	"github.com/segmentd/segmentd/ent/membershipchange"
	"github.com/segmentd/segmentd/ent/schema/pulid"
	"github.com/segmentd/segmentd/ent/segmentcounter"
)

// Maintained aggregates (see ent/schema/segmentcounter.go): every
// transaction that changes memberships collects its deltas in a
// counterDeltas and adds them to the segment_counters rows with one upsert
// before it commits, so that the figures are exact the moment the change is
// visible, and a segment's stats read a bounded number of rows whatever its
// size.

// counterBucket is the width of a counter bucket. Every time zone's UTC
// offset is a multiple of 15 minutes, so the start of a day, a week or a
// month in any zone falls on a bucket edge.
const counterBucket = 15 * time.Minute

// totalsBucket is the bucket of the row that holds a segment's current
// member count (in its members column).
const totalsBucket = -1

// counterShards is how many rows one (segment, bucket) may be spread over
// on PostgreSQL: concurrent transactions entering users into one hot segment
// pick different shards and do not queue on one row lock. SQLite has one
// writer at a time, so it uses a single shard.
const counterShards = 8

// countersOff switches counter writes off, for benchmarks that measure
// what the counters cost (export_test.go). Stats are wrong meanwhile.
var countersOff atomic.Bool

// shardsInUse is how many shards PostgreSQL writers spread over:
// counterShards, or fewer in benchmarks that measure what shards buy.
var shardsInUse = func() *atomic.Int64 {
	var n atomic.Int64
	n.Store(counterShards)
	return &n
}()

// Day rows: besides its 15-minute buckets, a segment has one row per UTC
// day (bucket dayKey(day)) whose members column counts the current members
// who entered that day, so that a figure over a month reads about 30 day
// rows and the 15-minute buckets of its first, partial day, not 3,000
// buckets. Their keys are far below totalsBucket (dayBase plus the day's
// number since 1970), so that every query of 15-minute buckets
// (bucket >= some start) or of the totals leaves them out, and the days
// from some day on, with the totals row, are one index range.
const dayBase = -(int64(1) << 40)

const secondsPerDay = 24 * 60 * 60

// dayKey is the bucket of the day row of the UTC day t falls in.
func dayKey(t time.Time) int64 { return dayBase + floorDiv(t.Unix(), secondsPerDay) }

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// bucketOf is the start (Unix seconds) of the bucket t falls in.
func bucketOf(t time.Time) int64 {
	sec := t.Unix()
	w := int64(counterBucket / time.Second)
	b := sec - sec%w
	if sec%w < 0 {
		b -= w
	}
	return b
}

type counterKey struct {
	segment pulid.ID
	bucket  int64
}

type counterDelta struct{ entered, exited, members int64 }

// counterDeltas collects one transaction's changes to the counters.
type counterDeltas map[counterKey]*counterDelta

func (d counterDeltas) at(seg pulid.ID, bucket int64) *counterDelta {
	k := counterKey{seg, bucket}
	c := d[k]
	if c == nil {
		c = &counterDelta{}
		d[k] = c
	}
	return c
}

// entered records n users entering seg at t.
func (d counterDeltas) entered(seg pulid.ID, t time.Time, n int64) {
	if n == 0 {
		return
	}
	c := d.at(seg, bucketOf(t))
	c.entered += n
	c.members += n
	d.at(seg, dayKey(t)).members += n
	d.at(seg, totalsBucket).members += n
}

// exited records a member who entered seg at enteredAt leaving it at t.
func (d counterDeltas) exited(seg pulid.ID, enteredAt, t time.Time) {
	d.at(seg, bucketOf(t)).exited++
	d.at(seg, bucketOf(enteredAt)).members--
	d.at(seg, dayKey(enteredAt)).members--
	d.at(seg, totalsBucket).members--
}

// flush adds the deltas to the counter rows, in one upsert per 500 rows.
// Rows are written in (segment, bucket) order, so that two transactions
// that meet on the same rows wait for each other instead of deadlocking.
func (d counterDeltas) flush(ctx context.Context, tx *ent.Tx, dialectName string) error {
	shard := 0
	if dialectName == dialect.Postgres {
		shard = rand.IntN(int(shardsInUse.Load()))
	}
	return d.flushShard(ctx, tx, dialectName, shard)
}

// flushShard is flush into the given shard.
func (d counterDeltas) flushShard(ctx context.Context, tx *ent.Tx, dialectName string, shard int) error {
	if len(d) == 0 || countersOff.Load() {
		return nil
	}
	keys := make([]counterKey, 0, len(d))
	for k, c := range d {
		if *c != (counterDelta{}) {
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].segment != keys[j].segment {
			return keys[i].segment < keys[j].segment
		}
		return keys[i].bucket < keys[j].bucket
	})
	for start := 0; start < len(keys); start += bulkRows {
		chunk := keys[start:min(start+bulkRows, len(keys))]
		rows := make([]*ent.SegmentCounterCreate, len(chunk))
		for i, k := range chunk {
			c := d[k]
			rows[i] = tx.SegmentCounter.Create().SetSegmentRef(k.segment).SetBucket(k.bucket).SetShard(shard).
				SetEntered(c.entered).SetExited(c.exited).SetMembers(c.members)
		}
		err := tx.SegmentCounter.CreateBulk(rows...).
			OnConflict(
				sql.ConflictColumns(segmentcounter.FieldSegmentRef, segmentcounter.FieldBucket, segmentcounter.FieldShard),
				sql.ResolveWith(func(u *sql.UpdateSet) {
					excluded := sql.Dialect(dialectName).Table("excluded")
					for _, col := range []string{segmentcounter.FieldEntered, segmentcounter.FieldExited, segmentcounter.FieldMembers} {
						u.Set(col, sql.ExprFunc(func(b *sql.Builder) {
							b.WriteString(u.Table().C(col)).WriteString(" + ").WriteString(excluded.C(col))
						}))
					}
				}),
			).Exec(ctx)
		if err != nil {
			return fmt.Errorf("update segment counters: %w", err)
		}
	}
	return nil
}

// counterLock is the PostgreSQL advisory lock key that makes replicas
// rebuild or compact the counters one at a time.
const counterLock = 0x5e6d_0002

// EnsureCounters builds the counters of a database whose memberships
// predate them (an upgrade), once: it does nothing when counters exist or
// there are no memberships.
func (s *Service) EnsureCounters(ctx context.Context) error {
	err := s.inTx(ctx, func(tx *ent.Tx) error {
		if s.dialect == dialect.Postgres {
			if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock($1)", counterLock); err != nil {
				return fmt.Errorf("lock: %w", err)
			}
		}
		// Counters written before day rows existed (bucket < totalsBucket)
		// are rebuilt too.
		has, err := tx.SegmentCounter.Query().Where(segmentcounter.BucketLT(totalsBucket)).Exist(ctx)
		if err != nil || has {
			return err
		}
		members, err := tx.Membership.Query().Exist(ctx)
		if err != nil || !members {
			return err
		}
		s.log.Info("building segment counters from the stored memberships and changes")
		if s.dialect == dialect.Postgres {
			// Other replicas may be writing: hold them off until commit.
			if _, err := tx.ExecContext(ctx, "LOCK TABLE memberships, membership_changes IN SHARE MODE"); err != nil {
				return fmt.Errorf("lock: %w", err)
			}
		}
		if _, err := tx.SegmentCounter.Delete().Exec(ctx); err != nil {
			return fmt.Errorf("delete counters: %w", err)
		}
		return s.rebuildCounters(ctx, tx)
	})
	if err != nil {
		return fmt.Errorf("service.EnsureCounters: %w", err)
	}
	return nil
}

// RebuildCounters recomputes every counter from the membership rows (members
// by entry bucket, totals) and the change log (entries and exits by bucket),
// in one transaction. It repairs counters after a restore of partial data;
// a healthy database never needs it.
func (s *Service) RebuildCounters(ctx context.Context) error {
	err := s.inTx(ctx, func(tx *ent.Tx) error {
		if s.dialect == dialect.Postgres {
			// Block writers of memberships meanwhile, so that nothing
			// changes between the recount and its commit.
			if _, err := tx.ExecContext(ctx, "LOCK TABLE memberships, membership_changes IN SHARE MODE"); err != nil {
				return fmt.Errorf("lock: %w", err)
			}
		}
		if _, err := tx.SegmentCounter.Delete().Exec(ctx); err != nil {
			return fmt.Errorf("delete counters: %w", err)
		}
		return s.rebuildCounters(ctx, tx)
	})
	if err != nil {
		return fmt.Errorf("service.RebuildCounters: %w", err)
	}
	return nil
}

func (s *Service) rebuildCounters(ctx context.Context, tx *ent.Tx) error {
	counts := counterDeltas{}
	err := scanPages(ctx, func(after pulid.ID, limit int) ([]pulid.ID, error) {
		rows, err := tx.Membership.Query().Where(membership.IDGT(after)).
			Order(ent.Asc("id")).Limit(limit).
			Select("id", "segment_ref", "entered_at").All(ctx)
		if err != nil {
			return nil, fmt.Errorf("read memberships: %w", err)
		}
		ids := make([]pulid.ID, len(rows))
		for i, m := range rows {
			ids[i] = m.ID
			c := counts.at(m.SegmentRef, bucketOf(m.EnteredAt))
			c.members++
			counts.at(m.SegmentRef, dayKey(m.EnteredAt)).members++
			counts.at(m.SegmentRef, totalsBucket).members++
		}
		return ids, nil
	})
	if err != nil {
		return err
	}
	var afterChange int64
	for {
		rows, err := tx.MembershipChange.Query().Where(membershipchange.IDGT(afterChange)).
			Order(ent.Asc("id")).Limit(10000).
			Select("id", "segment_ref", "kind", "at").All(ctx)
		if err != nil {
			return fmt.Errorf("read membership changes: %w", err)
		}
		for _, ch := range rows {
			c := counts.at(ch.SegmentRef, bucketOf(ch.At))
			if ch.Kind == changelog.KindEntered {
				c.entered++
			} else {
				c.exited++
			}
			afterChange = ch.ID
		}
		if len(rows) < 10000 {
			break
		}
	}
	return counts.flushShard(ctx, tx, s.dialect, 0) // one shard: nothing else writes meanwhile
}

// scanPages calls page with the last ID of the previous page until a page
// comes back short.
func scanPages(ctx context.Context, page func(after pulid.ID, limit int) ([]pulid.ID, error)) error {
	const limit = 10000
	var after pulid.ID
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		ids, err := page(after, limit)
		if err != nil {
			return err
		}
		if len(ids) < limit {
			return nil
		}
		after = ids[len(ids)-1]
	}
}

// CompactCounters folds the shards of buckets (and days) that ended before olderThan
// into shard 0, so that a segment keeps about one row a bucket however hot
// it was. The totals rows keep their shards (at most counterShards rows a
// segment), since writers update them all the time. Only PostgreSQL writes
// more than one shard.
func (s *Service) CompactCounters(ctx context.Context, olderThan time.Time) (int64, error) {
	if s.dialect != dialect.Postgres {
		return 0, nil
	}
	res, err := s.client.ExecContext(ctx, `
WITH moved AS (
  DELETE FROM segment_counters
  WHERE shard > 0 AND ((bucket >= 0 AND bucket < $1) OR bucket < $2)
  RETURNING segment_ref, bucket, entered, exited, members
)
INSERT INTO segment_counters (segment_ref, bucket, shard, entered, exited, members)
SELECT segment_ref, bucket, 0, SUM(entered), SUM(exited), SUM(members) FROM moved GROUP BY segment_ref, bucket
ON CONFLICT (segment_ref, bucket, shard) DO UPDATE SET
  entered = segment_counters.entered + excluded.entered,
  exited = segment_counters.exited + excluded.exited,
  members = segment_counters.members + excluded.members`, bucketOf(olderThan), dayKey(olderThan))
	if err != nil {
		return 0, fmt.Errorf("service.CompactCounters: %w", err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}

// CompactCountersEvery compacts the counters of buckets more than an hour
// old every interval, until ctx ends.
func (s *Service) CompactCountersEvery(ctx context.Context, interval time.Duration) {
	if s.dialect != dialect.Postgres {
		return
	}
	every(ctx, interval, func() {
		if _, err := s.CompactCounters(ctx, s.clock().Add(-time.Hour)); err != nil && ctx.Err() == nil {
			s.log.Warn("compacting segment counters", "err", err)
		}
	})
}
