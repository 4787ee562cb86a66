package graph

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"

	"entgo.io/contrib/entgql"
	"github.com/99designs/gqlgen/graphql"

	"github.com/segmentd/segmentd/ent"
	"github.com/segmentd/segmentd/ent/campaign"
	"github.com/segmentd/segmentd/ent/campaignactivation"
	"github.com/segmentd/segmentd/ent/condition"
	"github.com/segmentd/segmentd/ent/membership"
	"github.com/segmentd/segmentd/ent/schema"
	"github.com/segmentd/segmentd/ent/schema/pulid"
	"github.com/segmentd/segmentd/ent/segment"
	"github.com/segmentd/segmentd/ent/user"
	"github.com/segmentd/segmentd/service"
)

// Batched loading of nested lists.
//
// A list field under a list (each segment's campaigns, each member's
// memberships) would cost one query per row. Instead, every list of
// entities a field returns is registered as a group of siblings (Siblings,
// and the loaders themselves for what they load); the first sibling whose
// nested field resolves loads that field for the whole group in one
// statement (chunked past batchChunk IDs), and the others read the result.
// The statements of a query then grow with its depth, not with its rows.
// Groups live for one operation (WithBatches).

// batchChunk is the most IDs one batched statement takes (SQLite allows
// 32,766 variables; PostgreSQL 65,535).
const batchChunk = 1000

type batchCtxKey struct{}

type batchKey struct {
	kind string
	id   pulid.ID
}

type batches struct {
	mu     sync.Mutex
	groups map[batchKey]*batchGroup
}

type batchGroup struct {
	ids     []pulid.ID
	mu      sync.Mutex
	results map[string]*batchResult
}

type batchResult struct {
	once sync.Once
	v    any
	err  error
}

// WithBatches returns ctx with an empty set of sibling groups, for one
// query operation.
func WithBatches(ctx context.Context) context.Context {
	return context.WithValue(ctx, batchCtxKey{}, &batches{groups: map[batchKey]*batchGroup{}})
}

// register makes ids one group of siblings of kind. An entity already in a
// group stays in it: the first list it appeared in is its group.
func register(ctx context.Context, kind string, ids []pulid.ID) {
	b, _ := ctx.Value(batchCtxKey{}).(*batches)
	if b == nil || len(ids) == 0 {
		return
	}
	g := &batchGroup{ids: ids, results: map[string]*batchResult{}}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, id := range ids {
		k := batchKey{kind, id}
		if _, ok := b.groups[k]; !ok {
			b.groups[k] = g
		}
	}
}

// load returns what fetch finds for id, fetching it for the whole group
// of id's siblings at once. key names the field and its arguments.
func load[V any](ctx context.Context, kind, key string, id pulid.ID, fetch func(ctx context.Context, ids []pulid.ID) (map[pulid.ID]V, error)) (V, error) {
	b, _ := ctx.Value(batchCtxKey{}).(*batches)
	if b == nil {
		m, err := fetch(ctx, []pulid.ID{id})
		return m[id], err
	}
	b.mu.Lock()
	g := b.groups[batchKey{kind, id}]
	if g == nil {
		g = &batchGroup{ids: []pulid.ID{id}, results: map[string]*batchResult{}}
		b.groups[batchKey{kind, id}] = g
	}
	b.mu.Unlock()
	g.mu.Lock()
	r := g.results[key]
	if r == nil {
		r = &batchResult{}
		g.results[key] = r
	}
	g.mu.Unlock()
	r.once.Do(func() {
		all := map[pulid.ID]V{}
		for start := 0; start < len(g.ids); start += batchChunk {
			m, err := fetch(ctx, g.ids[start:min(start+batchChunk, len(g.ids))])
			if err != nil {
				r.err = err
				return
			}
			for k, v := range m {
				all[k] = v
			}
		}
		r.v = all
	})
	if r.err != nil {
		var zero V
		return zero, r.err
	}
	return r.v.(map[pulid.ID]V)[id], nil
}

// fieldKey names the field being resolved (its place in the document, so
// that two aliases with other selections do not share a result) and
// extra, its arguments.
func fieldKey(ctx context.Context, extra ...any) string {
	fc := graphql.GetFieldContext(ctx)
	if fc == nil {
		return fmt.Sprint(extra...)
	}
	return fmt.Sprintf("%s@%p%v", fc.Field.Alias, fc.Field.Field, extra)
}

