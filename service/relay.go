package service

import (
	"context"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"entgo.io/contrib/entgql"
	"entgo.io/ent/dialect/sql"
	"github.com/99designs/gqlgen/graphql"

	"github.com/segmentd/segmentd"
	"github.com/segmentd/segmentd/ent"
	"github.com/segmentd/segmentd/ent/schema/pulid"
)

// Page is the Relay arguments of a connection field: after/first/before/last.
type Page struct {
	After  *ent.Cursor
	First  *int
	Before *ent.Cursor
	Last   *int
}

// keyset is one order of a connection: rows ordered by a value (a column
// or an expression; none for the ID order) and then by ID, in one
// direction.
type keyset[N any] struct {
	prefix string // the entity's ID prefix: a cursor of another entity is refused
	field  string // the order's name in cursors ("NAME"); "" orders by ID alone
	desc   bool
	idCol  string
	// value is the order's SQL expression for the row of sel; nil for the ID order.
	value func(sel *sql.Selector) sql.Querier
	// selectAs, if set, selects value under this alias (an expression
	// that is not a column of the node).
	selectAs string
	// column is the value's column, if it is one: kept selected when the
	// query selects only some columns.
	column string
	// of reads a node's ID and order value.
	id func(*N) pulid.ID
	of func(*N) (any, error)
}

// relayQuery is what every ent query type offers that pagination needs;
// Where and Order take typed predicates and go through closures.
type relayQuery[Q any, N any] interface {
	Clone() Q
	Limit(int) Q
	Count(context.Context) (int, error)
	All(context.Context) ([]*N, error)
	CollectFields(context.Context, ...string) (Q, error)
}

// relayPage is a computed page: the nodes in list order with their cursors.
type relayPage[N any] struct {
	Nodes      []*N
	Cursors    []ent.Cursor
	PageInfo   ent.PageInfo
	TotalCount int
}

// paginate answers a connection by the Relay Cursor Connections algorithm:
// the rows after `after` and before `before` (in the list's order), then
// the first `first` of them, then the last `last` of those. A cursor of
// another entity or of another order is BAD_USER_INPUT on its argument.
// TotalCount counts the whole list (cursors do not apply); it is read only
// when the operation selects it.
func paginate[Q relayQuery[Q, N], N any](ctx context.Context, q Q, page Page, ks keyset[N],
	where func(Q, func(*sql.Selector)) Q, order func(Q, func(*sql.Selector)) Q) (*relayPage[N], error) {
	var out relayPage[N]
	if selected(ctx, "totalCount") {
		// The whole list: the cursors do not apply.
		var err error
		if out.TotalCount, err = q.Clone().Count(ctx); err != nil {
			return nil, fmt.Errorf("count: %w", err)
		}
	}
	for _, c := range []struct {
		name  string
		cur   *ent.Cursor
		later bool // the rows to keep come after the cursor
	}{{"after", page.After, true}, {"before", page.Before, false}} {
		if c.cur == nil {
			continue
		}
		arg, err := ks.decode(c.name, c.cur)
		if err != nil {
			return nil, err
		}
		op := " < "
		if c.later != ks.desc {
			op = " > "
		}
		id := c.cur.ID
		q = where(q, func(sel *sql.Selector) {
			sel.Where(sql.P(func(b *sql.Builder) {
				idc := sel.C(ks.idCol)
				if ks.value == nil {
					b.WriteString(idc).WriteString(op).Arg(id)
					return
				}
				// A row value comparison, which both stores answer from
				// an index on (value, id).
				b.WriteString("(").Join(ks.value(sel)).Comma().WriteString(idc).WriteString(")").
					WriteString(op).WriteString("(").Arg(arg).Comma().Arg(id).WriteString(")")
			}))
		})
	}
	return paginateRows(ctx, q, page, ks, order, &out)
}

