package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

var httpClient = &http.Client{
	Timeout:   60 * time.Second,
	Transport: &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256, IdleConnTimeout: 90 * time.Second},
}

// gql posts a GraphQL request and decodes data into out.
func gql(ctx context.Context, tg *target, query string, vars map[string]any, out any) error {
	body, err := json.Marshal(map[string]any{"query": query, "variables": vars})
	if err != nil {
		return fmt.Errorf("marshal: %w", err)
	}
	return post(ctx, tg.url+"/graphql", "Bearer "+tg.key, body, out)
}

func post(ctx context.Context, url, auth string, body []byte, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", auth)
	resp, err := httpClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("read response: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %d: %.200s", resp.StatusCode, raw)
	}
	var r struct {
		Data   json.RawMessage
		Errors []struct{ Message string }
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return fmt.Errorf("decode %.200s: %w", raw, err)
	}
	if len(r.Errors) > 0 {
		return fmt.Errorf("graphql: %s", r.Errors[0].Message)
	}
	if out != nil {
		return json.Unmarshal(r.Data, out)
	}
	return nil
}

// benchEvent is one event segbench sends.
type benchEvent struct {
	MessageID, UserID, Name string
	Props, Traits           map[string]any
	Enters                  bool // the subscriber's segment takes this user
}

// drive is one measured run of events through one transport.
type drive struct {
	label     string
	transport string // trackEvents, trackEvent, v1batch
	makeEvent func(i int) benchEvent
	sub       *subscriber // optional
	pids      []int       // servers whose CPU and memory to read
	// onAck, if set, is told of each acknowledged request's events and
	// when the acknowledgement was read (the webhook scenario's commit
	// time).
	onAck func(evs []benchEvent, at time.Time)
}

type driveResult struct {
	label, transport             string
	batch, rate                  int
	sent, acked, errors, entered int
	firstErr                     string
	elapsed                      time.Duration
	ack                          latencies // per request
	e2s                          *latencies
	cpu                          time.Duration
	hwm                          int64
	ackedEvents                  []benchEvent
}

func (d *drive) run(ctx context.Context, c config, tg *target, targets ...*target) (*driveResult, error) {
	batch := c.batch
	if d.transport == "trackEvent" {
		batch = 1
	}
	res := &driveResult{label: d.label, transport: d.transport, batch: batch, rate: c.rate}
	if d.sub != nil {
		res.e2s = d.sub.begin()
	}
	urls := []string{tg.url}
	for _, t := range targets {
		urls = append(urls, t.url)
	}
	var cpu0 time.Duration
	for _, pid := range d.pids {
		if s, err := readProc(pid); err == nil {
			cpu0 += s.cpu
		}
	}
	total := max(batch, c.events/batch*batch)
	jobs := make(chan int)
	var (
		sent, acked, errs atomic.Int64
		mu                sync.Mutex
		wg                sync.WaitGroup
	)
	start := time.Now()
	deadline := start.Add(c.duration)
	dctx, cancel := context.WithDeadline(ctx, deadline.Add(30*time.Second))
	defer cancel()
	do := func(first int) {
		evs := make([]benchEvent, batch)
		for i := range evs {
			evs[i] = d.makeEvent(first + i)
		}
		t0 := time.Now()
		err := send(dctx, tg, d.transport, evs)
		lat := time.Since(t0)
		sent.Add(int64(batch))
		if err != nil {
			if errs.Add(1) == 1 {
				mu.Lock()
				res.firstErr = err.Error()
				mu.Unlock()
			}
			return
		}
		now := time.Now()
		res.ack.add(lat)
		acked.Add(int64(batch))
		if d.onAck != nil {
			d.onAck(evs, now)
		}
		if d.sub != nil {
			for _, e := range evs {
				if e.Enters {
					d.sub.acked(e.UserID, now)
				}
			}
		}
		mu.Lock()
		res.ackedEvents = append(res.ackedEvents, evs...)
		for _, e := range evs {
			if e.Enters {
				res.entered++
			}
		}
		mu.Unlock()
	}
	// Flat out: c.workers connections send back to back (closed loop). At
	// a fixed rate: every batch leaves on time in a goroutine of its own
	// (open loop, at most maxInFlight at once), so that a slow answer
	// shows as latency instead of lowering the rate.
	const maxInFlight = 512
	inFlight := make(chan struct{}, maxInFlight)
	if c.rate > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var each sync.WaitGroup
			for first := range jobs {
				inFlight <- struct{}{}
				each.Add(1)
				go func() {
					defer each.Done()
					defer func() { <-inFlight }()
					do(first)
				}()
			}
			each.Wait()
		}()
	} else {
		for w := 0; w < c.workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for first := range jobs {
					do(first)
				}
			}()
		}
	}
	ticker := time.NewTicker(time.Second)
	defer ticker.Stop()
	var tick <-chan time.Time
	if c.rate > 0 {
		tk := time.NewTicker(time.Second * time.Duration(batch) / time.Duration(c.rate))
		defer tk.Stop()
		tick = tk.C
	}
	how := fmt.Sprintf("%d workers", c.workers)
	if c.rate > 0 {
		how = "open loop"
	}
	fmt.Fprintf(progress, "  %s: %s, batch %d, %s, %s, at most %d events or %s\n",
		d.label, d.transport, batch, how, rateName(c.rate), total, c.duration)
	report := func() {
		rcv := ""
		if d.sub != nil {
			rcv = fmt.Sprintf(", subscriber received %d", res.e2s.len())
		}
		fmt.Fprintf(progress, "  %5.1fs sent %d, acknowledged %d, errors %d%s\n",
			time.Since(start).Seconds(), sent.Load(), acked.Load(), errs.Load(), rcv)
	}
