package server

import (
	"context"
	"testing"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/segmentd/segmentd"
	"github.com/segmentd/segmentd/auth"
)

// TestFieldRolesMiddleware: where a field resolves, a WRITE key is refused
// every field its rules do not open, a field without a rule included, with
// FORBIDDEN naming the path; READ and ADMIN keys pass; no key passes nothing.
// (The e2e tests see checkFieldRoles refuse such operations first; this
// is the second line.)
func TestFieldRolesMiddleware(t *testing.T) {
	resolve := func(p *auth.Principal, object, field string) (bool, error) {
		ctx := context.Background()
		if p != nil {
			ctx = auth.WithPrincipal(ctx, p)
		}
		parent := &graphql.FieldContext{Object: "Mutation", Field: graphql.CollectedField{Field: &ast.Field{Alias: "trackEvent", Name: "trackEvent"}}}
		ctx = graphql.WithFieldContext(ctx, parent)
		fc := &graphql.FieldContext{Object: object, Field: graphql.CollectedField{Field: &ast.Field{Alias: field, Name: field}}}
		ran := false
		_, err := fieldRoles(graphql.WithFieldContext(ctx, fc), func(context.Context) (any, error) { ran = true; return "v", nil })
		return ran, err
	}
	write := &auth.Principal{Role: auth.RoleWrite}
	for _, c := range []struct {
		p             *auth.Principal
		object, field string
		allowed       bool
	}{
		{write, "Segment", "name", true},
		{write, "Segment", "members", false},
		{write, "Segment", "aFieldAddedLater", false},
		{write, "NewType", "id", false},
		{write, "__Type", "name", true},
		{write, "Segment", "__typename", true},
		{&auth.Principal{Role: auth.RoleRead}, "Segment", "members", true},
		{&auth.Principal{Role: auth.RoleAdmin}, "Segment", "aFieldAddedLater", true},
		{nil, "Segment", "name", false},
	} {
		ran, err := resolve(c.p, c.object, c.field)
		if ran != c.allowed || (err == nil) != c.allowed {
			t.Errorf("%v %s.%s: ran %v, err %v; want allowed %v", c.p, c.object, c.field, ran, err, c.allowed)
			continue
		}
		if err != nil {
			if segmentd.ErrorCode(err) != segmentd.CodeForbidden {
				t.Errorf("%s.%s: %v, want FORBIDDEN", c.object, c.field, err)
			}
			if want := "trackEvent." + c.field; err.(*segmentd.Error).Field != want {
				t.Errorf("%s.%s: field %q, want %q", c.object, c.field, err.(*segmentd.Error).Field, want)
			}
		}
	}
}
