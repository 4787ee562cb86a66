package server

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/segmentd/segmentd"
	"github.com/segmentd/segmentd/auth"
)

// requireKey authenticates every HTTP request to the GraphQL endpoint by its
// key. A websocket upgrade passes: websocketInit checks its key at
// connection_init, from the init payload or the upgrade's Authorization
// header, kept in the context for it.
func (s *Server) requireKey(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodOptions {
			next.ServeHTTP(w, r)
			return
		}
		if isWebsocketUpgrade(r) {
			ctx := context.WithValue(r.Context(), upgradeAuthorizationKey{}, r.Header.Get("Authorization"))
			next.ServeHTTP(w, withSocket(r.WithContext(ctx)))
			return
		}
		p, err := s.keys.Authenticate(r.Context(), auth.BearerToken(r.Header.Get("Authorization")))
		if err != nil {
			code := segmentd.ErrorCode(err)
			status := http.StatusUnauthorized
			msg := err.Error()
			if code == segmentd.CodeInternal {
				s.log.ErrorContext(r.Context(), "authenticate", "err", err)
				status, msg = http.StatusInternalServerError, "internal error"
			}
			writeGraphQLError(w, status, code, msg)
			return
		}
		noteKey(r.Context(), p)
		if !s.allow(w, p, true) {
			return
		}
		next.ServeHTTP(w, r.WithContext(auth.WithPrincipal(r.Context(), p)))
	})
}

func isWebsocketUpgrade(r *http.Request) bool {
	return strings.EqualFold(r.Header.Get("Upgrade"), "websocket")
}

type upgradeAuthorizationKey struct{}

// websocketAuthorization is the Authorization a websocket presents: in its
// connection_init payload as {"Authorization": ...} or {"headers":
// {"Authorization": ...}} (either spelled authorization too), or else the
// Authorization header of its upgrade request.
func websocketAuthorization(ctx context.Context, payload transport.InitPayload) string {
	if a := payload.Authorization(); a != "" {
		return a
	}
	if headers, ok := payload["headers"].(map[string]any); ok {
		if a := transport.InitPayload(headers).Authorization(); a != "" {
			return a
		}
	}
	a, _ := ctx.Value(upgradeAuthorizationKey{}).(string)
	return a
}

// websocketInit authenticates a websocket at connection_init by its key
// (websocketAuthorization). A bad or missing key closes the socket with
// 4403, which graphql-ws clients treat as fatal: they do not reconnect in a
// loop.
func (s *Server) websocketInit(ctx context.Context, payload transport.InitPayload) (context.Context, *transport.InitPayload, error) {
	p, err := s.keys.Authenticate(ctx, auth.BearerToken(websocketAuthorization(ctx, payload)))
	if err != nil {
		ctx = transport.WithWebsocketCloseCode(ctx, 4403)
		ctx = transport.AppendCloseReason(ctx, "Forbidden: "+err.Error())
		return ctx, nil, err
	}
	if !p.CanRead() {
		ctx = transport.WithWebsocketCloseCode(ctx, 4403)
		ctx = transport.AppendCloseReason(ctx, "Forbidden: subscriptions need a READ or ADMIN key")
		return ctx, nil, segmentd.Errorf(segmentd.CodeForbidden, "subscriptions need a READ or ADMIN key")
	}
	if sock := socketFrom(ctx); sock != nil {
		s.sockets.add(ctx, sock, p)
	}
	noteKey(ctx, p)
	return auth.WithPrincipal(ctx, p), nil, nil
}

// authorize checks, before anything runs, that the caller's role allows
// every root field of the operation: queries and subscriptions need READ or
// ADMIN; ingestion mutations (writeRules) WRITE or ADMIN; other mutations
// ADMIN. Then, for a WRITE key, that it allows every field the operation
// selects (checkFieldRoles). A refused operation returns no data at all.
func authorize(schema *ast.Schema) graphql.OperationMiddleware {
	return func(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
		return authorizeOperation(ctx, schema, next)
	}
}

func authorizeOperation(ctx context.Context, schema *ast.Schema, next graphql.OperationHandler) graphql.ResponseHandler {
	oc := graphql.GetOperationContext(ctx)
	p := auth.FromContext(ctx)
	if p == nil {
		return errorResponse(ctx, segmentd.CodeUnauthenticated, "an API key is required")
	}
	if oc.Operation == nil {
		return next(ctx)
	}
	for _, name := range rootFields(oc.Operation.SelectionSet, map[string]bool{}) {
		if strings.HasPrefix(name, "__") {
			continue // introspection and __typename: allowed to any key
		}
		if !allowedRoot(p, oc.Operation.Operation, name) {
			return errorResponse(ctx, segmentd.CodeForbidden, "a %s key may not use %s %s", p.Role, oc.Operation.Operation, name)
		}
	}
	if errs := checkFieldRoles(schema, oc.Operation, p); len(errs) > 0 {
		return graphql.OneShot(&graphql.Response{Errors: errs})
	}
	return next(ctx)
}

func rootFields(set ast.SelectionSet, seen map[string]bool) []string {
	var names []string
	for _, sel := range set {
		switch s := sel.(type) {
		case *ast.Field:
			names = append(names, s.Name)
		case *ast.InlineFragment:
			names = append(names, rootFields(s.SelectionSet, seen)...)
		case *ast.FragmentSpread:
			if s.Definition != nil && !seen[s.Name] {
				seen[s.Name] = true
				names = append(names, rootFields(s.Definition.SelectionSet, seen)...)
			}
		}
	}
	return names
}

// writeGraphQLError answers a request that never reached GraphQL execution
// with a GraphQL-shaped error body.
func writeGraphQLError(w http.ResponseWriter, status int, code segmentd.Code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"errors": []map[string]any{{"message": msg, "extensions": map[string]any{"code": string(code)}}},
	})
}
