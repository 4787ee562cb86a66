// Command segmentd is the segmentd server and its admin tool.
//
//	segmentd [serve] [flags]           serve GraphQL, the IDE and the /v1 API
//	segmentd keys create --role ROLE --name NAME
//	segmentd keys list
//	segmentd keys revoke ID
//	segmentd keys set-role --role ROLE ID
//	segmentd verify                    check the stored data against its events and rules
//
// Every flag has an environment variable of the same meaning; see README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	_ "net/http/pprof" // served only on SEGMENTD_PPROF_ADDR
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"entgo.io/ent/dialect"

	"github.com/segmentd/segmentd/auth"
	"github.com/segmentd/segmentd/ent/schema/pulid"
	"github.com/segmentd/segmentd/pubsub"
	"github.com/segmentd/segmentd/server"
	"github.com/segmentd/segmentd/service"
	"github.com/segmentd/segmentd/store"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := realMain(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if errors.Is(err, errUsage) {
		os.Exit(2)
	}
	var cerr *configError
	if errors.As(err, &cerr) {
		fmt.Fprintln(os.Stderr, "segmentd:", err)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "segmentd:", err)
		os.Exit(1)
	}
}

var errUsage = errors.New("usage")

// configError is a mistake in the configuration (flags, environment, the
// database named): main prints it and exits 2, before anything is created.
type configError struct{ msg string }

func (e *configError) Error() string { return e.msg }

func configErrorf(format string, args ...any) error {
	return &configError{msg: fmt.Sprintf(format, args...)}
}

// openExisting opens the database of an admin command: one that exists
// and holds segmentd's schema, or a configError saying what is missing.
func openExisting(ctx context.Context, databaseURL string) (*store.Store, error) {
	if err := store.CheckURL(databaseURL); err != nil {
		return nil, configErrorf("--database-url / DATABASE_URL: %v", err)
	}
	st, err := store.OpenExisting(ctx, databaseURL)
	if errors.Is(err, store.ErrNoDatabase) {
		return nil, &configError{msg: err.Error()}
	}
	return st, err
}

func realMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return serve(ctx, args, stdout, stderr)
	case "keys":
		return keys(ctx, args, stdout, stderr)
	case "verify":
		return verify(ctx, args, stdout, stderr)
	default:
		fmt.Fprintf(stderr, "segmentd: unknown command %q; use serve, keys or verify\n", cmd)
		return errUsage
	}
}

// common are the settings every command needs.
type common struct {
	databaseURL string
}

func (c *common) registerEnv(fs *flag.FlagSet, env *envParser) {
	fs.StringVar(&c.databaseURL, "database-url", env.str("DATABASE_URL", "segmentd.db"),
		"database: a SQLite file path or sqlite:///path, or postgres://... (env DATABASE_URL)")
}

