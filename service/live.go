package service

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/segmentd/segmentd"
	"github.com/segmentd/segmentd/changelog"
	"github.com/segmentd/segmentd/ent"
	"github.com/segmentd/segmentd/ent/campaignactivation"
	"github.com/segmentd/segmentd/ent/event"
	"github.com/segmentd/segmentd/ent/membershipchange"
	"github.com/segmentd/segmentd/ent/schema/pulid"
	"github.com/segmentd/segmentd/live"
	"github.com/segmentd/segmentd/store"
)

// notify signals topics after a commit.
func (s *Service) notify(topics ...string) {
	for _, t := range topics {
		s.broker.Notify(t)
	}
}

// MembershipChange is one entry or exit, as subscribers see it.
// Its segment, user and event are loaded with the change, once for every
// subscriber, so that a message costs no query to resolve.
type MembershipChange struct {
	Segment   *ent.Segment
	User      *ent.User
	Event     *ent.Event
	Cursor    string
	Kind      changelog.Kind
	SegmentID pulid.ID
	UserRef   pulid.ID
	EventRef  *pulid.ID
	At        time.Time
	Source    changelog.Source
	Reason    string
}

// Live streams the logs to subscribers.
type Live struct {
	svc         *Service
	changes     *live.Tailer
	events      *live.Tailer
	activations *live.Tailer
	wg          sync.WaitGroup
}

// StartLive starts following the logs of st until ctx ends.
func (s *Service) StartLive(ctx context.Context, st *store.Store, log *slog.Logger) (*Live, error) {
	d := st.Dialect // live.NewTailer refuses a store it cannot read
	client := s.client
	l := &Live{svc: s}
	var err error
	l.changes, err = live.NewTailer(ctx, st.DB, d, ChangeLogSource(client), s.broker, log)
	if err != nil {
		return nil, err
	}
	l.events, err = live.NewTailer(ctx, st.DB, d, live.Source{
		Log: changelog.Events,
		Load: func(ctx context.Context, ids []string) (map[string]any, error) {
			rows, err := client.Event.Query().Where(event.IDIn(toIDs(ids)...)).All(ctx)
			out := make(map[string]any, len(rows))
			for _, r := range rows {
				out[string(r.ID)] = r
			}
			return out, err
		},
	}, s.broker, log)
	if err != nil {
		return nil, err
	}
	l.activations, err = live.NewTailer(ctx, st.DB, d, live.Source{
		Log: changelog.CampaignActivations,
		Load: func(ctx context.Context, ids []string) (map[string]any, error) {
			rows, err := client.CampaignActivation.Query().Where(campaignactivation.IDIn(toIDs(ids)...)).All(ctx)
			out := make(map[string]any, len(rows))
			for _, r := range rows {
				out[string(r.ID)] = r
			}
			return out, err
		},
	}, s.broker, log)
	if err != nil {
		return nil, err
	}
	for _, t := range []*live.Tailer{l.changes, l.events, l.activations} {
		l.wg.Add(1)
		go func() { defer l.wg.Done(); t.Run(ctx) }()
	}
	return l, nil
}

// Wait waits for the tailers to stop after their context ended.
func (l *Live) Wait() { l.wg.Wait() }

func toIDs(ids []string) []pulid.ID {
	out := make([]pulid.ID, len(ids))
	for i, id := range ids {
		out[i] = pulid.ID(id)
	}
	return out
}

// stream runs a tailer stream in the background and converts its rows onto
// a channel that closes when the stream ends.
func stream[T any](ctx context.Context, log *slog.Logger, t *live.Tailer, after *changelog.Cursor, key string, conv func(live.Row) (T, bool)) <-chan T {
	ch := make(chan T, 16)
	go func() {
		defer close(ch)
		err := t.Stream(ctx, after, key, func(r live.Row) bool {
			v, ok := conv(r)
			if !ok {
				return true
			}
			select {
			case ch <- v:
				return true
			case <-ctx.Done():
				return false
			}
		})
		if err != nil && ctx.Err() == nil {
			log.WarnContext(ctx, "live: stream ended", "err", err)
		}
	}()
	return ch
}

