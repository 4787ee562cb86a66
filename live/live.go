// Package live streams segmentd's append-only logs (membership changes,
// events, campaign activations) to subscribers, gapless and in order.
//
// A Tailer follows one log table. Its position is a changelog.Cursor that orders rows
// in a way that never lets a late commit slip behind a reader:
//
//   - on SQLite, writers are serialized, so the order of positions given at
//     insert is commit order. A position is never reused: an AUTOINCREMENT
//     id, or a log_seq column numbered from a counter (store.Migrate); a
//     plain rowid would be, after the newest rows are deleted;
//   - on PostgreSQL, ids and timestamps are assigned before commit, so a row
//     with a smaller id can commit after a larger one. Every log row records
//     its transaction id (log_txid, an xid8 set by the database), and a
//     Tailer reads only rows whose transaction is older than the oldest log
//     writer still running (segmentd_log_horizon(): every transaction that
//     may write a log announces itself before it has an id, see
//     changelog/postgres_writers.go), ordered by (log_txid, seq). Every
//     writer that can still commit has a larger id than everything read, so
//     everything it writes sorts after the cursor: nothing is skipped, at
//     the cost of waiting for in-flight writers to end, and for no other
//     session (a report or an idle psql transaction holds nobody back).
//
// Wake-ups come from a pubsub.Broker after each commit (and from other
// replicas through NOTIFY); a Tailer also polls, so that a lost wake-up only
// costs latency. Subscribers register with the Tailer and get rows through a
// bounded buffer; one that falls behind is dropped from the live fan-out and
// catches up from the table on its own, so a slow client can neither slow the
// others nor grow memory without bound.
package live

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/segmentd/segmentd/changelog"
	"github.com/segmentd/segmentd/pubsub"
)

// Row is one log row.
type Row struct {
	Cursor changelog.Cursor
	ID     string // the row's primary key
	Key    string // the value of the log's Key column (segment, campaign, event name)
	// Value is what Source.Load made of the row (an entity), shared by
	// every subscriber.
	Value any
	// loaded: Value was loaded (a Tailer loads only the rows that have
	// subscribers when it reads them).
	loaded bool
}

// Source is a log table (its name, columns and topic, see
// changelog.Log) and how to load its rows.
type Source struct {
	changelog.Log
	// Load turns row ids into values, in one query per page.
	Load func(ctx context.Context, ids []string) (map[string]any, error)
}

// Postgres and SQLite are the dialects a Tailer reads.
const (
	SQLite   = "sqlite3"
	Postgres = "postgres"
)

// Sizes and intervals.
const (
	pageSize = 500
	// SubscriberBuffer is how many rows a subscriber may be behind the live
	// fan-out before it is dropped to catch up from the table.
	SubscriberBuffer = 64
	pollInterval     = 500 * time.Millisecond
	// inFlightRetry is how soon a Tailer reads again when committed rows
	// wait behind a transaction still running.
	inFlightRetry = 2 * time.Millisecond
)

// Tailer follows one log table and fans new rows out to subscribers.
type Tailer struct {
	db     *sql.DB
	store  logStore
	src    Source
	broker pubsub.Broker
	log    *slog.Logger

	mu   sync.Mutex
	pos  changelog.Cursor
	subs map[string]map[*Subscription]struct{} // by key; "" holds those that want every row
}

// NewTailer returns a Tailer positioned at the end of the table.
func NewTailer(ctx context.Context, db *sql.DB, dialect string, src Source, broker pubsub.Broker, log *slog.Logger) (*Tailer, error) {
	st, err := logStoreFor(dialect)
	if err != nil {
		return nil, fmt.Errorf("live.NewTailer(%s): %w", src.Table, err)
	}
	t := &Tailer{db: db, store: st, src: src, broker: broker, log: log, subs: map[string]map[*Subscription]struct{}{}}
	horizon, err := st.horizon(ctx, db)
	if err != nil {
		return nil, fmt.Errorf("live.NewTailer(%s): %w", src.Table, err)
	}
	q, args := t.store.headQuery(src, horizon)
	var tx string
	err = db.QueryRowContext(ctx, q, args...).Scan(&tx, &t.pos.Seq)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("live.NewTailer(%s): %w", src.Table, err)
	}
	if tx != "" {
		if t.pos.Tx, err = strconv.ParseUint(tx, 10, 64); err != nil {
			return nil, fmt.Errorf("live.NewTailer(%s): txid %q: %w", src.Table, tx, err)
		}
	}
	return t, nil
}

