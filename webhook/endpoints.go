package webhook

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"entgo.io/contrib/entgql"

	"github.com/segmentd/segmentd"
	"github.com/segmentd/segmentd/changelog"
	"github.com/segmentd/segmentd/ent"
	"github.com/segmentd/segmentd/ent/campaign"
	"github.com/segmentd/segmentd/ent/schema/pulid"
	"github.com/segmentd/segmentd/ent/segment"
	"github.com/segmentd/segmentd/ent/webhookdelivery"
	"github.com/segmentd/segmentd/ent/webhookendpoint"
	"github.com/segmentd/segmentd/live"
)

// CreateInput is a new endpoint (CreateWebhookEndpointInput).
type CreateInput struct {
	URL         string                  `json:"url"`
	Description *string                 `json:"description,omitempty"`
	Topics      []webhookdelivery.Topic `json:"topics"`
	SegmentIds  []pulid.ID              `json:"segmentIds,omitempty"`
	CampaignIds []pulid.ID              `json:"campaignIds,omitempty"`
	Format      *webhookendpoint.Format `json:"format,omitempty"`
	Enabled     *bool                   `json:"enabled,omitempty"`
	WriteKey    *string                 `json:"writeKey,omitempty"`
}

// UpdateInput changes an endpoint (UpdateWebhookEndpointInput); nil
// fields stay as they are.
type UpdateInput struct {
	URL         *string                 `json:"url,omitempty"`
	Description *string                 `json:"description,omitempty"`
	Topics      []webhookdelivery.Topic `json:"topics,omitempty"`
	SegmentIds  []pulid.ID              `json:"segmentIds,omitempty"`
	CampaignIds []pulid.ID              `json:"campaignIds,omitempty"`
	Format      *webhookendpoint.Format `json:"format,omitempty"`
	Enabled     *bool                   `json:"enabled,omitempty"`
	WriteKey    *string                 `json:"writeKey,omitempty"`
}

// Created is an endpoint with its secret, shown once.
type Created struct {
	Endpoint *ent.WebhookEndpoint `json:"endpoint"`
	Secret   string               `json:"secret"`
}

func notFound(field string, id pulid.ID) error {
	return &segmentd.Error{Code: segmentd.CodeNotFound, Field: field, Message: fmt.Sprintf("no webhook endpoint with id %q", id)}
}

func (h *Hooks) checkURL(ctx context.Context, field, raw string) (string, error) {
	if err := h.cfg.URLs.Check(ctx, raw); err != nil {
		return "", segmentd.Invalid(field, "%v", err)
	}
	return strings.TrimSpace(raw), nil
}

func checkTopics(field string, topics []webhookdelivery.Topic) ([]string, error) {
	if len(topics) == 0 {
		return nil, segmentd.Invalid(field, "at least one topic: MEMBERSHIP_ENTERED, MEMBERSHIP_EXITED or CAMPAIGN_ACTIVATED")
	}
	var out []string
	for i, t := range topics {
		if err := webhookdelivery.TopicValidator(t); err != nil {
			return nil, segmentd.Invalid(fmt.Sprintf("%s[%d]", field, i), "unknown topic %q", t)
		}
		if !slices.Contains(out, string(t)) {
			out = append(out, string(t))
		}
	}
	return out, nil
}

func (h *Hooks) checkSegments(ctx context.Context, field string, ids []pulid.ID) ([]string, error) {
	out := []string{}
	for i, id := range ids {
		ok, err := h.client.Segment.Query().Where(segment.ID(id)).Exist(ctx)
		if err != nil {
			return nil, fmt.Errorf("find segment: %w", err)
		}
		if !ok {
			return nil, segmentd.Invalid(fmt.Sprintf("%s[%d]", field, i), "no segment with id %q", id)
		}
		if !slices.Contains(out, string(id)) {
			out = append(out, string(id))
		}
	}
	return out, nil
}

func (h *Hooks) checkCampaigns(ctx context.Context, field string, ids []pulid.ID) ([]string, error) {
	out := []string{}
	for i, id := range ids {
		ok, err := h.client.Campaign.Query().Where(campaign.ID(id)).Exist(ctx)
		if err != nil {
			return nil, fmt.Errorf("find campaign: %w", err)
		}
		if !ok {
			return nil, segmentd.Invalid(fmt.Sprintf("%s[%d]", field, i), "no campaign with id %q", id)
		}
		if !slices.Contains(out, string(id)) {
			out = append(out, string(id))
		}
	}
	return out, nil
}

func checkDescription(field string, d *string) error {
	if d != nil && len(*d) > 2000 {
		return segmentd.Invalid(field, "at most 2,000 characters")
	}
	return nil
}

