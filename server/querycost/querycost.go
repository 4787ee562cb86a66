// Package querycost estimates, before anything runs, what a validated
// GraphQL operation will cost: roughly how many values its answer holds.
// Page sizes multiply through nesting (first/last, a default page, the length
// of list arguments, rules of the caller's own), aliases and repeated
// selections add up, and every fragment is costed once, memoized by name and
// never expanded, so that the estimate takes time linear in the document's
// size whatever its fragments spread.
package querycost

import (
	"strings"

	"github.com/vektah/gqlparser/v2/ast"
)

// Max is the largest cost reported: 2^53-1, the largest integer a
// JavaScript client reads exactly. Every sum and product saturates there.
const Max int64 = 1<<53 - 1

// Rules says what the schema's fields cost. The zero value costs every
// field 1, every list DefaultList items, and has no connections.
type Rules struct {
	// MaxPage caps first/last (a larger one is refused elsewhere).
	MaxPage int64
	// DefaultPage is the page of a field that takes first but is given
	// neither first nor last.
	DefaultPage int64
	// DefaultList is the size assumed for a list field that has no page
	// argument and no list argument.
	DefaultList int64
	// Weights are the costs of single fields ("Type.field") that do more
	// work than reading a value; the default is 1.
	Weights map[string]int64
	// Sizes computes the number of items of a field ("Type.field") from
	// its arguments, such as the points of a time series; the field and
	// what it selects are paid that many times, as for a list.
	Sizes map[string]func(args map[string]any) int64
	// Trees names the list fields ("Type.field") that nest in themselves
	// and hold at most so many items in all, however deep (the children of
	// a condition tree): the field pays that many times the dearest level
	// selected, not the product of the levels.
	Trees map[string]int64
	// PageItems names the fields ("Type.field") that hold the items of
	// their parent's page: the parent field's page size multiplies them.
	// The edges and nodes of any type whose name ends in "Connection" are
	// page items without being named.
	PageItems map[string]bool
}

// Estimate returns the cost of op, an operation of the validated document
// doc, with its variables.
func Estimate(schema *ast.Schema, doc *ast.QueryDocument, op *ast.OperationDefinition, vars map[string]any, rules Rules) int64 {
	e := estimator{schema: schema, vars: vars, rules: rules, fragments: map[string]*cost{}, levels: map[string]*int64{}}
	if e.rules.DefaultList == 0 {
		e.rules.DefaultList = 1
	}
	c := e.selectionSet(op.SelectionSet, rootType(schema, op))
	return add(c.flat, c.perItem)
}

func rootType(schema *ast.Schema, op *ast.OperationDefinition) string {
	var d *ast.Definition
	switch op.Operation {
	case ast.Mutation:
		d = schema.Mutation
	case ast.Subscription:
		d = schema.Subscription
	default:
		d = schema.Query
	}
	if d == nil {
		return ""
	}
	return d.Name
}

// cost is the cost of a selection set split in two: flat is paid once,
// perItem once per item of the enclosing page (the page items it selects).
type cost struct{ flat, perItem int64 }

type estimator struct {
	schema    *ast.Schema
	vars      map[string]any
	rules     Rules
	fragments map[string]*cost
	levels    map[string]*int64 // tree level costs of fragments, by tree field and name
}

func (e *estimator) selectionSet(set ast.SelectionSet, parent string) cost {
	var c cost
	for _, sel := range set {
		switch s := sel.(type) {
		case *ast.Field:
			if strings.HasPrefix(s.Name, "__") && s.Name != "__schema" && s.Name != "__type" {
				continue // __typename: no work
			}
			fc := e.field(s, parent)
			if e.isPageItems(parent, s.Name) {
				c.perItem = add(c.perItem, fc)
			} else {
				c.flat = add(c.flat, fc)
			}
		case *ast.InlineFragment:
			t := parent
			if s.TypeCondition != "" {
				t = s.TypeCondition
			}
			fc := e.selectionSet(s.SelectionSet, t)
			c.flat, c.perItem = add(c.flat, fc.flat), add(c.perItem, fc.perItem)
		case *ast.FragmentSpread:
			fc := e.fragment(s)
			c.flat, c.perItem = add(c.flat, fc.flat), add(c.perItem, fc.perItem)
		}
	}
	return c
}

// fragment costs a named fragment once; later spreads reuse the figure.
func (e *estimator) fragment(s *ast.FragmentSpread) cost {
	if f, ok := e.fragments[s.Name]; ok {
		return *f // while it is being costed (a cycle, which validation refuses): zero
	}
	f := &cost{}
	e.fragments[s.Name] = f
	if s.Definition != nil {
		*f = e.selectionSet(s.Definition.SelectionSet, s.Definition.TypeCondition)
	}
	return *f
}