loop:
	for next := 0; next < total && time.Now().Before(deadline); next += batch {
		if tick != nil {
			select {
			case <-tick:
			case <-ctx.Done():
				break loop
			}
		}
		for sending := true; sending; {
			select {
			case jobs <- next:
				sending = false
			case <-ticker.C:
				report()
			case <-ctx.Done():
				break loop
			}
		}
		select {
		case <-ticker.C:
			report()
		default:
		}
	}
	close(jobs)
	wg.Wait()
	res.elapsed = time.Since(start)
	report()
	for _, pid := range d.pids {
		if s, err := readProc(pid); err == nil {
			res.cpu += s.cpu
			res.hwm += s.hwm
		}
	}
	res.cpu -= cpu0
	res.sent, res.acked, res.errors = int(sent.Load()), int(acked.Load()), int(errs.Load())
	if d.sub != nil {
		d.sub.wait(res.entered, c.subscriberWait())
	}
	if res.firstErr != "" {
		fmt.Fprintf(progress, "  first error: %s\n", res.firstErr)
	}
	return res, ctx.Err()
}

// send sends evs through one transport and returns an error unless the
// server acknowledged them all.
func send(ctx context.Context, tg *target, transport string, evs []benchEvent) error {
	switch transport {
	case "trackEvents":
		in := make([]map[string]any, len(evs))
		for i, e := range evs {
			in[i] = trackInput(e)
		}
		var out struct {
			TrackEvents struct{ Accepted, Duplicates int }
		}
		err := gql(ctx, tg, `mutation($in: [TrackInput!]!) { trackEvents(inputs: $in) { accepted duplicates } }`, map[string]any{"in": in}, &out)
		if err == nil && out.TrackEvents.Accepted+out.TrackEvents.Duplicates != len(evs) {
			err = fmt.Errorf("trackEvents accepted %d of %d", out.TrackEvents.Accepted+out.TrackEvents.Duplicates, len(evs))
		}
		return err
	case "trackEvent":
		return gql(ctx, tg, `mutation($in: TrackInput!) { trackEvent(input: $in) { duplicate } }`, map[string]any{"in": trackInput(evs[0])}, nil)
	case "v1batch":
		msgs := make([]map[string]any, len(evs))
		for i, e := range evs {
			msgs[i] = map[string]any{"type": "track", "userId": e.UserID, "event": e.Name, "messageId": e.MessageID,
				"properties": e.Props, "context": map[string]any{"traits": e.Traits}}
		}
		body, err := json.Marshal(map[string]any{"batch": msgs})
		if err != nil {
			return fmt.Errorf("marshal: %w", err)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, tg.url+"/v1/batch", bytes.NewReader(body))
		if err != nil {
			return fmt.Errorf("request: %w", err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.SetBasicAuth(tg.writeKey, "")
		resp, err := httpClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || !bytes.Contains(raw, []byte(`"success":true`)) {
			return fmt.Errorf("/v1/batch: HTTP %d %.200s", resp.StatusCode, raw)
		}
		return nil
	}
	return fmt.Errorf("unknown transport %q", transport)
}

func trackInput(e benchEvent) map[string]any {
	return map[string]any{"event": e.Name, "userId": e.UserID, "messageId": e.MessageID, "properties": e.Props, "traits": e.Traits}
}

// subscriber follows membershipChanged on one segment and measures, per
// user, the time from the acknowledgement of the event that entered them to
// the change's arrival (0 when the change arrives first).
type subscriber struct {
	conn *websocket.Conn

	mu    sync.Mutex
	lat   *latencies           // the current drive's
	ack   map[string]time.Time // acknowledged, not received yet
	early map[string]time.Time // received before the acknowledgement
	err   error
	done  chan struct{}
}

func subscribe(ctx context.Context, tg *target, segID string) (*subscriber, error) {
	conn, err := dialWS(tg)
	if err != nil {
		return nil, err
	}
	if err := wsSubscribe(conn, segID, "1"); err != nil {
		conn.Close()
		return nil, err
	}
	s := &subscriber{conn: conn, lat: &latencies{}, ack: map[string]time.Time{}, early: map[string]time.Time{}, done: make(chan struct{})}
	go s.read()
	context.AfterFunc(ctx, func() { conn.Close() })
	return s, nil
}

func (s *subscriber) read() {
	defer close(s.done)
	for {
		var m struct {
			Type    string
			Payload struct {
				Data struct {
					MembershipChanged struct{ User struct{ UserID string } }
				}
			}
		}
		if err := s.conn.ReadJSON(&m); err != nil {
			s.mu.Lock()
			s.err = err
			s.mu.Unlock()
			return
		}
		switch m.Type {
		case "ping":
			_ = s.conn.WriteJSON(map[string]any{"type": "pong"})
			continue
		case "next":
		default:
			continue
		}
		now := time.Now()
		u := m.Payload.Data.MembershipChanged.User.UserID
		s.mu.Lock()
		if t, ok := s.ack[u]; ok {
			delete(s.ack, u)
			s.lat.add(now.Sub(t))
		} else {
			s.early[u] = now
		}
		s.mu.Unlock()
	}
}

// begin starts a new drive's latencies: changes of earlier drives that
// arrive late are no longer matched.
func (s *subscriber) begin() *latencies {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lat = &latencies{}
	s.ack = map[string]time.Time{}
	return s.lat
}

func (s *subscriber) acked(user string, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.early[user]; ok {
		delete(s.early, user)
		s.lat.add(0)
		return
	}
	s.ack[user] = at
}

// wait waits until n changes were received, or timeout.
func (s *subscriber) wait(n int, timeout time.Duration) {
	end := time.Now().Add(timeout)
	s.mu.Lock()
	lat := s.lat
	s.mu.Unlock()
	for lat.len() < n && time.Now().Before(end) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := lat.len(); got < n {
		s.mu.Lock()
		var missing []string
		for u := range s.ack {
			if len(missing) == 5 {
				break
			}
			missing = append(missing, u)
		}
		err := s.err
		s.mu.Unlock()
		fmt.Fprintf(progress, "  subscriber received %d of %d changes within %s; not received, for example: %s (connection: %v)\n",
			got, n, timeout, strings.Join(missing, ", "), err)
	}
}

func (s *subscriber) close() { s.conn.Close() }

func dialWS(tg *target) (*websocket.Conn, error) {
	d := websocket.Dialer{Subprotocols: []string{"graphql-transport-ws"}, HandshakeTimeout: 10 * time.Second}
	conn, resp, err := d.Dial("ws"+strings.TrimPrefix(tg.url, "http")+"/graphql", nil)
	if err != nil {
		return nil, fmt.Errorf("websocket: %w", err)
	}
	resp.Body.Close()
	if err := conn.WriteJSON(map[string]any{"type": "connection_init", "payload": map[string]any{"Authorization": "Bearer " + tg.key}}); err != nil {
		conn.Close()
		return nil, fmt.Errorf("connection_init: %w", err)
	}
	var ack struct{ Type string }
	if err := conn.ReadJSON(&ack); err != nil || ack.Type != "connection_ack" {
		conn.Close()
		return nil, fmt.Errorf("connection_init: got %q, %v", ack.Type, err)
	}
	return conn, nil
}

// wsSubscribe follows membershipChanged on a segment from the start of its
// log ("0.0"): without a cursor a subscription starts when the server gets
// to it, and changes committed before that (the first batches, on a cold
// server) would never arrive. segbench's segments are new, so their log
// starts empty.
func wsSubscribe(conn *websocket.Conn, segID, id string) error {
	return conn.WriteJSON(map[string]any{"id": id, "type": "subscribe", "payload": map[string]any{
		"query":     `subscription($s: ID, $after: String) { membershipChanged(segmentId: $s, after: $after) { cursor user { userId } } }`,
		"variables": map[string]any{"s": segID, "after": "0.0"},
	}})
}