func (c *common) register(fs *flag.FlagSet) {
	fs.StringVar(&c.databaseURL, "database-url", envOr("DATABASE_URL", "segmentd.db"),
		"database: a SQLite file path or sqlite:///path, or postgres://... (env DATABASE_URL)")
}

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("segmentd serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		c             common
		cfg           server.Config
		origins       string
		introspection bool
		logLevel      string
		logFormat     string
	)
	var env envParser
	c.registerEnv(fs, &env)
	fs.StringVar(&cfg.Addr, "addr", env.str("SEGMENTD_ADDR", "localhost:8080"), "listen address (env SEGMENTD_ADDR)")
	fs.StringVar(&origins, "allowed-origins", env.str("SEGMENTD_ALLOWED_ORIGINS", ""),
		"comma-separated browser origins allowed besides the same origin, * for any (env SEGMENTD_ALLOWED_ORIGINS)")
	fs.BoolVar(&introspection, "introspection", env.bool("SEGMENTD_INTROSPECTION", true), "allow GraphQL introspection (env SEGMENTD_INTROSPECTION)")
	fs.Int64Var(&cfg.MaxBodyBytes, "max-body-bytes", env.int("SEGMENTD_MAX_BODY_BYTES", 1<<20), "largest GraphQL request body (env SEGMENTD_MAX_BODY_BYTES)")
	fs.Int64Var(&cfg.MaxUploadBytes, "max-upload-bytes", env.int("SEGMENTD_MAX_UPLOAD_BYTES", 1<<30), "largest CSV upload (env SEGMENTD_MAX_UPLOAD_BYTES)")
	fs.Int64Var(&cfg.MaxQueryCost, "max-query-cost", env.int("SEGMENTD_MAX_QUERY_COST", server.DefaultMaxQueryCost),
		"largest estimated cost of a GraphQL operation; negative: no limit (env SEGMENTD_MAX_QUERY_COST)")
	fs.Float64Var(&cfg.RateLimit, "rate-limit", env.float("SEGMENTD_RATE_LIMIT", 1000),
		"requests per second per API key, HTTP GraphQL and /v1; negative: no limit (env SEGMENTD_RATE_LIMIT)")
	fs.IntVar(&cfg.RateBurst, "rate-burst", int(env.int("SEGMENTD_RATE_BURST", 0)),
		"requests a key may make at once; default twice the rate (env SEGMENTD_RATE_BURST)")
	fs.DurationVar(&cfg.RequestTimeout, "request-timeout", env.duration("SEGMENTD_REQUEST_TIMEOUT", 30*time.Second),
		"deadline of every query and mutation (not subscriptions); past it, its database work is cancelled and it answers TIMEOUT (env SEGMENTD_REQUEST_TIMEOUT)")
	fs.BoolVar(&cfg.WebhookAllowPrivate, "webhook-allow-private", env.bool("SEGMENTD_WEBHOOK_ALLOW_PRIVATE", false),
		"let webhook URLs resolve to loopback, private and link-local addresses, over http too (env SEGMENTD_WEBHOOK_ALLOW_PRIVATE)")
	fs.BoolVar(&cfg.WebhookAllowHTTP, "webhook-allow-http", env.bool("SEGMENTD_WEBHOOK_ALLOW_HTTP", false),
		"let webhook URLs be plain http (env SEGMENTD_WEBHOOK_ALLOW_HTTP)")
	fs.DurationVar(&cfg.WebhookTimeout, "webhook-timeout", env.duration("SEGMENTD_WEBHOOK_TIMEOUT", 15*time.Second),
		"how long one webhook attempt may take; a delivery's lease is twice that and 5 s (env SEGMENTD_WEBHOOK_TIMEOUT)")
	fs.StringVar(&cfg.MetricsAddr, "metrics-addr", env.str("SEGMENTD_METRICS_ADDR", ""),
		"serve /metrics on this address of its own, open to whoever reaches it, instead of on --addr behind a READ or ADMIN key (env SEGMENTD_METRICS_ADDR)")
	fs.DurationVar(&cfg.SlowRequest, "slow-request", env.duration("SEGMENTD_SLOW_REQUEST", server.DefaultSlowRequest),
		"log a request that takes longer at WARN; negative: never (env SEGMENTD_SLOW_REQUEST)")
	fs.StringVar(&logLevel, "log-level", env.str("LOG_LEVEL", "info"), "debug, info, warn or error (env LOG_LEVEL)")
	fs.StringVar(&logFormat, "log-format", env.str("LOG_FORMAT", "text"), "text or json (env LOG_FORMAT)")
	pprofAddr := env.str("SEGMENTD_PPROF_ADDR", "")
	cfg.AdminKey = os.Getenv("SEGMENTD_ADMIN_KEY")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage // the flag package printed the error and the usage
	}
	if fs.NArg() != 0 {
		return configErrorf("unexpected arguments %q; serve takes flags only", fs.Args())
	}
	cfg.DatabaseURL = c.databaseURL
	cfg.Introspection = &introspection
	if origins != "" {
		for _, o := range strings.Split(origins, ",") {
			if o = strings.TrimSpace(o); o != "" {
				cfg.AllowedOrigins = append(cfg.AllowedOrigins, o)
			}
		}
	}
	if err := checkServeConfig(cfg, pprofAddr, env.errs); err != nil {
		return err
	}
	log, err := newLogger(stderr, logLevel, logFormat)
	if err != nil {
		return &configError{msg: err.Error()}
	}
	srv, err := server.New(ctx, cfg, log)
	if err != nil {
		return err
	}
	if addr := pprofAddr; addr != "" {
		// Profiling on a listener of its own, never on the public address.
		go func() {
			if err := http.ListenAndServe(addr, nil); err != nil {
				log.Warn("pprof listener", "err", err)
			}
		}()
	}
	url := "http://" + srv.Addr() + "/"
	if srv.FirstAdminKey != "" && cfg.AdminKey == "" {
		fmt.Fprintf(stdout, "\nCreated the first ADMIN API key. It is shown only this once; keep it safe:\n\n    %s\n\n", srv.FirstAdminKey)
	}
	// Tools and tests read the address after "GraphiQL: " (the line keeps its
	// opening words); the console is at the root.
	fmt.Fprintf(stdout, "segmentd is listening. GraphiQL: %sgraphiql  Console: %s  GraphQL: %sgraphql\n", url, url, url)
	if addr := srv.MetricsAddr(); addr != "" {
		log.Info("serving metrics", "addr", addr)
	}
	log.Info("serving", "addr", srv.Addr(), "database", store.Redact(c.databaseURL))
	return srv.Serve(ctx)
}