// Run follows the table until ctx ends.
func (t *Tailer) Run(ctx context.Context) {
	wake, cancel := t.broker.Subscribe(t.src.Topic)
	defer cancel()
	timer := time.NewTimer(pollInterval)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			t.closeAll()
			return
		case <-wake:
		case <-timer.C:
		}
		more, err := t.poll(ctx)
		next := pollInterval
		if err != nil {
			if ctx.Err() == nil {
				t.log.Warn("live: read log", "table", t.src.Table, "err", err)
			}
		} else if more {
			next = inFlightRetry
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(next)
	}
}

// poll reads and fans out every committed row after the position. It
// reports whether rows wait behind a transaction still running.
func (t *Tailer) poll(ctx context.Context) (waiting bool, err error) {
	for {
		t.mu.Lock()
		pos := t.pos
		t.mu.Unlock()
		rows, waiting, err := t.readRows(ctx, pos, nil, "", pageSize)
		if err != nil {
			return false, err
		}
		// Load only the rows someone follows: a sweep of 100,000
		// expiries spent a third of the server's CPU loading exits
		// (with their users and segments) that nobody subscribed to.
		t.mu.Lock()
		var wanted []int
		for i, r := range rows {
			if len(t.subs[r.Key]) > 0 || len(t.subs[""]) > 0 {
				wanted = append(wanted, i)
			}
		}
		t.mu.Unlock()
		if err := t.load(ctx, rows, wanted); err != nil {
			return false, err
		}
		if len(rows) > 0 {
			t.fanOut(rows)
		}
		if len(rows) < pageSize {
			return waiting, nil
		}
	}
}

func (t *Tailer) fanOut(rows []Row) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, r := range rows {
		if !t.pos.Less(r.Cursor) {
			continue
		}
		t.pos = r.Cursor
		t.send(t.subs[r.Key], &r)
		if r.Key != "" {
			t.send(t.subs[""], &r)
		}
	}
}

func (t *Tailer) send(subs map[*Subscription]struct{}, r *Row) {
	for s := range subs {
		if !r.loaded {
			// Subscribed after poll chose the rows to load: it
			// reads this one from the table instead.
			t.drop(s)
			continue
		}
		select {
		case s.rows <- r:
		default:
			// Behind: drop from the fan-out; it catches up from the table.
			t.drop(s)
		}
	}
}

// drop removes a subscription from the fan-out; t.mu is held.
func (t *Tailer) drop(s *Subscription) {
	set := t.subs[s.key]
	if _, ok := set[s]; !ok {
		return
	}
	delete(set, s)
	if len(set) == 0 {
		delete(t.subs, s.key)
	}
	close(s.lagged)
}

func (t *Tailer) closeAll() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, set := range t.subs {
		for s := range set {
			t.drop(s)
		}
	}
}

