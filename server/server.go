// Package server is segmentd's HTTP face: the GraphQL endpoint with its
// transports (POST, GET, multipart, websockets through gorilla), the web
// console (at /) and the GraphiQL IDE (at /graphiql), health checks, authentication and request limits. It opens the store,
// migrates it and serves until its context ends, then shuts down gracefully.
package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"entgo.io/ent/dialect"
	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/segmentd/segmentd"
	"github.com/segmentd/segmentd/auth"
	"github.com/segmentd/segmentd/graph"
	"github.com/segmentd/segmentd/graph/generated"
	"github.com/segmentd/segmentd/pubsub"
	"github.com/segmentd/segmentd/segmentapi"
	"github.com/segmentd/segmentd/server/console"
	"github.com/segmentd/segmentd/server/graphiql"
	"github.com/segmentd/segmentd/server/wsgorilla"
	"github.com/segmentd/segmentd/service"
	"github.com/segmentd/segmentd/store"
	"github.com/segmentd/segmentd/webhook"
)

// Config is the server's configuration. Zero values mean the defaults.
type Config struct {
	Addr        string // listen address; default localhost:8080
	DatabaseURL string // default segmentd.db (SQLite)
	AdminKey    string // the first ADMIN key to create, instead of a random one

	MaxBodyBytes    int64         // largest GraphQL request body; default 1 MiB
	MaxUploadBytes  int64         // largest multipart upload (CSV imports); default 1 GiB
	MaxDepth        int           // deepest query; default 15
	MaxTokens       int           // largest query in tokens; default 10000
	Introspection   *bool         // default true
	AllowedOrigins  []string      // browser origins allowed besides the same origin ("*" for any)
	ShutdownTimeout time.Duration // default 10s
	// RateLimit is the requests per second allowed per API key (HTTP
	// GraphQL and /v1); 0 means the default of 1000, negative means none.
	RateLimit float64
	// RateBurst is how many requests a key may make at once; default 2×RateLimit.
	RateBurst int
	// RateClock is the rate limiter's clock; default time.Now. Tests
	// inject their own to refill buckets deterministically.
	RateClock func() time.Time
	// Now is the service's clock; default time.Now. Tests inject their own.
	Now func() time.Time
	// RequestTimeout bounds every query and mutation (HTTP or websocket;
	// not subscriptions): past it, its database work is cancelled and it
	// answers TIMEOUT. Default 30s; negative: none.
	RequestTimeout time.Duration
	// WebsocketInitTimeout is how long a websocket may stay open without a
	// connection_init before it is closed; default 10s.
	WebsocketInitTimeout time.Duration

	// MaxQueryCost is the largest estimated cost of an operation (see
	// querycost); default DefaultMaxQueryCost, negative: no limit.
	MaxQueryCost int64

	// UploadDir is where imports keep their copies of uploaded files;
	// default os.TempDir(). Copies left by a killed process are removed
	// at start.
	UploadDir string

	// WebhookAllowPrivate lets webhook URLs resolve to loopback, private
	// and link-local addresses (SEGMENTD_WEBHOOK_ALLOW_PRIVATE); it allows
	// http as well.
	WebhookAllowPrivate bool
	// WebhookAllowHTTP lets webhook URLs be plain http.
	WebhookAllowHTTP bool
	// WebhookSchedule is the wait before each webhook retry; default
	// webhook.DefaultSchedule. Tests shorten it.
	WebhookSchedule []time.Duration
	// WebhookTimeout bounds one webhook attempt; default 15s.
	WebhookTimeout time.Duration
	// MetricsAddr, if set, is a listener of its own for /metrics, open
	// to anyone who reaches it; when empty, /metrics is on Addr and needs
	// a READ or ADMIN key.
	MetricsAddr string
	// SlowRequest is how long a request may take before its log line is
	// at WARN ("slow request"); default DefaultSlowRequest, negative: never.
	SlowRequest time.Duration
}

