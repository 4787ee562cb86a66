// Command segbench measures segmentd under load and prints a table of
// results beside baselines measured in the same run.
//
//	go run ./cmd/segbench -scenario seed                  # starts its own segmentd on SQLite
//	go run ./cmd/segbench -scenario all -database-url postgres://postgres@127.0.0.1/segbench_x
//	go run ./cmd/segbench -scenario hot -url http://127.0.0.1:8080 -key sgd_... -pid 1234
//
// Scenarios (-scenario): seed (the README's example segment with an ACTIVE
// campaign and a subscriber, driven through trackEvents, trackEvent and
// /v1/batch), segments10k (10,000 segments, 10 triggered by the event),
// hot (one segment everyone enters), subs5000 (5,000 open subscriptions:
// memory per subscription and event-to-subscriber latency), import (a
// 1M-row CSV import of new users into a STATIC segment with an ACTIVE
// campaign, against the raw write of the same rows, during ingestion unless
// -import-ingest=false, if the server has importSegmentUsers),
// replicas (two segmentd on one PostgreSQL: events to A, subscriber on B),
// expiry (100,000 memberships due at one instant while ingesting 500
// events/s: how long after the instant the exits were made, and the
// ingestion ack p99 against idle; with -expiry-rate N, a sustained mode
// instead: memberships due evenly at N per second for -expiry-for, and each
// exit's lateness against its instant, ingesting 500 events/s beside),
// held (PostgreSQL: event-to-subscriber latency at 500 events/s, idle and
// while another session holds a transaction open), webhook (one endpoint
// on a loopback receiver: commit→delivered at 1,000 entries/s, ingestion
// with an endpoint against without, and a backlog of -webhook-backlog
// deliveries drained after a receiver outage), and all.
//
// Without -url segbench builds cmd/segmentd (run it from the repository
// root), starts it on a fresh database per scenario (a temp SQLite file, or
// a new schema in the -database-url PostgreSQL database) on a loopback
// port, and stops it at the end; server CPU and peak RSS come from
// /proc/<pid>. With -url it drives that server (loopback only, unless
// -allow-remote), with -pid for the /proc figures and -database-url for the
// raw INSERT baseline.
//
// Every run is bounded: at most -events events and -duration per drive.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"time"
)

type config struct {
	url, key, writeKey, databaseURL, scenario string
	pid                                       int
	allowRemote, markdown, keep               bool
	transport                                 string
	rate, batch, workers, events              int
	duration                                  time.Duration
	subs, perConn                             int
	importRows                                int
	expiryRows                                int
	expiryAfter                               time.Duration
	expiryRate                                int           // sustained mode: memberships due per second (0: the one-instant burst)
	expiryFor                                 time.Duration // sustained mode: for how long they come due
	behaviorUsers                             int           // behavior scenario: users whose logins leave the window
	behaviorRate                              int           // behavior scenario: exits due per second (0: all at one instant)
	webhookBacklog                            int           // webhook scenario: deliveries waiting when the receiver comes back
	webhookOutage                             time.Duration // webhook scenario: at least this long the receiver answers 503
	webhookProfile                            string        // webhook scenario: CPU profiles of the server to this path prefix
	importMode                                string
	importIngest                              bool // import scenario: drive trackEvents during the import
	segments                                  int

	pprof string // set for a server segbench started

	// subWait is how long a drive waits for the subscriber to receive
	// the entries of its acknowledged events (default 10 s).
	subWait time.Duration
}

func (c config) subscriberWait() time.Duration {
	if c.subWait > 0 {
		return c.subWait
	}
	return 10 * time.Second
}

