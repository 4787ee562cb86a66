package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/gorilla/websocket"
)

// subs (subs5000): memory per open subscription, and event-to-subscriber
// latency with that many subscriptions open. The idle subscriptions follow
// another segment, so they receive nothing; the server still holds them.
// Events go at -rate (1,000/s when 0: within what the server sustains with
// batches of -batch, 100, so that the latency measured is delivery, not a
// queue of requests).
func subs(ctx context.Context, c config, tg *target, t *table) error {
	segID, err := createSegment(ctx, tg, "segbench live", []string{"Sign Up"}, pred("EVENT", "Reward Amount", "GT", 50))
	if err != nil {
		return err
	}
	otherID, err := createSegment(ctx, tg, "segbench idle", nil, nil)
	if err != nil {
		return err
	}
	before, _ := readProc(tg.pid)
	liveBefore := liveMemory(tg.pprof)
	var idle []*websocket.Conn
	defer func() {
		for _, c := range idle {
			c.Close()
		}
	}()
	perConn := max(c.perConn, 1)
	start := time.Now()
	for i := 0; i < c.subs; i += perConn {
		conn, err := dialWS(tg)
		if err != nil {
			return fmt.Errorf("open subscription %d: %w", i, err)
		}
		idle = append(idle, conn)
		for j := 0; j < perConn; j++ {
			if err := wsSubscribe(conn, otherID, strconv.Itoa(j)); err != nil {
				return fmt.Errorf("subscribe %d: %w", i+j, err)
			}
		}
		if (i+perConn)%1000 == 0 {
			fmt.Fprintf(progress, "  opened %d subscriptions\n", i+perConn)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	opened := time.Since(start)
	time.Sleep(time.Second)
	after, _ := readProc(tg.pid)
	liveAfter := liveMemory(tg.pprof)
	name := fmt.Sprintf("subs%d", c.subs)
	t.add(name+" · idle", fmt.Sprintf("open %d subscriptions (%d per connection)", c.subs, perConn), opened.Round(10*time.Millisecond).String(), "", "")
	if tg.pid != 0 && c.subs > 0 {
		t.add(name+" · idle", "server RSS before / after", fmt.Sprintf("%s / %s", fmtBytes(before.rss), fmtBytes(after.rss)), "", "")
		t.add(name+" · idle", "server RSS per open subscription", fmt.Sprintf("%.1f KB", float64(after.rss-before.rss)/float64(c.subs)/1024), "", "")
		if liveAfter > 0 {
			t.add(name+" · idle", "server heap+stack in use per subscription (after GC)", fmt.Sprintf("%.1f KB", float64(liveAfter-liveBefore)/float64(c.subs)/1024), "", "")
		}
	}
	sub, err := subscribe(ctx, tg, segID)
	if err != nil {
		return err
	}
	defer sub.close()
	dc := c
	if dc.rate == 0 {
		dc.rate = 1000
	}
	var results []*driveResult
	for _, tr := range transports(c, "trackEvents") {
		d := &drive{label: fmt.Sprintf("%s at %d/s", tr, dc.rate), transport: tr, sub: sub, pids: pids(tg), makeEvent: func(i int) benchEvent {
			id := fmt.Sprintf("live-%s-%s-%d", runID, tr, i)
			return benchEvent{MessageID: id, UserID: id, Name: "Sign Up", Enters: true,
				Props: map[string]any{"Reward Amount": 80}}
		}}
		r, err := d.run(ctx, dc, tg)
		if err != nil {
			return err
		}
		results = append(results, r)
	}
	return finish(ctx, dc, tg, t, name, results)
}

// liveMemory returns the server's heap and stack in use after a GC, read
// from its profiling endpoint: what its objects really hold, unlike RSS,
// which also counts garbage the collector has not returned yet.
func liveMemory(pprofAddr string) int64 {
	if pprofAddr == "" {
		return 0
	}
	resp, err := http.Get("http://" + pprofAddr + "/debug/pprof/heap?gc=1&debug=1")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	var total int64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		line := sc.Text()
		var n int64
		if _, err := fmt.Sscanf(line, "# HeapInuse = %d", &n); err == nil {
			total += n
		}
		if _, err := fmt.Sscanf(line, "# Stack = %d", &n); err == nil {
			total += n
		}
	}
	return total
}