func keys(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: segmentd keys create --role ROLE --name NAME | keys list | keys revoke ID | keys set-role --role ROLE ID")
		return errUsage
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("segmentd keys "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		c    common
		role string
		name string
	)
	c.register(fs)
	if sub == "create" || sub == "set-role" {
		fs.StringVar(&role, "role", "", "ADMIN, WRITE or READ")
	}
	if sub == "create" {
		fs.StringVar(&name, "name", "", "a name that says who uses the key")
	}
	if err := parseInterspersed(fs, args); err != nil {
		return err
	}
	switch {
	case sub == "revoke" && fs.NArg() != 1:
		fmt.Fprintln(stderr, "usage: segmentd keys revoke [--database-url URL] ID")
		return errUsage
	case sub == "set-role" && fs.NArg() != 1:
		fmt.Fprintln(stderr, "usage: segmentd keys set-role [--database-url URL] --role ROLE ID")
		return errUsage
	case sub != "create" && sub != "list" && sub != "revoke" && sub != "set-role":
		fmt.Fprintf(stderr, "segmentd keys: unknown command %q; use create, list, revoke or set-role\n", sub)
		return errUsage
	}
	st, err := openExisting(ctx, c.databaseURL)
	if err != nil {
		return err
	}
	defer st.Close()
	// Bring an older database's schema up to date: keys writes.
	if err := st.Migrate(ctx); err != nil {
		return err
	}
	k := auth.NewKeys(st.Client)
	switch sub {
	case "create":
		r, err := auth.ParseRole(role)
		if err != nil {
			return fmt.Errorf("--role: %w", err)
		}
		key, secret, err := k.Create(ctx, name, r)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "Created %s key %s (%s). The key is shown only this once:\n%s\n", key.Role, key.ID, key.Name, secret)
	case "list":
		list, err := k.List(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tROLE\tKEY\tCREATED\tLAST USED\tREVOKED")
		for _, key := range list {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", key.ID, key.Name, key.Role, key.Hint,
				key.CreatedAt.UTC().Format(time.RFC3339), fmtTime(key.LastUsedAt), fmtTime(key.RevokedAt))
		}
		return tw.Flush()
	case "revoke":
		if fs.NArg() != 1 {
			fmt.Fprintln(stderr, "usage: segmentd keys revoke ID")
			return errUsage
		}
		if err := k.Revoke(ctx, pulid.ID(fs.Arg(0))); err != nil {
			return err
		}
		announceKeyChange(ctx, st, stderr)
		fmt.Fprintf(stdout, "Revoked key %s.\n", fs.Arg(0))
	case "set-role":
		r, err := auth.ParseRole(role)
		if err != nil {
			return fmt.Errorf("--role: %w", err)
		}
		if err := k.SetRole(ctx, pulid.ID(fs.Arg(0)), r); err != nil {
			return err
		}
		announceKeyChange(ctx, st, stderr)
		fmt.Fprintf(stdout, "Key %s now has the role %s.\n", fs.Arg(0), r)
	default:
		fmt.Fprintf(stderr, "segmentd keys: unknown command %q; use create, list or revoke\n", sub)
		return errUsage
	}
	return nil
}