func paginateRows[Q relayQuery[Q, N], N any](ctx context.Context, q Q, page Page, ks keyset[N],
	order func(Q, func(*sql.Selector)) Q, out *relayPage[N]) (*relayPage[N], error) {
	first, last := page.First, page.Last
	// Rows are read forward unless only `last` is given: then from the end.
	backward := last != nil && first == nil
	switch {
	case first != nil && last != nil:
		q = q.Limit(max(*first, *last) + 1)
	case first != nil:
		q = q.Limit(*first + 1)
	case last != nil:
		q = q.Limit(*last + 1)
	}
	if nctx, ok := nodeContext(ctx); ok {
		var err error
		if q, err = q.CollectFields(nctx); err != nil {
			return nil, err
		}
	}
	desc := ks.desc != backward
	dir := " ASC"
	if desc {
		dir = " DESC"
	}
	q = order(q, func(sel *sql.Selector) {
		if ks.selectAs != "" {
			sel.AppendSelectExprAs(ks.value(sel), ks.selectAs)
		} else if ks.column != "" {
			keepSelected(sel, ks.column)
		}
		var e sql.Querier
		if ks.value != nil {
			e = ks.value(sel)
		}
		sel.OrderExpr(sql.ExprFunc(func(b *sql.Builder) {
			if e != nil {
				b.Join(e).WriteString(dir).Comma()
			}
			b.WriteString(sel.C(ks.idCol)).WriteString(dir)
		}))
	})
	nodes, err := q.All(ctx)
	if err != nil {
		return nil, err
	}
	info := &out.PageInfo
	info.HasPreviousPage = page.After != nil
	info.HasNextPage = page.Before != nil
	if backward {
		for i, j := 0, len(nodes)-1; i < j; i, j = i+1, j-1 {
			nodes[i], nodes[j] = nodes[j], nodes[i]
		}
		info.HasPreviousPage = len(nodes) > *last
		if len(nodes) > *last {
			nodes = nodes[len(nodes)-*last:]
		}
	} else {
		// nodes are the first rows of the window, all of them or more than
		// max(first, last): enough to tell whether it holds more than
		// first, and more than last.
		fetched := len(nodes)
		if first != nil {
			info.HasNextPage = fetched > *first
			nodes = nodes[:min(fetched, *first)]
		}
		if last != nil {
			info.HasPreviousPage = fetched > *last
			if len(nodes) > *last {
				nodes = nodes[len(nodes)-*last:]
			}
		}
	}
	out.Nodes = nodes
	out.Cursors = make([]ent.Cursor, len(nodes))
	for i, n := range nodes {
		if out.Cursors[i], err = ks.cursor(n); err != nil {
			return nil, err
		}
	}
	if n := len(out.Cursors); n > 0 {
		info.StartCursor = &out.Cursors[0]
		info.EndCursor = &out.Cursors[n-1]
	}
	if !selected(ctx, "totalCount") {
		out.TotalCount = len(nodes)
	}
	return out, nil
}

// cursor is the cursor of node n: its ID, and for an order by a value,
// "FIELD:type:value", so that a cursor of another order is told apart.
func (ks keyset[N]) cursor(n *N) (ent.Cursor, error) {
	c := ent.Cursor{ID: ks.id(n)}
	if ks.value == nil {
		return c, nil
	}
	v, err := ks.of(n)
	if err != nil {
		return c, err
	}
	enc, err := encodeCursorValue(v)
	if err != nil {
		return c, err
	}
	c.Value = ks.field + ":" + enc
	return c, nil
}

// decode checks that c is a cursor of this list and order and returns its
// value as an SQL argument.
func (ks keyset[N]) decode(name string, c *ent.Cursor) (any, error) {
	if c.ID.Prefix() != ks.prefix {
		return nil, segmentd.Invalid(name, "this cursor is not from this list")
	}
	s, isString := c.Value.(string)
	if ks.value == nil {
		if c.Value != nil {
			return nil, segmentd.Invalid(name, "this cursor is from a list in another order (this one is ordered by ID)")
		}
		return nil, nil
	}
	rest, ok := strings.CutPrefix(s, ks.field+":")
	if !isString || !ok {
		return nil, segmentd.Invalid(name, "this cursor is not from a list ordered by %s", ks.field)
	}
	v, err := decodeCursorValue(rest)
	if err != nil {
		return nil, segmentd.Invalid(name, "this cursor is not from a list ordered by %s", ks.field)
	}
	return v, nil
}

