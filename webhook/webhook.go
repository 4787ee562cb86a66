// Package webhook sends membership changes and campaign activations to other
// systems: signed (Standard Webhooks), retried with backoff, in log order per
// endpoint, replayable.
//
// It is built on the logs (membership_changes, campaign_activations) and
// their gapless readers (package live): the dispatcher reads each enabled
// endpoint's logs after its durable positions, only rows whose transaction
// has committed and that no running transaction can precede, and in one
// transaction writes their deliveries and advances the positions. So a
// delivery is never queued before its change commits and never lost after:
// a restart resumes from the positions. On PostgreSQL the endpoint's row is
// locked FOR UPDATE SKIP LOCKED while it is dispatched, so replicas never
// queue a change twice.
//
// Senders, one goroutine per enabled endpoint on each replica, claim the
// endpoint's oldest pending deliveries, on PostgreSQL under a lease
// (lease_owner, lease_until, taken in a short transaction that locks the
// rows FOR UPDATE SKIP LOCKED; on SQLite one process serves a file, so
// they are only read), send them one at a time in order, and record each
// answer. A delivery that fails waits for its retry, and the endpoint's
// later deliveries wait behind it (order per endpoint); a slow or dead
// endpoint holds only its own goroutine. A replica that dies with a lease
// loses it when lease_until passes, and another replica sends again, with
// the same webhook-id.
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

// dispatchLoop turns committed log rows into deliveries, endpoint by
// endpoint, after every wake-up and poll.
func (h *Hooks) dispatchLoop(ctx context.Context) {
	w1, c1 := h.broker.Subscribe(changelog.MembershipChanges.Topic)
	defer c1()
	w2, c2 := h.broker.Subscribe(changelog.CampaignActivations.Topic)
	defer c2()
	timer := time.NewTimer(0)
	defer timer.Stop()
	var last time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-w1:
		case <-w2:
		case <-h.kick:
		case <-timer.C:
		}
		if wait := h.cfg.Gather - time.Since(last); wait > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
		}
		last = time.Now()
		waiting, err := h.DispatchAll(ctx)
		next := h.cfg.Poll
		if err != nil && ctx.Err() == nil {
			h.log.Warn("webhook: dispatch", "err", err)
		} else if waiting {
			next = 5 * time.Millisecond
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

// DispatchAll queues the deliveries of every enabled endpoint up to the
// committed end of the logs. It reports whether rows wait behind running
// transactions.
func (h *Hooks) DispatchAll(ctx context.Context) (waiting bool, err error) {
	eps, err := h.client.WebhookEndpoint.Query().Where(enabledIs(true)).All(ctx)
	if err != nil {
		return false, fmt.Errorf("webhook.DispatchAll: %w", err)
	}
	queued := 0
	for _, ep := range eps {
		n, w, err := h.dispatchEndpoint(ctx, ep)
		queued += n
		waiting = waiting || w
		if err != nil {
			return waiting, err
		}
	}
	if queued > 0 {
		h.log.Debug("webhook: queued", "deliveries", queued)
		h.wakeWorkers()
		h.broker.Notify(Topic)
	}
	return waiting, nil
}

// dispatchEndpoint queues ep's deliveries from both logs, a page at a
// time, until the committed end.
func (h *Hooks) dispatchEndpoint(ctx context.Context, ep *ent.WebhookEndpoint) (queued int, waiting bool, err error) {
	for _, activations := range []bool{false, true} {
		for {
			n, more, w, err := h.dispatchPage(ctx, ep.ID, activations)
			queued += n
			waiting = waiting || w
			if err != nil || !more {
				if err != nil {
					return queued, waiting, err
				}
				break
			}
		}
	}
	return queued, waiting, nil
}

// dispatchPage is how many log rows one dispatch transaction covers: the
// most live.Tailer.Read returns (a page that is not full means the end).
const dispatchPage = 500

// errBusy: another replica holds the endpoint (or it changed under us).
var errBusy = errors.New("endpoint busy")

// dispatchPage reads one page of a log after the endpoint's position and,
// in one transaction that holds the endpoint's row, queues the matching
// rows and moves the position past the page. more reports a full page.
func (h *Hooks) dispatchPage(ctx context.Context, id pulid.ID, activations bool) (queued int, more, waiting bool, err error) {
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
	posText := ep.ChangesPosition
	tailer := h.changes
	if activations {
		posText, tailer = ep.ActivationsPosition, h.activations
	}
	pos, err := changelog.ParseCursor(posText)
	if err != nil {
		pos = changelog.Cursor{}
	}
	var (
		rows []live.Row
		next = pos
		msgs []*message
	)
	if !f.wantsLog(activations) {
		// Not a topic of the endpoint: skip to the end, so that adding the
		// topic later starts from then, not from the log's beginning.
		if next, err = tailer.CurrentHead(ctx); err != nil {
			return 0, false, false, err
		}
		if !pos.Less(next) {
			return 0, false, false, nil
		}
	} else {
		rows, waiting, err = tailer.Read(ctx, pos, dispatchPage)
		if err != nil {
			return 0, false, false, err
		}
		if len(rows) == 0 {
			return 0, false, waiting, nil
		}
		for _, r := range rows {
			next = r.Cursor
			var m *message
			switch v := r.Value.(type) {
			case *ent.MembershipChange:
				m = changeMessage(v, r.Cursor)
			case *ent.CampaignActivation:
				m = activationMessage(v, r.Cursor)
			}
			if m != nil && f.match(m) {
				msgs = append(msgs, m)
			}
		}
	}
	err = h.inTx(ctx, func(tx *ent.Tx) error {
		cur, err := h.locks.endpoint(ctx, tx, id)
		if err != nil {
			return err
		}
		if cur == nil || !cur.Enabled {
			return errBusy
		}
		if (activations && cur.ActivationsPosition != posText) || (!activations && cur.ChangesPosition != posText) {
			return errBusy // another replica moved it
		}
		if err := h.queue(ctx, tx, cur, msgs, 0); err != nil {
			return err
		}
		u := tx.WebhookEndpoint.UpdateOneID(id).SetNextSeq(cur.NextSeq + int64(len(msgs)))
		if activations {
			u.SetActivationsPosition(next.String())
		} else {
			u.SetChangesPosition(next.String())
		}
		return u.Exec(ctx)
	})
	if errors.Is(err, errBusy) {
		return 0, false, waiting, nil
	}
	if err != nil {
		return 0, false, waiting, fmt.Errorf("webhook: queue: %w", err)
	}
	return len(msgs), len(rows) == dispatchPage, waiting, nil
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
	tx, err := h.client.Tx(ctx)
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
