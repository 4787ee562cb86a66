package service

import (
	"context"
	"fmt"

	"entgo.io/contrib/entgql"
	"entgo.io/ent/dialect/sql"

	"github.com/segmentd/segmentd"
	"github.com/segmentd/segmentd/ent"
	"github.com/segmentd/segmentd/ent/campaign"
	"github.com/segmentd/segmentd/ent/campaignactivation"
	"github.com/segmentd/segmentd/ent/event"
	"github.com/segmentd/segmentd/ent/group"
	"github.com/segmentd/segmentd/ent/membership"
	"github.com/segmentd/segmentd/ent/predicate"
	"github.com/segmentd/segmentd/ent/schema/pulid"
	"github.com/segmentd/segmentd/ent/segment"
	"github.com/segmentd/segmentd/ent/user"
)

// The connections of the API. Each one pages by paginate (the Relay
// algorithm, see there); ent's generated Paginate is not used: it applies
// `before` with `first` (and `after` with `last`) from the wrong end, and
// reads a cursor of another order as a value of this one.

// orderColumns maps an order field's GraphQL name to its column, per entity.
var (
	campaignOrderColumns   = map[string]string{"NAME": campaign.FieldName, "STATUS": campaign.FieldStatus, "CREATED_AT": campaign.FieldCreatedAt, "UPDATED_AT": campaign.FieldUpdatedAt}
	segmentOrderColumns    = map[string]string{"NAME": segment.FieldName, "CREATED_AT": segment.FieldCreatedAt, "UPDATED_AT": segment.FieldUpdatedAt}
	userOrderColumns       = map[string]string{"USER_ID": user.FieldUserID, "FIRST_SEEN_AT": user.FieldFirstSeenAt, "LAST_SEEN_AT": user.FieldLastSeenAt}
	eventOrderColumns      = map[string]string{"TIMESTAMP": event.FieldTimestamp, "RECEIVED_AT": event.FieldReceivedAt}
	membershipOrderColumns = map[string]string{"ENTERED_AT": membership.FieldEnteredAt}
	activationOrderColumns = map[string]string{"ACTIVATED_AT": campaignactivation.FieldActivatedAt}
	groupOrderColumns      = map[string]string{"GROUP_ID": group.FieldGroupID, "FIRST_SEEN_AT": group.FieldFirstSeenAt, "LAST_SEEN_AT": group.FieldLastSeenAt}
)

// entKeyset is the keyset of one of ent's order fields: name is its
// GraphQL name ("" for the ID order), value reads it from a node.
func entKeyset[N any](prefix string, columns map[string]string, name string, dir entgql.OrderDirection,
	id func(*N) pulid.ID, value func(*N) (ent.Value, error)) (keyset[N], error) {
	column := ""
	if name != "" {
		var ok bool
		if column, ok = columns[name]; !ok {
			return keyset[N]{}, segmentd.Invalid("orderBy.field", "%q is not an order field of this list", name)
		}
	}
	if dir == "" {
		dir = entgql.OrderDirectionAsc
	}
	of := func(n *N) (any, error) { return value(n) }
	return columnKeyset(prefix, name, column, dir, id, of)
}

// page builds an ent connection from a computed page.
func edgesOf[N any, E any](p *relayPage[N], edge func(*N, ent.Cursor) E) []E {
	out := make([]E, len(p.Nodes))
	for i, n := range p.Nodes {
		out[i] = edge(n, p.Cursors[i])
	}
	return out
}

// Campaigns lists campaigns (by ID unless order says otherwise).
func (s *Service) Campaigns(ctx context.Context, page Page, where *ent.CampaignWhereInput, order *ent.CampaignOrder) (*ent.CampaignConnection, error) {
	if order == nil {
		order = ent.DefaultCampaignOrder
	}
	field := order.Field
	if field == nil {
		field = ent.DefaultCampaignOrder.Field
	}
	ks, err := entKeyset("cmp", campaignOrderColumns, field.String(), order.Direction,
		func(n *ent.Campaign) pulid.ID { return n.ID }, field.Value)
	if err != nil {
		return nil, err
	}
	q, err := where.Filter(s.client.Campaign.Query())
	if err != nil {
		return nil, err
	}
	p, err := paginate(ctx, q, page, ks,
		func(q *ent.CampaignQuery, f func(*sql.Selector)) *ent.CampaignQuery {
			return q.Where(predicate.Campaign(f))
		},
		func(q *ent.CampaignQuery, f func(*sql.Selector)) *ent.CampaignQuery {
			return q.Order(campaign.OrderOption(f))
		})
	if err != nil {
		return nil, fmt.Errorf("service.Campaigns: %w", err)
	}
	return &ent.CampaignConnection{PageInfo: p.PageInfo, TotalCount: p.TotalCount,
		Edges: edgesOf(p, func(n *ent.Campaign, c ent.Cursor) *ent.CampaignEdge { return &ent.CampaignEdge{Node: n, Cursor: c} })}, nil
}

