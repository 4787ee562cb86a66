package webhook

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/segmentd/segmentd/ent"
	"github.com/segmentd/segmentd/ent/predicate"
	"github.com/segmentd/segmentd/ent/schema/jsonmap"
	"github.com/segmentd/segmentd/ent/schema/pulid"
	"github.com/segmentd/segmentd/ent/webhookdelivery"
	"github.com/segmentd/segmentd/ent/webhookendpoint"
)

// worker reads and sends one endpoint's deliveries on this process.
type worker struct {
	id     pulid.ID
	wakeCh chan struct{} // deliveries may be due (queued, replayed)
	logCh  chan struct{} // the logs may have grown
	cancel context.CancelFunc
	done   chan struct{}
	// floor: every delivery of the endpoint up to this seq is settled
	// (this worker recorded it so); see pendingAfter.
	floor int64
	// settledNext: the endpoint's next_seq after this worker's last
	// write that left every delivery settled (see decideDirect); 0 if none.
	settledNext int64
	// ahead: per log (changes, activations), rows read and not yet
	// dispatched (see readAhead).
	ahead [2]readAhead
}

func (w *worker) wake() {
	select {
	case w.wakeCh <- struct{}{}:
	default:
	}
}

func (w *worker) logGrew() {
	select {
	case w.logCh <- struct{}{}:
	default:
	}
}

// superviseLoop keeps one worker per enabled endpoint.
func (h *Hooks) superviseLoop(ctx context.Context) {
	wake, cancel := h.broker.Subscribe(Topic)
	defer cancel()
	tick := time.NewTicker(2 * h.cfg.Poll)
	defer tick.Stop()
	for {
		if err := h.supervise(ctx); err != nil && ctx.Err() == nil {
			h.log.Warn("webhook: endpoints", "err", err)
		}
		if err := h.reportBacklog(ctx); err != nil && ctx.Err() == nil {
			h.log.Warn("webhook: backlog", "err", err)
		}
		select {
		case <-ctx.Done():
			h.mu.Lock()
			ws := make([]*worker, 0, len(h.workers))
			for _, w := range h.workers {
				ws = append(ws, w)
			}
			h.mu.Unlock()
			for _, w := range ws {
				<-w.done
			}
			return
		case <-wake:
			h.wakeWorkers()
		case <-tick.C:
		}
	}
}

// reportBacklog tells Metrics how many deliveries are PENDING. It counts
// endpoint by endpoint, so that each count is a range of the (endpoint_ref,
// status, seq) index, not a scan of every delivery ever sent.
func (h *Hooks) reportBacklog(ctx context.Context) error {
	if h.cfg.Metrics == nil {
		return nil
	}
	ids, err := h.client.WebhookEndpoint.Query().IDs(ctx)
	if err != nil {
		return err
	}
	total := 0
	for _, id := range ids {
		n, err := h.client.WebhookDelivery.Query().Where(webhookdelivery.EndpointRef(id),
			webhookdelivery.StatusEQ(webhookdelivery.StatusPENDING)).Count(ctx)
		if err != nil {
			return err
		}
		total += n
	}
	h.cfg.Metrics.WebhookBacklog(total)
	return nil
}

func (h *Hooks) supervise(ctx context.Context) error {
	ids, err := h.client.WebhookEndpoint.Query().Where(webhookendpoint.Enabled(true)).IDs(ctx)
	if err != nil {
		return err
	}
	want := map[pulid.ID]bool{}
	for _, id := range ids {
		want[id] = true
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for id, w := range h.workers {
		if !want[id] {
			w.cancel()
			delete(h.workers, id)
		}
	}
	if ctx.Err() != nil {
		return nil // stopping: superviseLoop waits for the workers it knows
	}
	for id := range want {
		if h.workers[id] == nil {
			wctx, cancel := context.WithCancel(ctx)
			w := &worker{id: id, wakeCh: make(chan struct{}, 1), logCh: make(chan struct{}, 1), cancel: cancel, done: make(chan struct{})}
			h.workers[id] = w
			go func() { defer close(w.done); h.runWorker(wctx, w) }()
		}
	}
	return nil
}

// runWorker serves one endpoint: after the logs grew it reads them
// (dispatchEndpoint: sending straight away when nothing is pending, else
// queueing), at most once a Gather; when deliveries may be due it claims
// and sends them (deliverRound).
func (h *Hooks) runWorker(ctx context.Context, w *worker) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	read := true          // a read of the logs is owed
	claimAt := time.Now() // when the next claim is due
	var lastRead time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.wakeCh:
			claimAt = time.Now()
		case <-w.logCh:
			read = true
		case <-timer.C:
		}
		readIn := time.Duration(-1) // when the owed read is due, if one is
		if read {
			if g := h.cfg.Gather - time.Since(lastRead); g > 0 {
				// The rows committed meanwhile are read together, in one
				// transaction, rather than one transaction per ingestion
				// commit.
				readIn = g
			} else {
				read, lastRead = false, time.Now()
				queued, waiting, err := h.dispatchEndpoint(ctx, w)
				if err != nil && ctx.Err() == nil {
					h.log.Warn("webhook: dispatch", "endpoint", w.id, "err", err)
					read, readIn = true, time.Second
				} else if waiting {
					read, readIn = true, 5*time.Millisecond
				}
				if queued > 0 {
					// Other replicas' senders may share the claims.
					claimAt = time.Now()
					h.broker.Notify(Topic)
				}
			}
		}
		if !time.Now().Before(claimAt) {
			wait, err := h.deliverRound(ctx, w)
			if err != nil && ctx.Err() == nil {
				h.log.Warn("webhook: deliver", "endpoint", w.id, "err", err)
				wait = time.Second
			}
			claimAt = time.Now().Add(wait)
		}
		next := time.Until(claimAt)
		if readIn >= 0 {
			next = min(next, readIn)
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(max(next, 0))
	}
}

