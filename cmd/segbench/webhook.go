package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentd/segmentd/ent/schema/pulid"
	"github.com/segmentd/segmentd/ent/webhookdelivery"
	"github.com/segmentd/segmentd/store"
)

// webhookRate is the entry rate of the latency part: entries a second.
const webhookRate = 1000

// outageRetryAfter (seconds) is the Retry-After the receiver answers with its 503s
// during the outage. segmentd honours it, so the head of the backlog is
// tried about once per outageRetryAfter; a delivery fails for good after
// 8 attempts, so the outage must stay under 7 of these (70 s) for the
// backlog to stay whole. The first delivery after the receiver comes back
// waits up to this long: the table shows that wait apart from the drain.
var outageRetryAfter = 10 // tests shorten it

// receiver is the webhook receiver the scenario runs in this process, on
// loopback: it answers 204 (or 503 during an outage), and notes each
// message's first arrival by webhook-id, and, for the latency part, by the
// messageId of the event that made it.
type receiver struct {
	srv *http.Server
	url string

	out atomic.Bool // answering 503

	mu        sync.Mutex
	seen      map[string]struct{}  // webhook-ids answered 2xx
	byEvent   map[string]time.Time // event messageId → first 2xx arrival
	requests  int                  // answered 2xx, repeats included
	refused   int                  // answered 503
	first     time.Time            // first 2xx after reset
	last      time.Time            // last new id after reset
	wantCount int                  // reached: when seen reaches it
	reached   chan struct{}
}

func startReceiver() (*receiver, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("receiver: %w", err)
	}
	r := &receiver{url: "http://" + l.Addr().String() + "/hooks"}
	r.reset(0)
	r.srv = &http.Server{Handler: r, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = r.srv.Serve(l) }()
	return r, nil
}

func (r *receiver) close() { _ = r.srv.Close() }

