package ledger

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"sync/atomic"
	"time"

	"entgo.io/ent/dialect/sql"

	"github.com/segmentd/segmentd/changelog"
	"github.com/segmentd/segmentd/ent"
	"github.com/segmentd/segmentd/ent/membership"
	"github.com/segmentd/segmentd/ent/membershipchange"
	"github.com/segmentd/segmentd/ent/schema/pulid"
	"github.com/segmentd/segmentd/ent/segmentcounter"
)

// Maintained aggregates (see ent/schema/segmentcounter.go): every
// transaction that changes memberships collects its deltas in its Writer
// and adds them to the segment_counters rows with one upsert before it
// commits (Writer.Flush), so that the figures are exact the moment the
// change is visible, and a segment's stats read a bounded number of rows
// whatever its size.

// CounterBucket is the width of a counter bucket. Every time zone's UTC
// offset is a multiple of 15 minutes, so the start of a day, a week or a
// month in any zone falls on a bucket edge.
const CounterBucket = 15 * time.Minute

// TotalsBucket is the bucket of the row that holds a segment's current
// member count (in its members column).
const TotalsBucket = -1

// CounterShards is how many rows one (segment, bucket) may be spread over
// on PostgreSQL: concurrent transactions entering users into one hot segment
// pick different shards and do not queue on one row lock. SQLite has one
// writer at a time, so it uses a single shard.
const CounterShards = 8

// countersOff switches counter writes off, for benchmarks that measure
// what the counters cost. Stats are wrong meanwhile.
var countersOff atomic.Bool

// SetCountersOff switches the counters' writes off (true) or on, for
// benchmarks that measure what they cost.
func SetCountersOff(off bool) { countersOff.Store(off) }

// shardsInUse is how many shards PostgreSQL writers spread over:
// CounterShards, or fewer in benchmarks that measure what shards buy.
var shardsInUse = func() *atomic.Int64 {
	var n atomic.Int64
	n.Store(CounterShards)
	return &n
}()

// SetCounterShards sets how many shards PostgreSQL writers spread over (1
// to CounterShards); 0 restores the default. For benchmarks.
func SetCounterShards(n int) {
	if n <= 0 || n > CounterShards {
		n = CounterShards
	}
	shardsInUse.Store(int64(n))
}

// Day rows: besides its 15-minute buckets, a segment has one row per UTC
// day (bucket DayKey(day)) whose members column counts the current members
// who entered that day, so that a figure over a month reads about 30 day
// rows and the 15-minute buckets of its first, partial day, not 3,000
// buckets. Their keys are far below TotalsBucket (DayBase plus the day's
// number since 1970), so that every query of 15-minute buckets
// (bucket >= some start) or of the totals leaves them out, and the days
// from some day on, with the totals row, are one index range.
const DayBase = -(int64(1) << 40)

// SecondsPerDay is the length of a UTC day.
const SecondsPerDay = 24 * 60 * 60

// DayKey is the bucket of the day row of the UTC day t falls in.
func DayKey(t time.Time) int64 { return DayBase + FloorDiv(t.Unix(), SecondsPerDay) }

// FloorDiv divides rounding toward minus infinity.
func FloorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// BucketOf is the start (Unix seconds) of the bucket t falls in.
func BucketOf(t time.Time) int64 {
	sec := t.Unix()
	w := int64(CounterBucket / time.Second)
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
	c := d.at(seg, BucketOf(t))
	c.entered += n
	c.members += n
	d.at(seg, DayKey(t)).members += n
	d.at(seg, TotalsBucket).members += n
}

// exited records a member who entered seg at enteredAt leaving it at t.
func (d counterDeltas) exited(seg pulid.ID, enteredAt, t time.Time) {
	d.at(seg, BucketOf(t)).exited++
	d.at(seg, BucketOf(enteredAt)).members--
	d.at(seg, DayKey(enteredAt)).members--
	d.at(seg, TotalsBucket).members--
}

// flush adds the deltas to the counter rows of shard, in one upsert per
// BulkRows rows. Rows are written in (segment, bucket) order, so that two
// transactions that meet on the same rows wait for each other instead of
// deadlocking.
func (d counterDeltas) flush(ctx context.Context, tx *ent.Tx, st store, shard int) error {
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
	return bulk(keys, func(chunk []counterKey) error {
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
					excluded := sql.Dialect(st.dialect()).Table("excluded")
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
		return nil
	})
}

// EnsureCounters builds, in tx, the counters of a database whose
// memberships predate them (an upgrade), once: it does nothing when
// counters exist or there are no memberships.
func (l *Ledger) EnsureCounters(ctx context.Context, tx *ent.Tx, log *slog.Logger) error {
	if err := l.st.lockCounterRebuilds(ctx, tx); err != nil {
		return fmt.Errorf("ledger.EnsureCounters: lock: %w", err)
	}
	// Counters written before day rows existed (bucket < TotalsBucket)
	// are rebuilt too.
	has, err := tx.SegmentCounter.Query().Where(segmentcounter.BucketLT(TotalsBucket)).Exist(ctx)
	if err != nil || has {
		return err
	}
	members, err := tx.Membership.Query().Exist(ctx)
	if err != nil || !members {
		return err
	}
	log.Info("building segment counters from the stored memberships and changes")
	if err := l.rebuild(ctx, tx); err != nil {
		return fmt.Errorf("ledger.EnsureCounters: %w", err)
	}
	return nil
}

// RebuildCounters recomputes, in tx, every counter from the membership rows
// (members by entry bucket, totals) and the change log (entries and exits by
// bucket). It repairs counters after a restore of partial data; a healthy
// database never needs it.
func (l *Ledger) RebuildCounters(ctx context.Context, tx *ent.Tx) error {
	if err := l.rebuild(ctx, tx); err != nil {
		return fmt.Errorf("ledger.RebuildCounters: %w", err)
	}
	return nil
}

func (l *Ledger) rebuild(ctx context.Context, tx *ent.Tx) error {
	// Block writers of memberships meanwhile, so that nothing changes
	// between the recount and its commit.
	if err := l.st.lockMembershipWriters(ctx, tx); err != nil {
		return fmt.Errorf("lock: %w", err)
	}
	if _, err := tx.SegmentCounter.Delete().Exec(ctx); err != nil {
		return fmt.Errorf("delete counters: %w", err)
	}
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
			c := counts.at(m.SegmentRef, BucketOf(m.EnteredAt))
			c.members++
			counts.at(m.SegmentRef, DayKey(m.EnteredAt)).members++
			counts.at(m.SegmentRef, TotalsBucket).members++
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
			c := counts.at(ch.SegmentRef, BucketOf(ch.At))
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
	return counts.flush(ctx, tx, l.st, 0) // one shard: nothing else writes meanwhile
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

// CompactCounters folds the shards of buckets (and days) that ended before
// olderThan into shard 0, so that a segment keeps about one row a bucket
// however hot it was, and returns how many rows it wrote. The totals rows
// keep their shards (at most CounterShards rows a segment), since writers
// update them all the time. A store with one shard has nothing to compact.
func (l *Ledger) CompactCounters(ctx context.Context, client *ent.Client, olderThan time.Time) (int64, error) {
	n, err := l.st.compactCounters(ctx, client, BucketOf(olderThan), DayKey(olderThan))
	if err != nil {
		return 0, fmt.Errorf("ledger.CompactCounters: %w", err)
	}
	return n, nil
}

// Shards reports whether the store spreads counters over shards (and so
// has counters to compact).
func (l *Ledger) Shards() bool { return l.st.shards() }