func main() {
	var c config
	flag.StringVar(&c.url, "url", "", "a running segmentd (http://127.0.0.1:8080); empty: start one per scenario")
	flag.StringVar(&c.key, "key", "", "ADMIN key of the running segmentd (-url)")
	flag.StringVar(&c.writeKey, "write-key", "", "key for /v1 as the Basic user (-url; default -key)")
	flag.IntVar(&c.pid, "pid", 0, "pid of the running segmentd (-url), for CPU and peak RSS from /proc")
	flag.BoolVar(&c.allowRemote, "allow-remote", false, "allow a -url that is not a loopback address")
	flag.StringVar(&c.databaseURL, "database-url", "", "database: of the segmentd segbench starts (default a temp SQLite file; PostgreSQL: a new schema per scenario), or of -url's, for the raw INSERT baseline")
	flag.StringVar(&c.scenario, "scenario", "seed", "seed, segments10k, hot, subs5000, import, replicas, expiry, behavior, held, webhook or all")
	flag.StringVar(&c.transport, "transport", "", "trackEvents, trackEvent, v1batch or all (default: all for seed, trackEvents otherwise)")
	flag.IntVar(&c.rate, "rate", 0, "events per second; 0: flat out")
	flag.IntVar(&c.batch, "batch", 100, "events per trackEvents or /v1/batch call")
	flag.IntVar(&c.workers, "workers", 4, "concurrent client connections")
	flag.IntVar(&c.events, "events", 20000, "at most this many events per drive")
	flag.DurationVar(&c.duration, "duration", 10*time.Second, "at most this long per drive")
	flag.IntVar(&c.subs, "subs", 5000, "open subscriptions in subs5000")
	flag.IntVar(&c.perConn, "subs-per-conn", 1, "subscriptions per websocket connection in subs5000")
	flag.IntVar(&c.segments, "segments", 10000, "segments in segments10k")
	flag.IntVar(&c.importRows, "import-rows", 1000000, "CSV rows in the import scenario")
	flag.IntVar(&c.expiryRows, "expiry-rows", 100000, "memberships due at one instant in the expiry scenario")
	flag.DurationVar(&c.expiryAfter, "expiry-after", 20*time.Second, "exitRules.after of the expiry scenario's segment (whole seconds): longer than the import")
	flag.IntVar(&c.expiryRate, "expiry-rate", 0, "expiry scenario, sustained mode: memberships due per second, spread evenly (0: the one-instant burst of -expiry-rows)")
	flag.DurationVar(&c.expiryFor, "expiry-for", 20*time.Second, "expiry scenario, sustained mode: for how long memberships come due at -expiry-rate")
	flag.IntVar(&c.behaviorUsers, "behavior-users", 10000, "behavior scenario: users whose one login leaves a 60s window")
	flag.IntVar(&c.behaviorRate, "behavior-rate", 0, "behavior scenario: logins leaving the window per second, spread evenly (0: all at one instant)")
	flag.IntVar(&c.webhookBacklog, "webhook-backlog", 100000, "webhook scenario: deliveries queued while the receiver is out (0: no backlog part)")
	flag.DurationVar(&c.webhookOutage, "webhook-outage", 0, "webhook scenario: the receiver answers 503 at least this long (it stays out until the whole backlog is queued)")
	flag.StringVar(&c.webhookProfile, "webhook-profile", "", "webhook scenario: save CPU profiles of the segmentd segbench started (5 s of the drive with the endpoint, 5 s of the drain) as PREFIX-with.pprof and PREFIX-drain.pprof")
	flag.StringVar(&c.importMode, "import-mode", "ADD", "importSegmentUsers mode argument (empty: omitted)")
	flag.BoolVar(&c.importIngest, "import-ingest", true, "import scenario: drive trackEvents ingestion during the import (false: the import alone)")
	flag.BoolVar(&c.markdown, "markdown", false, "print the table as markdown")
	flag.BoolVar(&c.keep, "keep", false, "keep the databases segbench created")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err := run(ctx, c); err != nil {
		fmt.Fprintln(os.Stderr, "segbench:", err)
		os.Exit(1)
	}
}

// progress is where segbench reports what it is doing (the table goes to
// stdout).
var progress io.Writer = os.Stderr

var scenarios = []string{"seed", "segments10k", "hot", "subs5000", "import", "replicas", "expiry", "behavior", "held", "webhook", "importlive"}

// scenarioEnv is added to the environment of the segmentd segbench starts
// for a scenario.
var scenarioEnv = map[string][]string{
	// The receiver is on loopback, which webhooks refuse by default.
	"webhook": {"SEGMENTD_WEBHOOK_ALLOW_PRIVATE=true"},
}

func run(ctx context.Context, c config) error {
	if err := c.validate(); err != nil {
		return err
	}
	names := []string{c.scenario}
	if c.scenario == "all" {
		names = scenarios
	}
	var bin string
	if c.url == "" {
		var err error
		if bin, err = buildSegmentd(ctx); err != nil {
			return err
		}
		defer os.RemoveAll(strings.TrimSuffix(bin, "/segmentd"))
	}
	t := &table{}
	start := time.Now()
	for _, name := range names {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		fmt.Fprintf(progress, "== scenario %s\n", name)
		if err := runScenario(ctx, c, bin, name, t); err != nil {
			if errors.Is(err, errSkipped) {
				fmt.Fprintf(progress, "%s\n", strings.TrimSuffix(err.Error(), ": "+errSkipped.Error()))
				t.add(name, "skipped", strings.TrimSuffix(err.Error(), ": "+errSkipped.Error()), "", "")
				continue
			}
			return fmt.Errorf("scenario %s: %w", name, err)
		}
	}
	fmt.Printf("\nsegbench %s: %s, %d workers, batch %d, rate %s, at most %d events / %s per drive; took %s\n\n",
		c.scenario, storeName(c.databaseURL), c.workers, c.batch, rateName(c.rate), c.events, c.duration, time.Since(start).Round(time.Second))
	t.print(os.Stdout, c.markdown)
	return nil
}

