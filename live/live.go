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
//     session (a report or an idle psql transaction holds nobody back). A
//     writer of some keys only (an import: changelog.WriterScope) is
//     waited for by the readers of those keys, and of every key, only.
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
	"slices"
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
	// maxInFlightRetry bounds the back-off of inFlightRetry.
	maxInFlightRetry = 16 * time.Millisecond
)

// Tailer follows one log table and fans new rows out to subscribers.
type Tailer struct {
	db     *sql.DB
	store  logStore
	src    Source
	broker pubsub.Broker
	log    *slog.Logger

	mu sync.Mutex
	// The fan-out runs in two lanes, each with its position: one for the
	// subscribers of a key, which reads only the keys followed and waits
	// only for their writers, and one for the subscribers of every row,
	// which waits for every writer. A subscriber of every segment's
	// changes waits for an import into one of them; the subscribers of
	// the other segments do not wait with it.
	keyed, every lane
}

// lane is one fan-out of a Tailer: its position (the last row, or head,
// it has passed) and its subscribers, by key ("" in the every-row lane).
type lane struct {
	pos  changelog.Cursor
	subs map[string]map[*Subscription]struct{}
}

// NewTailer returns a Tailer positioned at the end of the table.
func NewTailer(ctx context.Context, db *sql.DB, dialect string, src Source, broker pubsub.Broker, log *slog.Logger) (*Tailer, error) {
	st, err := logStoreFor(dialect)
	if err != nil {
		return nil, fmt.Errorf("live.NewTailer(%s): %w", src.Table, err)
	}
	t := &Tailer{db: db, store: st, src: src, broker: broker, log: log,
		keyed: lane{subs: map[string]map[*Subscription]struct{}{}}, every: lane{subs: map[string]map[*Subscription]struct{}{}}}
	horizon, _, err := st.horizon(ctx, db, src, allKeys)
	if err != nil {
		return nil, fmt.Errorf("live.NewTailer(%s): %w", src.Table, err)
	}
	q, args := t.store.headQuery(src, horizon)
	var tx string
	err = db.QueryRowContext(ctx, q, args...).Scan(&tx, &t.keyed.pos.Seq)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("live.NewTailer(%s): %w", src.Table, err)
	}
	if tx != "" {
		if t.keyed.pos.Tx, err = strconv.ParseUint(tx, 10, 64); err != nil {
			return nil, fmt.Errorf("live.NewTailer(%s): txid %q: %w", src.Table, tx, err)
		}
	}
	t.every.pos = t.keyed.pos
	return t, nil
}

