// Package webhook sends membership changes and campaign activations to other
// systems: signed (Standard Webhooks), retried with backoff, in log order per
// endpoint, replayable.
//
// It is built on the logs (membership_changes, campaign_activations) and
// their gapless readers (package live). Each enabled endpoint has a sender
// (a goroutine) on each replica, woken when a log grows. It reads the
// endpoint's logs after its durable positions, only rows whose
// transaction has committed and that no running transaction can precede,
// and in one transaction writes their deliveries and advances the
// positions. So a delivery is never queued before its change commits and
// never lost after: a restart resumes from the positions. On PostgreSQL
// the endpoint's row is locked FOR UPDATE SKIP LOCKED meanwhile, so
// replicas never queue a change twice.
//
// When nothing of the endpoint is pending, the sender sends the page's
// messages straight away, in order, before that transaction writes them
// (the direct path, dispatchPage): DELIVERED, or the first that failed
// PENDING for its retry and the rest PENDING behind it. Otherwise it
// queues them PENDING, and claims the endpoint's oldest pending
// deliveries, on PostgreSQL under a lease (lease_owner, lease_until,
// taken in a short transaction that locks the rows FOR UPDATE SKIP
// LOCKED; on SQLite one process serves a file, so they are only read),
// sends them one at a time in order, and records each answer. A delivery
// that fails waits for its retry, and the endpoint's later deliveries
// wait behind it (order per endpoint); a slow or dead endpoint holds only
// its own goroutine. A replica that dies with a lease loses it when
// lease_until passes, and one that dies mid-page (direct) never wrote it:
// another replica sends again, with the same webhook-ids. The package's
// transactions write no log (changelog.WithNoLogWrites), so log readers
// never wait for them.
//
// The HTTP request is made by sender (sender.go), the one part of the
// package that uses net/http.
package webhook

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/segmentd/segmentd/changelog"
	"github.com/segmentd/segmentd/ent"
	"github.com/segmentd/segmentd/ent/campaignactivation"
	"github.com/segmentd/segmentd/ent/schema/pulid"
	"github.com/segmentd/segmentd/ent/webhookdelivery"
	"github.com/segmentd/segmentd/live"
	"github.com/segmentd/segmentd/pubsub"
	"github.com/segmentd/segmentd/service"
	"github.com/segmentd/segmentd/store"
)

// DefaultSchedule is the wait before each retry, after the attempt before
// it: the first attempt is at once, then 5 s, 5 min, 30 min, 2 h, 5 h,
// 10 h and 10 h; after the last, the delivery is FAILED.
var DefaultSchedule = []time.Duration{5 * time.Second, 5 * time.Minute, 30 * time.Minute,
	2 * time.Hour, 5 * time.Hour, 10 * time.Hour, 10 * time.Hour}

// DefaultTimeout bounds one attempt.
const DefaultTimeout = 15 * time.Second

// RotationOverlap is how long, after a rotation, deliveries carry the old
// secret's signature beside the new one's.
const RotationOverlap = 24 * time.Hour

// Topic is the broker topic signalled after deliveries are queued.
const Topic = "webhook_deliveries"

// Config is what Hooks takes besides its store and broker. Zero values
// are the defaults.
type Config struct {
	// URLs says what endpoint URLs may point at.
	URLs URLPolicy
	// Schedule is the wait before each retry (DefaultSchedule).
	Schedule []time.Duration
	// Timeout bounds one attempt (DefaultTimeout).
	Timeout time.Duration
	// Now is the clock (time.Now). Retries are due by it.
	Now func() time.Time
	// Log receives the package's logs (slog.Default()); never a body or
	// a secret.
	Log *slog.Logger
	// Owner names this process in leases; default a random id.
	Owner string
	// Poll is how often the dispatcher and idle senders look for work
	// without a wake-up (500 ms).
	Poll time.Duration
	// Batch is how many deliveries a sender claims at once (500).
	Batch int
	// Gather is the least time between two dispatch rounds (100 ms on
	// SQLite, 20 ms on PostgreSQL): the
	// changes committed meanwhile are queued together, in one transaction,
	// rather than one transaction per ingestion commit. Each transaction
	// is a commit (an fsync) and, on SQLite, a turn of the one writer that
	// ingestion waits for; the cost is up to Gather of delivery latency.
	Gather time.Duration
	// Metrics, if set, counts the attempts as they end (after their
	// transaction commits) and is told the backlog every 2 Poll.
	Metrics Metrics
}

