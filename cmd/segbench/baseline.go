package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"entgo.io/ent/dialect"

	"github.com/segmentd/segmentd/store"
)

// rawResult is the raw INSERT baseline: the same event rows, in statements
// of the same size, straight into a bare copy of the events table.
type rawResult struct {
	rows    int
	elapsed time.Duration
	lat     latencies // per statement (one transaction each)
}

func (r *rawResult) rate() float64 {
	if r == nil || r.elapsed <= 0 {
		return 0
	}
	return float64(r.rows) / r.elapsed.Seconds()
}

// rawColumns are the columns segmentd writes for an event.
var rawColumns = []string{"id", "message_id", "type", "name", "user_id", "properties", "traits", "context", "timestamp", "received_at", "outcomes"}

// rawInsert creates bench_raw_events, a bare copy of the events table with
// the same indexes (no foreign keys), inserts evs into it with multi-row
// INSERTs of batch rows from workers connections, each statement its own
// transaction, and drops it.
func rawInsert(ctx context.Context, databaseURL string, evs []benchEvent, batch, workers int) (*rawResult, error) {
	if databaseURL == "" || len(evs) == 0 {
		return nil, nil
	}
	st, err := store.Open(ctx, databaseURL)
	if err != nil {
		return nil, fmt.Errorf("raw baseline: %w", err)
	}
	defer st.Close()
	db := st.DB
	if err := createRawTable(ctx, st); err != nil {
		return nil, err
	}
	defer db.ExecContext(context.WithoutCancel(ctx), "DROP TABLE bench_raw_events") //nolint:errcheck // best effort
	placeholder, err := placeholderFor(st.Dialect)
	if err != nil {
		return nil, fmt.Errorf("raw baseline: %w", err)
	}
	stmt := func(n int) string {
		var b strings.Builder
		b.WriteString("INSERT INTO bench_raw_events (" + strings.Join(rawColumns, ", ") + ") VALUES ")
		k := 0
		for i := 0; i < n; i++ {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteByte('(')
			for j := range rawColumns {
				if j > 0 {
					b.WriteString(", ")
				}
				k++
				b.WriteString(placeholder(k))
			}
			b.WriteByte(')')
		}
		return b.String()
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	run := fmt.Sprintf("raw-%d-", now.UnixNano())
	args := func(e benchEvent, i int) []any {
		props, _ := json.Marshal(e.Props)
		traits, _ := json.Marshal(e.Traits)
		return []any{fmt.Sprintf("evt_raw%026d", i), run + e.MessageID, "TRACK", e.Name, e.UserID,
			string(props), string(traits), "{}", now, now, `[{"segment_id":"seg_x","entered":true,"reason":"entered"}]`}
	}
	// Statements are built before the clock starts, as segmentd's client
	// builds its request before timing it.
	type job struct {
		q    string
		args []any
	}
	var jobs []job
	for start := 0; start < len(evs); start += batch {
		end := min(start+batch, len(evs))
		var a []any
		for i := start; i < end; i++ {
			a = append(a, args(evs[i], i)...)
		}
		jobs = append(jobs, job{stmt(end - start), a})
	}
	res := &rawResult{rows: len(evs)}
	var (
		next     atomic.Int64
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	t0 := time.Now()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(jobs) {
					return
				}
				s := time.Now()
				if _, err := db.ExecContext(ctx, jobs[i].q, jobs[i].args...); err != nil {
					errOnce.Do(func() { firstErr = err })
					return
				}
				res.lat.add(time.Since(s))
			}
		}()
	}
	wg.Wait()
	res.elapsed = time.Since(t0)
	if firstErr != nil {
		return nil, fmt.Errorf("raw baseline insert: %w", firstErr)
	}
	return res, nil
}

var sqliteIndexName = regexp.MustCompile(`(?i)^CREATE (UNIQUE )?INDEX (\S+) ON (\S+)`)

// createRawTable makes bench_raw_events like events: on PostgreSQL with
// LIKE ... INCLUDING ALL (columns, defaults, indexes; no foreign keys); on
// SQLite with the events table's own CREATE statements, renamed, without
// its foreign key clauses.
func createRawTable(ctx context.Context, st *store.Store) error {
	_, _ = st.DB.ExecContext(ctx, "DROP TABLE IF EXISTS bench_raw_events")
	switch st.Dialect {
	case dialect.Postgres:
		if _, err := st.DB.ExecContext(ctx, "CREATE TABLE bench_raw_events (LIKE events INCLUDING ALL)"); err != nil {
			return fmt.Errorf("create bench_raw_events: %w", err)
		}
		return nil
	case dialect.SQLite:
		return createRawTableSQLite(ctx, st.DB)
	default:
		return fmt.Errorf("create bench_raw_events: no raw table for dialect %q", st.Dialect)
	}
}