// Run follows the table until ctx ends.
func (t *Tailer) Run(ctx context.Context) {
	wake, cancel := t.broker.Subscribe(t.src.Topic)
	defer cancel()
	timer := time.NewTimer(pollInterval)
	defer timer.Stop()
	retry := inFlightRetry
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
			// Rows wait for a transaction still running. Its commit wakes
			// the tailer (the broker); the timer is for one that rolls
			// back, so it backs off while the wait lasts (an import
			// applied for minutes) instead of reading 500 times a second.
			next = retry
			retry = min(2*retry, maxInFlightRetry)
		}
		if !more {
			retry = inFlightRetry
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

// poll reads and fans out every committed row after the position with a
// key someone follows. It reports whether rows wait behind a transaction
// still running.
//
// It reads only the keys followed when the page is read (all of them if
// someone follows every key), so that a bulk change (a 1M-row import) to a
// segment nobody follows costs the fan-out one read, not 2,000 pages, and
// a writer of only that segment's rows (changelog.WriterScope) holds back
// no one else. A subscriber that registered meanwhile, for a key the page
// did not read, is dropped to catch up from the table (see Stream).
func (t *Tailer) poll(ctx context.Context) (waiting bool, err error) {
	waiting, err = t.pollLane(ctx, &t.keyed)
	if err != nil {
		return false, err
	}
	t.mu.Lock()
	idle := len(t.every.subs) == 0
	if idle && t.every.pos.Less(t.keyed.pos) {
		// Nobody to read every row for: a subscriber who comes replays
		// from its cursor up to this position, until settled (Stream).
		t.every.pos = t.keyed.pos
	}
	t.mu.Unlock()
	if idle {
		return waiting, nil
	}
	more, err := t.pollLane(ctx, &t.every)
	return waiting || more, err
}

// pollLane reads and fans out the rows of one lane.
func (t *Tailer) pollLane(ctx context.Context, l *lane) (waiting bool, err error) {
	for {
		t.mu.Lock()
		pos := l.pos
		ks := l.followed()
		t.mu.Unlock()
		// The subscribers of a key being written by an import (set aside
		// by readKeys) are dropped by fanOut and wait for it on their own.
		p, ks, err := t.readKeys(ctx, pos, nil, ks, pageSize, true)
		if err != nil {
			return false, err
		}
		if err := t.load(ctx, p.rows); err != nil {
			return false, err
		}
		t.fanOut(l, p, ks)
		if len(p.rows) < pageSize {
			return p.waiting, nil
		}
	}
}

// followed is the keys the lane's subscribers follow; t.mu is held.
func (l *lane) followed() keySet {
	if _, ok := l.subs[""]; ok {
		return allKeys
	}
	ks := keySet{keys: make([]string, 0, len(l.subs))}
	for k := range l.subs {
		ks.keys = append(ks.keys, k)
	}
	return ks
}

// fanOut sends a page read for the keys ks to the lane's subscribers and
// moves its position to the page's last row, or to the head if the page
// holds every row of those keys up to it.
func (t *Tailer) fanOut(l *lane, p page, ks keySet) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !ks.all {
		read := make(map[string]bool, len(ks.keys))
		for _, k := range ks.keys {
			read[k] = true
		}
		for k, set := range l.subs {
			if !read[k] {
				for s := range set {
					t.drop(s)
				}
			}
		}
	}
	for _, r := range p.rows {
		if !l.pos.Less(r.Cursor) {
			continue
		}
		l.pos = r.Cursor
		if ks.all {
			t.send(l.subs[""], &r)
		} else {
			t.send(l.subs[r.Key], &r)
		}
	}
	if len(p.rows) < pageSize && !p.waiting && l.pos.Less(p.head) {
		l.pos = p.head
	}
}

func (t *Tailer) send(subs map[*Subscription]struct{}, r *Row) {
	for s := range subs {
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
	set := s.lane.subs[s.key]
	if _, ok := set[s]; !ok {
		return
	}
	delete(set, s)
	if len(set) == 0 {
		delete(s.lane.subs, s.key)
	}
	close(s.lagged)
}

func (t *Tailer) closeAll() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, l := range []*lane{&t.keyed, &t.every} {
		for _, set := range l.subs {
			for s := range set {
				t.drop(s)
			}
		}
	}
}

// page is what one read returns: rows in log order, whether rows after
// them wait for transactions still running, the head (the position of the
// last row of any key that may be delivered now) and the horizon.
type page struct {
	rows    []Row
	waiting bool
	head    changelog.Cursor
	// horizon is the transaction id below which every row of the keys
	// read is final; bounded is false on a store where every committed
	// row is (SQLite).
	horizon uint64
	bounded bool
}

// settled reports whether every row of the keys read at or before c is
// committed and was visible to the read (no writer of them older than c
// was still running).
func (p page) settled(c changelog.Cursor) bool { return !p.bounded || c.Tx < p.horizon }

// readRows returns up to limit committed rows after `after` (and not after
// upTo, if given), with a key in ks, not loaded (see load).
func (t *Tailer) readRows(ctx context.Context, after changelog.Cursor, upTo *changelog.Cursor, ks keySet, limit int) (page, error) {
	p, _, err := t.readKeys(ctx, after, upTo, ks, limit, false)
	return p, err
}