// Users lists users (by ID unless order says otherwise); the tombstones
// of erased users are not users any more and are left out.
func (s *Service) Users(ctx context.Context, page Page, where *ent.UserWhereInput, order *ent.UserOrder) (*ent.UserConnection, error) {
	return s.usersOf(ctx, s.client.User.Query().Where(NotErased()), page, where, order)
}

// GroupUsers lists the users that group calls put in g (by ID unless order
// says otherwise).
func (s *Service) GroupUsers(ctx context.Context, g *ent.Group, page Page, where *ent.UserWhereInput, order *ent.UserOrder) (*ent.UserConnection, error) {
	return s.usersOf(ctx, s.client.Group.QueryUsers(g), page, where, order)
}

func (s *Service) usersOf(ctx context.Context, base *ent.UserQuery, page Page, where *ent.UserWhereInput, order *ent.UserOrder) (*ent.UserConnection, error) {
	if order == nil {
		order = ent.DefaultUserOrder
	}
	field := order.Field
	if field == nil {
		field = ent.DefaultUserOrder.Field
	}
	ks, err := entKeyset("usr", userOrderColumns, field.String(), order.Direction,
		func(n *ent.User) pulid.ID { return n.ID }, field.Value)
	if err != nil {
		return nil, err
	}
	q, err := where.Filter(base)
	if err != nil {
		return nil, err
	}
	p, err := paginate(ctx, q, page, ks,
		func(q *ent.UserQuery, f func(*sql.Selector)) *ent.UserQuery { return q.Where(predicate.User(f)) },
		func(q *ent.UserQuery, f func(*sql.Selector)) *ent.UserQuery { return q.Order(user.OrderOption(f)) })
	if err != nil {
		return nil, fmt.Errorf("service.Users: %w", err)
	}
	return &ent.UserConnection{PageInfo: p.PageInfo, TotalCount: p.TotalCount,
		Edges: edgesOf(p, func(n *ent.User, c ent.Cursor) *ent.UserEdge { return &ent.UserEdge{Node: n, Cursor: c} })}, nil
}

// Groups lists the groups that group calls named (by ID unless order says
// otherwise).
func (s *Service) Groups(ctx context.Context, page Page, where *ent.GroupWhereInput, order *ent.GroupOrder) (*ent.GroupConnection, error) {
	if order == nil {
		order = ent.DefaultGroupOrder
	}
	field := order.Field
	if field == nil {
		field = ent.DefaultGroupOrder.Field
	}
	ks, err := entKeyset("grp", groupOrderColumns, field.String(), order.Direction,
		func(n *ent.Group) pulid.ID { return n.ID }, field.Value)
	if err != nil {
		return nil, err
	}
	q, err := where.Filter(s.client.Group.Query())
	if err != nil {
		return nil, err
	}
	p, err := paginate(ctx, q, page, ks,
		func(q *ent.GroupQuery, f func(*sql.Selector)) *ent.GroupQuery { return q.Where(predicate.Group(f)) },
		func(q *ent.GroupQuery, f func(*sql.Selector)) *ent.GroupQuery { return q.Order(group.OrderOption(f)) })
	if err != nil {
		return nil, fmt.Errorf("service.Groups: %w", err)
	}
	return &ent.GroupConnection{PageInfo: p.PageInfo, TotalCount: p.TotalCount,
		Edges: edgesOf(p, func(n *ent.Group, c ent.Cursor) *ent.GroupEdge { return &ent.GroupEdge{Node: n, Cursor: c} })}, nil
}

// Events lists stored events, newest received first unless order says
// otherwise.
func (s *Service) Events(ctx context.Context, page Page, where *ent.EventWhereInput, order *ent.EventOrder) (*ent.EventConnection, error) {
	if order == nil {
		order = &ent.EventOrder{Field: ent.EventOrderFieldReceivedAt, Direction: entgql.OrderDirectionDesc}
	}
	field := order.Field
	if field == nil {
		field = ent.DefaultEventOrder.Field
	}
	ks, err := entKeyset("evt", eventOrderColumns, field.String(), order.Direction,
		func(n *ent.Event) pulid.ID { return n.ID }, field.Value)
	if err != nil {
		return nil, err
	}
	q, err := where.Filter(s.client.Event.Query())
	if err != nil {
		return nil, err
	}
	p, err := paginate(ctx, q, page, ks,
		func(q *ent.EventQuery, f func(*sql.Selector)) *ent.EventQuery { return q.Where(predicate.Event(f)) },
		func(q *ent.EventQuery, f func(*sql.Selector)) *ent.EventQuery { return q.Order(event.OrderOption(f)) })
	if err != nil {
		return nil, fmt.Errorf("service.Events: %w", err)
	}
	return &ent.EventConnection{PageInfo: p.PageInfo, TotalCount: p.TotalCount,
		Edges: edgesOf(p, func(n *ent.Event, c ent.Cursor) *ent.EventEdge { return &ent.EventEdge{Node: n, Cursor: c} })}, nil
}