var errSkipped = errors.New("skipped")

func skipf(format string, args ...any) error {
	return fmt.Errorf(format+": %w", append(args, errSkipped)...)
}

func (c *config) validate() error {
	ok := c.scenario == "all"
	for _, s := range scenarios {
		ok = ok || s == c.scenario
	}
	if !ok {
		return fmt.Errorf("unknown scenario %q; use %s or all", c.scenario, strings.Join(scenarios, ", "))
	}
	switch c.transport {
	case "", "trackEvents", "trackEvent", "v1batch", "all":
	default:
		return fmt.Errorf("unknown transport %q; use trackEvents, trackEvent, v1batch or all", c.transport)
	}
	if c.batch < 1 || c.batch > 1000 || c.workers < 1 || c.events < 1 || c.duration <= 0 {
		return errors.New("-batch must be 1..1000; -workers, -events and -duration positive")
	}
	if c.url != "" {
		if c.key == "" {
			return errors.New("-url needs -key (an ADMIN key)")
		}
		if c.writeKey == "" {
			c.writeKey = c.key
		}
		u, err := url.Parse(c.url)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("-url %q: want http://host:port", c.url)
		}
		c.url = strings.TrimRight(c.url, "/")
		if !c.allowRemote && !isLoopback(u.Hostname()) {
			return fmt.Errorf("-url %s is not a loopback address: segbench sends heavy load; pass -allow-remote if you mean it", u.Host)
		}
	}
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	if ip := net.ParseIP(host); ip != nil {
		return ip.IsLoopback()
	}
	addrs, err := net.LookupIP(host)
	if err != nil || len(addrs) == 0 {
		return false
	}
	for _, a := range addrs {
		if !a.IsLoopback() {
			return false
		}
	}
	return true
}

func isPostgres(u string) bool {
	return strings.HasPrefix(u, "postgres://") || strings.HasPrefix(u, "postgresql://")
}

func storeName(u string) string {
	if isPostgres(u) {
		return "PostgreSQL"
	}
	return "SQLite"
}

func rateName(r int) string {
	if r <= 0 {
		return "flat out"
	}
	return fmt.Sprintf("%d events/s", r)
}

// target is the segmentd (or two) a scenario drives.
type target struct {
	url, key, writeKey string
	pid                int
	databaseURL        string // "" when unknown (-url without -database-url)
	pprof              string
	stop               func()
}

// newTarget starts a segmentd on a fresh database for one scenario, or
// returns the one of -url.
func newTarget(ctx context.Context, c config, bin, scenario string) (*target, error) {
	if c.url != "" {
		return &target{url: c.url, key: c.key, writeKey: c.writeKey, pid: c.pid, databaseURL: c.databaseURL, stop: func() {}}, nil
	}
	dbURL, drop, err := freshDatabase(ctx, c, scenario)
	if err != nil {
		return nil, err
	}
	srv, err := startServer(ctx, bin, dbURL, scenarioEnv[scenario]...)
	if err != nil {
		drop()
		return nil, err
	}
	return &target{url: srv.url, key: srv.key, writeKey: srv.writeKey, pid: srv.cmd.Process.Pid,
		databaseURL: dbURL, pprof: srv.pprof, stop: func() { srv.stop(); drop() }}, nil
}

func runScenario(ctx context.Context, c config, bin, name string, t *table) error {
	if name == "replicas" {
		return replicas(ctx, c, bin, t)
	}
	tg, err := newTarget(ctx, c, bin, name)
	if err != nil {
		return err
	}
	defer tg.stop()
	switch name {
	case "seed":
		return seed(ctx, c, tg, t)
	case "segments10k":
		return segments10k(ctx, c, tg, t)
	case "hot":
		return hot(ctx, c, tg, t)
	case "subs5000":
		return subs(ctx, c, tg, t)
	case "import":
		return importScenario(ctx, c, tg, t)
	case "expiry":
		return expiryScenario(ctx, c, tg, t)
	case "behavior":
		return behaviorScenario(ctx, c, tg, t)
	case "held":
		return held(ctx, c, tg, t)
	case "webhook":
		return webhookScenario(ctx, c, tg, t)
	case "importlive":
		return importLive(ctx, c, tg, t)
	}
	return fmt.Errorf("unknown scenario %q", name)
}