// announceKeyChange tells running PostgreSQL replicas at once that a key
// changed, so that they close its websockets now; without the signal (and
// on SQLite) they notice within server.KeyCheckInterval.
func announceKeyChange(ctx context.Context, st *store.Store, stderr io.Writer) {
	var err error
	switch st.Dialect {
	case dialect.Postgres:
		err = pubsub.NotifyPostgres(ctx, st.DB, auth.KeysTopic)
	case dialect.SQLite:
		// No channel to signal on: the server of the file checks its keys
		// every server.KeyCheckInterval.
	default:
		err = fmt.Errorf("no way to signal servers on dialect %q", st.Dialect)
	}
	if err != nil {
		fmt.Fprintf(stderr, "segmentd: could not signal the running servers (they will notice within %s): %v\n", server.KeyCheckInterval, err)
	}
}

// errDiscrepancies is verify's error when it found any: main exits 1.
var errDiscrepancies = errors.New("the data has discrepancies")

// verify runs service.Verify on the database and prints its report. It
// reads only; run it while no segmentd ingests into the database, or it
// may report what concurrent writes were doing.
func verify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("segmentd verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		c     common
		limit int
	)
	c.register(fs)
	fs.IntVar(&limit, "limit", 20, "findings to print per kind; 0 for all")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		fmt.Fprintln(stderr, "usage: segmentd verify [--database-url URL] [--limit N]")
		return errUsage
	}
	// Read only: no migration, and never a new database.
	st, err := openExisting(ctx, c.databaseURL)
	if err != nil {
		return err
	}
	defer st.Close()
	svc, err := service.New(st, service.Config{Log: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		return err
	}
	rep, err := svc.Verify(ctx)
	if err != nil {
		return err
	}
	rep.Write(stdout, limit)
	if !rep.OK() {
		return errDiscrepancies
	}
	return nil
}

// parseInterspersed parses flags wherever they are among the arguments
// ("keys revoke ID --database-url X" as well as before the ID): the flag
// package stops at the first argument that is not a flag.
func parseInterspersed(fs *flag.FlagSet, args []string) error {
	var rest []string
	for {
		if err := fs.Parse(args); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		rest = append(rest, fs.Arg(0))
		args = fs.Args()[1:]
	}
	return fs.Parse(append([]string{"--"}, rest...))
}

func fmtTime(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level / LOG_LEVEL: %q is not debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format / LOG_FORMAT: %q is not text or json", format)
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// envParser reads environment variables strictly: a value that does not
// parse is an error naming the variable (in errs), never the default. An unset or empty variable is the default.
type envParser struct{ errs []string }

func (p *envParser) bad(key, v, want string) {
	p.errs = append(p.errs, fmt.Sprintf("%s=%q: %s", key, v, want))
}

func (p *envParser) str(key, def string) string { return envOr(key, def) }

func (p *envParser) bool(key string, def bool) bool {
	v := strings.TrimSpace(os.Getenv(key))
	switch strings.ToLower(v) {
	case "":
		return def
	case "1", "true", "yes", "on":
		return true
	case "0", "false", "no", "off":
		return false
	}
	p.bad(key, v, "not a boolean; use true or false")
	return def
}

func (p *envParser) int(key string, def int64) int64 {
	v := strings.TrimSpace(os.Getenv(key))
	if v == "" {
		return def
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		p.bad(key, v, "not a whole number")
		return def
	}
	return n
}

// duration reads a duration such as "30s".
func (p *envParser) duration(key string, def time.Duration) time.Duration {
	v := strings.TrimSpace(os.Getenv(key))
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		p.bad(key, v, "not a duration such as 30s or 2m")
		return def
	}
	return d
}