// lease is how long a claim holds deliveries: long enough for an attempt.
func (h *Hooks) lease() time.Duration { return 2*h.cfg.Timeout + 5*time.Second }

// idle is how long a sender with nothing due waits for a wake-up.
func (h *Hooks) idle() time.Duration { return 4 * h.cfg.Poll }

// deliverRound claims the endpoint's next due deliveries, in order, sends
// them one at a time until one fails, and records each answer. It returns
// how long to wait before the next round.
func (h *Hooks) deliverRound(ctx context.Context, w *worker) (time.Duration, error) {
	id := w.id
	ep, claimed, until, wait, err := h.claim(ctx, id, w.floor)
	if err != nil || len(claimed) == 0 {
		return wait, err
	}
	// Answers of 2xx are recorded together, every recordEvery, at the end
	// of the batch, or before a failure is: a crash before that sends them
	// again, with their webhook-ids (at least once).
	var ok []delivered
	flush := func() error {
		n, err := h.recordDelivered(ctx, ok)
		if err == nil && n == len(ok) && n > 0 {
			w.floor = max(w.floor, ok[n-1].seq)
		}
		ok = ok[:0]
		return err
	}
	for i, d := range claimed {
		if until.Sub(h.now()) < h.cfg.Timeout+2*time.Second {
			if err := flush(); err != nil {
				return time.Second, err
			}
			return 0, h.release(ctx, claimed[i:])
		}
		a := h.attempt(ctx, ep, d.WebhookID, d.Payload)
		if ctx.Err() != nil {
			// Stopping: record what was answered (the store closes
			// after the senders end); the rest waits for its lease to
			// run out, and the next owner sends it again.
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			defer cancel()
			n, err := h.recordDelivered(sctx, ok)
			if err == nil && n == len(ok) && n > 0 {
				w.floor = max(w.floor, ok[n-1].seq)
			}
			return 0, nil
		}
		if a.ok() {
			ok = append(ok, delivered{id: d.ID, seq: d.Seq, status: a.status, at: h.now()})
			if len(ok) >= recordEvery {
				if err := flush(); err != nil {
					return time.Second, err
				}
			}
			continue
		}
		if err := flush(); err != nil {
			return time.Second, err
		}
		next, err := h.record(ctx, ep, d, a)
		if err != nil {
			return time.Second, err
		}
		if err := h.release(ctx, claimed[i+1:]); err != nil {
			return time.Second, err
		}
		if next < 0 {
			return h.idle(), nil // disabled
		}
		return max(next, 0), nil
	}
	if err := flush(); err != nil {
		return time.Second, err
	}
	h.log.Debug("webhook: sent", "endpoint", id, "deliveries", len(claimed))
	return 0, nil
}

// recordEvery is how many 2xx answers a sender records in one
// transaction, at most: a claim is bigger (Batch), so that claims are few,
// while a crash sends again at most this many answered messages (and the
// rest of the claim, not sent yet).
const recordEvery = 100

// delivered is a 2xx answer not yet recorded.
type delivered struct {
	id     pulid.ID
	seq    int64
	status int
	at     time.Time
}