// selected reports which fields the current field selects, below path
// (such as "edges", "node").
func selected(ctx context.Context, path ...string) map[string]bool {
	fc := graphql.GetFieldContext(ctx)
	oc := graphql.GetOperationContext(ctx)
	out := map[string]bool{}
	if fc == nil || oc == nil {
		return out
	}
	fields := graphql.CollectFields(oc, fc.Field.Selections, nil)
walk:
	for _, name := range path {
		for _, f := range fields {
			if f.Name == name {
				fields = graphql.CollectFields(oc, f.Selections, nil)
				continue walk
			}
		}
		return out
	}
	for _, f := range fields {
		out[f.Name] = true
	}
	return out
}

// Siblings is a field middleware that registers the entities of every
// list a field returns as a group of siblings.
func Siblings(ctx context.Context, next graphql.Resolver) (any, error) {
	res, err := next(ctx)
	if err != nil || res == nil {
		return res, err
	}
	switch v := res.(type) {
	case *ent.SegmentConnection:
		ids := make([]pulid.ID, 0, len(v.Edges))
		for _, e := range v.Edges {
			if e != nil && e.Node != nil {
				ids = append(ids, e.Node.ID)
			}
		}
		register(ctx, "segment", ids)
	case *ent.CampaignConnection:
		list := make([]*ent.Campaign, 0, len(v.Edges))
		for _, e := range v.Edges {
			if e != nil && e.Node != nil {
				list = append(list, e.Node)
			}
		}
		registerCampaigns(ctx, list)
	case []*ent.Campaign:
		registerCampaigns(ctx, v)
	case *ent.MembershipConnection:
		list := make([]*ent.Membership, 0, len(v.Edges))
		for _, e := range v.Edges {
			if e != nil && e.Node != nil {
				list = append(list, e.Node)
			}
		}
		registerMemberships(ctx, list)
	case []*ent.Membership:
		registerMemberships(ctx, v)
	case *ent.UserConnection:
		ids := make([]pulid.ID, 0, len(v.Edges))
		for _, e := range v.Edges {
			if e != nil && e.Node != nil {
				ids = append(ids, e.Node.ID)
			}
		}
		register(ctx, "user", ids)
	case *ent.EventConnection:
		list := make([]*ent.Event, 0, len(v.Edges))
		for _, e := range v.Edges {
			if e != nil && e.Node != nil {
				list = append(list, e.Node)
			}
		}
		registerEvents(ctx, list)
	case []*ent.Event:
		registerEvents(ctx, v)
	case []ent.Noder:
		byKind := map[string][]pulid.ID{}
		for _, n := range v {
			switch n := n.(type) {
			case *ent.Segment:
				byKind["segment"] = append(byKind["segment"], n.ID)
			case *ent.User:
				byKind["user"] = append(byKind["user"], n.ID)
			case *ent.Campaign:
				byKind["campaign"] = append(byKind["campaign"], n.ID)
			case *ent.Event:
				registerEvents(ctx, []*ent.Event{n})
			}
		}
		for k, ids := range byKind {
			register(ctx, k, ids)
		}
	}
	return res, nil
}

// registerEvents registers what the nested fields of events load by:
// their users' refs and their outcomes' segments.
func registerEvents(ctx context.Context, list []*ent.Event) {
	var users, segs []pulid.ID
	for _, e := range list {
		if e.UserRef != nil {
			users = append(users, *e.UserRef)
		}
		for _, o := range e.Outcomes {
			segs = append(segs, o.SegmentID)
		}
	}
	register(ctx, "eventUser", users)
	register(ctx, "outcomeSegment", segs)
}

func registerCampaigns(ctx context.Context, list []*ent.Campaign) {
	ids := make([]pulid.ID, len(list))
	var segs []pulid.ID
	for i, c := range list {
		ids[i] = c.ID
		if s := c.Edges.Segment; s != nil {
			segs = append(segs, s.ID)
		}
	}
	register(ctx, "campaign", ids)
	register(ctx, "segment", segs)
}

func registerMemberships(ctx context.Context, list []*ent.Membership) {
	ids := make([]pulid.ID, len(list))
	var users, segs []pulid.ID
	for i, m := range list {
		ids[i] = m.ID
		if u := m.Edges.User; u != nil {
			users = append(users, u.ID)
		}
		if s := m.Edges.Segment; s != nil {
			segs = append(segs, s.ID)
		}
	}
	register(ctx, "membership", ids)
	register(ctx, "user", users)
	register(ctx, "segment", segs)
}