func (p *envParser) float(key string, def float64) float64 {
	v := strings.TrimSpace(os.Getenv(key))
	if v == "" {
		return def
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		p.bad(key, v, "not a number")
		return def
	}
	return f
}

// checkServeConfig validates the server's configuration as a whole, before
// any file is created or port opened: every mistake is a configError that
// names the flag and its variable.
func checkServeConfig(cfg server.Config, pprofAddr string, envErrs []string) error {
	errs := append([]string(nil), envErrs...)
	bad := func(name, format string, args ...any) { errs = append(errs, name+": "+fmt.Sprintf(format, args...)) }
	if err := checkAddr(cfg.Addr); err != nil {
		bad("--addr / SEGMENTD_ADDR", "%v", err)
	}
	if err := store.CheckURL(cfg.DatabaseURL); err != nil {
		bad("--database-url / DATABASE_URL", "%v", err)
	}
	if cfg.AdminKey != "" && len(cfg.AdminKey) < 16 {
		bad("SEGMENTD_ADMIN_KEY", "must be at least 16 characters, got %d", len(cfg.AdminKey))
	}
	for _, o := range cfg.AllowedOrigins {
		if u, err := url.Parse(o); o != "*" && (err != nil || u.Scheme == "" || u.Host == "" || (u.Path != "" && u.Path != "/")) {
			bad("--allowed-origins / SEGMENTD_ALLOWED_ORIGINS", "%q is not an origin such as https://app.example.com (or *)", o)
		}
	}
	if cfg.MaxBodyBytes <= 0 {
		bad("--max-body-bytes / SEGMENTD_MAX_BODY_BYTES", "must be positive, got %d", cfg.MaxBodyBytes)
	}
	if cfg.MaxUploadBytes <= 0 {
		bad("--max-upload-bytes / SEGMENTD_MAX_UPLOAD_BYTES", "must be positive, got %d", cfg.MaxUploadBytes)
	}
	if cfg.RateLimit == 0 {
		bad("--rate-limit / SEGMENTD_RATE_LIMIT", "must not be 0; a negative rate means no limit")
	}
	if cfg.RequestTimeout <= 0 {
		bad("--request-timeout / SEGMENTD_REQUEST_TIMEOUT", "must be positive, got %s", cfg.RequestTimeout)
	}
	if cfg.WebhookTimeout <= 0 {
		bad("--webhook-timeout / SEGMENTD_WEBHOOK_TIMEOUT", "must be positive, got %s", cfg.WebhookTimeout)
	}
	if cfg.RateBurst < 0 {
		bad("--rate-burst / SEGMENTD_RATE_BURST", "must not be negative, got %d", cfg.RateBurst)
	}
	if cfg.MetricsAddr != "" {
		if err := checkAddr(cfg.MetricsAddr); err != nil {
			bad("--metrics-addr / SEGMENTD_METRICS_ADDR", "%v", err)
		}
	}
	if cfg.SlowRequest == 0 {
		bad("--slow-request / SEGMENTD_SLOW_REQUEST", "must not be 0; a negative duration means never")
	}
	if pprofAddr != "" {
		if err := checkAddr(pprofAddr); err != nil {
			bad("SEGMENTD_PPROF_ADDR", "%v", err)
		}
	}
	if len(errs) > 0 {
		return &configError{msg: "bad configuration: " + strings.Join(errs, "; ")}
	}
	return nil
}

// checkAddr checks a listen address: host:port (host may be empty), the
// port a number from 0 to 65535.
func checkAddr(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not host:port", addr)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%q: the port must be a number from 0 to 65535", addr)
	}
	return nil
}