// reset forgets what arrived; reached closes when want distinct messages
// have arrived (never for 0).
func (r *receiver) reset(want int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seen, r.byEvent = map[string]struct{}{}, map[string]time.Time{}
	r.requests, r.refused, r.first, r.last = 0, 0, time.Time{}, time.Time{}
	r.wantCount, r.reached = want, make(chan struct{})
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	now := time.Now()
	body, _ := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	if r.out.Load() {
		r.mu.Lock()
		r.refused++
		r.mu.Unlock()
		w.Header().Set("Retry-After", strconv.Itoa(outageRetryAfter))
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	id := req.Header.Get("webhook-id")
	var msg struct {
		Data struct {
			Event *struct{ MessageID string }
		}
	}
	_ = json.Unmarshal(body, &msg)
	r.mu.Lock()
	r.requests++
	if r.first.IsZero() {
		r.first = now
	}
	if _, ok := r.seen[id]; !ok {
		r.seen[id] = struct{}{}
		r.last = now
		if msg.Data.Event != nil {
			if _, ok := r.byEvent[msg.Data.Event.MessageID]; !ok {
				r.byEvent[msg.Data.Event.MessageID] = now
			}
		}
		if r.wantCount > 0 && len(r.seen) == r.wantCount {
			close(r.reached)
		}
	}
	r.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (r *receiver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.seen)
}

// waitFor waits until n distinct messages arrived since reset(n), or for
// limit; it reports whether they did.
func (r *receiver) waitFor(ctx context.Context, limit time.Duration) bool {
	r.mu.Lock()
	ch := r.reached
	r.mu.Unlock()
	select {
	case <-ch:
		return true
	case <-time.After(limit):
	case <-ctx.Done():
	}
	return false
}

// webhookScenario (webhook): a segment every event enters, one endpoint on
// a loopback receiver in segbench. (a) ingestion at webhookRate entries/s
// with an endpoint (commit, the trackEvents acknowledgement, to the
// receiver's arrival: p50/p99); then flat out, in six alternating drives
// without and with an endpoint: the throughput with against without. (b) unless -webhook-backlog 0: a
// second endpoint's receiver answers 503 while c.webhookBacklog users are
// added to a STATIC segment (at least -webhook-outage, and until every
// delivery is queued), then answers 204: how long until every delivery
// arrived, and deliveries/s. Part (b) needs the server's database URL (to
// see the deliveries queued).
func webhookScenario(ctx context.Context, c config, tg *target, t *table) error {
	rc, err := startReceiver()
	if err != nil {
		return err
	}
	defer rc.close()
	segID, err := createSegment(ctx, tg, "Everyone who opens the app", []string{"App Open"}, pred("EVENT", "Screen", "EXISTS", nil))
	if err != nil {
		return err
	}
	run := func(label string, cc config, onAck func([]benchEvent, time.Time)) (*driveResult, error) {
		d := &drive{label: label, transport: "trackEvents", pids: pids(tg), onAck: onAck, makeEvent: func(i int) benchEvent {
			id := fmt.Sprintf("wh-%s-%s-%d", runID, label, i)
			return benchEvent{MessageID: id, UserID: id, Name: "App Open", Enters: true, Props: map[string]any{"Screen": "home"}}
		}}
		return d.run(ctx, cc, tg)
	}
	flat := c
	flat.rate = 0
	// A warm-up, not reported: the first seconds of a fresh server are
	// slower (caches, connections), which would flatter the drive after.
	warm := flat
	warm.duration, warm.events = 2*time.Second, flat.events/4
	if _, err := run("warm-up", warm, nil); err != nil {
		return err
	}
	del := func(id string) error {
		if err := gql(ctx, tg, `mutation($id: ID!) { deleteWebhookEndpoint(id: $id) }`, map[string]any{"id": id}, nil); err != nil {
			return fmt.Errorf("webhook: delete the endpoint: %w", err)
		}
		return nil
	}

	// Commit → delivered at webhookRate entries a second.
	epID, err := createEndpoint(ctx, tg, rc.url, segID)
	if err != nil {
		return err
	}
	slow := c
	slow.rate, slow.batch, slow.events = webhookRate, 10, webhookRate*int(c.duration/time.Second)
	var ackMu sync.Mutex
	acked := map[string]time.Time{}
	rc.reset(0)
	lat, err := run("latency", slow, func(evs []benchEvent, at time.Time) {
		ackMu.Lock()
		for _, e := range evs {
			acked[e.MessageID] = at
		}
		ackMu.Unlock()
	})
	if err != nil {
		return err
	}
	waitUntil(ctx, 30*time.Second, func() bool { return rc.count() >= lat.acked })
	var e2d latencies
	rc.mu.Lock()
	for id, at := range acked {
		if got, ok := rc.byEvent[id]; ok {
			e2d.add(max(0, got.Sub(at)))
		}
	}
	rc.mu.Unlock()
	if err := del(epID); err != nil {
		return err
	}
	name := "webhook · one endpoint"
	t.add(name, fmt.Sprintf("commit → delivered p50 / p99 at %d entries/s (%d per trackEvents)", webhookRate, slow.batch),
		fmt.Sprintf("%s / %s", fmtDur(e2d.pct(0.5)), fmtDur(e2d.pct(0.99))),
		fmt.Sprintf("%d of %d entries delivered", e2d.len(), lat.acked), "aim p99 < 500 ms")

	// Flat out without and with an endpoint, in alternating drives of
	// half a -duration each (without, with, with, without, without,
	// with), so that the load of the machine (shared) and the growth of
	// the database weigh on both alike. Each with-drive has an endpoint
	// of its own, created before it and deleted once its entries all
	// arrived, so no drive runs beside another's deliveries.
	half := flat
	half.duration, half.events = max(time.Second, c.duration/2), max(c.batch, c.events/2)
	type sum struct {
		acked   int
		elapsed time.Duration
		errors  int
		first   string
	}
	var without, with sum
	during, behind, drainedAll := 0, time.Duration(0), true
	for i, hooked := range []bool{false, true, true, false, false, true} {
		label := fmt.Sprintf("without %d", i)
		if hooked {
			label = fmt.Sprintf("with %d", i)
			if epID, err = createEndpoint(ctx, tg, rc.url, segID); err != nil {
				return err
			}
			rc.reset(0)
		}
		var profiled <-chan struct{}
		if i == 1 {
			profiled = profileCPU(c, tg, "with")
		}
		r, err := run(label, half, nil)
		if profiled != nil {
			<-profiled
		}
		if err != nil {
			return err
		}
		into := &without
		if hooked {
			into = &with
			during += rc.count()
			ended := time.Now()
			if !waitUntil(ctx, 2*time.Minute, func() bool { return rc.count() >= r.acked }) {
				drainedAll = false
			}
			behind = max(behind, time.Since(ended))
			if err := del(epID); err != nil {
				return err
			}
		}
		into.acked += r.acked
		into.elapsed += r.elapsed
		into.errors += r.errors
		if into.first == "" {
			into.first = r.firstErr
		}
	}
	rate := func(s sum) float64 { return float64(s.acked) / s.elapsed.Seconds() }
	t.add(name, fmt.Sprintf("trackEvents flat out (%d workers, %d per request), events/s with an endpoint (3 drives of %s)", c.workers, c.batch, half.duration),
		fmtRate(rate(with)), fmt.Sprintf("without (3 drives between): %s", fmtRate(rate(without))),
		ratio(rate(with), rate(without))+" (aim ≥ 0.90×)")
	drainNote := fmt.Sprintf("the rest arrived at most %s after each drive", fmtDur(behind))
	if !drainedAll {
		drainNote = "not all arrived within 2 minutes after a drive"
	}
	t.add(name, "deliveries during those drives", fmt.Sprintf("%d of %d entries", during, with.acked), drainNote, "")
	for _, s := range []struct {
		what string
		sum
	}{{"without", without}, {"with", with}} {
		if s.errors > 0 {
			t.add(name, "errors ("+s.what+")", fmt.Sprintf("%d requests: %s", s.errors, s.first), "", "")
		}
	}
	if c.webhookBacklog <= 0 {
		return nil
	}
	if tg.databaseURL == "" {
		t.add("webhook · backlog", "skipped", "needs the server's -database-url to see the deliveries queued", "", "")
		return nil
	}
	return webhookBacklog(ctx, c, tg, t, rc)
}

func createEndpoint(ctx context.Context, tg *target, url, segID string) (string, error) {
	var ep struct {
		CreateWebhookEndpoint struct{ Endpoint struct{ ID string } }
	}
	err := gql(ctx, tg, `mutation($u: String!, $s: ID!) { createWebhookEndpoint(input: {url: $u, topics: [MEMBERSHIP_ENTERED], segmentIds: [$s]}) { endpoint { id } } }`,
		map[string]any{"u": url, "s": segID}, &ep)
	if err != nil {
		return "", fmt.Errorf("create a webhook endpoint (does the server allow private webhook URLs? SEGMENTD_WEBHOOK_ALLOW_PRIVATE=true): %w", err)
	}
	return ep.CreateWebhookEndpoint.Endpoint.ID, nil
}

// profileCPU saves, if -webhook-profile is set, a 5-second CPU profile of
// the server (from its SEGMENTD_PPROF_ADDR) as PREFIX-what.pprof, in the
// background; the channel closes when it is done.
func profileCPU(c config, tg *target, what string) <-chan struct{} {
	done := make(chan struct{})
	if c.webhookProfile == "" || tg.pprof == "" {
		close(done)
		return done
	}
	go func() {
		defer close(done)
		resp, err := http.Get("http://" + tg.pprof + "/debug/pprof/profile?seconds=5")
		if err != nil {
			fmt.Fprintf(progress, "  profile %s: %v\n", what, err)
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err == nil {
			err = os.WriteFile(c.webhookProfile+"-"+what+".pprof", b, 0o644)
		}
		if err != nil {
			fmt.Fprintf(progress, "  profile %s: %v\n", what, err)
		}
	}()
	return done
}

// waitUntil polls cond every 5 ms for up to limit.
func waitUntil(ctx context.Context, limit time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
	return true
}

// webhookBacklog is part (b) of the webhook scenario.
func webhookBacklog(ctx context.Context, c config, tg *target, t *table, rc *receiver) error {
	n := c.webhookBacklog
	st, err := store.Open(ctx, tg.databaseURL)
	if err != nil {
		return err
	}
	defer st.Close()
	segID, err := createSegment(ctx, tg, "Backlog", nil, nil)
	if err != nil {
		return err
	}
	rc.out.Store(true)
	rc.reset(n)
	outStart := time.Now()
	epID, err := createEndpoint(ctx, tg, rc.url, segID)
	if err != nil {
		return err
	}
	fmt.Fprintf(progress, "  receiver out (503, Retry-After: %d); adding %d users\n", outageRetryAfter, n)
	const per = 10000
	for start := 0; start < n; start += per {
		users := make([]string, 0, per)
		for i := start; i < min(start+per, n); i++ {
			users = append(users, fmt.Sprintf("bl-%s-%d", runID, i))
		}
		if err := gql(ctx, tg, `mutation($s: ID!, $u: [String!]!) { addUsersToSegment(segmentId: $s, userIds: $u) { __typename } }`,
			map[string]any{"s": segID, "u": users}, nil); err != nil {
			return fmt.Errorf("webhook backlog: add users: %w", err)
		}
	}
	added := time.Since(outStart)
	queued := func() (int, error) {
		return st.Client.WebhookDelivery.Query().Where(webhookdelivery.EndpointRef(pulid.ID(epID))).Count(ctx)
	}
	var qerr error
	if !waitUntil(ctx, 5*time.Minute, func() bool {
		k, err := queued()
		qerr = err
		if err == nil && k < n {
			time.Sleep(100 * time.Millisecond)
		}
		return err != nil || k >= n
	}) || qerr != nil {
		return fmt.Errorf("webhook backlog: the %d deliveries were not all queued within 5 minutes (%v)", n, qerr)
	}
	allQueued := time.Since(outStart)
	if wait := c.webhookOutage - time.Since(outStart); wait > 0 {
		time.Sleep(wait)
	}
	rc.mu.Lock()
	refused := rc.refused
	rc.mu.Unlock()
	up := time.Now()
	outage := up.Sub(outStart)
	rc.out.Store(false)
	waitUntil(ctx, 2*time.Duration(outageRetryAfter)*time.Second, func() bool { return rc.count() > 0 })
	profiled := profileCPU(c, tg, "drain")
	defer func() { <-profiled }()
	fmt.Fprintf(progress, "  receiver back after %s (%d answered 503); draining %d\n", fmtDur(outage), refused, n)
	ok := rc.waitFor(ctx, 20*time.Minute)
	rc.mu.Lock()
	first, last, requests, got := rc.first, rc.last, rc.requests, len(rc.seen)
	rc.mu.Unlock()
	failed, err := st.Client.WebhookDelivery.Query().Where(webhookdelivery.EndpointRef(pulid.ID(epID)),
		webhookdelivery.StatusEQ(webhookdelivery.StatusFAILED)).Count(ctx)
	if err != nil {
		return err
	}
	name := "webhook · backlog"
	t.add(name, fmt.Sprintf("outage: receiver answering 503 (Retry-After: %d)", outageRetryAfter), fmtDur(outage),
		fmt.Sprintf("%d users added in %s, all %d deliveries queued after %s; %d attempts refused", n, fmtDur(added), n, fmtDur(allQueued), refused), "")
	if !ok {
		t.add(name, "drain", fmt.Sprintf("%d of %d delivered in 20 minutes", got, n), fmt.Sprintf("%d FAILED", failed), "")
		return errors.New("webhook backlog: not drained in 20 minutes")
	}
	drain := last.Sub(first)
	t.add(name, fmt.Sprintf("time to drain %d (first delivery after the outage → last)", n), fmtDur(drain),
		fmt.Sprintf("receiver back → first delivery (the retry's wait): %s", fmtDur(first.Sub(up))), "")
	t.add(name, "deliveries/s while draining", fmtRate(float64(n)/drain.Seconds()),
		fmt.Sprintf("%d requests for %d messages; %d FAILED", requests, n, failed), "aim ≥ 2,000/s")
	return nil
}
