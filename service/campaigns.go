package service

import (
	"context"
	"fmt"

	"github.com/segmentd/segmentd"
	"github.com/segmentd/segmentd/ent"
	"github.com/segmentd/segmentd/ent/campaign"
	"github.com/segmentd/segmentd/ent/schema/pulid"
	"github.com/segmentd/segmentd/ledger"
	"github.com/segmentd/segmentd/trigger"
)

// CreateCampaignInput is the GraphQL input of createCampaign.
type CreateCampaignInput struct {
	Name        string
	Description *string
	SegmentID   *pulid.ID
	Status      *campaign.Status
	Reentry     *campaign.Reentry
	Cooldown    *string
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
	Reentry          *campaign.Reentry
	Cooldown         *string
}

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
	reentry := campaign.ReentryONCE
	if in.Reentry != nil {
		reentry = *in.Reentry
	}
	cooldown, err := cleanCooldown(reentry, in.Cooldown)
	if err != nil {
		return nil, err
	}
	var (
		created *ent.Campaign
		topics  ledger.Topics
	)
	err = s.inTx(ctx, func(tx *ent.Tx) error {
		if in.SegmentID != nil {
			check := segmentExists
			if status == campaign.StatusACTIVE {
				check = s.ledger().LockAudience
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
			SetReentry(reentry).
			SetNillableCooldown(cooldown).
			SetNillableSegmentRef(in.SegmentID).
			SetCreatedAt(now).
			SetUpdatedAt(now).
			Save(ctx)
		if err != nil {
			return fmt.Errorf("create campaign: %w", err)
		}
		if c.Status == campaign.StatusACTIVE && c.SegmentRef != nil {
			if topics, err = s.activateMembers(ctx, tx, c); err != nil {
				return err
			}
		}
		created = c
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("service.CreateCampaign: %w", err)
	}
	s.publish(topics)
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
	var (
		updated *ent.Campaign
		topics  ledger.Topics
	)
	mayActivate := (in.Status != nil && *in.Status == campaign.StatusACTIVE) || in.SegmentID != nil
	err = s.inTx(ctx, func(tx *ent.Tx) error {
		old, err := s.ledger().CampaignForChange(ctx, tx, id, in.SegmentID, mayActivate)
		if err != nil {
			return err
		}
		if in.Status != nil && old.Status == campaign.StatusENDED && *in.Status != campaign.StatusENDED {
			return segmentd.Invalid("input.status", "an ENDED campaign cannot be restarted; create a new campaign")
		}
		if err := checkReentryUpdate(old, in); err != nil {
			return err
		}
		upd := tx.Campaign.UpdateOneID(id).SetUpdatedAt(s.now())
		if in.Reentry != nil {
			upd.SetReentry(*in.Reentry)
			if *in.Reentry == campaign.ReentryONCE {
				upd.ClearCooldown()
			}
		}
		if in.Cooldown != nil {
			if *in.Cooldown == "" {
				upd.ClearCooldown()
			} else {
				upd.SetCooldown(*in.Cooldown)
			}
		}
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
			if topics, err = s.activateMembers(ctx, tx, c); err != nil {
				return err
			}
		}
		updated = c
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("service.UpdateCampaign: %w", err)
	}
	s.publish(topics)
	return updated.Unwrap(), nil
}

// cleanCooldown checks a cooldown for a campaign with policy reentry: only
// EVERY_ENTRY takes one, and it must be a duration trigger.ParseDuration
// reads. An empty or absent cooldown is none.
func cleanCooldown(reentry campaign.Reentry, cooldown *string) (*string, error) {
	if cooldown == nil || *cooldown == "" {
		return nil, nil
	}
	if reentry != campaign.ReentryEVERY_ENTRY {
		return nil, segmentd.Invalid("input.cooldown", "a cooldown applies to reentry EVERY_ENTRY only; with %s a user activates the campaign once, ever", reentry)
	}
	if _, err := trigger.ParseDuration(*cooldown); err != nil {
		return nil, segmentd.Invalid("input.cooldown", "%v", err)
	}
	return cooldown, nil
}

// checkReentryUpdate checks the reentry and cooldown of an update of old:
// a cooldown needs the policy the campaign will have to be EVERY_ENTRY.
func checkReentryUpdate(old *ent.Campaign, in UpdateCampaignInput) error {
	reentry := old.Reentry
	if in.Reentry != nil {
		reentry = *in.Reentry
	}
	_, err := cleanCooldown(reentry, in.Cooldown)
	return err
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

// activateMembers activates c, which has just started on its segment, for
// the segment's current members (see ledger.ActivateCampaign: the segment is
// locked by LockAudience or CampaignForChange first).
func (s *Service) activateMembers(ctx context.Context, tx *ent.Tx, c *ent.Campaign) (ledger.Topics, error) {
	w := s.ledger().Writer(tx)
	if _, err := w.ActivateCampaign(ctx, c, s.now()); err != nil {
		return ledger.Topics{}, err
	}
	return w.Flush(ctx)
}

func segmentExists(ctx context.Context, tx *ent.Tx, field string, id pulid.ID) error {
	return segmentExistsIn(ctx, tx, nil, field, id)
}
