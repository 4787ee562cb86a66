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

// Stats counts a segment's current members, and those who entered this
// week, this month (in loc), and in the last 7 and 30 days.
func (s *Service) Stats(ctx context.Context, segmentID pulid.ID, loc *time.Location) (*SegmentStats, error) {
	now := s.Now().In(loc)
	y, m, d := now.Date()
	today := time.Date(y, m, d, 0, 0, 0, 0, loc)
	week := today.AddDate(0, 0, -((int(today.Weekday()) + 6) % 7))
	month := time.Date(y, m, 1, 0, 0, 0, 0, loc)
	count := func(ps ...predicate.Membership) (int, error) {
		return s.Client.Membership.Query().Where(append(ps, membership.SegmentRef(segmentID))...).Count(ctx)
	}
	var st SegmentStats
	var err error
	for _, f := range []struct {
		dst  *int
		from *time.Time
	}{
		{&st.TotalUsers, nil},
		{&st.NewThisWeek, &week},
		{&st.NewThisMonth, &month},
		{&st.NewLast7Days, ptr(now.Add(-7 * 24 * time.Hour))},
		{&st.NewLast30Days, ptr(now.Add(-30 * 24 * time.Hour))},
	} {
		if f.from == nil {
			*f.dst, err = count()
		} else {
			*f.dst, err = count(membership.EnteredAtGTE(f.from.UTC()))
		}
		if err != nil {
			return nil, fmt.Errorf("service.Stats: %w", err)
		}
	}
	return &st, nil
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