func (c *Config) setDefaults() {
	if c.Addr == "" {
		c.Addr = "localhost:8080"
	}
	if c.DatabaseURL == "" {
		c.DatabaseURL = "segmentd.db"
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = 1 << 20
	}
	if c.MaxUploadBytes == 0 {
		c.MaxUploadBytes = 1 << 30
	}
	if c.MaxDepth == 0 {
		c.MaxDepth = 15
	}
	if c.MaxQueryCost == 0 {
		c.MaxQueryCost = DefaultMaxQueryCost
	}
	if c.MaxTokens == 0 {
		c.MaxTokens = 10000
	}
	if c.Introspection == nil {
		t := true
		c.Introspection = &t
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = 10 * time.Second
	}
	if c.RateLimit == 0 {
		c.RateLimit = 1000
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = 30 * time.Second
	}
	if c.WebsocketInitTimeout == 0 {
		c.WebsocketInitTimeout = 10 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.SlowRequest == 0 {
		c.SlowRequest = DefaultSlowRequest
	}
}

// Server is a running segmentd.
type Server struct {
	cfg   Config
	log   *slog.Logger
	store *store.Store
	svc   *service.Service
	keys  *auth.Keys
	ln    net.Listener
	http  *http.Server

	limits  *limiters
	sockets *sockets
	broker  pubsub.Broker
	live    *service.Live
	hooks   *webhook.Hooks
	metrics *metrics
	// metricsLn and metricsHTTP serve /metrics on MetricsAddr, if set.
	metricsLn   net.Listener
	metricsHTTP *http.Server
	// stop ends the tailers and every request context (websockets are
	// hijacked: http.Server.Shutdown does not end them).
	stop context.CancelFunc

	// FirstAdminKey is the ADMIN key created on this start (first start on
	// an empty database), or "" if keys existed.
	FirstAdminKey string
}

// New opens and migrates the store, makes sure an ADMIN key exists, and
// opens the listener, so that Addr is known before Serve.
func New(ctx context.Context, cfg Config, log *slog.Logger) (*Server, error) {
	cfg.setDefaults()
	st, err := store.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("server.New: %w", err)
	}
	if err := st.LockForServer(); err != nil {
		st.Close()
		return nil, fmt.Errorf("server.New: %w", err)
	}
	if err := st.Migrate(ctx); err != nil {
		st.Close()
		return nil, fmt.Errorf("server.New: %w", err)
	}
	// The broker and the background context come first: the service is
	// built whole, with everything it signals and runs on.
	broker, err := brokerFor(st, log)
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("server.New: %w", err)
	}
	base, stop := context.WithCancel(context.WithoutCancel(ctx))
	m := newMetrics()
	svc, err := service.New(st, service.Config{
		Log: log, Broker: broker, Background: base, UploadDir: cfg.UploadDir, Now: cfg.Now, Metrics: m,
	})
	if err != nil {
		stop()
		broker.Close()
		st.Close()
		return nil, fmt.Errorf("server.New: %w", err)
	}
	s := &Server{
		cfg:     cfg,
		log:     log,
		store:   st,
		svc:     svc,
		keys:    auth.NewKeys(st.Client),
		broker:  broker,
		stop:    stop,
		metrics: m,
	}
	s.limits = newLimiters(cfg.RateLimit, cfg.RateBurst, cfg.RateClock)
	s.sockets = newSockets()
	// From here on closeAll undoes everything: it ends the background
	// context, releases the import owner if claimed, closes the broker
	// and the store.
	if s.FirstAdminKey, err = s.keys.EnsureAdmin(ctx, cfg.AdminKey); err != nil {
		s.closeAll()
		return nil, fmt.Errorf("server.New: %w", err)
	}
	if err := s.svc.EnsureCounters(ctx); err != nil {
		s.closeAll()
		return nil, fmt.Errorf("server.New: %w", err)
	}
	if err := s.svc.ClaimImportOwner(ctx); err != nil {
		s.closeAll()
		return nil, fmt.Errorf("server.New: %w", err)
	}
	if err := s.svc.FailStaleImports(ctx); err != nil {
		s.closeAll()
		return nil, fmt.Errorf("server.New: %w", err)
	}
	if err := s.svc.CleanImportLeftovers(ctx); err != nil {
		s.closeAll()
		return nil, fmt.Errorf("server.New: %w", err)
	}
	if s.live, err = s.svc.StartLive(base, st, log); err != nil {
		s.closeAll()
		return nil, fmt.Errorf("server.New: %w", err)
	}
	if s.hooks, err = webhook.New(base, st, broker, webhook.Config{
		URLs:     webhook.URLPolicy{AllowPrivate: cfg.WebhookAllowPrivate, AllowHTTP: cfg.WebhookAllowHTTP},
		Schedule: cfg.WebhookSchedule, Timeout: cfg.WebhookTimeout, Now: cfg.Now, Log: log, Metrics: m,
	}); err != nil {
		s.closeAll()
		return nil, fmt.Errorf("server.New: %w", err)
	}
	s.hooks.Start(base)
	go s.svc.CompactCountersEvery(base, 5*time.Minute)
	s.svc.StartSweeper(base)
	go s.watchKeys(base)
	if s.ln, err = net.Listen("tcp", cfg.Addr); err != nil {
		s.closeAll()
		return nil, fmt.Errorf("server.New: listen: %w", err)
	}
	s.http = &http.Server{
		BaseContext:       func(net.Listener) context.Context { return base },
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      60 * time.Second, // websockets are hijacked: it does not cut them
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	if cfg.MetricsAddr != "" {
		if s.metricsLn, err = net.Listen("tcp", cfg.MetricsAddr); err != nil {
			s.ln.Close()
			s.closeAll()
			return nil, fmt.Errorf("server.New: listen for metrics: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", s.metrics.handler())
		s.metricsHTTP = &http.Server{
			Handler:           mux,
			ReadHeaderTimeout: 10 * time.Second,
			WriteTimeout:      60 * time.Second,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		}
	}
	return s, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// MetricsAddr is the address of the metrics listener, "" without one
// (then /metrics is on Addr).
func (s *Server) MetricsAddr() string {
	if s.metricsLn == nil {
		return ""
	}
	return s.metricsLn.Addr().String()
}

// Store returns the server's store.
func (s *Server) Store() *store.Store { return s.store }

// Serve serves until ctx ends, then stops accepting requests, lets running
// ones finish (up to ShutdownTimeout) and closes the store.
func (s *Server) Serve(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- s.http.Serve(s.ln) }()
	if s.metricsHTTP != nil {
		go func() {
			if err := s.metricsHTTP.Serve(s.metricsLn); !errors.Is(err, http.ErrServerClosed) {
				s.log.Error("metrics listener stopped", "addr", s.cfg.MetricsAddr, "err", err)
			}
		}()
		defer s.metricsHTTP.Close()
	}
	var err error
	select {
	case err = <-errc:
	case <-ctx.Done():
		shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ShutdownTimeout)
		defer cancel()
		err = s.http.Shutdown(shutdownCtx)
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	if cerr := s.closeAll(); err == nil && cerr != nil {
		err = cerr
	}
	return err
}

// closeAll ends websockets and tailers, then closes the broker and store.
func (s *Server) closeAll() error {
	s.stop()
	s.svc.WaitImports()
	s.svc.WaitSweeper()
	s.svc.ReleaseImportOwner()
	if s.live != nil {
		s.live.Wait()
	}
	if s.hooks != nil {
		s.hooks.Wait()
	}
	var err error
	if s.broker != nil {
		err = s.broker.Close()
	}
	if cerr := s.store.Close(); err == nil {
		err = cerr
	}
	return err
}

// Handler returns the server's HTTP routes.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	gql := s.graphqlHandler()
	mux.Handle("/graphql", s.cors(transportIs(service.TransportGraphQL, s.requireKey(s.limitBody(s.graphqlHTTP(gql))))))
	v1 := s.cors(transportIs(service.TransportV1, http.MaxBytesHandler(http.HandlerFunc(s.v1), segmentapi.MaxBatchBytes+1<<20)))
	mux.Handle("POST /v1/{type}", v1)
	mux.Handle("OPTIONS /v1/{type}", v1)
	mux.Handle("GET /segments/{id}/members.csv", s.cors(http.HandlerFunc(s.membersCSV)))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"ok"}`))
	})
	mux.HandleFunc("GET /readyz", s.ready)
	mux.HandleFunc("GET /metrics", s.serveMetrics)
	ide := graphiql.Handler("/graphql")
	mux.Handle(graphiql.PagePath, ide)
	mux.Handle("/graphiql/", ide)
	mux.Handle("/", console.Handler())
	return s.observe(mux)
}

// transportIs marks the events ingested by next's requests as come in by
// the named transport (segmentd_events_ingested_total).
func transportIs(name string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r.WithContext(service.WithTransport(r.Context(), name)))
	})
}

// serveMetrics serves /metrics on the main listener to READ and ADMIN keys
// (a READ key reads every figure anyway; a WRITE key only ingests). With
// MetricsAddr set, the metrics are there instead, and this says so.
func (s *Server) serveMetrics(w http.ResponseWriter, r *http.Request) {
	if s.metricsLn != nil {
		http.Error(w, "metrics are served on the metrics address (--metrics-addr)", http.StatusNotFound)
		return
	}
	p, ok := s.authenticate(w, r)
	if !ok {
		return
	}
	if !p.CanRead() {
		writeV1Error(w, http.StatusForbidden, segmentd.CodeForbidden, "", "a "+string(p.Role)+" key may not read metrics; use a READ or ADMIN key")
		return
	}
	if !s.allow(w, p, false) {
		return
	}
	s.metrics.handler().ServeHTTP(w, r)
}

// limitBody refuses GraphQL requests over MaxBodyBytes with 413 and a
// GraphQL error: by their Content-Length before reading them, and bodies of
// unknown length (chunked) by reading them here, up to the limit. gqlgen
// itself would report a failed read as an internal error.
func (s *Server) limitBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if isMultipart(r) {
			s.limitUpload(next, w, r)
			return
		}
		if r.ContentLength > s.cfg.MaxBodyBytes {
			writeGraphQLError(w, http.StatusRequestEntityTooLarge, segmentd.CodeInvalid,
				fmt.Sprintf("the request body is %d bytes; at most %d are allowed", r.ContentLength, s.cfg.MaxBodyBytes))
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes)
		if r.ContentLength < 0 {
			body, err := io.ReadAll(r.Body)
			if tooLarge := new(http.MaxBytesError); errors.As(err, &tooLarge) {
				writeGraphQLError(w, http.StatusRequestEntityTooLarge, segmentd.CodeInvalid,
					fmt.Sprintf("the request body is over %d bytes, the most allowed", s.cfg.MaxBodyBytes))
				return
			}
			if err != nil {
				writeGraphQLError(w, http.StatusBadRequest, segmentd.CodeInvalid, "could not read the request body")
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
			r.ContentLength = int64(len(body))
		}
		next.ServeHTTP(w, r)
	})
}

func isMultipart(r *http.Request) bool {
	return strings.HasPrefix(strings.ToLower(r.Header.Get("Content-Type")), "multipart/form-data")
}

// limitUpload refuses multipart uploads (CSV imports) over MaxUploadBytes
// with 413 and a GraphQL error naming the limit and its setting: by their
// Content-Length up front, or, for bodies of unknown length, as soon as
// the limit is passed. gqlgen streams the file to a temporary file; its own
// answer to a failed read is replaced by this one.
func (s *Server) limitUpload(next http.Handler, w http.ResponseWriter, r *http.Request) {
	limit := s.cfg.MaxUploadBytes
	tooLarge := func(w http.ResponseWriter) {
		writeGraphQLError(w, http.StatusRequestEntityTooLarge, segmentd.CodeInvalid,
			fmt.Sprintf("the upload is over %d bytes, the most allowed (SEGMENTD_MAX_UPLOAD_BYTES)", limit))
	}
	if r.ContentLength > limit {
		tooLarge(w)
		return
	}
	body := &cappedBody{ReadCloser: r.Body, left: limit}
	r.Body = body
	if !s.precheckUpload(w, r) {
		return
	}
	cw := &uploadResponse{ResponseWriter: w, body: body}
	next.ServeHTTP(cw, r)
	if body.exceeded && !cw.wrote {
		tooLarge(w)
	}
}

// cappedBody fails reads past its limit, and remembers that it did.
type cappedBody struct {
	io.ReadCloser
	left     int64
	exceeded bool
}

func (b *cappedBody) Read(p []byte) (int, error) {
	// Reading one byte past the limit tells "exactly the limit" from
	// "over it".
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1]
	}
	n, err := b.ReadCloser.Read(p)
	b.left -= int64(n)
	if b.left < 0 {
		b.exceeded = true
		return 0, errors.New("request body too large")
	}
	return n, err
}

// uploadResponse drops what the handler writes once the body was found
// too large, so that limitUpload can answer instead.
type uploadResponse struct {
	http.ResponseWriter
	body  *cappedBody
	wrote bool
}

func (u *uploadResponse) WriteHeader(code int) {
	if u.body.exceeded {
		return
	}
	u.wrote = true
	u.ResponseWriter.WriteHeader(code)
}

func (u *uploadResponse) Write(p []byte) (int, error) {
	if u.body.exceeded {
		return len(p), nil
	}
	u.wrote = true
	return u.ResponseWriter.Write(p)
}

// ready answers 200 when the database answers, 503 otherwise.
func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	w.Header().Set("Content-Type", "application/json")
	if err := s.store.DB.PingContext(ctx); err != nil {
		s.log.WarnContext(ctx, "readiness check failed", "err", err)
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"status":"database unavailable"}`))
		return
	}
	_, _ = w.Write([]byte(`{"status":"ready"}`))
}