// Metrics counts webhook delivery attempts by how they ended: DELIVERED,
// FAILED (the last retry failed) or PENDING (to be retried), and is told
// the backlog: how many deliveries of every endpoint (enabled or not) are
// PENDING in the store, in flight included. The backlog is the store's,
// so every replica reports the same figure.
type Metrics interface {
	WebhookDeliveries(status string, n int)
	WebhookBacklog(n int)
}

// counted reports n attempts that ended with status, if Metrics is set.
func (h *Hooks) counted(status string, n int) {
	if h.cfg.Metrics != nil && n > 0 {
		h.cfg.Metrics.WebhookDeliveries(status, n)
	}
}

// Hooks manages endpoints and runs the dispatcher and senders.
type Hooks struct {
	client      *ent.Client
	dialect     string
	locks       locker
	leases      bool // deliveries are leased (PostgreSQL: replicas)
	broker      pubsub.Broker
	cfg         Config
	log         *slog.Logger
	changes     *live.Tailer
	activations *live.Tailer
	send        *sender

	kick    chan struct{} // wakes the dispatcher
	mu      sync.Mutex
	workers map[pulid.ID]*worker
	wg      sync.WaitGroup
}

// New returns Hooks on st (open, migrated). Start runs them.
func New(ctx context.Context, st *store.Store, broker pubsub.Broker, cfg Config) (*Hooks, error) {
	if cfg.Schedule == nil {
		cfg.Schedule = DefaultSchedule
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Owner == "" {
		b := make([]byte, 8)
		_, _ = rand.Read(b)
		cfg.Owner = "wh-" + hex.EncodeToString(b)
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 500 * time.Millisecond
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 500
	}
	if cfg.Gather <= 0 {
		cfg.Gather = 100 * time.Millisecond
		if st.Dialect == live.Postgres {
			// Rows become readable on PostgreSQL only once no older log
			// writer runs: under steady ingestion there is mostly one,
			// and a reader that looks every 100 ms mostly finds one
			// running and waits again (commit → delivered p50 1.4 s at
			// 1,000 entries/s, against 140 ms at 5 ms, measured before
			// the horizon counted log writers only). Nor does PostgreSQL
			// have one writer for the dispatcher to take from ingestion.
			cfg.Gather = 20 * time.Millisecond
		}
	}
	if broker == nil {
		broker = pubsub.NewMemory()
	}
	locks, err := lockerFor(st.Dialect)
	if err != nil {
		return nil, fmt.Errorf("webhook.New: %w", err)
	}
	h := &Hooks{client: st.Client, dialect: st.Dialect, locks: locks, leases: st.Dialect == live.Postgres, broker: broker, cfg: cfg, log: cfg.Log,
		send: newSender(cfg.URLs, cfg.Timeout), kick: make(chan struct{}, 1), workers: map[pulid.ID]*worker{}}
	client := st.Client
	h.changes, err = live.NewTailer(ctx, st.DB, st.Dialect, service.ChangeLogSource(client), broker, cfg.Log)
	if err != nil {
		return nil, fmt.Errorf("webhook.New: %w", err)
	}
	h.activations, err = live.NewTailer(ctx, st.DB, st.Dialect, live.Source{
		Log: changelog.CampaignActivations,
		Load: func(ctx context.Context, ids []string) (map[string]any, error) {
			pids := make([]pulid.ID, len(ids))
			for i, id := range ids {
				pids[i] = pulid.ID(id)
			}
			rows, err := client.CampaignActivation.Query().Where(campaignactivation.IDIn(pids...)).
				WithCampaign().WithSegment().WithUser().WithEvent().All(ctx)
			out := make(map[string]any, len(rows))
			for _, r := range rows {
				out[string(r.ID)] = r
			}
			return out, err
		},
	}, broker, cfg.Log)
	if err != nil {
		return nil, fmt.Errorf("webhook.New: %w", err)
	}
	return h, nil
}

func (h *Hooks) now() time.Time { return h.cfg.Now().UTC().Truncate(time.Microsecond) }

// Start runs the dispatcher and the senders until ctx ends; Wait waits for
// them.
func (h *Hooks) Start(ctx context.Context) {
	h.wg.Add(2)
	go func() { defer h.wg.Done(); h.dispatchLoop(ctx) }()
	go func() { defer h.wg.Done(); h.superviseLoop(ctx) }()
}

// Wait waits for the dispatcher and senders to stop after Start's context
// ended.
func (h *Hooks) Wait() { h.wg.Wait() }

// Kick makes the dispatcher look at the logs now (after an endpoint
// changed).
func (h *Hooks) Kick() {
	select {
	case h.kick <- struct{}{}:
	default:
	}
}

// wakeWorkers wakes every sender of this process (deliveries were queued).
func (h *Hooks) wakeWorkers() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, w := range h.workers {
		w.wake()
	}
}