// MembershipCursor is the cursor Members gives m in order: for first pages
// of members that are loaded for many segments at once.
func MembershipCursor(order *ent.MembershipOrder, m *ent.Membership) (ent.Cursor, error) {
	field := order.Field
	if field == nil {
		field = ent.DefaultMembershipOrder.Field
	}
	ks, err := entKeyset("mem", membershipOrderColumns, field.String(), order.Direction,
		func(n *ent.Membership) pulid.ID { return n.ID }, field.Value)
	if err != nil {
		return ent.Cursor{}, err
	}
	return ks.cursor(m)
}

// Members lists a segment's current members, newest entry first unless
// order says otherwise.
func (s *Service) Members(ctx context.Context, seg *ent.Segment, page Page, where *ent.MembershipWhereInput, order *ent.MembershipOrder) (*ent.MembershipConnection, error) {
	if order == nil {
		order = &ent.MembershipOrder{Field: ent.MembershipOrderFieldEnteredAt, Direction: entgql.OrderDirectionDesc}
	}
	field := order.Field
	if field == nil {
		field = ent.DefaultMembershipOrder.Field
	}
	ks, err := entKeyset("mem", membershipOrderColumns, field.String(), order.Direction,
		func(n *ent.Membership) pulid.ID { return n.ID }, field.Value)
	if err != nil {
		return nil, err
	}
	q, err := where.Filter(s.client.Membership.Query().Where(membership.SegmentRef(seg.ID)))
	if err != nil {
		return nil, err
	}
	p, err := paginate(ctx, q, page, ks,
		func(q *ent.MembershipQuery, f func(*sql.Selector)) *ent.MembershipQuery {
			return q.Where(predicate.Membership(f))
		},
		func(q *ent.MembershipQuery, f func(*sql.Selector)) *ent.MembershipQuery {
			return q.Order(membership.OrderOption(f))
		})
	if err != nil {
		return nil, fmt.Errorf("service.Members: %w", err)
	}
	return &ent.MembershipConnection{PageInfo: p.PageInfo, TotalCount: p.TotalCount,
		Edges: edgesOf(p, func(n *ent.Membership, c ent.Cursor) *ent.MembershipEdge {
			return &ent.MembershipEdge{Node: n, Cursor: c}
		})}, nil
}

// ActivationCursor is the cursor Activations gives a in order (nil: the
// default): for first pages loaded for many campaigns at once.
func ActivationCursor(order *ent.CampaignActivationOrder, a *ent.CampaignActivation) (ent.Cursor, error) {
	if order == nil {
		order = ent.DefaultCampaignActivationOrder
	}
	field := order.Field
	if field == nil {
		field = ent.DefaultCampaignActivationOrder.Field
	}
	ks, err := entKeyset("act", activationOrderColumns, field.String(), order.Direction,
		func(n *ent.CampaignActivation) pulid.ID { return n.ID }, field.Value)
	if err != nil {
		return ent.Cursor{}, err
	}
	return ks.cursor(a)
}

// Activations lists a campaign's activations, oldest first (by ID) unless
// order says otherwise.
func (s *Service) Activations(ctx context.Context, c *ent.Campaign, page Page, order *ent.CampaignActivationOrder) (*ent.CampaignActivationConnection, error) {
	if order == nil {
		order = ent.DefaultCampaignActivationOrder
	}
	field := order.Field
	if field == nil {
		field = ent.DefaultCampaignActivationOrder.Field
	}
	ks, err := entKeyset("act", activationOrderColumns, field.String(), order.Direction,
		func(n *ent.CampaignActivation) pulid.ID { return n.ID }, field.Value)
	if err != nil {
		return nil, err
	}
	q := s.client.CampaignActivation.Query().Where(campaignactivation.CampaignRef(c.ID))
	p, err := paginate(ctx, q, page, ks,
		func(q *ent.CampaignActivationQuery, f func(*sql.Selector)) *ent.CampaignActivationQuery {
			return q.Where(predicate.CampaignActivation(f))
		},
		func(q *ent.CampaignActivationQuery, f func(*sql.Selector)) *ent.CampaignActivationQuery {
			return q.Order(campaignactivation.OrderOption(f))
		})
	if err != nil {
		return nil, fmt.Errorf("service.Activations: %w", err)
	}
	return &ent.CampaignActivationConnection{PageInfo: p.PageInfo, TotalCount: p.TotalCount,
		Edges: edgesOf(p, func(n *ent.CampaignActivation, c ent.Cursor) *ent.CampaignActivationEdge {
			return &ent.CampaignActivationEdge{Node: n, Cursor: c}
		})}, nil
}