// heads are the logs' committed ends: where a new endpoint starts.
func (h *Hooks) heads(ctx context.Context) (changes, activations changelog.Cursor, err error) {
	if changes, err = h.changes.CurrentHead(ctx); err != nil {
		return
	}
	activations, err = h.activations.CurrentHead(ctx)
	return
}

// Create makes an endpoint that receives what commits from now on. Bad
// input is BAD_USER_INPUT naming the field (input.url, input.topics,
// input.segmentIds[i], input.campaignIds[i]).
func (h *Hooks) Create(ctx context.Context, in CreateInput) (*Created, error) {
	url, err := h.checkURL(ctx, "input.url", in.URL)
	if err != nil {
		return nil, err
	}
	topics, err := checkTopics("input.topics", in.Topics)
	if err != nil {
		return nil, err
	}
	if err := checkDescription("input.description", in.Description); err != nil {
		return nil, err
	}
	segs, err := h.checkSegments(ctx, "input.segmentIds", in.SegmentIds)
	if err != nil {
		return nil, err
	}
	cmps, err := h.checkCampaigns(ctx, "input.campaignIds", in.CampaignIds)
	if err != nil {
		return nil, err
	}
	secret, err := newSecret()
	if err != nil {
		return nil, fmt.Errorf("webhook.Create: %w", err)
	}
	ch, ac, err := h.heads(ctx)
	if err != nil {
		return nil, fmt.Errorf("webhook.Create: %w", err)
	}
	now := h.now()
	c := h.client.WebhookEndpoint.Create().SetURL(url).SetNillableDescription(in.Description).
		SetTopics(topics).SetSegmentIds(segs).SetCampaignIds(cmps).SetSecret(secret).
		SetChangesPosition(ch.String()).SetActivationsPosition(ac.String()).
		SetCreatedAt(now).SetUpdatedAt(now)
	if in.Format != nil {
		if err := webhookendpoint.FormatValidator(*in.Format); err != nil {
			return nil, segmentd.Invalid("input.format", "unknown format %q", *in.Format)
		}
		c.SetFormat(*in.Format)
	}
	if in.Enabled != nil {
		c.SetEnabled(*in.Enabled)
		if !*in.Enabled {
			c.SetDisabledReason("created disabled")
		}
	}
	if in.WriteKey != nil && *in.WriteKey != "" {
		c.SetWriteKey(*in.WriteKey)
	}
	ep, err := c.Save(ctx)
	if err != nil {
		return nil, fmt.Errorf("webhook.Create: %w", err)
	}
	h.log.Info("webhook endpoint created", "endpoint", ep.ID)
	h.Kick()
	return &Created{Endpoint: ep, Secret: SecretPrefix + secret}, nil
}

// Update changes an endpoint. Enabling a disabled endpoint resumes from
// its positions: what committed while it was disabled is sent.
func (h *Hooks) Update(ctx context.Context, id pulid.ID, in UpdateInput) (*ent.WebhookEndpoint, error) {
	ep, err := h.client.WebhookEndpoint.Get(ctx, id)
	if ent.IsNotFound(err) {
		return nil, notFound("id", id)
	} else if err != nil {
		return nil, fmt.Errorf("webhook.Update: %w", err)
	}
	u := h.client.WebhookEndpoint.UpdateOne(ep).SetUpdatedAt(h.now())
	if in.URL != nil {
		url, err := h.checkURL(ctx, "input.url", *in.URL)
		if err != nil {
			return nil, err
		}
		u.SetURL(url)
	}
	if in.Topics != nil {
		topics, err := checkTopics("input.topics", in.Topics)
		if err != nil {
			return nil, err
		}
		u.SetTopics(topics)
	}
	if in.Description != nil {
		if err := checkDescription("input.description", in.Description); err != nil {
			return nil, err
		}
		u.SetDescription(*in.Description)
	}
	if in.SegmentIds != nil {
		segs, err := h.checkSegments(ctx, "input.segmentIds", in.SegmentIds)
		if err != nil {
			return nil, err
		}
		u.SetSegmentIds(segs)
	}
	if in.CampaignIds != nil {
		cmps, err := h.checkCampaigns(ctx, "input.campaignIds", in.CampaignIds)
		if err != nil {
			return nil, err
		}
		u.SetCampaignIds(cmps)
	}
	if in.Format != nil {
		if err := webhookendpoint.FormatValidator(*in.Format); err != nil {
			return nil, segmentd.Invalid("input.format", "unknown format %q", *in.Format)
		}
		u.SetFormat(*in.Format)
	}
	if in.WriteKey != nil {
		if *in.WriteKey == "" {
			u.ClearWriteKey()
		} else {
			u.SetWriteKey(*in.WriteKey)
		}
	}
	if in.Enabled != nil {
		u.SetEnabled(*in.Enabled)
		if *in.Enabled {
			u.ClearDisabledReason()
		} else {
			u.SetDisabledReason("disabled by updateWebhookEndpoint")
		}
	}
	ep, err = u.Save(ctx)
	if err != nil {
		return nil, fmt.Errorf("webhook.Update: %w", err)
	}
	h.Kick()
	return ep, nil
}

