package server

import (
	"bufio"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/segmentd/segmentd/auth"
)

// DefaultSlowRequest is the default of --slow-request: a request that takes
// longer is logged at WARN.
const DefaultSlowRequest = time.Second

// reqInfo is what the layers under observe learn about a request for its
// log line: the key that authenticated it, and the GraphQL operation with
// its estimated cost. Never a body, a key, a trait or a variable.
type reqInfo struct {
	mu        sync.Mutex
	keyID     string
	opName    string
	opType    string
	cost      int64
	hasCost   bool
	websocket bool
	subs      int // subscriptions started on a websocket
}

type reqInfoKey struct{}

func reqInfoFrom(ctx context.Context) *reqInfo {
	i, _ := ctx.Value(reqInfoKey{}).(*reqInfo)
	return i
}

// noteKey records the ID of the key that authenticated the request.
func noteKey(ctx context.Context, p *auth.Principal) {
	if i := reqInfoFrom(ctx); i != nil && p != nil {
		i.mu.Lock()
		i.keyID = string(p.KeyID)
		i.mu.Unlock()
	}
}

// noteCost records the estimated cost of an HTTP request's operation
// (operations on a websocket have no line of their own).
func noteCost(ctx context.Context, cost int64) {
	if i := reqInfoFrom(ctx); i != nil && socketFrom(ctx) == nil {
		i.mu.Lock()
		i.cost, i.hasCost = cost, true
		i.mu.Unlock()
	}
}

// statusRecorder remembers the status a handler answered with. It lets
// websockets hijack the connection (gorilla asks for http.Hijacker).
type statusRecorder struct {
	http.ResponseWriter
	status   int
	hijacked bool
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(p)
}

func (r *statusRecorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (r *statusRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	h, ok := r.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("the response does not support hijacking")
	}
	c, rw, err := h.Hijack()
	if err == nil {
		r.hijacked = true
		r.status = http.StatusSwitchingProtocols
	}
	return c, rw, err
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// routeOf is the route template of a ServeMux pattern, without its method
// ("POST /v1/{type}" is /v1/{type}); "unmatched" when no route matched.
func routeOf(pattern string) string {
	if pattern == "" {
		return "unmatched"
	}
	if i := strings.IndexByte(pattern, ' '); i >= 0 {
		pattern = strings.TrimSpace(pattern[i+1:])
	}
	return pattern
}

// probes are the routes that load balancers and scrapers call every few
// seconds: their lines are at DEBUG (a slow one still warns).
var probes = map[string]bool{"/healthz": true, "/readyz": true, "/metrics": true}

// observe counts every request for /metrics and logs one line for it when
// it ends: method, route template, status, duration, key ID and, for
// GraphQL over HTTP, the operation's name, type and estimated cost; at
// WARN ("slow request") past SlowRequest. A websocket's line comes when it
// closes, with the subscriptions it started. Never a body, a key, a trait,
// a variable or a raw path (which may hold IDs).
func (s *Server) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		info := &reqInfo{websocket: isWebsocketUpgrade(r)}
		rec := &statusRecorder{ResponseWriter: w}
		r = r.WithContext(context.WithValue(r.Context(), reqInfoKey{}, info))
		next.ServeHTTP(rec, r) // the mux sets r.Pattern
		took := time.Since(start)
		route := routeOf(r.Pattern)
		status := rec.status
		if status == 0 {
			status = http.StatusOK
		}
		s.metrics.httpRequests.WithLabelValues(route, strconv.Itoa(status)).Inc()
		if !rec.hijacked {
			s.metrics.httpDuration.WithLabelValues(route).Observe(took.Seconds())
		}
		info.mu.Lock()
		attrs := []slog.Attr{
			slog.String("method", r.Method), slog.String("route", route),
			slog.Int("status", status), slog.Duration("duration", took),
		}
		if info.keyID != "" {
			attrs = append(attrs, slog.String("key_id", info.keyID))
		}
		if info.opType != "" {
			attrs = append(attrs, slog.String("operation", info.opName), slog.String("operation_type", info.opType))
		}
		if info.hasCost {
			attrs = append(attrs, slog.Int64("cost", info.cost))
		}
		if rec.hijacked {
			attrs = append(attrs, slog.Int("subscriptions", info.subs))
		}
		info.mu.Unlock()
		ctx := context.WithoutCancel(r.Context())
		switch {
		case rec.hijacked:
			s.log.LogAttrs(ctx, slog.LevelInfo, "websocket closed", attrs...)
		case s.cfg.SlowRequest > 0 && took > s.cfg.SlowRequest:
			s.log.LogAttrs(ctx, slog.LevelWarn, "slow request", attrs...)
		case probes[route]:
			s.log.LogAttrs(ctx, slog.LevelDebug, "request", attrs...)
		default:
			s.log.LogAttrs(ctx, slog.LevelInfo, "request", attrs...)
		}
	})
}

// observeOperation records an HTTP operation's name and type for its
// request's log line (on a websocket, where a line per operation would
// flood, countSubscriptions logs each subscription's start).
func (s *Server) observeOperation(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
	oc := graphql.GetOperationContext(ctx)
	if oc == nil || oc.Operation == nil {
		return next(ctx)
	}
	name, typ := oc.OperationName, string(oc.Operation.Operation)
	if name == "" {
		name = oc.Operation.Name
	}
	if info := reqInfoFrom(ctx); info != nil && socketFrom(ctx) == nil {
		info.mu.Lock()
		info.opName, info.opType = name, typ
		info.mu.Unlock()
	}
	return next(ctx)
}

// countSubscriptions logs each subscription's start on a websocket and
// counts it open in segmentd_live_subscriptions until it ends. It runs
// after authorize: a refused subscription never opened.
func (s *Server) countSubscriptions(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
	oc := graphql.GetOperationContext(ctx)
	if oc == nil || oc.Operation == nil || oc.Operation.Operation != ast.Subscription || socketFrom(ctx) == nil {
		return next(ctx)
	}
	name := oc.OperationName
	if name == "" {
		name = oc.Operation.Name
	}
	info := reqInfoFrom(ctx)
	field := "unknown"
	if fs := rootFields(oc.Operation.SelectionSet, map[string]bool{}); len(fs) > 0 {
		field = fs[0]
	}
	keyID := ""
	if p := auth.FromContext(ctx); p != nil {
		keyID = string(p.KeyID)
	}
	if info != nil {
		info.mu.Lock()
		info.subs++
		info.mu.Unlock()
	}
	s.log.InfoContext(ctx, "subscription started", "operation", name, "subscription", field, "key_id", keyID)
	g := s.metrics.subscriptions.WithLabelValues(field)
	g.Inc()
	var once sync.Once
	done := func() { once.Do(g.Dec) }
	stop := context.AfterFunc(ctx, done)
	h := next(ctx)
	return func(ctx context.Context) *graphql.Response {
		r := h(ctx)
		if r == nil {
			stop()
			done()
		}
		return r
	}
}