// dispatchLoop wakes the senders when the logs may have grown: after a
// log's notification, every Poll, and after a Kick (an endpoint changed:
// the senders are brought up to date with the endpoints first). Each
// sender reads its endpoint's logs itself (dispatchEndpoint), so that a
// slow endpoint, whose sender is busy sending, never delays another's.
func (h *Hooks) dispatchLoop(ctx context.Context) {
	w1, c1 := h.broker.Subscribe(changelog.MembershipChanges.Topic)
	defer c1()
	w2, c2 := h.broker.Subscribe(changelog.CampaignActivations.Topic)
	defer c2()
	tick := time.NewTicker(h.cfg.Poll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-w1:
		case <-w2:
		case <-tick.C:
		case <-h.kick:
			if err := h.supervise(ctx); err != nil && ctx.Err() == nil {
				h.log.Warn("webhook: endpoints", "err", err)
			}
		}
		h.wakeReaders()
	}
}

// wakeReaders tells every sender of this process that the logs may have
// grown.
func (h *Hooks) wakeReaders() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, w := range h.workers {
		w.logGrew()
	}
}

// dispatchEndpoint turns the endpoint's log rows after its positions into
// deliveries, a page at a time, until the committed end of both logs. It
// reports how many PENDING deliveries it wrote (for the claim path) and
// whether rows wait behind running transactions.
func (h *Hooks) dispatchEndpoint(ctx context.Context, w *worker) (pending int, waiting bool, err error) {
	for _, activations := range []bool{false, true} {
		for {
			n, more, wt, err := h.dispatchPage(ctx, w, activations)
			pending += n
			waiting = waiting || wt
			if err != nil {
				return pending, waiting, err
			}
			if !more {
				break
			}
		}
	}
	return pending, waiting, nil
}

// dispatchPage is how many log rows one dispatch transaction covers: the
// most live.Tailer.Read returns (a page that is not full means the end).
const dispatchPage = 500

// directBudget bounds how long one page's direct sends go on: what is not
// sent by then is queued PENDING for the claim path. On PostgreSQL the
// endpoint's row stays locked (other replicas pass it by) meanwhile.
const directBudget = time.Second

// errBusy: another replica holds the endpoint (or it changed under us).
var errBusy = errors.New("endpoint busy")