func (s *Server) graphqlHandler() http.Handler {
	es := generated.NewExecutableSchema(graph.NewConfig(graph.NewResolver(s.store.Client, s.svc, s.live, s.hooks)))
	srv := handler.New(es)
	srv.AddTransport(transport.Websocket{
		Implementation:        socketAccepter{wsgorilla.Implementation{CheckOrigin: s.checkOrigin}},
		InitFunc:              s.websocketInit,
		InitTimeout:           s.cfg.WebsocketInitTimeout,
		KeepAlivePingInterval: 15 * time.Second,
		PingPongInterval:      15 * time.Second,
		PayloadReadLimit:      &s.cfg.MaxBodyBytes,
	})
	srv.AddTransport(transport.Options{})
	srv.AddTransport(transport.GET{})
	srv.AddTransport(transport.POST{})
	srv.AddTransport(transport.MultipartForm{MaxUploadSize: s.cfg.MaxUploadBytes, MaxMemory: 1 << 20})
	srv.SetQueryCache(lru.New[*ast.QueryDocument](1000))
	srv.SetParserTokenLimit(s.cfg.MaxTokens)
	if *s.cfg.Introspection {
		srv.Use(extension.Introspection{})
	}
	srv.Use(newPersistedQueries(persistedQueryCacheBytes))
	srv.Use(literalNumbers{MaxTokens: s.cfg.MaxTokens})
	srv.Use(depthLimit{Max: s.cfg.MaxDepth})
	// The cost estimate replaces gqlgen's complexity limit, which walks
	// every fragment spread anew: exponential on fragments that spread the
	// next one twice.
	srv.Use(costLimit{Max: s.cfg.MaxQueryCost, Schema: es.Schema()})
	srv.AroundOperations(s.observeOperation)
	srv.AroundOperations(refuseHTTPSubscriptions)
	srv.AroundOperations(deadline(s.cfg.RequestTimeout))
	srv.AroundOperations(s.socketOperations)
	srv.AroundOperations(authorize(es.Schema()))
	srv.AroundOperations(s.countSubscriptions)
	srv.AroundOperations(querySlots(DefaultQuerySlots(), s.cfg.RequestTimeout))
	srv.AroundOperations(requestCache)
	srv.AroundFields(fieldRoles)
	srv.AroundFields(capPages)
	srv.AroundFields(boundArguments)
	srv.AroundFields(graph.Siblings)
	srv.SetErrorPresenter(presentError(s.log))
	srv.SetRecoverFunc(recoverPanic(s.log))
	return srv
}