// withMembershipEdges eager-loads the edges of memberships that the
// selection asks for.
func withMembershipEdges(q *ent.MembershipQuery, sel map[string]bool) *ent.MembershipQuery {
	if sel["user"] {
		q = q.WithUser()
	}
	if sel["segment"] {
		q = q.WithSegment()
	}
	if sel["event"] {
		q = q.WithEvent()
	}
	return q
}

// segmentCampaigns loads the campaigns of a group of segments: which
// campaigns (one statement), then the campaigns with every ent edge the
// selection asks for (entgql's field collection: one statement per edge).
func (r *Resolver) segmentCampaigns(ctx context.Context, segmentID pulid.ID) ([]*ent.Campaign, error) {
	list, err := load(ctx, "segment", fieldKey(ctx), segmentID, func(ctx context.Context, ids []pulid.ID) (map[pulid.ID][]*ent.Campaign, error) {
		refs, err := r.client.Campaign.Query().Where(campaign.SegmentRefIn(ids...)).
			Select(campaign.FieldID, campaign.FieldSegmentRef).All(ctx)
		if err != nil {
			return nil, err
		}
		out := make(map[pulid.ID][]*ent.Campaign, len(ids))
		if len(refs) == 0 {
			return out, nil
		}
		segOf := make(map[pulid.ID]pulid.ID, len(refs))
		cids := make([]pulid.ID, 0, len(refs))
		for _, c := range refs {
			if c.SegmentRef != nil {
				segOf[c.ID] = *c.SegmentRef
				cids = append(cids, c.ID)
			}
		}
		q, err := r.client.Campaign.Query().Where(campaign.IDIn(cids...)).
			Order(ent.Asc(campaign.FieldCreatedAt), ent.Asc(campaign.FieldID)).CollectFields(ctx)
		if err != nil {
			return nil, err
		}
		rows, err := q.All(ctx)
		if err != nil {
			return nil, err
		}
		registerCampaigns(ctx, rows)
		for _, c := range rows {
			out[segOf[c.ID]] = append(out[segOf[c.ID]], c)
		}
		return out, nil
	})
	if list == nil && err == nil {
		list = []*ent.Campaign{}
	}
	return list, err
}

// activationCount counts the activations of a group of campaigns.
func (r *Resolver) activationCount(ctx context.Context, campaignID pulid.ID) (int, error) {
	return load(ctx, "campaign", "activationCount", campaignID, func(ctx context.Context, ids []pulid.ID) (map[pulid.ID]int, error) {
		var rows []struct {
			CampaignRef pulid.ID `json:"campaign_ref"`
			Count       int      `json:"count"`
		}
		err := r.client.CampaignActivation.Query().Where(campaignactivation.CampaignRefIn(ids...)).
			GroupBy(campaignactivation.FieldCampaignRef).Aggregate(ent.Count()).Scan(ctx, &rows)
		if err != nil {
			return nil, err
		}
		out := make(map[pulid.ID]int, len(rows))
		for _, row := range rows {
			out[row.CampaignRef] = row.Count
		}
		return out, nil
	})
}

// conditionTree loads the condition trees of a group of segments.
func (r *Resolver) conditionTree(ctx context.Context, segmentID pulid.ID) (*ent.Condition, error) {
	return load(ctx, "segment", "conditions", segmentID, func(ctx context.Context, ids []pulid.ID) (map[pulid.ID]*ent.Condition, error) {
		rows, err := r.client.Condition.Query().Where(condition.SegmentRefIn(ids...), condition.TreeEQ(condition.TreeENTRY)).All(ctx)
		if err != nil {
			return nil, fmt.Errorf("load conditions: %w", err)
		}
		bySegment := map[pulid.ID][]*ent.Condition{}
		for _, c := range rows {
			bySegment[c.SegmentRef] = append(bySegment[c.SegmentRef], c)
		}
		out := make(map[pulid.ID]*ent.Condition, len(bySegment))
		for id, list := range bySegment {
			out[id] = service.BuildTree(list)
		}
		return out, nil
	})
}

