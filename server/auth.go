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

// ingestionFields are the mutations a WRITE key may call.
var ingestionFields = map[string]bool{"trackEvent": true, "trackEvents": true, "identify": true}

// requireKey authenticates every HTTP request to the GraphQL endpoint by its
// key. A websocket upgrade passes: its key arrives in connection_init and
// websocketInit checks it there.
func (s *Server) requireKey(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if isWebsocketUpgrade(r) {
			next.ServeHTTP(w, withSocket(r))
			return
		}
		if r.Method == http.MethodOptions {
			next.ServeHTTP(w, r)
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
		if !s.allow(w, p, true) {
			return
		}
		next.ServeHTTP(w, r.WithContext(auth.WithPrincipal(r.Context(), p)))
	})
}

func isWebsocketUpgrade(r *http.Request) bool {
	return strings.EqualFold(r.Header.Get("Upgrade"), "websocket")
}

// websocketInit authenticates a websocket by the key in its connection_init
// payload. A bad key closes the socket with 4403, which graphql-ws clients
// treat as fatal: they do not reconnect in a loop.
func (s *Server) websocketInit(ctx context.Context, payload transport.InitPayload) (context.Context, *transport.InitPayload, error) {
	p, err := s.keys.Authenticate(ctx, auth.BearerToken(payload.Authorization()))
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
	return auth.WithPrincipal(ctx, p), nil, nil
}

// authorize checks, before anything runs, that the caller's role allows
// every root field of the operation: queries and subscriptions need READ or
// ADMIN; ingestion mutations WRITE or ADMIN; other mutations ADMIN. A refused
// operation returns no data at all.
func authorize(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
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
		allowed := false
		switch oc.Operation.Operation {
		case ast.Query, ast.Subscription:
			allowed = p.CanRead()
		case ast.Mutation:
			if ingestionFields[name] {
				allowed = p.CanIngest()
			} else {
				allowed = p.CanAdmin()
			}
		}
		if !allowed {
			return errorResponse(ctx, segmentd.CodeForbidden, "a %s key may not use %s %s", p.Role, oc.Operation.Operation, name)
		}
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
