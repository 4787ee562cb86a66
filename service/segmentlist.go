package service

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"entgo.io/contrib/entgql"
	"entgo.io/ent/dialect/sql"

	"github.com/segmentd/segmentd"
	"github.com/segmentd/segmentd/ent"
	"github.com/segmentd/segmentd/ent/schema/pulid"
	"github.com/segmentd/segmentd/ent/segment"
	"github.com/segmentd/segmentd/ent/segmentcounter"
)

// SegmentOrderField is what the segments list can be ordered by: the
// segment's own columns (NAME, CREATED_AT, UPDATED_AT, paginated by ent) and
// two aggregates read from the counters: TOTAL_USERS (current members) and
// NEW_LAST_7_DAYS (members who entered in the last 7 days, as
// SegmentStats.newLast7Days).
type SegmentOrderField string

// The segment order fields.
const (
	SegmentOrderName          SegmentOrderField = "NAME"
	SegmentOrderCreatedAt     SegmentOrderField = "CREATED_AT"
	SegmentOrderUpdatedAt     SegmentOrderField = "UPDATED_AT"
	SegmentOrderTotalUsers    SegmentOrderField = "TOTAL_USERS"
	SegmentOrderNewLast7Days  SegmentOrderField = "NEW_LAST_7_DAYS"
	segmentOrderValueColumn                     = "order_value"
	segmentOrderValueArgument                   = "orderBy.field"
)

// MarshalGQL implements graphql.Marshaler.
func (f SegmentOrderField) MarshalGQL(w io.Writer) {
	_, _ = io.WriteString(w, strconv.Quote(string(f)))
}

// UnmarshalGQL implements graphql.Unmarshaler.
func (f *SegmentOrderField) UnmarshalGQL(v any) error {
	s, ok := v.(string)
	if !ok {
		return segmentd.Invalid(segmentOrderValueArgument, "must be a string, got %T", v)
	}
	switch g := SegmentOrderField(s); g {
	case SegmentOrderName, SegmentOrderCreatedAt, SegmentOrderUpdatedAt, SegmentOrderTotalUsers, SegmentOrderNewLast7Days:
		*f = g
		return nil
	}
	return segmentd.Invalid(segmentOrderValueArgument, "%q is not a segment order field", s)
}

// SegmentOrder orders the segments list.
type SegmentOrder struct {
	Direction entgql.OrderDirection `json:"direction"`
	Field     SegmentOrderField     `json:"field"`
}

// Segments lists segments as a Relay connection. Orders by a column are
// ent's; TOTAL_USERS and NEW_LAST_7_DAYS order by a correlated subquery on
// the counters (a few index reads per segment, whatever their sizes) and
// paginate by (value, id) keysets: the cursor holds the value the segment
// had when the page was read, so a segment whose figure changes between
// two pages may move across them, as in any list sorted by a live figure.
// Either way the page's current totals are read in one query and kept for
// the request (see WithRequestCache), so that Segment.totalUsers costs no
// query per row.
func (s *Service) Segments(ctx context.Context, after *ent.Cursor, first *int, before *ent.Cursor, last *int, where *ent.SegmentWhereInput, order *SegmentOrder) (*ent.SegmentConnection, error) {
	var (
		conn *ent.SegmentConnection
		err  error
	)
	if order == nil {
		order = &SegmentOrder{Direction: entgql.OrderDirectionAsc}
	}
	if err := order.Direction.Validate(); err != nil {
		return nil, segmentd.Invalid("orderBy.direction", "%v", err)
	}
	switch order.Field {
	case SegmentOrderTotalUsers, SegmentOrderNewLast7Days:
		conn, err = s.segmentsByAggregate(ctx, after, first, before, last, where, order)
	default:
		var eo *ent.SegmentOrder
		switch order.Field {
		case SegmentOrderName:
			eo = &ent.SegmentOrder{Direction: order.Direction, Field: ent.SegmentOrderFieldName}
		case SegmentOrderCreatedAt:
			eo = &ent.SegmentOrder{Direction: order.Direction, Field: ent.SegmentOrderFieldCreatedAt}
		case SegmentOrderUpdatedAt:
			eo = &ent.SegmentOrder{Direction: order.Direction, Field: ent.SegmentOrderFieldUpdatedAt}
		case "":
			eo = &ent.SegmentOrder{Direction: order.Direction, Field: ent.DefaultSegmentOrder.Field}
		default:
			return nil, segmentd.Invalid(segmentOrderValueArgument, "%q is not a segment order field", order.Field)
		}
		conn, err = s.Client.Segment.Query().Paginate(ctx, after, first, before, last,
			ent.WithSegmentOrder(eo), ent.WithSegmentFilter(where.Filter))
	}
	if err != nil {
		return nil, err
	}
	if c := requestCacheFrom(ctx); c != nil && len(conn.Edges) > 0 && order.Field != SegmentOrderTotalUsers {
		ids := make([]pulid.ID, len(conn.Edges))
		for i, e := range conn.Edges {
			ids[i] = e.Node.ID
		}
		totals, err := s.totalUsers(ctx, ids)
		if err != nil {
			return nil, err
		}
		c.putTotals(totals)
	}
	return conn, nil
}