// page is one page of a log on its way to an endpoint.
type page struct {
	activations bool
	posText     string             // the position the page was read after
	next        changelog.Cursor   // the position after the page
	msgs        []*message         // its rows that match the endpoint
	at          []changelog.Cursor // each msg's position in the log
	rows        []live.Row         // the page's rows
	full        bool               // the page read was full
	rest        []live.Row         // rows after a cut (see cut)
	direct      bool               // nothing of the endpoint was pending: msgs go straight out
	seenNext    int64              // the endpoint's next_seq when direct was decided
	sent        []sentAttempt      // the direct attempts, in msgs order (a failure is last)
	counts      map[string]int     // attempts by how they ended, for Metrics
	pending     int                // PENDING deliveries written
	disabled    bool               // a 410 disabled the endpoint
	allSettled  bool               // every msg was written DELIVERED
}

// sentAttempt is one direct attempt and when it ended.
type sentAttempt struct {
	attempt
	at time.Time
}

// dispatchPage reads one page of a log after the endpoint's position and
// writes it, in one transaction that holds the endpoint's row, as
// deliveries, moving the position past the page. more reports a full page.
//
// When nothing of the endpoint is PENDING (no retry waits, no claim is in
// flight), the page's messages are sent at once, in order, until one fails
// (the direct path), and written with what they came to: DELIVERED, the
// failed one PENDING for its retry (or FAILED), the rest PENDING, so the
// claim path (deliverRound) goes on from there. That spares a sent message
// two of its three writes (queued, leased, recorded). The guarantees are
// the claim path's: the position moves only when the page's deliveries are
// written, so a crash before sends the page again with the same
// webhook-ids (at least once); order per endpoint holds since nothing
// older is pending and the sends stop at the first failure; and on
// PostgreSQL the endpoint's row is locked (FOR UPDATE SKIP LOCKED) from
// the check to the write, so no other replica sends or queues these rows
// meanwhile. That transaction writes no log (changelog.WithNoLogWrites),
// so holding it through the sends delays no log reader. On SQLite one process serves a file and one sender per endpoint
// reads its log, so the sends run outside a transaction (SQLite's one
// writer stays free for ingestion) and the write checks that the
// position did not move.
func (h *Hooks) dispatchPage(ctx context.Context, w *worker, activations bool) (pending int, more, waiting bool, err error) {
	id := w.id
	ep, err := h.client.WebhookEndpoint.Get(ctx, id)
	if err != nil {
		if ent.IsNotFound(err) {
			return 0, false, false, nil
		}
		return 0, false, false, fmt.Errorf("webhook: endpoint: %w", err)
	}
	if !ep.Enabled {
		return 0, false, false, nil
	}
	f := newFilter(ep)
	p := &page{activations: activations, posText: ep.ChangesPosition}
	tailer := h.changes
	if activations {
		p.posText, tailer = ep.ActivationsPosition, h.activations
	}
	pos, err := changelog.ParseCursor(p.posText)
	if err != nil {
		pos = changelog.Cursor{}
	}
	p.next = pos
	var rows []live.Row
	if !f.wantsLog(activations) {
		w.ahead[logIndex(activations)] = readAhead{}
		// Not a topic of the endpoint: skip to the end, so that adding the
		// topic later starts from then, not from the log's beginning.
		if p.next, err = tailer.CurrentHead(ctx); err != nil {
			return 0, false, false, err
		}
		if !pos.Less(p.next) {
			return 0, false, false, nil
		}
	} else {
		ra := &w.ahead[logIndex(activations)]
		if len(ra.rows) > 0 && ra.from == p.posText {
			// The rest of a page a direct send cut short.
			rows, more = ra.rows, ra.full
		} else {
			rows, waiting, err = tailer.Read(ctx, pos, dispatchPage)
			if err != nil {
				return 0, false, false, err
			}
			more = len(rows) == dispatchPage
		}
		*ra = readAhead{}
		if len(rows) == 0 {
			return 0, false, waiting, nil
		}
		p.rows = rows
		for _, r := range rows {
			p.next = r.Cursor
			var m *message
			switch v := r.Value.(type) {
			case *ent.MembershipChange:
				m = changeMessage(v, r.Cursor)
			case *ent.CampaignActivation:
				m = activationMessage(v, r.Cursor)
			}
			if m != nil && f.match(m) {
				p.msgs = append(p.msgs, m)
				p.at = append(p.at, r.Cursor)
			}
		}
	}
	p.full = more
	if h.leases {
		// The transaction outlives a stop (ctx), so that what was sent is
		// written; its statements do not.
		err = h.inTx(context.WithoutCancel(ctx), func(tx *ent.Tx) error {
			cur, err := h.locks.endpoint(ctx, tx, id)
			if err != nil {
				return err
			}
			if err := p.unmoved(cur); err != nil {
				return err
			}
			if err := h.decideDirect(ctx, tx.WebhookDelivery.Query(), cur, w, p); err != nil {
				return err
			}
			if !p.direct {
				return h.writePage(ctx, tx, cur, p, nil)
			}
			// The page's rows are written as the answers come, while the
			// next are sent: the statements overlap the requests. They
			// outlive a stop (ctx), so that what was sent is written.
			more = p.cut() || more
			wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), directBudget+2*h.cfg.Timeout+5*time.Second)
			defer cancel()
			sctx, stop := context.WithCancel(ctx)
			defer stop()
			answers := make(chan sentAttempt, len(p.msgs))
			sent := make(chan struct{})
			go func() {
				defer close(sent)
				defer close(answers)
				h.sendDirect(sctx, cur, p.msgs, answers)
			}()
			err = h.writePage(wctx, tx, cur, p, answers)
			stop() // on an error, the rest is not sent; either way, no send outlives the page
			<-sent
			return err
		})
	} else {
		if err := h.decideDirect(ctx, h.client.WebhookDelivery.Query(), ep, w, p); err != nil {
			return 0, false, waiting, fmt.Errorf("webhook: queue: %w", err)
		}
		var answers chan sentAttempt
		if p.direct {
			more = p.cut() || more
			answers = make(chan sentAttempt, len(p.msgs))
			h.sendDirect(ctx, ep, p.msgs, answers)
			close(answers)
		}
		wctx, cancel := writeContext(ctx)
		defer cancel()
		err = h.inTx(wctx, func(tx *ent.Tx) error {
			cur, err := h.locks.endpoint(wctx, tx, id)
			if err != nil {
				return err
			}
			if len(answers) > 0 && cur != nil && !cur.Enabled {
				// Disabled by hand while we sent: what was sent is still
				// written, so that it is not sent again.
				cur.Enabled = true
			}
			if err := p.unmoved(cur); err != nil {
				return err
			}
			return h.writePage(wctx, tx, cur, p, answers)
		})
	}
	if errors.Is(err, errBusy) {
		if len(p.sent) > 0 {
			h.log.Debug("webhook: sent, but the endpoint moved meanwhile", "endpoint", id, "deliveries", len(p.sent))
		}
		return 0, false, waiting, nil
	}
	if err != nil {
		return 0, false, waiting, fmt.Errorf("webhook: queue: %w", err)
	}
	for status, n := range p.counts {
		h.counted(status, n)
	}
	if p.disabled {
		h.log.Warn("webhook: endpoint disabled: it answered 410 Gone", "endpoint", id)
	}
	if p.allSettled {
		w.floor = max(w.floor, p.seenNext+int64(len(p.msgs))-1)
		w.settledNext = p.seenNext + int64(len(p.msgs))
	}
	if p.rest != nil {
		w.ahead[logIndex(activations)] = readAhead{from: p.next.String(), rows: p.rest, full: p.full}
	}
	return p.pending, more, waiting, nil
}

