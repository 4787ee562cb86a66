package ledger

import (
	"context"
	"fmt"
	"time"

	"github.com/segmentd/segmentd"
	"github.com/segmentd/segmentd/ent"
	"github.com/segmentd/segmentd/ent/campaign"
	"github.com/segmentd/segmentd/ent/membership"
	"github.com/segmentd/segmentd/ent/schema/pulid"
)

// Activation is exactly once under concurrent campaign flips because of
// the order of locks: every entry inserts its membership row (EnterMany)
// before it reads the ACTIVE campaigns, and that insert takes a FOR KEY
// SHARE lock on the segment's row (the foreign key check) until it
// commits. A campaign that starts on a segment (ActivateCampaign) first
// locks the segment FOR UPDATE (LockAudience), which conflicts with it: it
// waits for every entry in flight to commit (their members are then
// visible to the backfill, a later statement in READ COMMITTED), and
// blocks new entries until it commits, after which they read the campaign
// as ACTIVE. Without it, an entry that read the campaign as PAUSED and
// committed after the backfill's read activated it nowhere (issue 13,
// item 2).

// activationBatch is how many activations one INSERT writes when a campaign
// starts on a segment that already has members.
const activationBatch = 1000

// LockAudience checks that segment id exists and locks it against entries
// until tx ends (see above), before a campaign on it starts. field names
// the input for the NOT_FOUND error.
func (l *Ledger) LockAudience(ctx context.Context, tx *ent.Tx, field string, id pulid.ID) error {
	ok, err := l.st.lockSegment(ctx, tx, id)
	if err != nil {
		return fmt.Errorf("ledger.LockAudience: lock segment: %w", err)
	}
	if !ok {
		return &segmentd.Error{Code: segmentd.CodeNotFound, Field: field, Message: fmt.Sprintf("no segment with id %q", id)}
	}
	return nil
}

// CampaignForChange reads campaign id for an update in tx. When the update
// may activate the campaign (mayActivate: it asks for ACTIVE, or moves the
// campaign to another segment), it first locks the segment the campaign
// will have (newSegment, or its current one) with LockAudience, then the
// campaign's row, in that order (the order a segment's deletion takes
// them in), re-reading if the campaign moved meanwhile. A store with one
// writer at a time needs no locks.
func (l *Ledger) CampaignForChange(ctx context.Context, tx *ent.Tx, id pulid.ID, newSegment *pulid.ID, mayActivate bool) (*ent.Campaign, error) {
	get := func(lock bool) (*ent.Campaign, error) {
		q := tx.Campaign.Query().Where(campaign.ID(id))
		if lock {
			q = q.Where(l.st.lockRows)
		}
		c, err := q.Only(ctx)
		if ent.IsNotFound(err) {
			return nil, segmentd.Errorf(segmentd.CodeNotFound, "no campaign with id %q", id)
		}
		return c, err
	}
	if l.st.serialized() || !mayActivate {
		return get(false)
	}
	for {
		seen, err := get(false)
		if err != nil {
			return nil, err
		}
		seg := seen.SegmentRef
		if newSegment != nil {
			seg = newSegment
		}
		if seg != nil {
			if err := l.LockAudience(ctx, tx, "input.segmentId", *seg); err != nil {
				return nil, err
			}
		}
		c, err := get(true)
		if err != nil {
			return nil, err
		}
		if newSegment != nil || sameRef(c.SegmentRef, seen.SegmentRef) {
			return c, nil
		}
		// Its segment changed before the lock: lock the new one too.
	}
}

func sameRef(a, b *pulid.ID) bool { return (a == nil) == (b == nil) && (a == nil || *a == *b) }

// ActivateCampaign activates campaign c, which has just started on its
// segment (the caller holds LockAudience), for every current member of the
// segment as its re-entry policy allows (see activateCampaigns): with ONCE
// each member who has not activated it yet, with EVERY_ENTRY each current
// membership that has not (one activation per membership, however often
// the campaign is paused and resumed), activationBatch members a
// statement. It returns how many members it went through.
func (w *Writer) ActivateCampaign(ctx context.Context, c *ent.Campaign, at time.Time) (int, error) {
	tx := w.tx
	segID := *c.SegmentRef
	var after pulid.ID
	seen := 0
	for {
		q := tx.Membership.Query().
			Where(membership.SegmentRef(segID)).
			Order(ent.Asc(membership.FieldID)).
			Limit(activationBatch)
		if after != "" {
			q = q.Where(membership.IDGT(after))
		}
		members, err := q.All(ctx)
		if err != nil {
			return 0, fmt.Errorf("ledger.ActivateCampaign: list members: %w", err)
		}
		if len(members) == 0 {
			return seen, nil
		}
		eps := make([]episode, len(members))
		for i, m := range members {
			eps[i] = episode{Index: i, Segment: segID, User: m.UserRef, Membership: m.ID, EnteredAt: m.EnteredAt, At: at}
		}
		if _, err := w.activateCampaigns(ctx, []*ent.Campaign{c}, eps, &w.topics); err != nil {
			return 0, fmt.Errorf("ledger.ActivateCampaign: activate members: %w", err)
		}
		w.topics.campaign(c.ID)
		seen += len(members)
		after = members[len(members)-1].ID
	}
}