// parseAfter reads the `after` cursor of a subscription on t's log: nil
// for none (start now); BAD_USER_INPUT on "after" for one that does not
// parse or that lies beyond the end of the log, which no change ever had
// (made up, or from another database): a stream from it would deliver
// nothing until the log passed it. A cursor within the table is accepted
// even if this replica's tailer has not read that far yet. Every
// subscription that takes a cursor goes through here.
func parseAfter(ctx context.Context, t *live.Tailer, after *string) (*changelog.Cursor, error) {
	if after == nil || *after == "" {
		return nil, nil
	}
	c, err := changelog.ParseCursor(*after)
	if err != nil {
		return nil, segmentd.Invalid("after", "%v", err)
	}
	ok, err := t.Within(ctx, c)
	if err != nil {
		return nil, fmt.Errorf("service.parseAfter: %w", err)
	}
	if !ok {
		return nil, segmentd.Invalid("after", "cursor %s is beyond the end of the log: no change has it; resume from the cursor of a change you received, or subscribe without one to start now", *after)
	}
	return &c, nil
}

// MembershipChanges streams the entries and exits of one segment (or of all,
// if segmentID is nil) after the cursor `after`, then live. Without a cursor
// it starts now.
func (l *Live) MembershipChanges(ctx context.Context, segmentID *pulid.ID, after *string) (<-chan *MembershipChange, error) {
	cur, err := parseAfter(ctx, l.changes, after)
	if err != nil {
		return nil, err
	}
	key := ""
	if segmentID != nil {
		if err := segmentExistsIn(ctx, nil, l.svc.client, "segmentId", *segmentID); err != nil {
			return nil, err
		}
		key = string(*segmentID)
	}
	return stream(ctx, l.svc.log, l.changes, cur, key, func(r live.Row) (*MembershipChange, bool) {
		c, ok := r.Value.(*ent.MembershipChange)
		if !ok {
			return nil, false // deleted with its segment
		}
		if c.Edges.Segment == nil || c.Edges.User == nil {
			return nil, false // deleted since
		}
		u := c.Edges.User
		if IsErased(u) {
			u = nil // the change stays, but names no one
		}
		if cur == nil {
			// A subscription that started now gets changes as they
			// commit: how long after the change is its delivery lag.
			l.svc.metrics.DeliveryLag(time.Since(c.At))
		}
		return &MembershipChange{
			Segment: c.Edges.Segment, User: u, Event: c.Edges.Event,
			Cursor: r.Cursor.String(), Kind: c.Kind, SegmentID: c.SegmentRef, UserRef: c.UserRef,
			EventRef: c.EventRef, At: c.At, Source: c.Source, Reason: c.Reason,
		}, true
	}), nil
}

// Events streams stored events as they arrive, optionally only those with a
// name and of a user: the live data-ingestion view.
func (l *Live) Events(ctx context.Context, name, userID *string) (<-chan *ent.Event, error) {
	key := ""
	if name != nil {
		key = *name
	}
	if userID != nil {
		u := segmentd.NormalizeID(*userID)
		userID = &u
	}
	return stream(ctx, l.svc.log, l.events, nil, key, func(r live.Row) (*ent.Event, bool) {
		e, ok := r.Value.(*ent.Event)
		if !ok || (userID != nil && (e.UserID == nil || *e.UserID != *userID)) {
			return nil, false
		}
		return e, true
	}), nil
}

