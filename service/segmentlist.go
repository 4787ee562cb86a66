package service

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"

	"entgo.io/contrib/entgql"
	"entgo.io/ent/dialect/sql"

	"github.com/segmentd/segmentd"
	"github.com/segmentd/segmentd/ent"
	"github.com/segmentd/segmentd/ent/predicate"
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
	if order == nil {
		order = &SegmentOrder{Direction: entgql.OrderDirectionAsc}
	}
	if err := order.Direction.Validate(); err != nil {
		return nil, segmentd.Invalid("orderBy.direction", "%v", err)
	}
	segID := func(n *ent.Segment) pulid.ID { return n.ID }
	var (
		ks  keyset[ent.Segment]
		err error
	)
	switch order.Field {
	case SegmentOrderTotalUsers, SegmentOrderNewLast7Days:
		expr := s.orderExpr(order.Field, s.clock())
		ks = keyset[ent.Segment]{prefix: "seg", field: string(order.Field), desc: order.Direction == entgql.OrderDirectionDesc,
			idCol: segment.FieldID, value: expr, selectAs: segmentOrderValueColumn, id: segID,
			of: func(n *ent.Segment) (any, error) {
				raw, err := n.Value(segmentOrderValueColumn)
				if err != nil {
					return nil, err
				}
				v, ok := toInt64(raw)
				if !ok {
					return nil, fmt.Errorf("order value %T", raw)
				}
				return v, nil
			}}
	case SegmentOrderName, SegmentOrderCreatedAt, SegmentOrderUpdatedAt, "":
		var field *ent.SegmentOrderField
		switch order.Field {
		case SegmentOrderName:
			field = ent.SegmentOrderFieldName
		case SegmentOrderCreatedAt:
			field = ent.SegmentOrderFieldCreatedAt
		case SegmentOrderUpdatedAt:
			field = ent.SegmentOrderFieldUpdatedAt
		default:
			field = ent.DefaultSegmentOrder.Field
		}
		ks, err = entKeyset("seg", segmentOrderColumns, field.String(), order.Direction, segID, field.Value)
		if err != nil {
			return nil, err
		}
	default:
		return nil, segmentd.Invalid(segmentOrderValueArgument, "%q is not a segment order field", order.Field)
	}
	q, err := where.Filter(s.client.Segment.Query())
	if err != nil {
		return nil, err
	}
	p, err := paginate(ctx, q, Page{After: after, First: first, Before: before, Last: last}, ks,
		func(q *ent.SegmentQuery, f func(*sql.Selector)) *ent.SegmentQuery {
			return q.Where(predicate.Segment(f))
		},
		func(q *ent.SegmentQuery, f func(*sql.Selector)) *ent.SegmentQuery {
			return q.Order(segment.OrderOption(f))
		})
	if err != nil {
		return nil, fmt.Errorf("service.Segments: %w", err)
	}
	conn := &ent.SegmentConnection{PageInfo: p.PageInfo, TotalCount: p.TotalCount,
		Edges: edgesOf(p, func(n *ent.Segment, c ent.Cursor) *ent.SegmentEdge { return &ent.SegmentEdge{Node: n, Cursor: c} })}
	if c := requestCacheFrom(ctx); c != nil && len(conn.Edges) > 0 {
		totals := make(map[pulid.ID]int, len(conn.Edges))
		if order.Field == SegmentOrderTotalUsers {
			for _, e := range conn.Edges {
				v, err := ks.of(e.Node)
				if err != nil {
					return nil, fmt.Errorf("service.Segments: %w", err)
				}
				totals[e.Node.ID] = int(v.(int64))
			}
		} else {
			ids := make([]pulid.ID, len(conn.Edges))
			for i, e := range conn.Edges {
				ids[i] = e.Node.ID
			}
			if totals, err = s.totalUsers(ctx, ids); err != nil {
				return nil, err
			}
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
	err := s.client.SegmentCounter.Query().
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
