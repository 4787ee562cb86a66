package service

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/segmentd/segmentd"
	"github.com/segmentd/segmentd/changelog"
	"github.com/segmentd/segmentd/ent"
	"github.com/segmentd/segmentd/ent/membershipchange"
	"github.com/segmentd/segmentd/ent/schema/pulid"
	"github.com/segmentd/segmentd/ent/segmentcounter"
)

// GrowthInterval is the width of a growth point: HOUR, DAY or WEEK
// (Monday to Monday) in the request's time zone.
type GrowthInterval string

// The growth intervals.
const (
	GrowthHour GrowthInterval = "HOUR"
	GrowthDay  GrowthInterval = "DAY"
	GrowthWeek GrowthInterval = "WEEK"
)

// MaxGrowthPoints is the most points one growth query returns.
const MaxGrowthPoints = 10000

// GrowthPoint is a segment's changes in one interval.
type GrowthPoint struct {
	// Start is when the interval starts (in the request's time zone); it
	// ends where the next point starts.
	Start time.Time
	// Entered and Exited count the entries and exits made in the interval.
	Entered int
	Exited  int
	// Total is the number of members at the end of the interval.
	Total int
}

// intervalStart is the start, in loc, of the interval that t falls in.
func intervalStart(t time.Time, iv GrowthInterval, loc *time.Location) time.Time {
	lt := t.In(loc)
	switch iv {
	case GrowthHour:
		// Not time.Date(…, hour, 0, 0, 0, loc): in the repeated hour of a
		// DST change that could pick the other one.
		return lt.Add(-(time.Duration(lt.Minute())*time.Minute +
			time.Duration(lt.Second())*time.Second + time.Duration(lt.Nanosecond())))
	case GrowthWeek:
		y, m, d := lt.Date()
		return time.Date(y, m, d-(int(lt.Weekday())+6)%7, 0, 0, 0, 0, loc)
	default:
		y, m, d := lt.Date()
		return time.Date(y, m, d, 0, 0, 0, 0, loc)
	}
}

// nextInterval is the start of the interval after the one starting at start.
func nextInterval(start time.Time, iv GrowthInterval, loc *time.Location) time.Time {
	switch iv {
	case GrowthHour:
		n := start.Add(time.Hour)
		if s := intervalStart(n, iv, loc); s.After(start) {
			return s
		}
		return n
	case GrowthWeek:
		y, m, d := start.In(loc).Date()
		return time.Date(y, m, d+7, 0, 0, 0, 0, loc)
	default:
		y, m, d := start.In(loc).Date()
		return time.Date(y, m, d+1, 0, 0, 0, 0, loc)
	}
}

func intervalLength(iv GrowthInterval) time.Duration {
	switch iv {
	case GrowthHour:
		return time.Hour
	case GrowthWeek:
		return 7 * 24 * time.Hour
	default:
		return 24 * time.Hour
	}
}

// Growth returns a segment's entries, exits and member count per interval,
// from the interval that holds from to the one that holds the instant just
// before to, every interval included, with or without changes. Intervals
// are hours, days or weeks (starting Monday 00:00) in timeZone, an IANA
// name; an interval that spans a DST change is as long as the clock says.
// Entered and Exited count the changes made in the whole interval (also the
// part before from or after to); Total is the number of members at its end.
//
// Everything is read from the counters (one indexed read of the buckets
// since from, whatever the segment's size): the total at the end of an
// interval is the current total minus the entries and plus the exits of
// every later bucket. Bad input is BAD_USER_INPUT naming the argument: an
// unknown interval or zone, to not after from, or more than
// MaxGrowthPoints points.
func (s *Service) Growth(ctx context.Context, segmentID pulid.ID, interval GrowthInterval, from, to time.Time, timeZone string) ([]*GrowthPoint, error) {
	loc, err := loadZone(timeZone)
	if err != nil {
		return nil, err
	}
	switch interval {
	case GrowthHour, GrowthDay, GrowthWeek:
	default:
		return nil, segmentd.Invalid("interval", "unknown interval %q: use HOUR, DAY or WEEK", interval)
	}
	if !from.Before(to) {
		return nil, segmentd.Invalid("to", "to (%s) must be after from (%s)", to.Format(time.RFC3339), from.Format(time.RFC3339))
	}
	// A cheap bound first, so that a huge range is not walked.
	if to.Sub(from)/intervalLength(interval) > MaxGrowthPoints+2 {
		return nil, tooManyPoints(interval)
	}
	var starts []time.Time
	for st := intervalStart(from, interval, loc); st.Before(to); st = nextInterval(st, interval, loc) {
		if len(starts) == MaxGrowthPoints {
			return nil, tooManyPoints(interval)
		}
		starts = append(starts, st)
	}
	end := nextInterval(starts[len(starts)-1], interval, loc)

	var rows []struct {
		Bucket  int64 `json:"bucket"`
		Entered int64 `json:"entered"`
		Exited  int64 `json:"exited"`
		Members int64 `json:"members"`
	}
	err = s.client.SegmentCounter.Query().
		Where(segmentcounter.SegmentRef(segmentID),
			segmentcounter.Or(segmentcounter.Bucket(totalsBucket), segmentcounter.BucketGTE(bucketOf(starts[0])))).
		GroupBy(segmentcounter.FieldBucket).
		Aggregate(
			ent.As(ent.Sum(segmentcounter.FieldEntered), "entered"),
			ent.As(ent.Sum(segmentcounter.FieldExited), "exited"),
			ent.As(ent.Sum(segmentcounter.FieldMembers), "members"),
		).
		Scan(ctx, &rows)
	if err != nil {
		return nil, fmt.Errorf("service.Growth: read counters: %w", err)
	}
	var total int64
	// net[i] is entries minus exits in point i; after is those after end.
	net := make([]int64, len(starts))
	points := make([]*GrowthPoint, len(starts))
	for i, st := range starts {
		points[i] = &GrowthPoint{Start: st}
	}
	var after int64
	for _, r := range rows {
		if r.Bucket == totalsBucket {
			total = r.Members
			continue
		}
		at := time.Unix(r.Bucket, 0)
		if !at.Before(end) {
			after += r.Entered - r.Exited
			continue
		}
		i := pointOf(starts, at)
		if i < 0 {
			continue
		}
		points[i].Entered += int(r.Entered)
		points[i].Exited += int(r.Exited)
		net[i] += r.Entered - r.Exited
	}
	running := total - after
	for i := len(points) - 1; i >= 0; i-- {
		points[i].Total = int(running)
		running -= net[i]
	}
	return points, nil
}