// Activations streams campaign activations of one campaign (or of all)
// after the cursor `after` (CampaignActivation.cursor), then as they
// commit. Without a cursor it starts now.
func (l *Live) Activations(ctx context.Context, campaignID *pulid.ID, after *string) (<-chan *ent.CampaignActivation, error) {
	cur, err := parseAfter(ctx, l.activations, after)
	if err != nil {
		return nil, err
	}
	key := ""
	if campaignID != nil {
		ok, err := l.svc.client.Campaign.Query().Where(campaignIDIs(*campaignID)).Exist(ctx)
		if err != nil {
			return nil, fmt.Errorf("service.Activations: %w", err)
		}
		if !ok {
			return nil, &segmentd.Error{Code: segmentd.CodeNotFound, Field: "campaignId", Message: fmt.Sprintf("no campaign with id %q", *campaignID)}
		}
		key = string(*campaignID)
	}
	return stream(ctx, l.svc.log, l.activations, cur, key, func(r live.Row) (*ent.CampaignActivation, bool) {
		a, ok := r.Value.(*ent.CampaignActivation)
		return a, ok
	}), nil
}

// ActivationCursor is activation id's position in the activation log (the
// cursor campaignActivated resumes after).
func (l *Live) ActivationCursor(ctx context.Context, id pulid.ID) (string, error) {
	c, err := l.activations.CursorOf(ctx, string(id))
	if err != nil {
		return "", fmt.Errorf("service.ActivationCursor: %w", err)
	}
	return c.String(), nil
}

// statsInterval is the least time between two segmentStats messages: a
// burst of entries sends a bounded number of messages, the last one exact.
const statsInterval = 100 * time.Millisecond

// SegmentStatsStream sends a segment's stats at once, then after changes,
// at most once per statsInterval. An unknown segment is NOT_FOUND.
func (l *Live) SegmentStatsStream(ctx context.Context, segmentID pulid.ID, timeZone string) (<-chan *SegmentStats, error) {
	loc, err := loadZone(timeZone)
	if err != nil {
		return nil, err
	}
	// Stats alone counts an unknown segment as empty: say NOT_FOUND instead,
	// as membershipChanged does.
	if err := segmentExistsIn(ctx, nil, l.svc.client, "segmentId", segmentID); err != nil {
		return nil, err
	}
	first, err := l.svc.Stats(ctx, segmentID, loc)
	if err != nil {
		return nil, err
	}
	dirty := make(chan struct{}, 1)
	changes := stream(ctx, l.svc.log, l.changes, nil, string(segmentID), func(r live.Row) (struct{}, bool) {
		return struct{}{}, true
	})
	go func() {
		for range changes {
			select {
			case dirty <- struct{}{}:
			default:
			}
		}
	}()
	out := make(chan *SegmentStats, 1)
	go func() {
		defer close(out)
		last := first
		select {
		case out <- first:
		case <-ctx.Done():
			return
		}
		for {
			select {
			case <-ctx.Done():
				return
			case <-dirty:
			}
			st, err := l.svc.Stats(ctx, segmentID, loc)
			if err != nil {
				if ctx.Err() == nil {
					l.svc.log.WarnContext(ctx, "live: segment stats", "segment", segmentID, "err", err)
				}
				return
			}
			if *st != *last {
				select {
				case out <- st:
					last = st
				case <-ctx.Done():
					return
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(statsInterval):
			}
		}
	}()
	return out, nil
}

// ChangeLogSource is the membership change log as the live package tails
// it: each change loaded with its segment, user and event. The
// subscriptions and the webhook dispatcher both follow it.
func ChangeLogSource(client *ent.Client) live.Source {
	return live.Source{
		Log: changelog.MembershipChanges,
		Load: func(ctx context.Context, ids []string) (map[string]any, error) {
			nums := make([]int64, len(ids))
			for i, id := range ids {
				nums[i], _ = strconv.ParseInt(id, 10, 64)
			}
			rows, err := client.MembershipChange.Query().Where(membershipchange.IDIn(nums...)).
				WithSegment().WithUser().WithEvent().All(ctx)
			out := make(map[string]any, len(rows))
			for _, r := range rows {
				out[strconv.FormatInt(r.ID, 10)] = r
			}
			return out, err
		},
	}
}