// cut shortens a direct page to its first recordEvery messages, and its
// position to the last of them, as the claim path records its answers:
// a crash sends again at most that many answered messages. It reports
// whether it cut.
func (p *page) cut() bool {
	if len(p.msgs) <= recordEvery {
		return false
	}
	p.next = p.at[recordEvery-1]
	p.msgs, p.at = p.msgs[:recordEvery], p.at[:recordEvery]
	for i, r := range p.rows {
		if r.Cursor == p.next {
			p.rest = p.rows[i+1:]
			break
		}
	}
	return true
}

// readAhead is the rest of a log page that a direct send cut short
// (page.cut), kept by the worker so that the next page starts from it
// instead of reading those rows again: log rows do not change once
// readable. from is the position it follows; it serves only while the
// endpoint's position is still there.
type readAhead struct {
	from string
	rows []live.Row
	full bool // the page read was full: the log may have more after it
}

func logIndex(activations bool) int {
	if activations {
		return 1
	}
	return 0
}

// writeContext is ctx, or, once ctx has ended (the process stops), a
// short context of its own: what was sent is written before the store
// closes.
func writeContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if ctx.Err() == nil {
		return ctx, func() {}
	}
	return context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
}

// unmoved is errBusy unless cur is the endpoint, enabled, at the position
// the page was read after.
func (p *page) unmoved(cur *ent.WebhookEndpoint) error {
	if cur == nil || !cur.Enabled {
		return errBusy
	}
	if (p.activations && cur.ActivationsPosition != p.posText) || (!p.activations && cur.ChangesPosition != p.posText) {
		return errBusy // another replica moved it
	}
	return nil
}

