package live_test

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentd/segmentd/changelog"
	"github.com/segmentd/segmentd/internal/testenv"
	"github.com/segmentd/segmentd/live"
	"github.com/segmentd/segmentd/pubsub"
	"github.com/segmentd/segmentd/store"
)

// testLog is the log of logTable.
var testLog = changelog.Log{Table: "log", Seq: "id", Key: "k", Topic: "log", WriterSpace: 0x5e6d_01ff}

// logTable makes a bare log table like membership_changes.
func logTable(t *testing.T, st *store.Store) {
	t.Helper()
	stmts := []string{`CREATE TABLE log (id INTEGER PRIMARY KEY AUTOINCREMENT, k TEXT NOT NULL)`}
	if st.Dialect == "postgres" {
		stmts = []string{
			`CREATE TABLE log (id bigserial PRIMARY KEY, k text NOT NULL, log_txid xid8 NOT NULL DEFAULT pg_current_xact_id())`,
			// The writers' protocol, as store.Migrate installs it.
			changelog.PostgresSilentFunction, changelog.PostgresSilentForFunction, changelog.PostgresHorizonFunction, changelog.PostgresGuardFunction,
			changelog.Log{Table: "log"}.PostgresGuard(),
		}
	}
	for _, s := range stmts {
		if _, err := st.DB.Exec(s); err != nil {
			t.Fatal(err)
		}
	}
}

func insert(t *testing.T, db interface {
	Exec(string, ...any) (sql.Result, error)
}, dialect, k string) {
	t.Helper()
	q := `INSERT INTO log (k) VALUES (?)`
	if dialect == "postgres" {
		q = `INSERT INTO log (k) VALUES ($1)`
	}
	if _, err := db.Exec(q, k); err != nil {
		t.Fatal(err)
	}
}

// collector gathers what a stream sends.
type collector struct {
	mu   sync.Mutex
	keys []string
	curs []changelog.Cursor
}

func (c *collector) send(r live.Row) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.keys = append(c.keys, r.Key)
	c.curs = append(c.curs, r.Cursor)
	return true
}

func (c *collector) waitFor(t *testing.T, n int) []string {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second) // long transactions elsewhere on a shared cluster hold PostgreSQL delivery back
	for time.Now().Before(deadline) {
		c.mu.Lock()
		if len(c.keys) >= n {
			out := append([]string(nil), c.keys...)
			c.mu.Unlock()
			return out
		}
		c.mu.Unlock()
		time.Sleep(5 * time.Millisecond)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	t.Fatalf("got %v, want %d rows", c.keys, n)
	return nil
}