// recordDelivered marks deliveries DELIVERED, one statement per status
// code, in one transaction; a delivery whose lease passed to another
// sender meanwhile is left to it.
func (h *Hooks) recordDelivered(ctx context.Context, ds []delivered) (int, error) {
	if len(ds) == 0 {
		return 0, nil
	}
	byStatus := map[int][]pulid.ID{}
	for _, d := range ds {
		byStatus[d.status] = append(byStatus[d.status], d.id)
	}
	at := ds[len(ds)-1].at
	total := 0
	err := h.inTx(ctx, func(tx *ent.Tx) error {
		for status, ids := range byStatus {
			n, err := tx.WebhookDelivery.Update().
				Where(append(h.mine(), webhookdelivery.IDIn(ids...))...).
				AddAttempts(1).ClearLeaseOwner().ClearLeaseUntil().SetLastStatusCode(status).
				SetStatus(webhookdelivery.StatusDELIVERED).SetDeliveredAt(at).ClearLastError().ClearNextAttemptAt().
				Save(ctx)
			if err != nil {
				return err
			}
			total += n
		}
		return nil
	})
	if err == nil {
		h.counted(string(webhookdelivery.StatusDELIVERED), total)
	}
	return total, err
}

// claim leases the endpoint's oldest pending deliveries that are due, up
// to Batch, in order, only if the oldest is among them: a later one never
// goes before an earlier one.
func (h *Hooks) claim(ctx context.Context, id pulid.ID, floor int64) (ep *ent.WebhookEndpoint, claimed []*ent.WebhookDelivery, until time.Time, wait time.Duration, err error) {
	wait = h.idle()
	if !h.leases {
		return h.claimUnleased(ctx, id, floor)
	}
	err = h.inTx(ctx, func(tx *ent.Tx) error {
		ep, err = tx.WebhookEndpoint.Get(ctx, id)
		if ent.IsNotFound(err) {
			return nil
		}
		if err != nil || !ep.Enabled {
			return err
		}
		heads, err := h.locks.heads(ctx, tx, id, floor, h.cfg.Batch)
		if err != nil || len(heads) == 0 {
			return err
		}
		first, err := pendingAfter(tx.WebhookDelivery.Query(), id, floor).
			Order(ent.Asc(webhookdelivery.FieldSeq)).Limit(1).Select(webhookdelivery.FieldSeq).Ints(ctx)
		if err != nil {
			return err
		}
		if len(first) == 0 || int64(first[0]) != heads[0].Seq {
			wait = 20 * time.Millisecond // the oldest is being claimed elsewhere
			return nil
		}
		now := h.now()
		var ids []pulid.ID
		for i, d := range heads {
			if d.LeaseUntil != nil && d.LeaseUntil.After(now) && (d.LeaseOwner == nil || *d.LeaseOwner != h.cfg.Owner) {
				if i == 0 {
					wait = d.LeaseUntil.Sub(now)
				}
				break
			}
			if d.NextAttemptAt != nil && d.NextAttemptAt.After(now) {
				if i == 0 {
					wait = d.NextAttemptAt.Sub(now)
				}
				break
			}
			claimed = append(claimed, d)
			ids = append(ids, d.ID)
		}
		if len(ids) == 0 {
			return nil
		}
		until = now.Add(h.lease())
		return tx.WebhookDelivery.Update().Where(webhookdelivery.IDIn(ids...)).
			SetLeaseOwner(h.cfg.Owner).SetLeaseUntil(until).Exec(ctx)
	})
	if err != nil {
		return nil, nil, time.Time{}, time.Second, fmt.Errorf("webhook: claim: %w", err)
	}
	return ep, claimed, until, wait, nil
}

// claimUnleased is claim on SQLite, where one process serves a file
// (store.LockForServer) and runs one sender per endpoint: nothing else can
// send these deliveries, so they are read, not leased, outside a
// transaction. That spares SQLite's one writer a transaction (and a
// commit, with its fsync) per round, which ingestion would wait for; and
// a lease left by an earlier process, dead since, is not waited out.
func (h *Hooks) claimUnleased(ctx context.Context, id pulid.ID, floor int64) (ep *ent.WebhookEndpoint, claimed []*ent.WebhookDelivery, until time.Time, wait time.Duration, err error) {
	wait = h.idle()
	ep, err = h.client.WebhookEndpoint.Get(ctx, id)
	if ent.IsNotFound(err) {
		return nil, nil, time.Time{}, wait, nil
	}
	if err != nil {
		return nil, nil, time.Time{}, time.Second, fmt.Errorf("webhook: claim: %w", err)
	}
	if !ep.Enabled {
		return ep, nil, time.Time{}, wait, nil
	}
	heads, err := pendingAfter(h.client.WebhookDelivery.Query(), id, floor).
		Order(ent.Asc(webhookdelivery.FieldSeq)).Limit(h.cfg.Batch).All(ctx)
	if err != nil {
		return nil, nil, time.Time{}, time.Second, fmt.Errorf("webhook: claim: %w", err)
	}
	now := h.now()
	for i, d := range heads {
		if d.NextAttemptAt != nil && d.NextAttemptAt.After(now) {
			if i == 0 {
				wait = d.NextAttemptAt.Sub(now)
			}
			break
		}
		claimed = append(claimed, d)
	}
	return ep, claimed, now.Add(h.lease()), wait, nil
}