// decideDirect sets p.direct when the page has messages and none of the
// endpoint's deliveries is PENDING after the worker's floor (none below it
// is).
//
// When the worker's last write left every delivery settled and no
// delivery was numbered since (next_seq is where that write left it), none
// can be pending: deliveries only become PENDING as they are created.
func (h *Hooks) decideDirect(ctx context.Context, q *ent.WebhookDeliveryQuery, ep *ent.WebhookEndpoint, w *worker, p *page) error {
	if len(p.msgs) == 0 {
		return nil
	}
	if w.settledNext > 0 && ep.NextSeq == w.settledNext {
		p.direct, p.seenNext = true, ep.NextSeq
		return nil
	}
	busy, err := pendingAfter(q, ep.ID, w.floor).Exist(ctx)
	if err != nil {
		return err
	}
	p.direct, p.seenNext = !busy, ep.NextSeq
	return nil
}

// sendDirect sends msgs to ep in order until one fails, ctx ends or
// directBudget has passed, and puts each attempt made into out (an
// attempt cut short by ctx is not one); out has room for every msg.
func (h *Hooks) sendDirect(ctx context.Context, ep *ent.WebhookEndpoint, msgs []*message, out chan<- sentAttempt) {
	start := time.Now()
	for i, m := range msgs {
		if i > 0 && time.Since(start) > directBudget {
			return
		}
		a := h.attempt(ctx, ep, m.webhookID, m.payload)
		if ctx.Err() != nil {
			return
		}
		out <- sentAttempt{attempt: a, at: h.now()}
		if !a.ok() {
			return
		}
	}
}