// Delete removes an endpoint and its deliveries.
func (h *Hooks) Delete(ctx context.Context, id pulid.ID) error {
	err := h.inTx(ctx, func(tx *ent.Tx) error {
		if _, err := tx.WebhookDelivery.Delete().Where(webhookdelivery.EndpointRef(id)).Exec(ctx); err != nil {
			return err
		}
		n, err := tx.WebhookEndpoint.Delete().Where(webhookendpoint.ID(id)).Exec(ctx)
		if err != nil {
			return err
		}
		if n == 0 {
			return notFound("id", id)
		}
		return nil
	})
	var serr *segmentd.Error
	if errors.As(err, &serr) {
		return err
	}
	if err != nil {
		return fmt.Errorf("webhook.Delete: %w", err)
	}
	return nil
}

// Rotate gives an endpoint a new secret; the old one keeps signing beside
// it for RotationOverlap.
func (h *Hooks) Rotate(ctx context.Context, id pulid.ID) (*Created, error) {
	ep, err := h.client.WebhookEndpoint.Get(ctx, id)
	if ent.IsNotFound(err) {
		return nil, notFound("id", id)
	} else if err != nil {
		return nil, fmt.Errorf("webhook.Rotate: %w", err)
	}
	secret, err := newSecret()
	if err != nil {
		return nil, fmt.Errorf("webhook.Rotate: %w", err)
	}
	now := h.now()
	ep, err = h.client.WebhookEndpoint.UpdateOne(ep).SetSecret(secret).SetPreviousSecret(ep.Secret).
		SetPreviousSecretUntil(now.Add(RotationOverlap)).SetUpdatedAt(now).Save(ctx)
	if err != nil {
		return nil, fmt.Errorf("webhook.Rotate: %w", err)
	}
	h.log.Info("webhook secret rotated", "endpoint", ep.ID)
	return &Created{Endpoint: ep, Secret: SecretPrefix + secret}, nil
}

// List pages through the endpoints, oldest first.
func (h *Hooks) List(ctx context.Context, after *entgql.Cursor[pulid.ID], first *int) (*ent.WebhookEndpointConnection, error) {
	return h.client.WebhookEndpoint.Query().Paginate(ctx, after, first, nil, nil)
}

// Deliveries pages through an endpoint's deliveries, newest first,
// optionally of one status.
func (h *Hooks) Deliveries(ctx context.Context, id pulid.ID, after *entgql.Cursor[pulid.ID], first *int, status *webhookdelivery.Status) (*ent.WebhookDeliveryConnection, error) {
	if first == nil {
		n := 20
		first = &n
	}
	q := h.client.WebhookDelivery.Query().Where(webhookdelivery.EndpointRef(id))
	if status != nil {
		q = q.Where(webhookdelivery.StatusEQ(*status))
	}
	return q.Paginate(ctx, after, first, nil, nil, ent.WithWebhookDeliveryOrder(&ent.WebhookDeliveryOrder{
		Direction: entgql.OrderDirectionDesc, Field: ent.DefaultWebhookDeliveryOrder.Field,
	}))
}

// Segments and Campaigns are an endpoint's filters, as entities.
func (h *Hooks) Segments(ctx context.Context, ep *ent.WebhookEndpoint) ([]*ent.Segment, error) {
	return h.client.Segment.Query().Where(segment.IDIn(toIDs(ep.SegmentIds)...)).All(ctx)
}

// Campaigns: see Segments.
func (h *Hooks) Campaigns(ctx context.Context, ep *ent.WebhookEndpoint) ([]*ent.Campaign, error) {
	return h.client.Campaign.Query().Where(campaign.IDIn(toIDs(ep.CampaignIds)...)).All(ctx)
}

// Topics are an endpoint's topics.
func Topics(ep *ent.WebhookEndpoint) []webhookdelivery.Topic {
	out := make([]webhookdelivery.Topic, len(ep.Topics))
	for i, t := range ep.Topics {
		out[i] = webhookdelivery.Topic(t)
	}
	return out
}

func toIDs(s []string) []pulid.ID {
	out := make([]pulid.ID, len(s))
	for i, v := range s {
		out[i] = pulid.ID(v)
	}
	return out
}

