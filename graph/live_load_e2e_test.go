package graph_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/segmentd/segmentd/internal/testenv"
)

// These tests measure the whole test process (server and clients are in
// it), so they do not run in parallel with other tests.

// liveHeap is the heap after a GC: HeapAlloc (live objects) and HeapInuse
// (spans holding them, fragmentation included).
type liveHeap struct{ alloc, inuse uint64 }

func (h liveHeap) String() string { return fmt.Sprintf("%.1f/%.1f MiB", mib(h.alloc), mib(h.inuse)) }

func liveSettle() (goroutines int, heap liveHeap) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return runtime.NumGoroutine(), liveHeap{ms.HeapAlloc, ms.HeapInuse}
}

// TestLiveLeakDroppedSubscriptions opens 1,000 subscriptions (100
// websockets × 10, every kind of subscription, both subprotocols), checks
// they are all live, then drops the connections abruptly (TCP closed, no
// close frame): goroutines and heap return to their baseline.
func TestLiveLeakDroppedSubscriptions(t *testing.T) {
	srv := testenv.StartServer(t, testenv.DatabaseURL(t, "sqlite"))
	admin := srv.Admin()
	const event = "Leak Sign Up"
	segID, campID := liveSegmentOn(t, admin, event)
	ops := []struct{ query string }{
		{membershipChangedQuery}, {membershipChangedQuery}, {membershipChangedQuery}, {membershipChangedQuery},
		{segmentStatsQuery}, {segmentStatsQuery},
		{eventReceivedQuery}, {eventReceivedQuery},
		{campaignActivatedQuery}, {campaignActivatedQuery},
	}
	vars := func(i int) map[string]any {
		switch ops[i].query {
		case eventReceivedQuery:
			return map[string]any{"n": event}
		case campaignActivatedQuery:
			return map[string]any{"c": campID}
		}
		return map[string]any{"s": segID}
	}
	const conns = 100

	// Warm up: one connection through its whole life, so that what the
	// server starts once (tailer readers, connection pools) is in the
	// baseline.
	warm := srv.DialWS(t, testenv.AdminKey, testenv.TransportWS)
	warm.Subscribe(t, "w", membershipChangedQuery, map[string]any{"s": segID})
	time.Sleep(100 * time.Millisecond)
	liveEnter(t, admin, event, []string{"warm"}, 1, 1, nil)
	liveReceiveChanges(t, warm, "w", 1, "")
	warm.Conn.Close()
	// The runtime keeps the descriptor of every goroutine that ever ran, for
	// reuse: have as many as the subscriptions will need exist already, so
	// that the heap baseline includes them.
	var parked sync.WaitGroup
	release := make(chan struct{})
	for range 5000 {
		parked.Add(1)
		go func() { defer parked.Done(); <-release }()
	}
	close(release)
	parked.Wait()
	time.Sleep(1500 * time.Millisecond)
	baseG, baseHeap := liveSettle()

	clients := make([]*websocket.Conn, conns)
	for i := range clients {
		proto := testenv.Subprotocols[i%2]
		c := srv.DialWSConn(t, testenv.AdminKey, proto, testenv.WSDialOptions{})
		for j := range ops {
			if err := c.WriteJSON(testenv.SubscribeMessage(proto, fmt.Sprint(j), ops[j].query, vars(j))); err != nil {
				t.Fatalf("subscribe: %v", err)
			}
		}
		clients[i] = c
	}
	// Every subscription is live: each gets a message (entries keep coming
	// until all have, since graphql-transport-ws does not acknowledge a
	// subscribe).
	stopEntering := make(chan struct{})
	entered := make(chan struct{})
	go func() {
		defer close(entered)
		for i := 0; ; i++ {
			liveEnter(t, admin, event, []string{fmt.Sprintf("leak-%d", i)}, 1, 1, nil)
			select {
			case <-stopEntering:
				return
			case <-time.After(300 * time.Millisecond):
			}
		}
	}()
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = c.SetReadDeadline(time.Now().Add(liveSlow(10 * time.Second)))
			seen := map[string]bool{}
			for len(seen) < len(ops) {
				var m testenv.WSMessage
				if err := c.ReadJSON(&m); err != nil {
					errs <- fmt.Errorf("connection %d: subscriptions %v of %d answered: %v", i, slices.Sorted(maps.Keys(seen)), len(ops), err)
					return
				}
				switch m.Type {
				case "next", "data":
					seen[m.ID] = true
				case "ka", "ping", "pong":
				default:
					errs <- fmt.Errorf("connection %d: %s %s %s", i, m.Type, m.ID, m.Payload)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(stopEntering)
	<-entered
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	peakG, peakHeap := liveSettle()

	// Drop every connection: TCP closed, no close frame.
	for _, c := range clients {
		_ = c.NetConn().Close()
	}
	start := time.Now()
	var (
		g    int
		heap liveHeap
	)
	for {
		g, heap = liveSettle()
		// Live objects back within 2 MiB (the test's own client sockets,
		// about 1 MiB, stay referenced until it ends); spans in use within
		// 8 MiB, as fragmentation leaves some partly used.
		heapOK := heap.alloc <= baseHeap.alloc+2<<20 && heap.inuse <= baseHeap.inuse+8<<20
		if g <= baseG+5 && heapOK {
			break
		}
		if time.Since(start) > 8*time.Second {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("after %s: %d goroutines (baseline %d, with 1,000 subscriptions %d), heap alloc/inuse %s (baseline %s, peak %s)\n%s",
				time.Since(start).Round(time.Millisecond), g, baseG, peakG, heap, baseHeap, peakHeap, buf)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("1,000 subscriptions: goroutines %d -> %d -> %d; heap alloc/inuse %s -> %s -> %s (%.1f KiB live per subscription, server and client); back to baseline %s after the drop",
		baseG, peakG, g, baseHeap, peakHeap, heap, float64(peakHeap.alloc-min(peakHeap.alloc, baseHeap.alloc))/1024/1000,
		time.Since(start).Round(time.Millisecond))
}

// liveSlow stretches a timeout under the race detector, which slows the
// server down several times.
func liveSlow(d time.Duration) time.Duration {
	if liveRace {
		return 4 * d
	}
	return d
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

// liveBulkyChangeQuery is membershipChanged with every message padded to
// about 4 KB (the cursor under 200 aliases): a client that does not read
// fills the kernel's socket buffers (several MB on loopback) within the
// first thousand or so messages, so that the server really meets a writer
// that blocks, as it would across a network.
var liveBulkyChangeQuery = func() string {
	var b strings.Builder
	b.WriteString(`subscription($s: ID) { membershipChanged(segmentId: $s) { cursor kind user { userId }`)
	for i := range 200 {
		fmt.Fprintf(&b, " pad%03d: cursor", i)
	}
	b.WriteString(" } }")
	return b.String()
}()

// TestLiveSlowConsumer: while 10,000 entries are ingested (batches of 100
// from 4 connections), one subscriber that never reads its socket slows
// ingestion down by little, and another subscriber still receives every
// change, in order. The same run without the slow client is the baseline.
// SQLite only: on PostgreSQL 2 × 10,000 entries take over a minute here.
func TestLiveSlowConsumer(t *testing.T) {
	if liveRace {
		t.Skip("a timing comparison: run without -race")
	}
	srv := testenv.StartServer(t, testenv.DatabaseURL(t, "sqlite"))
	admin := srv.Admin()
	const event = "Slow Sign Up"
	segID, _ := liveSegmentOn(t, admin, event)
	liveEnter(t, admin, event, liveUsers("warmup", 200), 4, 100, nil)

	type result struct {
		ingest, p50, p99 time.Duration
		heap             liveHeap
	}
	run := func(name string, slow bool) result {
		t.Helper()
		if slow {
			// A small receive buffer, and never a read.
			c := srv.DialWSConn(t, testenv.AdminKey, testenv.TransportWS, testenv.WSDialOptions{ReadBuffer: 4096})
			if err := c.WriteJSON(testenv.SubscribeMessage(testenv.TransportWS, "slow", liveBulkyChangeQuery,
				map[string]any{"s": segID})); err != nil {
				t.Fatalf("subscribe: %v", err)
			}
		}
		ws := srv.DialWS(t, testenv.AdminKey, testenv.TransportWS)
		ws.Subscribe(t, "1", membershipChangedQuery, map[string]any{"s": segID})
		time.Sleep(200 * time.Millisecond)

		users := liveUsers(name, 10000)
		var mu sync.Mutex
		ackAt := make(map[string]time.Time, len(users))
		recvAt := make(map[string]time.Time, len(users))
		received := make(chan error, 1)
		go func() {
			prev := ""
			for range users {
				m, ok := <-ws.Messages
				if !ok {
					received <- fmt.Errorf("connection closed: %v", <-ws.Closed)
					return
				}
				now := time.Now()
				var p struct{ Data liveChange }
				if err := json.Unmarshal(m.Payload, &p); err != nil || m.ID != "1" {
					received <- fmt.Errorf("unexpected %s %s %s", m.Type, m.ID, m.Payload)
					return
				}
				c := p.Data.MembershipChanged
				mu.Lock()
				_, dup := recvAt[c.User.UserID]
				recvAt[c.User.UserID] = now
				mu.Unlock()
				if dup {
					received <- fmt.Errorf("change of %s twice", c.User.UserID)
					return
				}
				if prev != "" && !cursorLess(t, prev, c.Cursor) {
					received <- fmt.Errorf("cursor %s after %s", c.Cursor, prev)
					return
				}
				prev = c.Cursor
			}
			received <- nil
		}()
		start := time.Now()
		liveEnter(t, admin, event, users, 4, 100, func(b []string, at time.Time) {
			mu.Lock()
			defer mu.Unlock()
			for _, u := range b {
				ackAt[u] = at
			}
		})
		var r result
		r.ingest = time.Since(start)
		select {
		case err := <-received:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(15 * time.Second):
			mu.Lock()
			defer mu.Unlock()
			t.Fatalf("%s: the normal subscriber got %d of %d changes", name, len(recvAt), len(users))
		}
		_, r.heap = liveSettle()
		mu.Lock()
		defer mu.Unlock()
		lat := make([]time.Duration, 0, len(users))
		for _, u := range users {
			lat = append(lat, max(0, recvAt[u].Sub(ackAt[u])))
		}
		slices.Sort(lat)
		r.p50, r.p99 = lat[len(lat)/2], lat[len(lat)*99/100]
		ws.Conn.Close()
		return r
	}

	base := run("base", false)
	slow := run("slow", true)
	ratio := float64(slow.ingest) / float64(base.ingest)
	ms := func(d time.Duration) time.Duration { return d.Round(time.Millisecond) }
	t.Logf("10,000 entries in %s without the slow client, %s with it: ratio %.2f; the other subscriber's "+
		"ack-to-message latency p50/p99 %s/%s without, %s/%s with; heap alloc/inuse after the run %s without, %s with",
		ms(base.ingest), ms(slow.ingest), ratio, ms(base.p50), ms(base.p99), ms(slow.p50), ms(slow.p99), base.heap, slow.heap)
	// The aim is 1.2; a quiet machine measures 0.9 to 1.1 (logged above). The
	// bound is loose because CI shares its two cores with other packages'
	// tests: it catches a slow client that stalls ingestion, not noise.
	if ratio > 2 {
		t.Errorf("ingestion with a client that does not read took %.2f× as long as without", ratio)
	}
	if slow.heap.alloc > base.heap.alloc+16<<20 {
		t.Errorf("the client that does not read grew the heap from %s to %s", base.heap, slow.heap)
	}
}