// writePage writes p's messages as deliveries of cur, numbered from
// cur.NextSeq: the direct attempts (from answers, in msgs order, until it
// is closed; nil when none were made) with what they came to (as record
// would have), the rest PENDING and due now; and moves the position.
// While answers come, rows are written in small batches as they do.
func (h *Hooks) writePage(ctx context.Context, tx *ent.Tx, cur *ent.WebhookEndpoint, p *page, answers <-chan sentAttempt) error {
	now := h.now()
	p.counts, p.pending, p.disabled, p.sent = map[string]int{}, 0, false, nil
	delivered := 0
	batch := 200
	if answers != nil {
		batch = 25
	}
	b := make([]*ent.WebhookDeliveryCreate, 0, min(len(p.msgs), batch))
	flush := func() error {
		if len(b) == 0 {
			return nil
		}
		err := tx.WebhookDelivery.CreateBulk(b...).Exec(ctx)
		b = b[:0]
		return err
	}
	for i, m := range p.msgs {
		if answers != nil {
			if s, ok := <-answers; ok {
				p.sent = append(p.sent, s)
			} else {
				answers = nil // no more attempts: the rest is PENDING
			}
		}
		c := tx.WebhookDelivery.Create().SetEndpointRef(cur.ID).SetSeq(cur.NextSeq + int64(i)).
			SetWebhookID(m.webhookID).SetTopic(m.topic).SetPayload(m.payload).SetUserRef(m.user).SetCreatedAt(now)
		if i >= len(p.sent) {
			c.SetNextAttemptAt(now)
			p.pending++
		} else {
			s := p.sent[i]
			c.SetAttempts(1)
			if s.status != 0 {
				c.SetLastStatusCode(s.status)
			}
			switch {
			case s.ok():
				c.SetStatus(webhookdelivery.StatusDELIVERED).SetDeliveredAt(s.at)
				delivered++
			case s.status == 410:
				c.SetLastError(s.err).SetNextAttemptAt(s.at)
				p.pending++
				p.disabled = true
			case len(h.cfg.Schedule) == 0:
				c.SetLastError(s.err).SetStatus(webhookdelivery.StatusFAILED)
				p.counts[string(webhookdelivery.StatusFAILED)]++
			default:
				wait := h.cfg.Schedule[0]
				if s.retryAfter > 0 {
					wait = s.retryAfter
				}
				c.SetLastError(s.err).SetNextAttemptAt(s.at.Add(wait)) // after the attempt ended
				p.pending++
				p.counts[string(webhookdelivery.StatusPENDING)]++
			}
			if !s.ok() {
				h.log.Info("webhook: attempt failed", "endpoint", cur.ID, "webhook_id", m.webhookID, "attempt", 1,
					"status", s.status, "error", s.err)
			}
		}
		b = append(b, c)
		if len(b) == batch {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := flush(); err != nil {
		return err
	}
	p.counts[string(webhookdelivery.StatusDELIVERED)] = delivered
	p.allSettled = p.direct && delivered == len(p.msgs) && cur.NextSeq == p.seenNext
	u := tx.WebhookEndpoint.UpdateOneID(cur.ID).SetNextSeq(cur.NextSeq + int64(len(p.msgs)))
	if p.activations {
		u.SetActivationsPosition(p.next.String())
	} else {
		u.SetChangesPosition(p.next.String())
	}
	if p.disabled {
		u.SetEnabled(false).SetDisabledReason(fmt.Sprintf("the receiver answered 410 Gone at %s", now.Format(time.RFC3339)))
	}
	return u.Exec(ctx)
}

// queue writes msgs as new deliveries of ep, numbered from ep.NextSeq+skip.
func (h *Hooks) queue(ctx context.Context, tx *ent.Tx, ep *ent.WebhookEndpoint, msgs []*message, skip int) error {
	if len(msgs) == 0 {
		return nil
	}
	now := h.now()
	for start := 0; start < len(msgs); start += 200 {
		end := min(start+200, len(msgs))
		b := make([]*ent.WebhookDeliveryCreate, 0, end-start)
		for i := start; i < end; i++ {
			m := msgs[i]
			b = append(b, tx.WebhookDelivery.Create().SetEndpointRef(ep.ID).SetSeq(ep.NextSeq+int64(skip+i)).
				SetWebhookID(m.webhookID).SetTopic(m.topic).SetPayload(m.payload).SetUserRef(m.user).
				SetCreatedAt(now).SetNextAttemptAt(now))
		}
		if err := tx.WebhookDelivery.CreateBulk(b...).Exec(ctx); err != nil {
			return err
		}
	}
	return nil
}

// inTx runs fn in a transaction, committed if it returns nil.
func (h *Hooks) inTx(ctx context.Context, fn func(tx *ent.Tx) error) error {
	// They write no log: on PostgreSQL log readers pass them by, so a
	// dispatch that holds the endpoint's row while it sends delays none.
	tx, err := h.client.Tx(changelog.WithNoLogWrites(ctx))
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer func() {
		if v := recover(); v != nil {
			_ = tx.Rollback()
			panic(v)
		}
	}()
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}