// mine narrows an update of deliveries to those this process holds: on
// PostgreSQL those it leased (a lease that ran out may have passed to
// another replica); on SQLite, with no leases, all.
func (h *Hooks) mine() []predicate.WebhookDelivery {
	if !h.leases {
		return nil
	}
	return []predicate.WebhookDelivery{webhookdelivery.LeaseOwner(h.cfg.Owner)}
}

// release gives up the leases of deliveries not sent.
func (h *Hooks) release(ctx context.Context, ds []*ent.WebhookDelivery) error {
	if len(ds) == 0 || !h.leases {
		return nil
	}
	ids := make([]pulid.ID, len(ds))
	for i, d := range ds {
		ids[i] = d.ID
	}
	return h.client.WebhookDelivery.Update().
		Where(webhookdelivery.IDIn(ids...), webhookdelivery.LeaseOwner(h.cfg.Owner)).
		ClearLeaseOwner().ClearLeaseUntil().Exec(ctx)
}

// secrets are the keys that sign now: the current one, and the previous
// one within RotationOverlap of a rotation.
func (h *Hooks) secrets(ep *ent.WebhookEndpoint) []string {
	s := []string{ep.Secret}
	if ep.PreviousSecret != nil && ep.PreviousSecretUntil != nil && ep.PreviousSecretUntil.After(h.now()) {
		s = append(s, *ep.PreviousSecret)
	}
	return s
}

// attempt sends the message webhookID (payload) to ep once.
func (h *Hooks) attempt(ctx context.Context, ep *ent.WebhookEndpoint, webhookID string, payload jsonmap.Map) attempt {
	now := h.cfg.Now()
	b, err := body(string(ep.Format), webhookID, payload, now)
	if err != nil {
		return attempt{err: "could not render the body"}
	}
	sig, err := Signatures(h.secrets(ep), webhookID, now, b)
	if err != nil {
		return attempt{err: "could not sign"}
	}
	headers := map[string]string{
		"webhook-id":        webhookID,
		"webhook-timestamp": strconv.FormatInt(now.Unix(), 10),
		"webhook-signature": sig,
	}
	wk := ""
	if ep.WriteKey != nil {
		wk = *ep.WriteKey
	}
	return h.send.post(ctx, ep.URL, headers, wk, b)
}

// record stores a failed attempt and returns when the next attempt of the
// endpoint is due: the retry's wait, 0 after the last (FAILED), -1 when
// the endpoint was disabled (410).
func (h *Hooks) record(ctx context.Context, ep *ent.WebhookEndpoint, d *ent.WebhookDelivery, a attempt) (time.Duration, error) {
	now := h.now()
	u := h.client.WebhookDelivery.Update().
		Where(append(h.mine(), webhookdelivery.ID(d.ID))...).
		AddAttempts(1).ClearLeaseOwner().ClearLeaseUntil()
	if a.status != 0 {
		u.SetLastStatusCode(a.status)
	} else {
		u.ClearLastStatusCode()
	}
	attempts := d.Attempts + 1
	h.log.Info("webhook: attempt failed", "endpoint", ep.ID, "webhook_id", d.WebhookID, "attempt", attempts,
		"status", a.status, "error", a.err)
	u.SetLastError(a.err)
	if a.status == 410 {
		err := h.inTx(ctx, func(tx *ent.Tx) error {
			if err := tx.WebhookEndpoint.UpdateOneID(ep.ID).SetEnabled(false).
				SetDisabledReason(fmt.Sprintf("the receiver answered 410 Gone at %s", now.Format(time.RFC3339))).Exec(ctx); err != nil {
				return err
			}
			return tx.WebhookDelivery.Update().
				Where(append(h.mine(), webhookdelivery.ID(d.ID))...).
				AddAttempts(1).ClearLeaseOwner().ClearLeaseUntil().SetLastStatusCode(410).
				SetLastError(a.err).SetNextAttemptAt(now).Exec(ctx)
		})
		if err == nil {
			h.log.Warn("webhook: endpoint disabled: it answered 410 Gone", "endpoint", ep.ID)
		}
		return -1, err
	}
	if attempts > len(h.cfg.Schedule) {
		err := u.SetStatus(webhookdelivery.StatusFAILED).ClearNextAttemptAt().Exec(ctx)
		if err == nil {
			h.counted(string(webhookdelivery.StatusFAILED), 1)
		}
		return 0, err
	}
	wait := h.cfg.Schedule[attempts-1]
	if a.retryAfter > 0 {
		wait = a.retryAfter
	}
	err := u.SetNextAttemptAt(now.Add(wait)).Exec(ctx)
	if err == nil {
		h.counted(string(webhookdelivery.StatusPENDING), 1)
	}
	return wait, err
}