// orderExpr writes the SQL of an aggregate order's value for the segment
// row of s.
func (s *Service) orderExpr(field SegmentOrderField, now time.Time) func(sel *sql.Selector) sql.Querier {
	return func(sel *sql.Selector) sql.Querier {
		id := sel.C(segment.FieldID)
		return sql.ExprFunc(func(b *sql.Builder) {
			b.WriteString("CAST((SELECT COALESCE(SUM(sc.members), 0) FROM segment_counters sc WHERE sc.segment_ref = ").
				WriteString(id)
			if field == SegmentOrderTotalUsers {
				b.WriteString(" AND sc.bucket = ").Arg(totalsBucket).WriteString(")")
			} else {
				// As Stats' newLast7Days: day rows, the buckets of the
				// first partial day, the first partial bucket exactly.
				w := sinceParts(now.Add(-7 * 24 * time.Hour))
				b.WriteString(" AND ((sc.bucket >= ").Arg(w.fromDay).WriteString(" AND sc.bucket < ").Arg(totalsBucket).
					WriteString(") OR (sc.bucket >= ").Arg(w.fromBucket).WriteString(" AND sc.bucket < ").Arg(w.toBucket).
					WriteString(")))")
				if w.partialFrom.Before(w.partialTo) {
					b.WriteString(" + (SELECT COUNT(*) FROM memberships m WHERE m.segment_ref = ").WriteString(id).
						WriteString(" AND m.entered_at >= ").Arg(w.partialFrom.UTC()).
						WriteString(" AND m.entered_at < ").Arg(w.partialTo.UTC()).WriteString(")")
				}
			}
			b.WriteString(" AS BIGINT)")
		})
	}
}