// readRows returns up to limit committed rows after `after` (and not after
// upTo, if given), with key if not empty, not loaded (see load).
func (t *Tailer) readRows(ctx context.Context, after changelog.Cursor, upTo *changelog.Cursor, key string, limit int) (rows []Row, waiting bool, err error) {
	horizon, err := t.store.horizon(ctx, t.db)
	if err != nil {
		return nil, false, fmt.Errorf("read %s: %w", t.src.Table, err)
	}
	q, args := t.store.readQuery(t.src, horizon, after, upTo, key, limit)
	res, err := t.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, false, fmt.Errorf("read %s: %w", t.src.Table, err)
	}
	defer res.Close()
	for res.Next() {
		var (
			r      Row
			tx     string
			key    sql.NullString
			stable bool
		)
		if err := res.Scan(&tx, &r.Cursor.Seq, &r.ID, &key, &stable); err != nil {
			return nil, false, fmt.Errorf("read %s: %w", t.src.Table, err)
		}
		if !stable {
			waiting = true
			break // this row and all after it wait for older transactions
		}
		if r.Cursor.Tx, err = strconv.ParseUint(tx, 10, 64); err != nil {
			return nil, false, fmt.Errorf("read %s: txid %q: %w", t.src.Table, tx, err)
		}
		r.Key = key.String
		rows = append(rows, r)
	}
	if err := res.Err(); err != nil {
		return nil, false, fmt.Errorf("read %s: %w", t.src.Table, err)
	}
	return rows, waiting, nil
}

// read is readRows with every row loaded.
func (t *Tailer) read(ctx context.Context, after changelog.Cursor, upTo *changelog.Cursor, key string, limit int) ([]Row, bool, error) {
	rows, waiting, err := t.readRows(ctx, after, upTo, key, limit)
	if err != nil {
		return nil, false, err
	}
	all := make([]int, len(rows))
	for i := range all {
		all[i] = i
	}
	if err := t.load(ctx, rows, all); err != nil {
		return nil, false, err
	}
	return rows, waiting, nil
}

// load sets the Value of rows[i] for each i in which, by Source.Load.
func (t *Tailer) load(ctx context.Context, rows []Row, which []int) error {
	if len(which) == 0 {
		return nil
	}
	if t.src.Load == nil {
		for _, i := range which {
			rows[i].loaded = true
		}
		return nil
	}
	ids := make([]string, len(which))
	for k, i := range which {
		ids[k] = rows[i].ID
	}
	values, err := t.src.Load(ctx, ids)
	if err != nil {
		return fmt.Errorf("load %s: %w", t.src.Table, err)
	}
	for _, i := range which {
		rows[i].Value, rows[i].loaded = values[rows[i].ID], true
	}
	return nil
}

// Subscription is one subscriber's registration with a Tailer.
type Subscription struct {
	key    string
	rows   chan *Row // pointers: one row is shared by every subscriber
	lagged chan struct{}
}

func (t *Tailer) subscribe(key string) (*Subscription, changelog.Cursor) {
	s := &Subscription{key: key, rows: make(chan *Row, SubscriberBuffer), lagged: make(chan struct{})}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.subs[key] == nil {
		t.subs[key] = map[*Subscription]struct{}{}
	}
	t.subs[key][s] = struct{}{}
	return s, t.pos
}

func (t *Tailer) unsubscribe(s *Subscription) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.drop(s)
}

// Head returns the Tailer's position: the last row it has fanned out.
func (t *Tailer) Head() changelog.Cursor {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.pos
}

// Within reports whether c is a position of the log: at or before the
// last position the table has ever assigned, whatever this Tailer has read
// so far (another replica may have delivered rows this one has not
// polled yet). On SQLite that is the table's largest rowid, or its
// AUTOINCREMENT counter if larger (rows may have been deleted); on
// PostgreSQL a transaction id that has been assigned (below the current
// snapshot's xmax) and a sequence value that has been handed out. A cursor
// beyond that can only be made up or from another database; a stream from
// it would wait, silently, for the log to catch up with it.
func (t *Tailer) Within(ctx context.Context, c changelog.Cursor) (bool, error) {
	ok, err := t.store.within(ctx, t.db, t.src, c)
	if err != nil {
		return false, fmt.Errorf("live.Within(%s): %w", t.src.Table, err)
	}
	return ok, nil
}

// CursorOf is the position of the row with id (a text or integer id) in
// the log: the cursor a stream gives it, for a client that read the row by
// query and wants to resume after it.
func (t *Tailer) CursorOf(ctx context.Context, id string) (changelog.Cursor, error) {
	c, err := t.store.cursorOf(ctx, t.db, t.src, id)
	if err != nil {
		return changelog.Cursor{}, fmt.Errorf("live.CursorOf(%s): %w", t.src.Table, err)
	}
	return c, nil
}