// userMemberships loads the current memberships of a group of users,
// newest first.
func (r *Resolver) userMemberships(ctx context.Context, userID pulid.ID) ([]*ent.Membership, error) {
	sel := selected(ctx)
	list, err := load(ctx, "user", fieldKey(ctx), userID, func(ctx context.Context, ids []pulid.ID) (map[pulid.ID][]*ent.Membership, error) {
		q := withMembershipEdges(r.client.Membership.Query().Where(membership.UserRefIn(ids...)), sel)
		rows, err := q.Order(ent.Desc(membership.FieldEnteredAt), ent.Desc(membership.FieldID)).All(ctx)
		if err != nil {
			return nil, err
		}
		registerMemberships(ctx, rows)
		out := make(map[pulid.ID][]*ent.Membership, len(ids))
		for _, m := range rows {
			out[m.UserRef] = append(out[m.UserRef], m)
		}
		return out, nil
	})
	if list == nil && err == nil {
		list = []*ent.Membership{}
	}
	return list, err
}

// eventUser loads the users of a group of events (registered by their
// user refs, kind "eventUser").
func (r *Resolver) eventUser(ctx context.Context, ev *ent.Event) (*ent.User, error) {
	if ev.UserRef == nil {
		return nil, nil
	}
	return load(ctx, "eventUser", "user", *ev.UserRef, func(ctx context.Context, ids []pulid.ID) (map[pulid.ID]*ent.User, error) {
		us, err := r.client.User.Query().Where(user.IDIn(ids...)).All(ctx)
		if err != nil {
			return nil, err
		}
		out := make(map[pulid.ID]*ent.User, len(us))
		uids := make([]pulid.ID, len(us))
		for i, u := range us {
			out[u.ID] = u
			uids[i] = u.ID
		}
		register(ctx, "user", uids)
		return out, nil
	})
}

// outcomeSegment loads the segments named by the outcomes of a group of
// events (kind "outcomeSegment"); nil for a segment deleted since.
func (r *Resolver) outcomeSegment(ctx context.Context, id pulid.ID) (*ent.Segment, error) {
	return load(ctx, "outcomeSegment", "segment", id, func(ctx context.Context, ids []pulid.ID) (map[pulid.ID]*ent.Segment, error) {
		segs, err := r.client.Segment.Query().Where(segment.IDIn(ids...)).All(ctx)
		if err != nil {
			return nil, err
		}
		out := make(map[pulid.ID]*ent.Segment, len(segs))
		sids := make([]pulid.ID, len(segs))
		for i, s := range segs {
			out[s.ID] = s
			sids[i] = s.ID
		}
		register(ctx, "segment", sids)
		return out, nil
	})
}

// liveOutcomes is service.LiveOutcomes through outcomeSegment: the
// outcomes whose segment still exists.
func (r *Resolver) liveOutcomes(ctx context.Context, ev *ent.Event) ([]*schema.Outcome, error) {
	if _, ok := ctx.Value(batchCtxKey{}).(*batches); !ok {
		return service.LiveOutcomes(ctx, r.client, ev.Outcomes)
	}
	out := make([]*schema.Outcome, 0, len(ev.Outcomes))
	for i := range ev.Outcomes {
		seg, err := r.outcomeSegment(ctx, ev.Outcomes[i].SegmentID)
		if err != nil {
			return nil, err
		}
		if seg != nil {
			out = append(out, &ev.Outcomes[i])
		}
	}
	return out, nil
}