// Replay queues again, at the end of the endpoint's queue, every change
// and activation the endpoint has been sent (up to its positions) that
// matches its filters now and lies after the cursor `after` (a body's id,
// or a webhook id mc_… / ca_…) or at or after `since`. A bare cursor is a
// position in both logs; a webhook id names its log, and the other log is
// replayed from that row's instant. Each message keeps its webhook-id.
// It returns how many were queued.
func (h *Hooks) Replay(ctx context.Context, id pulid.ID, after *string, since *time.Time) (int, error) {
	if (after == nil) == (since == nil) {
		return 0, segmentd.Invalid("after", "give one of after and since")
	}
	ep, err := h.client.WebhookEndpoint.Get(ctx, id)
	if ent.IsNotFound(err) {
		return 0, notFound("endpointId", id)
	} else if err != nil {
		return 0, fmt.Errorf("webhook.Replay: %w", err)
	}
	var starts [2]*changelog.Cursor // changes, activations
	var from *time.Time = since
	if after != nil {
		text := strings.TrimSpace(*after)
		which := -1
		switch {
		case strings.HasPrefix(text, changePrefix):
			text, which = strings.TrimPrefix(text, changePrefix), 0
		case strings.HasPrefix(text, activationPrefix):
			text, which = strings.TrimPrefix(text, activationPrefix), 1
		}
		c, err := changelog.ParseCursor(text)
		if err != nil {
			return 0, segmentd.Invalid("after", "%v (or a webhook id such as mc_0.12)", err)
		}
		if which < 0 {
			starts[0], starts[1] = &c, &c
		} else {
			starts[which] = &c
			at, err := h.instantOf(ctx, which == 1, c)
			if err != nil {
				return 0, err
			}
			from = &at
		}
	}
	f := newFilter(ep)
	var msgs []*message
	for i, tl := range []*live.Tailer{h.changes, h.activations} {
		activations := i == 1
		if !f.wantsLog(activations) {
			continue
		}
		endText := ep.ChangesPosition
		if activations {
			endText = ep.ActivationsPosition
		}
		end, _ := changelog.ParseCursor(endText)
		pos := changelog.Cursor{}
		if starts[i] != nil {
			pos = *starts[i]
		}
		for pos.Less(end) {
			rows, _, err := tl.Read(ctx, pos, dispatchPage)
			if err != nil {
				return 0, fmt.Errorf("webhook.Replay: %w", err)
			}
			if len(rows) == 0 {
				break
			}
			for _, r := range rows {
				if end.Less(r.Cursor) {
					pos = end
					break
				}
				pos = r.Cursor
				var m *message
				switch v := r.Value.(type) {
				case *ent.MembershipChange:
					m = changeMessage(v, r.Cursor)
				case *ent.CampaignActivation:
					m = activationMessage(v, r.Cursor)
				}
				if m == nil || !f.match(m) || (starts[i] == nil && from != nil && m.at.Before(*from)) {
					continue
				}
				msgs = append(msgs, m)
			}
			if len(rows) < dispatchPage {
				break
			}
		}
	}
	err = h.inTx(ctx, func(tx *ent.Tx) error {
		// Locked, so that the numbering does not race a sender's page
		// (which holds the row on PostgreSQL while it sends).
		cur, err := h.locks.endpointWait(ctx, tx, id)
		if err != nil {
			return err
		}
		if cur == nil {
			return notFound("endpointId", id)
		}
		if err := h.queue(ctx, tx, cur, msgs, 0); err != nil {
			return err
		}
		return tx.WebhookEndpoint.UpdateOneID(id).SetNextSeq(cur.NextSeq + int64(len(msgs))).Exec(ctx)
	})
	if err != nil {
		return 0, fmt.Errorf("webhook.Replay: %w", err)
	}
	h.wakeWorkers()
	h.broker.Notify(Topic)
	return len(msgs), nil
}

// instantOf is when the row at c happened; BAD_USER_INPUT on after if the
// log has no such row.
func (h *Hooks) instantOf(ctx context.Context, activations bool, c changelog.Cursor) (time.Time, error) {
	tl := h.changes
	if activations {
		tl = h.activations
	}
	prev := changelog.Cursor{Tx: c.Tx, Seq: c.Seq - 1}
	if c.Seq == 0 {
		return time.Time{}, segmentd.Invalid("after", "no change has the cursor %s", c)
	}
	rows, _, err := tl.Read(ctx, prev, 1)
	if err != nil {
		return time.Time{}, fmt.Errorf("webhook.Replay: %w", err)
	}
	if len(rows) == 0 || rows[0].Cursor != c {
		return time.Time{}, segmentd.Invalid("after", "no change has the cursor %s", c)
	}
	switch v := rows[0].Value.(type) {
	case *ent.MembershipChange:
		return v.At, nil
	case *ent.CampaignActivation:
		return v.ActivatedAt, nil
	}
	return time.Time{}, segmentd.Invalid("after", "no change has the cursor %s", c)
}
