package service

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/segmentd/segmentd"
	"github.com/segmentd/segmentd/ent"
	"github.com/segmentd/segmentd/ent/campaign"
	"github.com/segmentd/segmentd/ent/predicate"
	"github.com/segmentd/segmentd/ent/schema/pulid"
	"github.com/segmentd/segmentd/ent/segment"
)

// SegmentStats are a segment's headline figures.
type SegmentStats struct {
	TotalUsers    int
	NewThisWeek   int // entered since Monday 00:00 in the time zone
	NewThisMonth  int // entered since the 1st, 00:00 in the time zone
	NewLast7Days  int
	NewLast30Days int
}

// loadZone loads an IANA time zone; an unknown one is BAD_USER_INPUT.
func loadZone(name string) (*time.Location, error) {
	if name == "" {
		name = "UTC"
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, segmentd.Invalid("timeZone", "unknown time zone %q: use an IANA name such as Europe/Paris", name)
	}
	return loc, nil
}

// StatsIn is Stats with a time zone name.
func (s *Service) StatsIn(ctx context.Context, segmentID pulid.ID, timeZone string) (*SegmentStats, error) {
	loc, err := loadZone(timeZone)
	if err != nil {
		return nil, err
	}
	return s.Stats(ctx, segmentID, loc)
}

// Stats are a segment's current members, and those who entered this week,
// this month (in loc), and in the last 7 and 30 days and are still members.
// They are read from the maintained counters (see counters.go) in one
// statement, whatever the segment's size: the totals row, the day rows
// since the first whole UTC day of each window (about 30), the 15-minute
// buckets of each window's first partial day (at most 96 each), and, for a
// window that starts inside a bucket (the rolling ones), an exact count of
// the members who entered in that bucket's rest (an index range of at most
// 15 minutes of entries).
func (s *Service) Stats(ctx context.Context, segmentID pulid.ID, loc *time.Location) (*SegmentStats, error) {
	now := s.clock().In(loc)
	y, m, d := now.Date()
	today := time.Date(y, m, d, 0, 0, 0, 0, loc)
	week := today.AddDate(0, 0, -((int(today.Weekday()) + 6) % 7))
	month := time.Date(y, m, 1, 0, 0, 0, 0, loc)
	windows := []time.Time{week, month, now.Add(-7 * 24 * time.Hour), now.Add(-30 * 24 * time.Hour)}

	var (
		q     strings.Builder
		args  []any
		where []string
	)
	q.WriteString("SELECT COALESCE(SUM(CASE WHEN bucket = ? THEN members ELSE 0 END), 0)")
	args = append(args, totalsBucket)
	var whereArgs []any
	minDay := int64(-1)
	for _, t := range windows {
		w := sinceParts(t)
		q.WriteString(", COALESCE(SUM(CASE WHEN (bucket >= ? AND bucket < ?) OR (bucket >= ? AND bucket < ?) THEN members ELSE 0 END), 0)")
		args = append(args, w.fromDay, totalsBucket, w.fromBucket, w.toBucket)
		if w.partialFrom.Before(w.partialTo) {
			q.WriteString(" + (SELECT COUNT(*) FROM memberships WHERE segment_ref = ? AND entered_at >= ? AND entered_at < ?)")
			args = append(args, segmentID, w.partialFrom.UTC(), w.partialTo.UTC())
		}
		if w.fromBucket < w.toBucket {
			where = append(where, "(bucket >= ? AND bucket < ?)")
			whereArgs = append(whereArgs, w.fromBucket, w.toBucket)
		}
		if minDay == -1 || w.fromDay < minDay {
			minDay = w.fromDay
		}
	}
	// The days from the earliest window's first whole day on, with the
	// totals row, are one index range; each window adds the buckets of
	// its first partial day.
	q.WriteString(" FROM segment_counters WHERE segment_ref = ? AND ((bucket >= ? AND bucket <= ?)")
	args = append(args, segmentID, minDay, totalsBucket)
	for _, w := range where {
		q.WriteString(" OR " + w)
	}
	q.WriteString(")")
	args = append(args, whereArgs...)
	sq := s.sql
	rows, err := s.client.QueryContext(ctx, sq.rebind(q.String()), args...)
	if err != nil {
		return nil, fmt.Errorf("service.Stats: %w", err)
	}
	defer rows.Close()
	var f [5]int64
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("service.Stats: %w", err)
		}
		return nil, fmt.Errorf("service.Stats: no row")
	}
	if err := rows.Scan(&f[0], &f[1], &f[2], &f[3], &f[4]); err != nil {
		return nil, fmt.Errorf("service.Stats: %w", err)
	}
	if err := rows.Close(); err != nil {
		return nil, fmt.Errorf("service.Stats: %w", err)
	}
	return &SegmentStats{
		TotalUsers:    int(f[0]),
		NewThisWeek:   int(f[1]),
		NewThisMonth:  int(f[2]),
		NewLast7Days:  int(f[3]),
		NewLast30Days: int(f[4]),
	}, nil
}

func campaignIDIs(id pulid.ID) predicate.Campaign { return campaign.ID(id) }

// segmentExists reports NOT_FOUND for an unknown segment, through the
// transaction if there is one.
func segmentExistsIn(ctx context.Context, tx *ent.Tx, client *ent.Client, field string, id pulid.ID) error {
	var q *ent.SegmentQuery
	if tx != nil {
		q = tx.Segment.Query()
	} else {
		q = client.Segment.Query()
	}
	ok, err := q.Where(segment.ID(id)).Exist(ctx)
	if err != nil {
		return fmt.Errorf("find segment: %w", err)
	}
	if !ok {
		return &segmentd.Error{Code: segmentd.CodeNotFound, Field: field, Message: fmt.Sprintf("no segment with id %q", id)}
	}
	return nil
}

// window is how the members who entered since an instant t are read: the
// day rows from fromDay on, the buckets [fromBucket, toBucket) of the
// partial day before it, and the memberships that entered in
// [partialFrom, partialTo), the partial bucket before those.
type window struct {
	fromDay, fromBucket, toBucket int64
	partialFrom, partialTo        time.Time
}

func sinceParts(t time.Time) window {
	first := bucketOf(t)
	if first*int64(time.Second) != t.UnixNano() {
		first += int64(counterBucket / time.Second)
	}
	day := floorDiv(first+secondsPerDay-1, secondsPerDay) // the first whole day
	return window{
		fromDay:     dayBase + day,
		fromBucket:  first,
		toBucket:    day * secondsPerDay,
		partialFrom: t,
		partialTo:   time.Unix(first, 0),
	}
}