// segmentMembers answers Segment.members. The first page of a group of
// segments, in the default or a given order and without a filter, loads
// in two statements for the whole group (a window query for the IDs of
// each segment's first rows, then the rows with the edges asked for), and
// one more for their totals; other pages page one segment at a time.
func (r *Resolver) segmentMembers(ctx context.Context, obj *ent.Segment, after *entgql.Cursor[pulid.ID], first *int, before *entgql.Cursor[pulid.ID], last *int, where *ent.MembershipWhereInput, orderBy *ent.MembershipOrder) (*ent.MembershipConnection, error) {
	byEntry := orderBy.Field != nil && orderBy.Field.String() == ent.MembershipOrderFieldEnteredAt.String()
	if after != nil || before != nil || last != nil || where != nil || first == nil || *first <= 0 || !byEntry {
		return r.svc.Members(ctx, obj, service.Page{After: after, First: first, Before: before, Last: last}, where, orderBy)
	}
	desc := orderBy.Direction == entgql.OrderDirectionDesc
	n := *first
	wantTotal := selected(ctx)["totalCount"]
	wantEdges := selected(ctx)["edges"]
	nodeSel := selected(ctx, "edges", "node")
	return load(ctx, "segment", fieldKey(ctx, n, desc), obj.ID, func(ctx context.Context, ids []pulid.ID) (map[pulid.ID]*ent.MembershipConnection, error) {
		out := make(map[pulid.ID]*ent.MembershipConnection, len(ids))
		for _, id := range ids {
			out[id] = &ent.MembershipConnection{Edges: []*ent.MembershipEdge{}}
		}
		if wantTotal {
			var rows []struct {
				SegmentRef pulid.ID `json:"segment_ref"`
				Count      int      `json:"count"`
			}
			if err := r.client.Membership.Query().Where(membership.SegmentRefIn(ids...)).
				GroupBy(membership.FieldSegmentRef).Aggregate(ent.Count()).Scan(ctx, &rows); err != nil {
				return nil, err
			}
			for _, row := range rows {
				out[row.SegmentRef].TotalCount = row.Count
			}
		}
		if !wantEdges && !selected(ctx)["pageInfo"] {
			return out, nil
		}
		pageIDs, err := r.firstMemberIDs(ctx, ids, n+1, desc)
		if err != nil {
			return nil, err
		}
		var rows []*ent.Membership
		for start := 0; start < len(pageIDs); start += batchChunk {
			chunk, err := withMembershipEdges(r.client.Membership.Query().Where(membership.IDIn(pageIDs[start:min(start+batchChunk, len(pageIDs))]...)), nodeSel).All(ctx)
			if err != nil {
				return nil, err
			}
			rows = append(rows, chunk...)
		}
		sort.Slice(rows, func(i, j int) bool {
			a, b := rows[i], rows[j]
			if !a.EnteredAt.Equal(b.EnteredAt) {
				return a.EnteredAt.Before(b.EnteredAt) != desc
			}
			return (a.ID < b.ID) != desc
		})
		registerMemberships(ctx, rows)
		for _, m := range rows {
			conn := out[m.SegmentRef]
			if conn == nil {
				continue
			}
			if len(conn.Edges) == n {
				conn.PageInfo.HasNextPage = true
				continue
			}
			c, err := service.MembershipCursor(orderBy, m)
			if err != nil {
				return nil, err
			}
			conn.Edges = append(conn.Edges, &ent.MembershipEdge{Node: m, Cursor: c})
		}
		for _, conn := range out {
			if len(conn.Edges) > 0 {
				conn.PageInfo.StartCursor = &conn.Edges[0].Cursor
				conn.PageInfo.EndCursor = &conn.Edges[len(conn.Edges)-1].Cursor
			}
		}
		return out, nil
	})
}

// firstMemberIDs returns the IDs of the first limit memberships of each
// segment, by enteredAt then ID.
func (r *Resolver) firstMemberIDs(ctx context.Context, segmentIDs []pulid.ID, limit int, desc bool) ([]pulid.ID, error) {
	return r.firstIDs(ctx, membership.Table, membership.FieldSegmentRef, membership.FieldEnteredAt, segmentIDs, limit, desc)
}

// firstIDs returns the IDs of the first limit rows of table for each of
// parents (by the parent column), ordered by the order column then ID.
// The names are ent's generated constants, never input.
func (r *Resolver) firstIDs(ctx context.Context, table, parent, order string, parents []pulid.ID, limit int, desc bool) ([]pulid.ID, error) {
	dir := "ASC"
	if desc {
		dir = "DESC"
	}
	args := make([]any, 0, len(parents)+1)
	marks := make([]string, len(parents))
	for i, id := range parents {
		args = append(args, string(id))
		marks[i] = fmt.Sprintf("$%d", i+1)
	}
	args = append(args, limit)
	orderBy := order + " " + dir
	if order != "id" {
		orderBy += ", id " + dir
	}
	q := fmt.Sprintf(`SELECT id FROM (SELECT id, ROW_NUMBER() OVER (PARTITION BY %s ORDER BY %s) AS n
		FROM %s WHERE %s IN (%s)) AS ranked WHERE n <= $%d`, parent, orderBy, table, parent, strings.Join(marks, ", "), len(parents)+1)
	rows, err := r.client.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("first rows of %s: %w", table, err)
	}
	defer rows.Close()
	var ids []pulid.ID
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("first rows of %s: %w", table, err)
		}
		ids = append(ids, pulid.ID(id))
	}
	return ids, rows.Err()
}