// readKeys is readRows; with setAside, it leaves out the keys that a
// writer of only some keys is writing (an import), so that a reader of
// many keys does not wait for it, and reports the keys it read.
func (t *Tailer) readKeys(ctx context.Context, after changelog.Cursor, upTo *changelog.Cursor, ks keySet, limit int, setAside bool) (page, keySet, error) {
	var p page
	horizon, contended, err := t.store.horizon(ctx, t.db, t.src, ks)
	if err != nil {
		return p, ks, fmt.Errorf("read %s: %w", t.src.Table, err)
	}
	if setAside && len(contended) > 0 && !ks.all {
		var rest keySet
		for _, k := range ks.keys {
			if !contended[changelog.KeyHash(k)] {
				rest.keys = append(rest.keys, k)
			}
		}
		ks = rest
		if horizon, _, err = t.store.horizon(ctx, t.db, t.src, ks); err != nil {
			return p, ks, fmt.Errorf("read %s: %w", t.src.Table, err)
		}
	}
	p, err = t.readWith(ctx, horizon, after, upTo, ks, limit)
	return p, ks, err
}

// readWith reads a page with the horizon read for ks.
func (t *Tailer) readWith(ctx context.Context, horizon string, after changelog.Cursor, upTo *changelog.Cursor, ks keySet, limit int) (page, error) {
	var p page
	q, args := t.store.readQuery(t.src, horizon, after, upTo, ks, limit)
	res, err := t.db.QueryContext(ctx, q, args...)
	if err != nil {
		return p, fmt.Errorf("read %s: %w", t.src.Table, err)
	}
	defer res.Close()
	type read struct {
		Row
		stable bool
	}
	var rows []read
	for res.Next() {
		var (
			tx, id, key, hText sql.NullString
			seq                sql.NullInt64
			stable             bool
		)
		if err := res.Scan(&tx, &seq, &id, &key, &stable, &hText); err != nil {
			return p, fmt.Errorf("read %s: %w", t.src.Table, err)
		}
		var c changelog.Cursor
		if tx.Valid {
			if c.Tx, err = strconv.ParseUint(tx.String, 10, 64); err != nil {
				return p, fmt.Errorf("read %s: txid %q: %w", t.src.Table, tx.String, err)
			}
			c.Seq = seq.Int64
		}
		if !id.Valid { // the head
			p.head = c
			if hText.Valid {
				if p.horizon, err = strconv.ParseUint(hText.String, 10, 64); err != nil {
					return p, fmt.Errorf("read %s: horizon %q: %w", t.src.Table, hText.String, err)
				}
				p.bounded = true
			}
			continue
		}
		rows = append(rows, read{Row: Row{Cursor: c, ID: id.String, Key: key.String}, stable: stable})
	}
	if err := res.Err(); err != nil {
		return p, fmt.Errorf("read %s: %w", t.src.Table, err)
	}
	// The page's rows come in log order from a subquery, whose order SQL
	// does not promise through a UNION: sort them, then keep those before
	// the first that must wait (it and all after it wait for older
	// transactions).
	slices.SortFunc(rows, func(a, b read) int {
		switch {
		case a.Cursor.Less(b.Cursor):
			return -1
		case b.Cursor.Less(a.Cursor):
			return 1
		}
		return 0
	})
	for _, r := range rows {
		if !r.stable {
			p.waiting = true
			break
		}
		p.rows = append(p.rows, r.Row)
	}
	return p, nil
}

// read is readRows with every row loaded.
func (t *Tailer) read(ctx context.Context, after changelog.Cursor, upTo *changelog.Cursor, ks keySet, limit int) (page, error) {
	p, err := t.readRows(ctx, after, upTo, ks, limit)
	if err != nil {
		return p, err
	}
	if err := t.load(ctx, p.rows); err != nil {
		return p, err
	}
	return p, nil
}

// load sets the Value of every row, by Source.Load in one call (the
// rows read are those of the keys followed: every one has subscribers).
func (t *Tailer) load(ctx context.Context, rows []Row) error {
	if len(rows) == 0 || t.src.Load == nil {
		return nil
	}
	ids := make([]string, len(rows))
	for i, r := range rows {
		ids[i] = r.ID
	}
	values, err := t.src.Load(ctx, ids)
	if err != nil {
		return fmt.Errorf("load %s: %w", t.src.Table, err)
	}
	for i := range rows {
		rows[i].Value = values[rows[i].ID]
	}
	return nil
}