// encodeCursorValue writes an order value as "t:<RFC 3339>" (an instant),
// "i:<integer>" or "s:<string>" (strings and string enums).
func encodeCursorValue(v any) (string, error) {
	switch x := v.(type) {
	case time.Time:
		return "t:" + x.UTC().Format(time.RFC3339Nano), nil
	case *time.Time:
		if x != nil {
			return "t:" + x.UTC().Format(time.RFC3339Nano), nil
		}
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.String:
		return "s:" + rv.String(), nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "i:" + strconv.FormatInt(rv.Int(), 10), nil
	}
	return "", fmt.Errorf("cursor: order value of type %T", v)
}

func decodeCursorValue(s string) (any, error) {
	kind, rest, ok := strings.Cut(s, ":")
	if !ok {
		return nil, fmt.Errorf("no type")
	}
	switch kind {
	case "t":
		return time.Parse(time.RFC3339Nano, rest)
	case "i":
		return strconv.ParseInt(rest, 10, 64)
	case "s":
		return rest, nil
	}
	return nil, fmt.Errorf("unknown type %q", kind)
}

// keepSelected adds column to sel's columns when the query selects only
// some (ent's field collection) and not this one: cursors need it.
func keepSelected(sel *sql.Selector, column string) {
	cols := sel.SelectedColumns()
	if len(cols) == 0 {
		return
	}
	want := sel.C(column)
	for _, c := range cols {
		if c == want || c == column {
			return
		}
	}
	sel.AppendSelect(want)
}

// selected reports whether the connection field being resolved selects
// name (totalCount); outside a GraphQL operation, everything is.
func selected(ctx context.Context, name string) bool {
	fc := graphql.GetFieldContext(ctx)
	if fc == nil || !graphql.HasOperationContext(ctx) {
		return true
	}
	for _, f := range graphql.CollectFields(graphql.GetOperationContext(ctx), fc.Field.Selections, nil) {
		if f.Name == name {
			return true
		}
	}
	return false
}

// nodeContext returns ctx with the connection's edges.node field as the
// current field, so that ent's CollectFields loads what the nodes' fields
// need (their edges) with the page, in a few queries rather than one per
// row. It reports false when no node is selected.
func nodeContext(ctx context.Context) (context.Context, bool) {
	fc := graphql.GetFieldContext(ctx)
	if fc == nil || !graphql.HasOperationContext(ctx) {
		return ctx, false
	}
	oc := graphql.GetOperationContext(ctx)
	for _, e := range graphql.CollectFields(oc, fc.Field.Selections, nil) {
		if e.Name != "edges" {
			continue
		}
		for _, n := range graphql.CollectFields(oc, e.Selections, nil) {
			if n.Name == "node" {
				return graphql.WithFieldContext(ctx, &graphql.FieldContext{Object: fc.Object, Field: n, Args: map[string]any{}}), true
			}
		}
	}
	return ctx, false
}

// columnKeyset is the keyset of an order by a column of the node (field
// "" and column "": the ID order).
func columnKeyset[N any](prefix, field, column string, dir entgql.OrderDirection, id func(*N) pulid.ID, of func(*N) (any, error)) (keyset[N], error) {
	if err := dir.Validate(); err != nil {
		return keyset[N]{}, segmentd.Invalid("orderBy.direction", "%v", err)
	}
	ks := keyset[N]{prefix: prefix, field: field, desc: dir == entgql.OrderDirectionDesc, idCol: "id", id: id, of: of, column: column}
	if field != "" {
		ks.value = func(sel *sql.Selector) sql.Querier { return sql.Expr(sel.C(column)) }
	}
	return ks, nil
}