// createRawTableSQLite copies the events table's CREATE statements: SQLite
// has no CREATE TABLE ... LIKE.
func createRawTableSQLite(ctx context.Context, db *sql.DB) error {
	var create string
	if err := db.QueryRowContext(ctx, `SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'events'`).Scan(&create); err != nil {
		return fmt.Errorf("read the events table's definition: %w", err)
	}
	create = strings.Replace(create, "`events`", "bench_raw_events", 1)
	create = strings.Replace(create, "\"events\"", "bench_raw_events", 1)
	create = strings.Replace(create, "TABLE events", "TABLE bench_raw_events", 1)
	if i := strings.Index(create, ", CONSTRAINT"); i > 0 {
		create = create[:i] + ")" // foreign keys come last in ent's DDL
	}
	if _, err := db.ExecContext(ctx, create); err != nil {
		return fmt.Errorf("create bench_raw_events (%s): %w", create, err)
	}
	rows, err := db.QueryContext(ctx, `SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events' AND sql IS NOT NULL`)
	if err != nil {
		return fmt.Errorf("read the events table's indexes: %w", err)
	}
	var idx []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			rows.Close()
			return fmt.Errorf("read index: %w", err)
		}
		idx = append(idx, s)
	}
	rows.Close()
	for _, s := range idx {
		m := sqliteIndexName.FindStringSubmatch(s)
		if m == nil {
			continue
		}
		name := strings.Trim(m[2], "`\"")
		s = strings.Replace(s, m[0], fmt.Sprintf("CREATE %sINDEX bench_raw_%s ON bench_raw_events", m[1], name), 1)
		if _, err := db.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("create index (%s): %w", s, err)
		}
	}
	return nil
}

// trivialResult is the GraphQL overhead baseline: `{ __typename }` round
// trips from the same number of workers.
type trivialResult struct {
	n       int
	elapsed time.Duration
	lat     latencies
}

func (r *trivialResult) rate() float64 {
	if r == nil || r.elapsed <= 0 {
		return 0
	}
	return float64(r.n) / r.elapsed.Seconds()
}

func trivialQuery(ctx context.Context, tg *target, workers int) (*trivialResult, error) {
	const total, limit = 4000, 3 * time.Second
	res := &trivialResult{}
	var (
		next    atomic.Int64
		wg      sync.WaitGroup
		errOnce sync.Once
		first   error
	)
	t0 := time.Now()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= total && time.Since(t0) < limit {
				s := time.Now()
				var out struct {
					Typename string `json:"__typename"`
				}
				if err := gql(ctx, tg, `{ __typename }`, nil, &out); err != nil {
					errOnce.Do(func() { first = err })
					return
				}
				res.lat.add(time.Since(s))
			}
		}()
	}
	wg.Wait()
	res.elapsed = time.Since(t0)
	res.n = res.lat.len()
	if first != nil {
		return nil, fmt.Errorf("trivial query baseline: %w", first)
	}
	return res, nil
}

// baselines are measured once per scenario, after its drives.
type baselines struct {
	raw     map[int]*rawResult // by batch size
	trivial *trivialResult
}

func measureBaselines(ctx context.Context, c config, tg *target, results []*driveResult) (*baselines, error) {
	b := &baselines{raw: map[int]*rawResult{}}
	var err error
	fmt.Fprintln(progress, "  baseline: { __typename } round trips")
	if b.trivial, err = trivialQuery(ctx, tg, c.workers); err != nil {
		return nil, err
	}
	if tg.databaseURL == "" {
		fmt.Fprintln(progress, "  no -database-url: no raw INSERT baseline")
		return b, nil
	}
	for _, r := range results {
		if _, ok := b.raw[r.batch]; ok || len(r.ackedEvents) == 0 {
			continue
		}
		fmt.Fprintf(progress, "  baseline: raw INSERT of %d event rows, %d per statement\n", len(r.ackedEvents), r.batch)
		// SQLite has one writer: concurrent writers only take turns by
		// sleeping in the busy handler (segmentd queues its own on a
		// mutex), so the raw baseline writes from one connection there.
		workers := c.workers
		if !isPostgres(tg.databaseURL) {
			workers = 1
		}
		raw, err := rawInsert(ctx, tg.databaseURL, r.ackedEvents, r.batch, workers)
		if err != nil {
			return nil, err
		}
		b.raw[r.batch] = raw
	}
	return b, nil
}