// Subscription is one subscriber's registration with a Tailer.
type Subscription struct {
	key    string
	lane   *lane
	rows   chan *Row // pointers: one row is shared by every subscriber
	lagged chan struct{}
}

func (t *Tailer) subscribe(key string) (*Subscription, changelog.Cursor) {
	l := &t.keyed
	if key == "" {
		l = &t.every
	}
	s := &Subscription{key: key, lane: l, rows: make(chan *Row, SubscriberBuffer), lagged: make(chan struct{})}
	t.mu.Lock()
	defer t.mu.Unlock()
	if l.subs[key] == nil {
		l.subs[key] = map[*Subscription]struct{}{}
	}
	l.subs[key][s] = struct{}{}
	return s, l.pos
}

func (t *Tailer) unsubscribe(s *Subscription) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.drop(s)
}

// Head returns the Tailer's position: the last row, or head, its fan-out
// to the subscribers of keys has passed.
func (t *Tailer) Head() changelog.Cursor {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.keyed.pos
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
	ks := oneKey(key)
	var last changelog.Cursor
	if after != nil {
		last = *after
	} else {
		// From now on: after the last row of the key that is final now.
		// Not the fan-out's position, which may have passed a writer of
		// only this key that is still running (nobody followed it).
		head, err := t.currentHead(ctx, ks)
		if err != nil {
			return fmt.Errorf("live.Stream(%s): %w", t.src.Table, err)
		}
		last = head
	}
	retry := inFlightRetry
	for {
		sub, head := t.subscribe(key)
		// Replay (last, head] from the table. The fan-out reached head
		// reading only the keys followed then; a writer of this key
		// alone may still be running below it, so the replay ends only
		// when the read is settled through head: every row of the key up
		// to head has then been read.
		for last.Less(head) {
			p, err := t.read(ctx, last, &head, ks, pageSize)
			if err != nil {
				t.unsubscribe(sub)
				return err
			}
			for _, r := range p.rows {
				if !send(r) {
					t.unsubscribe(sub)
					return nil
				}
				last = r.Cursor
			}
			if len(p.rows) == pageSize {
				continue
			}
			if !p.waiting && p.settled(head) {
				last = head // no more rows with this key up to head
				break
			}
			select {
			case <-ctx.Done():
				t.unsubscribe(sub)
				return ctx.Err()
			case <-time.After(retry):
			}
			retry = min(2*retry, pollInterval/5)
		}
		retry = inFlightRetry
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
	p, err := t.read(ctx, after, nil, allKeys, limit)
	if err != nil {
		return nil, false, fmt.Errorf("live.Read(%s): %w", t.src.Table, err)
	}
	return p.rows, p.waiting, nil
}

// CurrentHead reads the position of the last row a reader may deliver now
// (the zero cursor for an empty log): where a new reader that wants only
// what commits from now on starts.
func (t *Tailer) CurrentHead(ctx context.Context) (changelog.Cursor, error) {
	c, err := t.currentHead(ctx, allKeys)
	if err != nil {
		return changelog.Cursor{}, fmt.Errorf("live.CurrentHead(%s): %w", t.src.Table, err)
	}
	return c, nil
}

// currentHead is the position of the last row a reader of the keys ks may
// deliver now.
func (t *Tailer) currentHead(ctx context.Context, ks keySet) (changelog.Cursor, error) {
	var (
		c  changelog.Cursor
		tx string
	)
	horizon, _, err := t.store.horizon(ctx, t.db, t.src, ks)
	if err != nil {
		return changelog.Cursor{}, err
	}
	q, args := t.store.headQuery(t.src, horizon)
	err = t.db.QueryRowContext(ctx, q, args...).Scan(&tx, &c.Seq)
	if errors.Is(err, sql.ErrNoRows) {
		return changelog.Cursor{}, nil
	}
	if err != nil {
		return changelog.Cursor{}, err
	}
	if c.Tx, err = strconv.ParseUint(tx, 10, 64); err != nil {
		return changelog.Cursor{}, fmt.Errorf("txid %q: %w", tx, err)
	}
	return c, nil
}