func (e *estimator) isPageItems(parent, field string) bool {
	if e.rules.PageItems[parent+"."+field] {
		return true
	}
	return strings.HasSuffix(parent, "Connection") && (field == "edges" || field == "nodes")
}

func (e *estimator) field(f *ast.Field, parent string) int64 {
	key := parent + "." + f.Name
	weight := int64(1)
	if w, ok := e.rules.Weights[key]; ok {
		weight = w
	}
	if f.Definition == nil || f.Definition.Type == nil {
		return weight
	}
	typeName := f.Definition.Type.Name()
	if len(f.SelectionSet) == 0 {
		return weight // a scalar or enum, or a list of them: one value
	}
	children := e.selectionSet(f.SelectionSet, typeName)
	if strings.HasPrefix(typeName, "__") || strings.HasPrefix(parent, "__") {
		// Introspection answers from the schema in memory: its size is the
		// schema's, not a page's; count what is selected.
		return add(weight, add(children.flat, children.perItem))
	}
	isList := f.Definition.Type.Elem != nil
	if isList && e.isPageItems(parent, f.Name) {
		isList = false // the parent's page multiplies it
	}
	if n, ok := e.rules.Trees[key]; ok {
		return add(weight, mul(n, max(1, e.level(f.SelectionSet, typeName, key))))
	}
	_, sized := e.rules.Sizes[key]
	n := e.size(f, key, isList)
	if isList || sized {
		// One resolver call for the field, then each item and what it selects.
		return add(weight, mul(n, max(1, add(children.flat, children.perItem))))
	}
	return add(add(weight, children.flat), mul(n, children.perItem))
}

// level is the cost of the dearest level of a tree (the tree field
// "Type.field" tree) selected by set: the fields of one item other than the
// tree field, or a deeper level.
func (e *estimator) level(set ast.SelectionSet, parent, tree string) int64 {
	var own, deepest int64
	for _, sel := range set {
		switch s := sel.(type) {
		case *ast.Field:
			if strings.HasPrefix(s.Name, "__") {
				continue
			}
			if parent+"."+s.Name == tree {
				own = add(own, 1)
				deepest = max(deepest, e.level(s.SelectionSet, parent, tree))
				continue
			}
			own = add(own, e.field(s, parent))
		case *ast.InlineFragment:
			own = add(own, e.level(s.SelectionSet, parent, tree))
		case *ast.FragmentSpread:
			key := tree + " " + s.Name
			l, ok := e.levels[key]
			if !ok {
				l = new(int64)
				e.levels[key] = l
				if s.Definition != nil {
					*l = e.level(s.Definition.SelectionSet, parent, tree)
				}
			}
			own = add(own, *l)
		}
	}
	return max(own, deepest)
}

// size is how many items a field returns: its own rule, else first/last,
// else the default page of a field that takes first, else the length of a
// list argument, else DefaultList for a list, 1 for an object.
func (e *estimator) size(f *ast.Field, key string, isList bool) int64 {
	var args map[string]any
	if len(f.Definition.Arguments) > 0 {
		args = f.ArgumentMap(e.vars)
	}
	if fn, ok := e.rules.Sizes[key]; ok {
		return clamp(fn(args), 0, Max)
	}
	page, paged := int64(-1), false
	for _, name := range []string{"first", "last"} {
		if f.Definition.Arguments.ForName(name) == nil {
			continue
		}
		paged = true
		if v, ok := toInt(args[name]); ok {
			if page < 0 || v < page {
				page = v
			}
		}
	}
	if paged {
		if page < 0 {
			page = e.rules.DefaultPage
		}
		if e.rules.MaxPage > 0 {
			page = clamp(page, 0, e.rules.MaxPage)
		}
		return page
	}
	longest := int64(-1)
	for _, a := range f.Definition.Arguments {
		if a.Type.Elem == nil {
			continue
		}
		if l, ok := args[a.Name].([]any); ok && int64(len(l)) > longest {
			longest = int64(len(l))
		}
	}
	if longest >= 0 {
		return longest
	}
	if isList {
		return e.rules.DefaultList
	}
	return 1
}

func toInt(v any) (int64, bool) {
	switch n := v.(type) {
	case int:
		return int64(n), true
	case int64:
		return n, true
	case int32:
		return int64(n), true
	case float64:
		return int64(n), true
	case *int:
		if n != nil {
			return int64(*n), true
		}
	case interface{ Int64() (int64, error) }: // json.Number
		if i, err := n.Int64(); err == nil {
			return i, true
		}
	}
	return 0, false
}

func clamp(v, lo, hi int64) int64 {
	return min(max(v, lo), hi)
}

func add(a, b int64) int64 {
	if a >= Max-b {
		return Max
	}
	return a + b
}

func mul(a, b int64) int64 {
	if a == 0 || b == 0 {
		return 0
	}
	if a > Max/b {
		return Max
	}
	return a * b
}