func (s *Service) segmentsByAggregate(ctx context.Context, after *ent.Cursor, first *int, before *ent.Cursor, last *int, where *ent.SegmentWhereInput, order *SegmentOrder) (*ent.SegmentConnection, error) {
	switch {
	case first != nil && last != nil:
		return nil, segmentd.Invalid("first", "first and last together are not supported")
	case first != nil && *first < 0:
		return nil, segmentd.Invalid("first", "must not be negative, got %d", *first)
	case last != nil && *last < 0:
		return nil, segmentd.Invalid("last", "must not be negative, got %d", *last)
	}
	// A cursor's value is "FIELD:value": a zero would not survive the
	// cursor's encoding (omitempty), and the prefix tells cursors of
	// other orders apart.
	prefix := string(order.Field) + ":"
	cursorValue := func(name string, c *ent.Cursor) (int64, error) {
		s, _ := c.Value.(string)
		v, err := strconv.ParseInt(strings.TrimPrefix(s, prefix), 10, 64)
		if !strings.HasPrefix(s, prefix) || err != nil {
			return 0, segmentd.Invalid(name, "this cursor is not from a list ordered by %s", order.Field)
		}
		return v, nil
	}
	q, err := where.Filter(s.Client.Segment.Query())
	if err != nil {
		return nil, err
	}
	conn := &ent.SegmentConnection{Edges: []*ent.SegmentEdge{}}
	if conn.TotalCount, err = q.Clone().Count(ctx); err != nil {
		return nil, fmt.Errorf("service.Segments: count: %w", err)
	}
	expr := s.orderExpr(order.Field, s.Now())
	desc := order.Direction == entgql.OrderDirectionDesc
	reverse := last != nil
	for _, c := range []struct {
		cur   *ent.Cursor
		name  string
		later bool // rows after the cursor in the list's order
	}{{after, "after", true}, {before, "before", false}} {
		if c.cur == nil {
			continue
		}
		v, err := cursorValue(c.name, c.cur)
		if err != nil {
			return nil, err
		}
		greater := c.later != desc
		id := c.cur.ID
		q = q.Where(func(sel *sql.Selector) {
			op := " < "
			if greater {
				op = " > "
			}
			sel.Where(sql.P(func(b *sql.Builder) {
				e := expr(sel)
				b.WriteString("(").Join(e).WriteString(op).Arg(v).
					WriteString(" OR (").Join(e).WriteString(" = ").Arg(v).
					WriteString(" AND ").WriteString(sel.C(segment.FieldID)).WriteString(op).Arg(id).WriteString("))")
			}))
		})
	}
	limit := 0
	switch {
	case first != nil:
		limit = *first + 1
	case last != nil:
		limit = *last + 1
	}
	if (first != nil && *first == 0) || (last != nil && *last == 0) {
		return conn, nil
	}
	if limit > 0 {
		q = q.Limit(limit)
	}
	rowsDesc := desc != reverse
	q = q.Order(func(sel *sql.Selector) {
		sel.AppendSelectExprAs(expr(sel), segmentOrderValueColumn)
		dir := " ASC"
		if rowsDesc {
			dir = " DESC"
		}
		e := expr(sel)
		sel.OrderExpr(sql.ExprFunc(func(b *sql.Builder) {
			b.Join(e).WriteString(dir).Comma().WriteString(sel.C(segment.FieldID)).WriteString(dir)
		}))
	})
	nodes, err := q.All(ctx)
	if err != nil {
		return nil, fmt.Errorf("service.Segments: %w", err)
	}
	conn.PageInfo.HasNextPage = before != nil
	conn.PageInfo.HasPreviousPage = after != nil
	if first != nil && len(nodes) == *first+1 {
		conn.PageInfo.HasNextPage = true
		nodes = nodes[:*first]
	} else if last != nil && len(nodes) == *last+1 {
		conn.PageInfo.HasPreviousPage = true
		nodes = nodes[:*last]
	}
	if reverse {
		for i, j := 0, len(nodes)-1; i < j; i, j = i+1, j-1 {
			nodes[i], nodes[j] = nodes[j], nodes[i]
		}
	}
	totals := make(map[pulid.ID]int, len(nodes))
	for _, n := range nodes {
		raw, err := n.Value(segmentOrderValueColumn)
		if err != nil {
			return nil, fmt.Errorf("service.Segments: %w", err)
		}
		v, ok := toInt64(raw)
		if !ok {
			return nil, fmt.Errorf("service.Segments: order value %T", raw)
		}
		if order.Field == SegmentOrderTotalUsers {
			totals[n.ID] = int(v)
		}
		conn.Edges = append(conn.Edges, &ent.SegmentEdge{Node: n, Cursor: ent.Cursor{ID: n.ID, Value: prefix + strconv.FormatInt(v, 10)}})
	}
	if c := requestCacheFrom(ctx); c != nil && order.Field == SegmentOrderTotalUsers {
		c.putTotals(totals)
	}
	if n := len(conn.Edges); n > 0 {
		conn.PageInfo.StartCursor = &conn.Edges[0].Cursor
		conn.PageInfo.EndCursor = &conn.Edges[n-1].Cursor
	}
	return conn, nil
}

