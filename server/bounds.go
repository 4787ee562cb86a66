package server

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"strings"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/segmentd/segmentd"
)

// The bounds of list arguments. Past them, the database's own limits
// (SQLite's 1,000-deep expressions and 32,766 variables) would answer
// INTERNAL, or a query would cost far more than a page.
const (
	// MaxNodeIDs is the most IDs nodes(ids:) takes.
	MaxNodeIDs = 1000
	// MaxWhereValues is the most values one IN or NOT_IN filter of a
	// where argument takes.
	MaxWhereValues = 1000
	// MaxWhereDepth is how deep and/or/not and edge filters (hasXWith)
	// of a where argument may nest.
	MaxWhereDepth = 10
	// MaxWhereFilters is the most filters one where argument holds,
	// counting every nested where object and every field filter in it.
	MaxWhereFilters = 200
)

// boundArguments refuses, before its resolver runs, a field whose list
// arguments exceed the bounds above, with BAD_USER_INPUT naming the
// argument and the bound.
func boundArguments(ctx context.Context, next graphql.Resolver) (any, error) {
	fc := graphql.GetFieldContext(ctx)
	if fc == nil || fc.Args == nil {
		return next(ctx)
	}
	if ids, ok := fc.Args["ids"]; ok && fc.Field.Name == "nodes" {
		if v := reflect.ValueOf(ids); v.Kind() == reflect.Slice && v.Len() > MaxNodeIDs {
			return nil, segmentd.Invalid("ids", "at most %d IDs are allowed, got %d", MaxNodeIDs, v.Len())
		}
	}
	if where, ok := fc.Args["where"]; ok && where != nil {
		b := whereBounds{}
		if err := b.walk(reflect.ValueOf(where), "where", 1); err != nil {
			return nil, err
		}
	}
	return next(ctx)
}

// whereBounds walks an ent WhereInput (and the WhereInputs of its edge
// filters) by reflection, so that every generated filter is bounded.
type whereBounds struct{ filters int }

func (b *whereBounds) walk(v reflect.Value, path string, depth int) error {
	for v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
		if v.IsNil() {
			return nil
		}
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return nil
	}
	if depth > MaxWhereDepth {
		return segmentd.Invalid(path, "where filters may nest at most %d levels deep", MaxWhereDepth)
	}
	b.filters++
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || name == "-" || !f.IsExported() {
			continue
		}
		fv := v.Field(i)
		switch {
		case fv.Kind() == reflect.Slice && fv.Len() > 0 && isWhereInput(fv.Type().Elem()):
			for j := range fv.Len() {
				if err := b.walk(fv.Index(j), fmt.Sprintf("%s.%s[%d]", path, name, j), depth+1); err != nil {
					return err
				}
			}
		case fv.Kind() == reflect.Pointer && !fv.IsNil() && isWhereInput(fv.Type()):
			if err := b.walk(fv, path+"."+name, depth+1); err != nil {
				return err
			}
		case fv.Kind() == reflect.Slice:
			if fv.Len() > MaxWhereValues {
				return segmentd.Invalid(path+"."+name, "at most %d values are allowed, got %d", MaxWhereValues, fv.Len())
			}
			if fv.Len() > 0 {
				b.filters++
			}
		case fv.Kind() == reflect.Pointer && !fv.IsNil():
			b.filters++
		case fv.Kind() == reflect.Bool && fv.Bool():
			b.filters++
		}
		if b.filters > MaxWhereFilters {
			return segmentd.Invalid(path, "a where argument may hold at most %d filters", MaxWhereFilters)
		}
	}
	return nil
}

// isWhereInput reports whether t (or what it points to) is an ent
// WhereInput.
func isWhereInput(t reflect.Type) bool {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t.Kind() == reflect.Struct && strings.HasSuffix(t.Name(), "WhereInput")
}

// deadline gives every query and mutation, over HTTP or a websocket, at
// most timeout: its context ends then, which cancels its database work,
// and its errors become TIMEOUT. Subscriptions run for as long as their
// client keeps them, so they get no deadline; they still end when their
// client or the server does.
func deadline(timeout time.Duration) graphql.OperationMiddleware {
	return func(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
		oc := graphql.GetOperationContext(ctx)
		if timeout <= 0 || oc == nil || oc.Operation == nil || oc.Operation.Operation == ast.Subscription {
			return next(ctx)
		}
		ctx, cancel := context.WithTimeout(ctx, timeout)
		handler := next(ctx)
		done := false
		return func(ctx context.Context) *graphql.Response {
			if done {
				return nil
			}
			done = true
			defer cancel()
			resp := handler(ctx)
			if resp == nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
				resp = &graphql.Response{Errors: gqlerror.List{timeoutError(timeout)}}
			}
			return resp
		}
	}
}

func timeoutError(timeout time.Duration) *gqlerror.Error {
	return &gqlerror.Error{
		Message:    fmt.Sprintf("the request ran past its deadline of %s (SEGMENTD_REQUEST_TIMEOUT)", timeout),
		Extensions: map[string]any{"code": string(segmentd.CodeTimeout)},
	}
}

// DefaultQuerySlots is how many queries run at once by default: all cores
// but one, so that however many expensive reads arrive, one core is left
// for ingestion (mutations) and subscriptions.
func DefaultQuerySlots() int { return max(1, runtime.GOMAXPROCS(0)-1) }

// querySlots lets at most n query operations execute at once; the others
// wait for a slot, within their deadline (TIMEOUT past it). Mutations and
// subscriptions never wait: a read never holds ingestion up.
func querySlots(n int, timeout time.Duration) graphql.OperationMiddleware {
	slots := make(chan struct{}, n)
	return func(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
		oc := graphql.GetOperationContext(ctx)
		if oc == nil || oc.Operation == nil || oc.Operation.Operation != ast.Query {
			return next(ctx)
		}
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return graphql.OneShot(&graphql.Response{Errors: gqlerror.List{timeoutError(timeout)}})
			}
			return graphql.OneShot(&graphql.Response{Errors: gqlerror.List{{Message: "request cancelled"}}})
		}
		handler := next(ctx)
		released := false
		release := func() {
			if !released {
				released = true
				<-slots
			}
		}
		return func(ctx context.Context) *graphql.Response {
			defer release()
			return handler(ctx)
		}
	}
}