// checkOrigin lets a browser open a websocket from the same origin, or from
// an origin in AllowedOrigins. Clients that send no Origin (servers, CLIs)
// are not browsers and pass.
func (s *Server) checkOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	for _, o := range s.cfg.AllowedOrigins {
		if o == "*" || o == origin {
			return true
		}
	}
	return sameOrigin(origin, r.Host)
}

func sameOrigin(origin, host string) bool {
	for _, scheme := range []string{"http://", "https://"} {
		if origin == scheme+host {
			return true
		}
	}
	return false
}

// requestCache gives each query operation a cache of figures shared by its
// fields (a page of segments reads its totals once). Mutations and
// subscriptions get none: their figures must be read after their changes.
func requestCache(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
	if op := graphql.GetOperationContext(ctx); op != nil && op.Operation != nil && op.Operation.Operation == ast.Query {
		ctx = service.WithRequestCache(ctx)
		ctx = graph.WithBatches(ctx)
	}
	return next(ctx)
}

// brokerFor returns the broker that wakes this store's readers after
// commits: on PostgreSQL it carries the signals between replicas (LISTEN/
// NOTIFY); a SQLite file has one server, and its signals stay in-process.
func brokerFor(st *store.Store, log *slog.Logger) (pubsub.Broker, error) {
	switch st.Dialect {
	case dialect.Postgres:
		return pubsub.NewPostgres(st.DB, st.DSN, log)
	case dialect.SQLite:
		return pubsub.NewMemory(), nil
	default:
		return nil, fmt.Errorf("no broker for dialect %q", st.Dialect)
	}
}