// toInt64 converts what a driver or a decoded cursor holds to an int64.
func toInt64(v any) (int64, bool) {
	switch x := v.(type) {
	case int64:
		return x, true
	case int:
		return int64(x), true
	case int8:
		return int64(x), true
	case int16:
		return int64(x), true
	case int32:
		return int64(x), true
	case uint8:
		return int64(x), true
	case uint16:
		return int64(x), true
	case uint32:
		return int64(x), true
	case uint64:
		return int64(x), true
	case float64:
		return int64(x), float64(int64(x)) == x
	case []byte:
		n, err := strconv.ParseInt(string(x), 10, 64)
		return n, err == nil
	case string:
		n, err := strconv.ParseInt(x, 10, 64)
		return n, err == nil
	case *sql.NullInt64:
		return x.Int64, x.Valid
	}
	return 0, false
}

// TotalUsers is a segment's current member count, read from the counters
// (at most counterShards rows), or from the request's cache when the
// segments list already read it for its page.
func (s *Service) TotalUsers(ctx context.Context, segmentID pulid.ID) (int, error) {
	c := requestCacheFrom(ctx)
	if c != nil {
		if n, ok := c.total(segmentID); ok {
			return n, nil
		}
	}
	totals, err := s.totalUsers(ctx, []pulid.ID{segmentID})
	if err != nil {
		return 0, err
	}
	if c != nil {
		c.putTotals(totals)
	}
	return totals[segmentID], nil
}

// totalUsers reads the current member counts of segments in one query.
func (s *Service) totalUsers(ctx context.Context, ids []pulid.ID) (map[pulid.ID]int, error) {
	var rows []struct {
		Segment pulid.ID `json:"segment_ref"`
		Members int64    `json:"sum"`
	}
	err := s.Client.SegmentCounter.Query().
		Where(segmentcounter.SegmentRefIn(ids...), segmentcounter.Bucket(totalsBucket)).
		GroupBy(segmentcounter.FieldSegmentRef).
		Aggregate(ent.Sum(segmentcounter.FieldMembers)).
		Scan(ctx, &rows)
	if err != nil {
		return nil, fmt.Errorf("service.TotalUsers: %w", err)
	}
	out := make(map[pulid.ID]int, len(ids))
	for _, id := range ids {
		out[id] = 0
	}
	for _, r := range rows {
		out[r.Segment] = int(r.Members)
	}
	return out, nil
}

type requestCacheKey struct{}

// requestCache holds figures read for one GraphQL operation, so that the
// fields of a page of segments share one query.
type requestCache struct {
	mu     sync.Mutex
	totals map[pulid.ID]int
}

// WithRequestCache returns ctx with an empty cache of figures for one
// request (one GraphQL operation): Segments fills it with the current
// totals of the segments it returns, TotalUsers reads them from it.
func WithRequestCache(ctx context.Context) context.Context {
	return context.WithValue(ctx, requestCacheKey{}, &requestCache{totals: map[pulid.ID]int{}})
}

func requestCacheFrom(ctx context.Context) *requestCache {
	c, _ := ctx.Value(requestCacheKey{}).(*requestCache)
	return c
}

func (c *requestCache) putTotals(m map[pulid.ID]int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, v := range m {
		c.totals[k] = v
	}
}

func (c *requestCache) total(id pulid.ID) (int, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, ok := c.totals[id]
	return n, ok
}