// Stream sends send every row with key (all rows if key is empty) after
// `after`, in log order, then every new one as it commits, until ctx ends
// or send returns false. With after nil it starts at the current end. It
// never sends a row twice and never skips one; a subscriber that falls
// behind the live fan-out reads the rows it missed from the table.
func (t *Tailer) Stream(ctx context.Context, after *changelog.Cursor, key string, send func(Row) bool) error {
	var last changelog.Cursor
	started := after != nil
	if started {
		last = *after
	}
	for {
		sub, head := t.subscribe(key)
		if !started {
			last, started = head, true
		}
		// Replay (last, head] from the table.
		for last.Less(head) {
			rows, _, err := t.read(ctx, last, &head, key, pageSize)
			if err != nil {
				t.unsubscribe(sub)
				return err
			}
			for _, r := range rows {
				if !send(r) {
					t.unsubscribe(sub)
					return nil
				}
				last = r.Cursor
			}
			if len(rows) < pageSize {
				break
			}
		}
		if last.Less(head) {
			last = head // no more rows with this key up to head
		}
		// Live.
	live:
		for {
			select {
			case <-ctx.Done():
				t.unsubscribe(sub)
				return ctx.Err()
			case r := <-sub.rows:
				if !last.Less(r.Cursor) {
					continue
				}
				if !send(*r) {
					t.unsubscribe(sub)
					return nil
				}
				last = r.Cursor
			case <-sub.lagged:
				// Drain what was buffered, then catch up from the table.
				for {
					select {
					case r := <-sub.rows:
						if last.Less(r.Cursor) {
							if !send(*r) {
								return nil
							}
							last = r.Cursor
						}
						continue
					default:
					}
					break
				}
				if ctx.Err() != nil {
					return ctx.Err()
				}
				break live
			}
		}
	}
}

// Read returns up to limit committed rows after `after`, in log order,
// loaded by the Source, with the same guarantee as Stream: a row of a
// transaction still running, and every row after it, waits (waiting
// reports that some do). Readers that keep their own durable position
// (webhook endpoints) page through the log with it; a Tailer used only
// for Read need not Run.
func (t *Tailer) Read(ctx context.Context, after changelog.Cursor, limit int) (rows []Row, waiting bool, err error) {
	if limit <= 0 || limit > pageSize {
		limit = pageSize
	}
	rows, waiting, err = t.read(ctx, after, nil, "", limit)
	if err != nil {
		return nil, false, fmt.Errorf("live.Read(%s): %w", t.src.Table, err)
	}
	return rows, waiting, nil
}

// CurrentHead reads the position of the last row a reader may deliver now
// (the zero cursor for an empty log): where a new reader that wants only
// what commits from now on starts.
func (t *Tailer) CurrentHead(ctx context.Context) (changelog.Cursor, error) {
	var (
		c  changelog.Cursor
		tx string
	)
	horizon, err := t.store.horizon(ctx, t.db)
	if err != nil {
		return changelog.Cursor{}, fmt.Errorf("live.CurrentHead(%s): %w", t.src.Table, err)
	}
	q, args := t.store.headQuery(t.src, horizon)
	err = t.db.QueryRowContext(ctx, q, args...).Scan(&tx, &c.Seq)
	if errors.Is(err, sql.ErrNoRows) {
		return changelog.Cursor{}, nil
	}
	if err != nil {
		return changelog.Cursor{}, fmt.Errorf("live.CurrentHead(%s): %w", t.src.Table, err)
	}
	if c.Tx, err = strconv.ParseUint(tx, 10, 64); err != nil {
		return changelog.Cursor{}, fmt.Errorf("live.CurrentHead(%s): txid %q: %w", t.src.Table, tx, err)
	}
	return c, nil
}