// pointOf is the index of the last start at or before t, or -1.
func pointOf(starts []time.Time, t time.Time) int {
	lo, hi := 0, len(starts)
	for lo < hi {
		mid := (lo + hi) / 2
		if starts[mid].After(t) {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo - 1
}

func tooManyPoints(iv GrowthInterval) error {
	return segmentd.Invalid("to", "from and to span more than %d %s points: narrow them or use a wider interval", MaxGrowthPoints, iv)
}

// membersAtCount is the number of members of a segment at t, from the
// counters (current total minus the net change of every bucket after t's)
// and, for the rest of t's own bucket, from the change log.
func (s *Service) membersAtCount(ctx context.Context, segmentID pulid.ID, t time.Time) (int, error) {
	edge := bucketOf(t) + int64(counterBucket/time.Second)
	var rows []struct {
		Bucket  int64 `json:"bucket"`
		Entered int64 `json:"entered"`
		Exited  int64 `json:"exited"`
		Members int64 `json:"members"`
	}
	err := s.client.SegmentCounter.Query().
		Where(segmentcounter.SegmentRef(segmentID),
			segmentcounter.Or(segmentcounter.Bucket(totalsBucket), segmentcounter.BucketGTE(edge))).
		GroupBy(segmentcounter.FieldBucket).
		Aggregate(
			ent.As(ent.Sum(segmentcounter.FieldEntered), "entered"),
			ent.As(ent.Sum(segmentcounter.FieldExited), "exited"),
			ent.As(ent.Sum(segmentcounter.FieldMembers), "members"),
		).
		Scan(ctx, &rows)
	if err != nil {
		return 0, fmt.Errorf("read counters: %w", err)
	}
	n := int64(0)
	for _, r := range rows {
		if r.Bucket == totalsBucket {
			n += r.Members
		} else {
			n -= r.Entered - r.Exited
		}
	}
	// Changes after t in t's own bucket.
	var late []struct {
		Kind  string `json:"kind"`
		Count int64  `json:"count"`
	}
	err = s.client.MembershipChange.Query().
		Where(membershipchange.SegmentRef(segmentID), membershipchange.AtGT(t.UTC()),
			membershipchange.AtLT(time.Unix(edge, 0).UTC())).
		GroupBy(membershipchange.FieldKind).Aggregate(ent.Count()).Scan(ctx, &late)
	if err != nil {
		return 0, fmt.Errorf("read membership changes: %w", err)
	}
	for _, k := range late {
		if k.Kind == string(changelog.KindEntered) {
			n -= k.Count
		} else {
			n += k.Count
		}
	}
	return int(n), nil
}

// MarshalGQL implements graphql.Marshaler.
func (iv GrowthInterval) MarshalGQL(w io.Writer) { _, _ = io.WriteString(w, strconv.Quote(string(iv))) }

// UnmarshalGQL implements graphql.Unmarshaler.
func (iv *GrowthInterval) UnmarshalGQL(v any) error {
	s, ok := v.(string)
	if !ok {
		return segmentd.Invalid("interval", "must be a string, got %T", v)
	}
	switch g := GrowthInterval(s); g {
	case GrowthHour, GrowthDay, GrowthWeek:
		*iv = g
		return nil
	}
	return segmentd.Invalid("interval", "unknown interval %q: use HOUR, DAY or WEEK", s)
}