func setup(t *testing.T, databaseURL string) (*store.Store, *live.Tailer, pubsub.Broker, context.Context) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	st, err := store.Open(ctx, databaseURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	logTable(t, st)
	broker := pubsub.NewMemory()
	d := live.SQLite
	if st.Dialect == "postgres" {
		d = live.Postgres
	}
	tl, err := live.NewTailer(ctx, st.DB, d, live.Source{Log: testLog},
		broker, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	go tl.Run(ctx)
	return st, tl, broker, ctx
}

// TestLateCommitIsNotSkipped: on PostgreSQL, a row whose transaction began
// first but commits last is delivered, before the rows that committed
// earlier with larger ids would let a cursor move past it.
func TestLateCommitIsNotSkipped(t *testing.T) {
	t.Parallel()
	st, tl, broker, ctx := setup(t, testenv.DatabaseURL(t, "postgres"))
	var got collector
	go func() { _ = tl.Stream(ctx, nil, "", got.send) }()
	time.Sleep(50 * time.Millisecond)

	late, err := st.DB.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	insert(t, late, "postgres", "late") // takes its transaction id (and a smaller row id) first
	insert(t, st.DB, "postgres", "early")
	broker.Notify("log")
	time.Sleep(200 * time.Millisecond)
	got.mu.Lock()
	early := len(got.keys)
	got.mu.Unlock()
	if early != 0 {
		t.Fatalf("delivered %v while an older transaction was still open: a reader at that cursor would skip the late row", got.keys)
	}
	if err := late.Commit(); err != nil {
		t.Fatal(err)
	}
	broker.Notify("log")
	keys := got.waitFor(t, 2)
	if keys[0] != "late" || keys[1] != "early" {
		t.Fatalf("order = %v, want [late early] (transaction order)", keys)
	}
	// A reader resuming from the first cursor gets exactly the second row.
	var resumed collector
	first := got.curs[0]
	go func() { _ = tl.Stream(ctx, &first, "", resumed.send) }()
	if keys := resumed.waitFor(t, 1); len(keys) != 1 || keys[0] != "early" {
		t.Fatalf("resumed = %v", keys)
	}
}

// TestOpenTransactionElsewhereDoesNotHoldDeliveryBack: a session that
// holds a transaction open (a report, a psql left in BEGIN) and writes no
// log delays no row; a transaction that wrote elsewhere before its first
// log row without announcing itself is refused, since a reader could not
// have waited for it.
func TestOpenTransactionElsewhereDoesNotHoldDeliveryBack(t *testing.T) {
	t.Parallel()
	st, tl, broker, ctx := setup(t, testenv.DatabaseURL(t, "postgres"))
	if _, err := st.DB.ExecContext(ctx, `CREATE TABLE other (id int)`); err != nil {
		t.Fatal(err)
	}
	var got collector
	go func() { _ = tl.Stream(ctx, nil, "", got.send) }()
	time.Sleep(50 * time.Millisecond)

	idle, err := st.DB.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Rollback() //nolint:errcheck
	// An id of its own, older than the row below: the old bound (the
	// oldest running transaction) would have waited for it.
	if _, err := idle.ExecContext(ctx, `INSERT INTO other VALUES (1)`); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	insert(t, st.DB, "postgres", "while-idle")
	broker.Notify("log")
	deadline := time.Now().Add(5 * time.Second)
	for {
		got.mu.Lock()
		n := len(got.keys)
		got.mu.Unlock()
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the row was not delivered in 5 s while another session held a transaction open")
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Logf("delivered %s after the insert, beside an open transaction", time.Since(start))

	// That same transaction may not write the log now: it has an id and
	// did not announce itself before it.
	_, err = idle.ExecContext(ctx, `INSERT INTO log (k) VALUES ('sneaky')`)
	if err == nil || !strings.Contains(err.Error(), "did not announce itself") {
		t.Fatalf("an unannounced transaction wrote the log: %v", err)
	}
	// Announced first, it may.
	tx, err := st.DB.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, changelog.PostgresAnnounceWriter); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO other VALUES (2)`); err != nil {
		t.Fatal(err)
	}
	insert(t, tx, "postgres", "announced")
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	broker.Notify("log")
	if keys := got.waitFor(t, 2); keys[1] != "announced" {
		t.Fatalf("keys %v", keys)
	}
}

// TestStreamReplaysThenGoesLive: with a cursor, a stream replays the rows
// after it with its key, then live ones, none twice, on both stores; a
// subscriber far behind the live fan-out catches up from the table.
func TestStreamReplaysThenGoesLive(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, databaseURL string) {
		st, tl, broker, ctx := setup(t, databaseURL)
		for i := 0; i < 5; i++ {
			insert(t, st.DB, st.Dialect, "a")
			insert(t, st.DB, st.Dialect, "b")
		}
		broker.Notify("log")
		// Wait until the tailer has seen them all.
		deadline := time.Now().Add(60 * time.Second) // long transactions elsewhere on a shared cluster hold PostgreSQL delivery back
		for tl.Head() == (changelog.Cursor{}) && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		zero := changelog.Cursor{}
		var got collector
		blocked := make(chan struct{})
		release := make(chan struct{})
		n := 0
		go func() {
			_ = tl.Stream(ctx, &zero, "a", func(r live.Row) bool {
				n++
				if n == 3 {
					close(blocked)
					<-release // a slow reader: the fan-out must drop it, not wait
				}
				return got.send(r)
			})
		}()
		<-blocked
		for i := 0; i < 3*live.SubscriberBuffer; i++ {
			insert(t, st.DB, st.Dialect, "a")
			insert(t, st.DB, st.Dialect, "b")
			broker.Notify("log")
		}
		close(release)
		keys := got.waitFor(t, 5+3*live.SubscriberBuffer)
		time.Sleep(100 * time.Millisecond)
		got.mu.Lock()
		defer got.mu.Unlock()
		if len(got.keys) != 5+3*live.SubscriberBuffer {
			t.Fatalf("got %d rows, want %d", len(got.keys), 5+3*live.SubscriberBuffer)
		}
		for i, k := range keys {
			if k != "a" {
				t.Fatalf("row %d has key %q", i, k)
			}
			if i > 0 && !got.curs[i-1].Less(got.curs[i]) {
				t.Fatalf("rows %d and %d out of order or repeated: %v %v", i-1, i, got.curs[i-1], got.curs[i])
			}
		}
	})
}

// TestOrderAcrossTxidDigitBoundary: transaction ids sort as numbers, not as
// text. CI failed when the cluster's transaction ids crossed 100,000: the
// tailer ordered by the text of log_txid, so "100188" sorted before "99941",
// the fan-out moved its position past rows it had not sent (a lost change
// for live subscribers) and a lagged subscriber's catch-up delivered them
// after later ones. The rows here carry explicit transaction ids on both
// sides of a power of ten, all older than every running transaction.
func TestOrderAcrossTxidDigitBoundary(t *testing.T) {
	t.Parallel()
	st, tl, broker, ctx := setup(t, testenv.DatabaseURL(t, "postgres"))
	var xmin uint64
	if err := st.DB.QueryRowContext(ctx, `SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint`).Scan(&xmin); err != nil {
		t.Fatal(err)
	}
	boundary := uint64(10)
	for boundary*10+2 < xmin {
		boundary *= 10
	}
	if boundary+2 >= xmin {
		t.Fatalf("cluster too young: oldest running transaction %d", xmin)
	}
	var live1 collector
	go func() { _ = tl.Stream(ctx, nil, "", live1.send) }()
	time.Sleep(50 * time.Millisecond)

	tx, err := st.DB.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, txid := range []uint64{boundary - 2, boundary - 1, boundary, boundary + 1} {
		if _, err := tx.ExecContext(ctx, `INSERT INTO log (k, log_txid) VALUES ($1, $2::text::xid8)`,
			fmt.Sprintf("r%d", i+1), strconv.FormatUint(txid, 10)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	broker.Notify("log")
	want := []string{"r1", "r2", "r3", "r4"}
	if got := live1.waitFor(t, 4); !slices.Equal(got, want) {
		t.Fatalf("live fan-out delivered %v, want %v", got, want)
	}
	var replayed collector
	zero := changelog.Cursor{}
	go func() { _ = tl.Stream(ctx, &zero, "", replayed.send) }()
	if got := replayed.waitFor(t, 4); !slices.Equal(got, want) {
		t.Fatalf("replay delivered %v, want %v", got, want)
	}
	// A tailer started now is at the numerically last row: a stream from
	// its end gets only what comes next.
	tl2, err := live.NewTailer(ctx, st.DB, live.Postgres, live.Source{Log: testLog},
		broker, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if h := tl2.Head(); h != (changelog.Cursor{Tx: boundary + 1, Seq: 4}) {
		t.Fatalf("new tailer starts at %v, want %d.4", h, boundary+1)
	}
	go tl2.Run(ctx)
	var fromEnd collector
	go func() { _ = tl2.Stream(ctx, nil, "", fromEnd.send) }()
	time.Sleep(50 * time.Millisecond)
	insert(t, st.DB, "postgres", "r5")
	broker.Notify("log")
	if got := fromEnd.waitFor(t, 1); !slices.Equal(got, []string{"r5"}) {
		t.Fatalf("stream from the end delivered %v, want [r5]", got)
	}
}

// TestWithin: a cursor is within the log when the table has reached it,
// even if this Tailer has not read that far (another replica delivered
// it): the cursor of a row inserted after the Tailer last read is within;
// one past the last row, or with a transaction id not yet assigned, is
// not; the last row's cursor stays within after the row is deleted.
func TestWithin(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, databaseURL string) {
		ctx := context.Background()
		st, err := store.Open(ctx, databaseURL)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		logTable(t, st)
		d := live.SQLite
		q := `SELECT 0, id FROM log ORDER BY id DESC LIMIT 1`
		if st.Dialect == "postgres" {
			d = live.Postgres
			q = `SELECT log_txid::text::bigint, id FROM log ORDER BY id DESC LIMIT 1`
		}
		// Never run: its position stays at the (empty) start.
		tl, err := live.NewTailer(ctx, st.DB, d, live.Source{Log: testLog},
			pubsub.NewMemory(), slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		within := func(c changelog.Cursor) bool {
			t.Helper()
			ok, err := tl.Within(ctx, c)
			if err != nil {
				t.Fatal(err)
			}
			return ok
		}
		if within(changelog.Cursor{Seq: 1}) {
			t.Errorf("cursor 0.1 is within an empty log")
		}
		for _, k := range []string{"a", "b", "c"} {
			insert(t, st.DB, st.Dialect, k)
		}
		var last changelog.Cursor
		if err := st.DB.QueryRow(q).Scan(&last.Tx, &last.Seq); err != nil {
			t.Fatal(err)
		}
		if tl.Head() != (changelog.Cursor{}) {
			t.Fatalf("the tailer moved: %v", tl.Head())
		}
		if !within(last) {
			t.Errorf("the last row's cursor %v is not within the log (the tailer is at %v)", last, tl.Head())
		}
		if !within(changelog.Cursor{Tx: last.Tx, Seq: 1}) {
			t.Errorf("an earlier cursor is not within the log")
		}
		beyond := []changelog.Cursor{{Tx: last.Tx, Seq: last.Seq + 1}, {Tx: last.Tx, Seq: last.Seq + 1000}}
		if st.Dialect == "postgres" {
			beyond = append(beyond, changelog.Cursor{Tx: last.Tx + 1_000_000, Seq: last.Seq})
		} else {
			beyond = append(beyond, changelog.Cursor{Tx: 7, Seq: 1}) // SQLite cursors have no transaction part
		}
		for _, c := range beyond {
			if within(c) {
				t.Errorf("cursor %v is within a log whose last row is %v", c, last)
			}
		}
		if _, err := st.DB.Exec(`DELETE FROM log WHERE k = 'c'`); err != nil {
			t.Fatal(err)
		}
		if !within(last) {
			t.Errorf("the cursor of the deleted last row %v is no longer within the log", last)
		}
	})
}

// TestScopedWriterHoldsBackOnlyItsKeys: on PostgreSQL, a transaction that
// announced itself as a writer of one key (an import into one segment)
// and stays open delays no subscriber of another key, while every
// subscriber of its key, or of every key, gets its rows in order when it
// commits, including those who subscribed after the fan-out had passed it
// (nobody followed its key then), from a cursor or from now.
func TestScopedWriterHoldsBackOnlyItsKeys(t *testing.T) {
	t.Parallel()
	st, tl, broker, ctx := setup(t, testenv.DatabaseURL(t, "postgres"))
	var b collector
	go func() { _ = tl.Stream(ctx, nil, "b", b.send) }()
	time.Sleep(50 * time.Millisecond)

	scoped, err := st.DB.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer scoped.Rollback() //nolint:errcheck
	if _, err := scoped.ExecContext(ctx, changelog.WriterScope{{Log: testLog, Keys: []string{"a"}}}.PostgresAnnounce()); err != nil {
		t.Fatal(err)
	}
	insert(t, scoped, "postgres", "a") // the older transaction id
	start := time.Now()
	insert(t, st.DB, "postgres", "b")
	broker.Notify("log")
	if keys := b.waitFor(t, 1); keys[0] != "b" {
		t.Fatalf("b got %v", keys)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("a subscriber of b waited %v for a writer of a", took)
	} else {
		t.Logf("b delivered %v after its commit, beside an open writer of a", took)
	}

	// Subscribed now, after the fan-out passed the open writer of a.
	zero := changelog.Cursor{}
	var aNow, aAll, all collector
	go func() { _ = tl.Stream(ctx, nil, "a", aNow.send) }()
	go func() { _ = tl.Stream(ctx, &zero, "a", aAll.send) }()
	go func() { _ = tl.Stream(ctx, &zero, "", all.send) }()
	time.Sleep(300 * time.Millisecond)
	all.mu.Lock()
	early := append([]string(nil), all.keys...)
	all.mu.Unlock()
	if len(early) != 0 {
		t.Fatalf("a subscriber of every key got %v while an older writer of a was open: it would skip a's row", early)
	}
	if err := scoped.Commit(); err != nil {
		t.Fatal(err)
	}
	broker.Notify("log")
	if keys := all.waitFor(t, 2); keys[0] != "a" || keys[1] != "b" {
		t.Fatalf("every key: %v, want [a b] (transaction order)", keys)
	}
	if keys := aAll.waitFor(t, 1); len(keys) != 1 || keys[0] != "a" {
		t.Fatalf("a from the start: %v", keys)
	}
	if keys := aNow.waitFor(t, 1); len(keys) != 1 || keys[0] != "a" {
		t.Fatalf("a from now: %v (the row committed after it subscribed)", keys)
	}
	insert(t, st.DB, "postgres", "a")
	broker.Notify("log")
	aNow.waitFor(t, 2)
	aAll.waitFor(t, 2)
	all.waitFor(t, 3)
	time.Sleep(100 * time.Millisecond)
	for name, c := range map[string]*collector{"a from now": &aNow, "a from the start": &aAll, "every key": &all, "b": &b} {
		c.mu.Lock()
		for i := 1; i < len(c.curs); i++ {
			if !c.curs[i-1].Less(c.curs[i]) {
				t.Errorf("%s: rows %d and %d out of order or repeated: %v %v", name, i-1, i, c.curs[i-1], c.curs[i])
			}
		}
		c.mu.Unlock()
	}
	if n := len(b.keys); n != 1 {
		t.Errorf("b got %d rows, want 1", n)
	}
}
