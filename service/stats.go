package service

import (
	"context"
	"fmt"
	"time"

	"github.com/segmentd/segmentd"
	"github.com/segmentd/segmentd/ent"
	"github.com/segmentd/segmentd/ent/campaign"
	"github.com/segmentd/segmentd/ent/membership"
	"github.com/segmentd/segmentd/ent/predicate"
	"github.com/segmentd/segmentd/ent/schema/pulid"
	"github.com/segmentd/segmentd/ent/segment"
	"github.com/segmentd/segmentd/ent/segmentcounter"
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
// They are read from the maintained counters (see counters.go): one indexed
// read of at most a month of buckets, whatever the segment's size, plus,
// for the rolling windows, an exact count of the members who entered in the
// first, partial 15-minute bucket of the window.
func (s *Service) Stats(ctx context.Context, segmentID pulid.ID, loc *time.Location) (*SegmentStats, error) {
	now := s.Now().In(loc)
	y, m, d := now.Date()
	today := time.Date(y, m, d, 0, 0, 0, 0, loc)
	week := today.AddDate(0, 0, -((int(today.Weekday()) + 6) % 7))
	month := time.Date(y, m, 1, 0, 0, 0, 0, loc)
	last7 := now.Add(-7 * 24 * time.Hour)
	last30 := now.Add(-30 * 24 * time.Hour)
	oldest := bucketOf(minTime(week, month, last30))

	var rows []struct {
		Bucket  int64 `json:"bucket"`
		Members int64 `json:"sum"`
	}
	err := s.Client.SegmentCounter.Query().
		Where(segmentcounter.SegmentRef(segmentID),
			segmentcounter.Or(segmentcounter.Bucket(totalsBucket), segmentcounter.BucketGTE(oldest))).
		GroupBy(segmentcounter.FieldBucket).
		Aggregate(ent.Sum(segmentcounter.FieldMembers)).
		Scan(ctx, &rows)
	if err != nil {
		return nil, fmt.Errorf("service.Stats: %w", err)
	}
	var st SegmentStats
	since := func(t time.Time) (int, error) {
		first := bucketOf(t)
		if first*int64(time.Second) != t.UnixNano() {
			first += int64(counterBucket / time.Second)
		}
		n := int64(0)
		for _, r := range rows {
			if r.Bucket >= first {
				n += r.Members
			}
		}
		if edge := time.Unix(first, 0); t.Before(edge) {
			partial, err := s.Client.Membership.Query().
				Where(membership.SegmentRef(segmentID), membership.EnteredAtGTE(t.UTC()), membership.EnteredAtLT(edge.UTC())).
				Count(ctx)
			if err != nil {
				return 0, err
			}
			n += int64(partial)
		}
		return int(n), nil
	}
	for _, r := range rows {
		if r.Bucket == totalsBucket {
			st.TotalUsers = int(r.Members)
		}
	}
	for _, f := range []struct {
		dst  *int
		from time.Time
	}{
		{&st.NewThisWeek, week},
		{&st.NewThisMonth, month},
		{&st.NewLast7Days, last7},
		{&st.NewLast30Days, last30},
	} {
		if *f.dst, err = since(f.from); err != nil {
			return nil, fmt.Errorf("service.Stats: %w", err)
		}
	}
	return &st, nil
}

func minTime(ts ...time.Time) time.Time {
	m := ts[0]
	for _, t := range ts[1:] {
		if t.Before(m) {
			m = t
		}
	}
	return m
}

func ptr[T any](v T) *T { return &v }

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