// report adds a drive's figures, beside the baselines, to the table.
func report(t *table, scenario string, r *driveResult, b *baselines) {
	name := fmt.Sprintf("%s · %s", scenario, r.label)
	raw := b.raw[r.batch]
	evps := float64(r.acked) / r.elapsed.Seconds()
	rawName := fmt.Sprintf("raw INSERT, %d rows a statement", r.batch)
	if r.batch == 1 {
		rawName = "raw INSERT, 1 row a statement"
	}
	if r.rate > 0 {
		// A fixed rate is not a capacity: no ratio.
		t.add(name, fmt.Sprintf("events/s (%s, %d per request, sent at %d/s)", r.transport, r.batch, r.rate), fmtRate(evps),
			orNA(raw != nil, func() string { return rawName + " (flat out): " + fmtRate(raw.rate()) }), "")
	} else {
		t.add(name, fmt.Sprintf("events/s (%s, %d per request)", r.transport, r.batch), fmtRate(evps),
			orNA(raw != nil, func() string { return rawName + ": " + fmtRate(raw.rate()) }), ratio(evps, raw.rate()))
	}
	for _, p := range []struct {
		name string
		q    float64
	}{{"p50", 0.50}, {"p95", 0.95}, {"p99", 0.99}} {
		v := r.ack.pct(p.q)
		base, rat := "", ""
		if raw != nil {
			base = fmt.Sprintf("raw INSERT %s", fmtDur(raw.lat.pct(p.q)))
			rat = ratio(float64(v), float64(raw.lat.pct(p.q)))
		}
		if b.trivial != nil && r.transport != "v1batch" {
			base = strings.TrimPrefix(base+"; {__typename} "+fmtDur(b.trivial.lat.pct(p.q)), "; ")
			rat = strings.TrimPrefix(rat+"; "+ratio(float64(v), float64(b.trivial.lat.pct(p.q))), "; ")
		}
		t.add(name, "ack latency "+p.name, fmtDur(v), base, rat)
	}
	if r.e2s != nil {
		t.add(name, "event→subscriber p50 / p95 / p99",
			fmt.Sprintf("%s / %s / %s", fmtDur(r.e2s.pct(0.5)), fmtDur(r.e2s.pct(0.95)), fmtDur(r.e2s.pct(0.99))),
			fmt.Sprintf("%d of %d entries received", r.e2s.len(), r.entered), "")
	}
	if r.cpu > 0 {
		t.add(name, "server CPU", fmt.Sprintf("%.1f s, %.0f%% of a core", r.cpu.Seconds(), 100*r.cpu.Seconds()/r.elapsed.Seconds()),
			fmt.Sprintf("over %.1f s", r.elapsed.Seconds()), "")
		t.add(name, "server peak RSS (VmHWM)", fmtBytes(r.hwm), "", "")
	}
	errs := fmt.Sprintf("%d of %d requests", r.errors, (r.sent+r.batch-1)/r.batch)
	if r.firstErr != "" {
		errs += ": " + r.firstErr
		if len(errs) > 120 {
			errs = errs[:120] + "…"
		}
	}
	t.add(name, "errors", errs, "", "")
}

func orNA(ok bool, f func() string) string {
	if !ok {
		return "n/a"
	}
	return f()
}

var _ = sql.ErrNoRows

// placeholderFor returns how a store's SQL writes the k-th (from 1)
// placeholder of a statement: the statements are built by hand, outside
// ent, so each store's syntax is spelled out.
func placeholderFor(dialectName string) (func(k int) string, error) {
	switch dialectName {
	case dialect.Postgres:
		return func(k int) string { return "$" + strconv.Itoa(k) }, nil
	case dialect.SQLite:
		return func(int) string { return "?" }, nil
	default:
		return nil, fmt.Errorf("no placeholder syntax for dialect %q", dialectName)
	}
}
