package server

import (
	"context"
	"fmt"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/segmentd/segmentd"
)

// depthLimit refuses operations whose selections nest deeper than Max
// levels, before they run: complexity alone lets a narrow but very deep
// query through.
type depthLimit struct{ Max int }

var _ interface {
	graphql.HandlerExtension
	graphql.OperationContextMutator
} = depthLimit{}

func (depthLimit) ExtensionName() string                   { return "DepthLimit" }
func (depthLimit) Validate(graphql.ExecutableSchema) error { return nil }
func (d depthLimit) MutateOperationContext(_ context.Context, oc *graphql.OperationContext) *gqlerror.Error {
	if oc.Operation == nil {
		return nil
	}
	if depth := selectionDepth(oc.Operation.SelectionSet, map[string]int{}); depth > d.Max {
		err := gqlerror.Errorf("the query nests %d levels deep; at most %d are allowed", depth, d.Max)
		err.Extensions = map[string]any{"code": string(segmentd.CodeInvalid)}
		return err
	}
	return nil
}

// selectionDepth is how many levels of fields set nests. Each fragment's
// depth is measured once and remembered by name, so that the time is linear
// in the document's size however often fragments are spread (measuring
// each spread anew took exponential time: 41 fragments each spreading the
// next twice never finished).
func selectionDepth(set ast.SelectionSet, fragments map[string]int) int {
	deepest := 0
	for _, sel := range set {
		var d int
		switch s := sel.(type) {
		case *ast.Field:
			d = 1 + selectionDepth(s.SelectionSet, fragments)
		case *ast.InlineFragment:
			d = selectionDepth(s.SelectionSet, fragments)
		case *ast.FragmentSpread:
			if s.Definition == nil {
				continue
			}
			known, ok := fragments[s.Name]
			if !ok {
				fragments[s.Name] = 0 // a cycle (refused by validation) adds nothing
				known = selectionDepth(s.Definition.SelectionSet, fragments)
				fragments[s.Name] = known
			}
			d = known
		}
		deepest = max(deepest, d)
	}
	return deepest
}

// errorResponse answers an operation with one error and a code.
func errorResponse(ctx context.Context, code segmentd.Code, format string, args ...any) graphql.ResponseHandler {
	return graphql.OneShot(&graphql.Response{Errors: gqlerror.List{{
		Message:    fmt.Sprintf(format, args...),
		Extensions: map[string]any{"code": string(code)},
	}}})
}

// MaxPage is the largest page a connection returns (first or last).
const MaxPage = 1000

// capPages refuses first/last above MaxPage or below 0 on any field, before
// its resolver runs, and gives a connection asked for with neither a first
// page of MaxPage, so that no query can ask for an unbounded list.
func capPages(ctx context.Context, next graphql.Resolver) (any, error) {
	fc := graphql.GetFieldContext(ctx)
	if fc != nil && fc.Args != nil {
		for _, name := range []string{"first", "last"} {
			if v, ok := fc.Args[name].(*int); ok && v != nil && (*v > MaxPage || *v < 0) {
				return nil, &segmentd.Error{Code: segmentd.CodeInvalid, Field: name,
					Message: fmt.Sprintf("must be between 0 and %d, got %d", MaxPage, *v)}
			}
		}
		first, hasFirst := fc.Args["first"].(*int)
		last, _ := fc.Args["last"].(*int)
		if hasFirst && first == nil && last == nil {
			page := MaxPage
			fc.Args["first"] = &page // the field's own Args, parsed for this execution
		}
	}
	return next(ctx)
}
