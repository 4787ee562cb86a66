package service

import (
	"context"
	"fmt"

	"entgo.io/ent/dialect"

	"github.com/segmentd/segmentd"
	"github.com/segmentd/segmentd/changelog"
	"github.com/segmentd/segmentd/ent"
	"github.com/segmentd/segmentd/ent/campaign"
	"github.com/segmentd/segmentd/ent/campaignactivation"
	"github.com/segmentd/segmentd/ent/membership"
	"github.com/segmentd/segmentd/ent/schema/pulid"
	"github.com/segmentd/segmentd/ent/segment"
)

// CreateCampaignInput is the GraphQL input of createCampaign.
type CreateCampaignInput struct {
	Name        string
	Description *string
	SegmentID   *pulid.ID
	Status      *campaign.Status
}

// UpdateCampaignInput is the GraphQL input of updateCampaign; nil fields
// stay as they are.
type UpdateCampaignInput struct {
	Name             *string
	Description      *string
	ClearDescription *bool
	SegmentID        *pulid.ID
	ClearSegment     *bool
	Status           *campaign.Status
}

// activationBatch is how many activations one INSERT writes when a campaign
// starts on a segment that already has members.
const activationBatch = 1000

// CreateCampaign stores a campaign. An ACTIVE campaign with a segment
// activates at once for the segment's current members.
func (s *Service) CreateCampaign(ctx context.Context, in CreateCampaignInput) (*ent.Campaign, error) {
	name, err := cleanName("input.name", in.Name)
	if err != nil {
		return nil, err
	}
	desc, err := cleanDescription("input.description", in.Description)
	if err != nil {
		return nil, err
	}
	status := campaign.StatusDRAFT
	if in.Status != nil {
		status = *in.Status
	}
	var created *ent.Campaign
	err = s.inTx(ctx, func(tx *ent.Tx) error {
		if in.SegmentID != nil {
			check := segmentExists
			if status == campaign.StatusACTIVE {
				check = s.lockSegmentForBackfill
			}
			if err := check(ctx, tx, "input.segmentId", *in.SegmentID); err != nil {
				return err
			}
		}
		now := s.now()
		c, err := tx.Campaign.Create().
			SetName(name).
			SetNillableDescription(desc).
			SetStatus(status).
			SetNillableSegmentRef(in.SegmentID).
			SetCreatedAt(now).
			SetUpdatedAt(now).
			Save(ctx)
		if err != nil {
			return fmt.Errorf("create campaign: %w", err)
		}
		if c.Status == campaign.StatusACTIVE && c.SegmentRef != nil {
			if err := s.activateMembers(ctx, tx, c); err != nil {
				return err
			}
		}
		created = c
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("service.CreateCampaign: %w", err)
	}
	s.notify(changelog.CampaignActivations.Topic)
	return created.Unwrap(), nil
}

// UpdateCampaign changes a campaign. When it becomes ACTIVE, or an ACTIVE
// campaign gets a segment, the segment's current members activate it (each
// at most once, ever). An ENDED campaign stays ENDED.
func (s *Service) UpdateCampaign(ctx context.Context, id pulid.ID, in UpdateCampaignInput) (*ent.Campaign, error) {
	var name *string
	if in.Name != nil {
		n, err := cleanName("input.name", *in.Name)
		if err != nil {
			return nil, err
		}
		name = &n
	}
	desc, err := cleanDescription("input.description", in.Description)
	if err != nil {
		return nil, err
	}
	clearSeg := in.ClearSegment != nil && *in.ClearSegment
	if clearSeg && in.SegmentID != nil {
		return nil, segmentd.Invalid("input.clearSegment", "give either segmentId or clearSegment, not both")
	}
	clearDesc := in.ClearDescription != nil && *in.ClearDescription
	if clearDesc && in.Description != nil {
		return nil, segmentd.Invalid("input.clearDescription", "give either description or clearDescription, not both")
	}
	var updated *ent.Campaign
	err = s.inTx(ctx, func(tx *ent.Tx) error {
		old, err := s.campaignForUpdate(ctx, tx, id, in)
		if err != nil {
			return err
		}
		if in.Status != nil && old.Status == campaign.StatusENDED && *in.Status != campaign.StatusENDED {
			return segmentd.Invalid("input.status", "an ENDED campaign cannot be restarted; create a new campaign")
		}
		upd := tx.Campaign.UpdateOneID(id).SetUpdatedAt(s.now())
		if name != nil {
			upd.SetName(*name)
		}
		if desc != nil {
			upd.SetDescription(*desc)
		}
		if clearDesc {
			upd.ClearDescription()
		}
		if in.SegmentID != nil {
			if err := segmentExists(ctx, tx, "input.segmentId", *in.SegmentID); err != nil {
				return err
			}
			upd.SetSegmentRef(*in.SegmentID)
		}
		if clearSeg {
			upd.ClearSegmentRef()
		}
		if in.Status != nil {
			upd.SetStatus(*in.Status)
		}
		c, err := upd.Save(ctx)
		if err != nil {
			return fmt.Errorf("update campaign: %w", err)
		}
		becameActive := c.Status == campaign.StatusACTIVE && old.Status != campaign.StatusACTIVE
		segmentChanged := c.SegmentRef != nil && (old.SegmentRef == nil || *old.SegmentRef != *c.SegmentRef)
		if c.Status == campaign.StatusACTIVE && c.SegmentRef != nil && (becameActive || segmentChanged) {
			if err := s.activateMembers(ctx, tx, c); err != nil {
				return err
			}
		}
		updated = c
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("service.UpdateCampaign: %w", err)
	}
	s.notify(changelog.CampaignActivations.Topic)
	return updated.Unwrap(), nil
}

// DeleteCampaign deletes a campaign and its activations.
func (s *Service) DeleteCampaign(ctx context.Context, id pulid.ID) error {
	err := s.client.Campaign.DeleteOneID(id).Exec(ctx)
	if ent.IsNotFound(err) {
		return segmentd.Errorf(segmentd.CodeNotFound, "no campaign with id %q", id)
	}
	if err != nil {
		return fmt.Errorf("service.DeleteCampaign: %w", err)
	}
	return nil
}

// campaignForUpdate reads campaign id for an update in tx. On PostgreSQL,
// when the update may activate the campaign (it asks for ACTIVE, or moves
// the campaign to another segment), it first locks the segment the
// campaign will have, then the campaign's row, in that order (the order
// deleteSegment takes them in).
//
// Why the segment: the backfill (activateMembers) reads the members
// committed when it runs, and an entry reads the ACTIVE campaigns when it
// runs; an entry that read the campaign as PAUSED and committed after the
// backfill's read activated it nowhere (issue 13, item 2). Every entry
// inserts its membership row before it reads the campaigns, and that insert
// takes a FOR KEY SHARE lock on the segment's row (the foreign key check)
// until it commits. FOR UPDATE on the segment conflicts with it: it waits
// for every entry in flight to commit (their members are then visible to
// the backfill, a later statement in READ COMMITTED), and blocks new
// entries until this transaction commits, after which they read the
// campaign as ACTIVE.
func (s *Service) campaignForUpdate(ctx context.Context, tx *ent.Tx, id pulid.ID, in UpdateCampaignInput) (*ent.Campaign, error) {
	get := func(lock bool) (*ent.Campaign, error) {
		q := tx.Campaign.Query().Where(campaign.ID(id))
		if lock && s.dialect == dialect.Postgres {
			q = q.Where(forNoKeyUpdate)
		}
		c, err := q.Only(ctx)
		if ent.IsNotFound(err) {
			return nil, segmentd.Errorf(segmentd.CodeNotFound, "no campaign with id %q", id)
		}
		return c, err
	}
	mayActivate := (in.Status != nil && *in.Status == campaign.StatusACTIVE) || in.SegmentID != nil
	if s.dialect != dialect.Postgres || !mayActivate {
		return get(false)
	}
	for {
		seen, err := get(false)
		if err != nil {
			return nil, err
		}
		seg := seen.SegmentRef
		if in.SegmentID != nil {
			seg = in.SegmentID
		}
		if seg != nil {
			if err := s.lockSegmentForBackfill(ctx, tx, "input.segmentId", *seg); err != nil {
				return nil, err
			}
		}
		c, err := get(true)
		if err != nil {
			return nil, err
		}
		if in.SegmentID != nil || sameRef(c.SegmentRef, seen.SegmentRef) {
			return c, nil
		}
		// Its segment changed before the lock: lock the new one too.
	}
}

func sameRef(a, b *pulid.ID) bool { return (a == nil) == (b == nil) && (a == nil || *a == *b) }

// lockSegmentForBackfill checks that segment id exists and, on PostgreSQL,
// locks its row FOR UPDATE until tx ends: see campaignForUpdate. SQLite
// runs one writer at a time, which is as good.
func (s *Service) lockSegmentForBackfill(ctx context.Context, tx *ent.Tx, field string, id pulid.ID) error {
	if s.dialect != dialect.Postgres {
		return segmentExists(ctx, tx, field, id)
	}
	ids, err := tx.Segment.Query().Where(segment.ID(id)).ForUpdate().IDs(ctx)
	if err != nil {
		return fmt.Errorf("lock segment: %w", err)
	}
	if len(ids) == 0 {
		return &segmentd.Error{Code: segmentd.CodeNotFound, Field: field, Message: fmt.Sprintf("no segment with id %q", id)}
	}
	return nil
}

// activateMembers activates c for every current member of its segment who
// has not activated it yet, in batches; the unique (campaign, user) index
// makes a repeat a no-op.
func (s *Service) activateMembers(ctx context.Context, tx *ent.Tx, c *ent.Campaign) error {
	segID := *c.SegmentRef
	now := s.now()
	var after pulid.ID
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
			return fmt.Errorf("list members: %w", err)
		}
		if len(members) == 0 {
			return nil
		}
		builders := make([]*ent.CampaignActivationCreate, len(members))
		for i, m := range members {
			builders[i] = tx.CampaignActivation.Create().
				SetCampaignRef(c.ID).
				SetUserRef(m.UserRef).
				SetSegmentRef(segID).
				SetActivatedAt(now)
		}
		err = tx.CampaignActivation.CreateBulk(builders...).
			OnConflictColumns(campaignactivation.FieldCampaignRef, campaignactivation.FieldUserRef).
			DoNothing().
			Exec(ctx)
		if err != nil && !isNoRows(err) {
			return fmt.Errorf("activate members: %w", err)
		}
		after = members[len(members)-1].ID
	}
}

func segmentExists(ctx context.Context, tx *ent.Tx, field string, id pulid.ID) error {
	return segmentExistsIn(ctx, tx, nil, field, id)
}
