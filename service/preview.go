package service

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/segmentd/segmentd"
	"github.com/segmentd/segmentd/ent"
	"github.com/segmentd/segmentd/ent/schema/pulid"
	"github.com/segmentd/segmentd/ent/segment"
	"github.com/segmentd/segmentd/ent/user"
	"github.com/segmentd/segmentd/trigger"
)

// The sizes of SegmentPreview.Sample. The most is the server's bound on
// every page (server.MaxPage), so that sample(first) is bounded as any
// first is, with the same error.
const (
	DefaultPreviewSample = 20
	MaxPreviewSample     = 1000
)

// SegmentPreview is who a segment definition would hold over the stored
// data: how many users, and a sample of them.
type SegmentPreview struct {
	// MatchingUsers is how many users the definition would hold.
	MatchingUsers int

	users  []pulid.ID // every matching user, by ID (first seen first): the sample's order
	client *ent.Client
}

// PreviewSegment says who the definition in would hold, over the stored
// data, and writes nothing. in is validated exactly as CreateSegment
// validates it (the same BAD_USER_INPUT codes and fields). For an
// EVENT_TRIGGERED definition, the users are those whom at least one stored
// TRACK event of a trigger name (at or after since, when given) would have
// entered, evaluated with the event's properties and the user's current
// traits, as a BACKFILL replays them; each user counts once however many of
// their events match. For a DYNAMIC definition, the users are those for
// whom the condition holds now, with their current traits. A STATIC definition has no rules to preview: it is
// refused with BAD_USER_INPUT naming input.kind.
//
// It only reads, outside any transaction: on SQLite its reads go to the
// reader connections and never hold the write lock; pages read one after
// another, so events stored during a preview may or may not count.
func (s *Service) PreviewSegment(ctx context.Context, in CreateSegmentInput, since *time.Time) (*SegmentPreview, error) {
	def, err := validateNewSegment(in)
	if err != nil {
		return nil, err
	}
	prog, err := trigger.Compile(def.root)
	if err != nil {
		return nil, fmt.Errorf("service.PreviewSegment: compile conditions: %w", err)
	}
	var users []pulid.ID
	switch def.kind {
	case segment.KindEVENT_TRIGGERED:
		users, err = s.previewStoredEvents(ctx, prog, def.events, since)
	case segment.KindDYNAMIC:
		users, err = s.previewCurrentTraits(ctx, prog)
	default:
		return nil, segmentd.Invalid("input.kind", "a %s segment cannot be previewed: it has no rules, its users are added by hand or by import", def.kind)
	}
	if err != nil {
		return nil, fmt.Errorf("service.PreviewSegment: %w", err)
	}
	slices.Sort(users)
	return &SegmentPreview{MatchingUsers: len(users), users: users, client: s.client}, nil
}

// previewStoredEvents returns the users whom a stored event of names
// since since would have entered under prog.
func (s *Service) previewStoredEvents(ctx context.Context, prog *trigger.Program, names []string, since *time.Time) ([]pulid.ID, error) {
	matched, err := matchStoredEvents(ctx, s.client, prog, names, since)
	if err != nil {
		return nil, err
	}
	users := make([]pulid.ID, 0, len(matched))
	for ref := range matched {
		users = append(users, ref)
	}
	return users, nil
}

// previewCurrentTraits returns the users for whom prog holds now, with
// their current traits (a DYNAMIC definition).
func (s *Service) previewCurrentTraits(ctx context.Context, prog *trigger.Program) ([]pulid.ID, error) {
	var users []pulid.ID
	now := s.now()
	err := eachUserPage(ctx, s.client, s.usersPerPage(), func(page []*ent.User) error {
		// Behaviours from the page's stored events, written nowhere.
		var bs *behaviorStates
		if len(prog.Behaviors()) > 0 {
			bs = newBehaviorStates(now)
			if err := countStoredEvents(ctx, s.client.Event, bs, prog, page, nil); err != nil {
				return err
			}
		}
		for _, u := range page {
			if prog.Eval(bs.envFor(u.ID, prog, u.Traits, now)).Matched {
				users = append(users, u.ID)
			}
		}
		return bs.errOrNil()
	})
	return users, err
}

// Sample returns the first matching users by ID (the first seen first),
// at most first of them (nil: DefaultPreviewSample): 0 to MaxPreviewSample,
// else BAD_USER_INPUT naming first. A user erased since the preview was
// computed is left out.
func (p *SegmentPreview) Sample(ctx context.Context, first *int) ([]*ent.User, error) {
	n := DefaultPreviewSample
	if first != nil {
		n = *first
	}
	if n < 0 || n > MaxPreviewSample {
		return nil, segmentd.Invalid("first", "must be between 0 and %d, got %d", MaxPreviewSample, n)
	}
	refs := p.users[:min(n, len(p.users))]
	if len(refs) == 0 {
		return []*ent.User{}, nil
	}
	users, err := p.client.User.Query().Where(user.IDIn(refs...)).Order(ent.Asc(user.FieldID)).All(ctx)
	if err != nil {
		return nil, fmt.Errorf("service.SegmentPreview.Sample: %w", err)
	}
	return users, nil
}