// campaignActivations answers Campaign.activations. The first page of a
// group of campaigns, in the default order (by ID), loads for the whole
// group in two statements (a window query for the IDs of each campaign's
// first rows, then the rows with the edges asked for) and one more for
// their totals; other pages page one campaign at a time.
func (r *Resolver) campaignActivations(ctx context.Context, obj *ent.Campaign, page service.Page, orderBy *ent.CampaignActivationOrder) (*ent.CampaignActivationConnection, error) {
	if _, ok := ctx.Value(batchCtxKey{}).(*batches); !ok || page.After != nil || page.Before != nil || page.Last != nil ||
		page.First == nil || *page.First <= 0 || orderBy != nil {
		return r.svc.Activations(ctx, obj, page, orderBy)
	}
	n := *page.First
	wantTotal := selected(ctx)["totalCount"]
	nodeSel := selected(ctx, "edges", "node")
	return load(ctx, "campaign", fieldKey(ctx, n), obj.ID, func(ctx context.Context, ids []pulid.ID) (map[pulid.ID]*ent.CampaignActivationConnection, error) {
		out := make(map[pulid.ID]*ent.CampaignActivationConnection, len(ids))
		for _, id := range ids {
			out[id] = &ent.CampaignActivationConnection{Edges: []*ent.CampaignActivationEdge{}}
		}
		if wantTotal {
			var rows []struct {
				CampaignRef pulid.ID `json:"campaign_ref"`
				Count       int      `json:"count"`
			}
			if err := r.client.CampaignActivation.Query().Where(campaignactivation.CampaignRefIn(ids...)).
				GroupBy(campaignactivation.FieldCampaignRef).Aggregate(ent.Count()).Scan(ctx, &rows); err != nil {
				return nil, err
			}
			for _, row := range rows {
				out[row.CampaignRef].TotalCount = row.Count
			}
		}
		if !selected(ctx)["edges"] && !selected(ctx)["pageInfo"] {
			return out, nil
		}
		pageIDs, err := r.firstIDs(ctx, campaignactivation.Table, campaignactivation.FieldCampaignRef, campaignactivation.FieldID, ids, n+1, false)
		if err != nil {
			return nil, err
		}
		var rows []*ent.CampaignActivation
		for start := 0; start < len(pageIDs); start += batchChunk {
			q := r.client.CampaignActivation.Query().Where(campaignactivation.IDIn(pageIDs[start:min(start+batchChunk, len(pageIDs))]...))
			if nodeSel["user"] {
				q = q.WithUser()
			}
			if nodeSel["segment"] {
				q = q.WithSegment()
			}
			if nodeSel["campaign"] {
				q = q.WithCampaign()
			}
			if nodeSel["event"] {
				q = q.WithEvent()
			}
			chunk, err := q.All(ctx)
			if err != nil {
				return nil, err
			}
			rows = append(rows, chunk...)
		}
		sort.Slice(rows, func(i, j int) bool { return rows[i].ID < rows[j].ID })
		var users, segs []pulid.ID
		for _, a := range rows {
			if u := a.Edges.User; u != nil {
				users = append(users, u.ID)
			}
			if s := a.Edges.Segment; s != nil {
				segs = append(segs, s.ID)
			}
		}
		register(ctx, "user", users)
		register(ctx, "segment", segs)
		for _, a := range rows {
			conn := out[a.CampaignRef]
			if conn == nil {
				continue
			}
			if len(conn.Edges) == n {
				conn.PageInfo.HasNextPage = true
				continue
			}
			c, err := service.ActivationCursor(nil, a)
			if err != nil {
				return nil, err
			}
			conn.Edges = append(conn.Edges, &ent.CampaignActivationEdge{Node: a, Cursor: c})
		}
		for _, conn := range out {
			if len(conn.Edges) > 0 {
				conn.PageInfo.StartCursor = &conn.Edges[0].Cursor
				conn.PageInfo.EndCursor = &conn.Edges[len(conn.Edges)-1].Cursor
			}
		}
		return out, nil
	})
}

// activationUser is the user of an activation (loaded with it, or by the
// activations' user refs, kind "activationUser"); null once erased.
func (r *Resolver) activationUser(ctx context.Context, a *ent.CampaignActivation) (*ent.User, error) {
	u := a.Edges.User
	if u == nil {
		var err error
		u, err = load(ctx, "activationUser", "user", a.UserRef, func(ctx context.Context, ids []pulid.ID) (map[pulid.ID]*ent.User, error) {
			us, err := r.client.User.Query().Where(user.IDIn(ids...)).All(ctx)
			if err != nil {
				return nil, err
			}
			out := make(map[pulid.ID]*ent.User, len(us))
			for _, u := range us {
				out[u.ID] = u
			}
			return out, nil
		})
		if err != nil {
			return nil, err
		}
	}
	if service.IsErased(u) {
		return nil, nil
	}
	return u, nil
}
