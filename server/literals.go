package server

import (
	"context"
	"regexp"
	"strconv"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"github.com/vektah/gqlparser/v2/parser"

	"github.com/segmentd/segmentd"
)

// literalNumbers refuses a number literal outside float64 written in the
// document itself (properties: {big: 1e400}) with BAD_USER_INPUT naming its
// argument path, as such a number in a variable is refused. Without it,
// validation refuses the whole enclosing input ("Expected value of type
// TrackInput!") without saying which value is wrong. It runs before
// parsing, so it only looks closer (a parse of its own) when the text holds
// something that could be such a number: a three-digit exponent or a run
// of 300 digits.
type literalNumbers struct{ MaxTokens int }

var _ interface {
	graphql.HandlerExtension
	graphql.OperationParameterMutator
} = literalNumbers{}

var hugeNumber = regexp.MustCompile(`[0-9][eE]\+?[0-9]{3}|[0-9]{300}`)

func (literalNumbers) ExtensionName() string                   { return "LiteralNumbers" }
func (literalNumbers) Validate(graphql.ExecutableSchema) error { return nil }
func (l literalNumbers) MutateOperationParameters(_ context.Context, p *graphql.RawParams) *gqlerror.Error {
	if !hugeNumber.MatchString(p.Query) {
		return nil
	}
	doc, err := parser.ParseQueryWithTokenLimit(&ast.Source{Input: p.Query}, l.MaxTokens)
	if err != nil {
		return nil // gqlgen reports it, with its own limits
	}
	for _, op := range doc.Operations {
		for _, v := range op.VariableDefinitions {
			if err := checkLiteral(v.Variable, v.DefaultValue); err != nil {
				return err
			}
		}
		if err := checkSelections(op.SelectionSet, op.Directives, 0); err != nil {
			return err
		}
	}
	for _, f := range doc.Fragments {
		if err := checkSelections(f.SelectionSet, f.Directives, 0); err != nil {
			return err
		}
	}
	return nil
}

func checkSelections(set ast.SelectionSet, dirs ast.DirectiveList, depth int) *gqlerror.Error {
	if depth > 1000 {
		return nil // far past the depth limit, which refuses it anyway
	}
	for _, d := range dirs {
		if err := checkArguments(d.Arguments); err != nil {
			return err
		}
	}
	for _, sel := range set {
		switch s := sel.(type) {
		case *ast.Field:
			if err := checkArguments(s.Arguments); err != nil {
				return err
			}
			if err := checkSelections(s.SelectionSet, s.Directives, depth+1); err != nil {
				return err
			}
		case *ast.InlineFragment:
			if err := checkSelections(s.SelectionSet, s.Directives, depth+1); err != nil {
				return err
			}
		case *ast.FragmentSpread:
			if err := checkSelections(nil, s.Directives, depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}

func checkArguments(args ast.ArgumentList) *gqlerror.Error {
	for _, a := range args {
		if err := checkLiteral(a.Name, a.Value); err != nil {
			return err
		}
	}
	return nil
}

func checkLiteral(path string, v *ast.Value) *gqlerror.Error {
	if v == nil {
		return nil
	}
	switch v.Kind {
	case ast.IntValue, ast.FloatValue:
		if _, err := strconv.ParseFloat(v.Raw, 64); err != nil {
			raw := v.Raw
			if len(raw) > 40 {
				raw = raw[:40] + "…"
			}
			e := gqlerror.ErrorPosf(v.Position, "%s: the number %s is outside the range of a 64-bit float (at most ±1.7976931348623157e308)", path, raw)
			e.Extensions = map[string]any{"code": string(segmentd.CodeInvalid), "field": path}
			return e
		}
	case ast.ListValue:
		for i, c := range v.Children {
			if err := checkLiteral(path+"["+strconv.Itoa(i)+"]", c.Value); err != nil {
				return err
			}
		}
	case ast.ObjectValue:
		for _, c := range v.Children {
			if err := checkLiteral(segmentd.FieldPath(path, c.Name), c.Value); err != nil {
				return err
			}
		}
	}
	return nil
}
