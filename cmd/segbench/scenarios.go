package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

func pred(scope, prop, op string, v any) map[string]any {
	m := map[string]any{"scope": scope, "property": prop, "operator": op}
	if v != nil {
		m["value"] = v
	}
	return m
}

func createSegment(ctx context.Context, tg *target, name string, triggers []string, cond map[string]any) (string, error) {
	in := map[string]any{"name": name, "kind": "EVENT_TRIGGERED", "triggerEvents": triggers, "condition": cond}
	if triggers == nil {
		in = map[string]any{"name": name, "kind": "STATIC"}
	}
	var out struct{ CreateSegment struct{ ID string } }
	if err := gql(ctx, tg, `mutation($in: CreateSegmentInput!) { createSegment(input: $in) { id } }`, map[string]any{"in": in}, &out); err != nil {
		return "", fmt.Errorf("create segment %q: %w", name, err)
	}
	return out.CreateSegment.ID, nil
}

func createCampaign(ctx context.Context, tg *target, name, segID string) error {
	err := gql(ctx, tg, `mutation($n: String!, $s: ID!) { createCampaign(input: {name: $n, segmentId: $s, status: ACTIVE}) { id } }`,
		map[string]any{"n": name, "s": segID}, nil)
	if err != nil {
		return fmt.Errorf("create campaign %q: %w", name, err)
	}
	return nil
}

func transports(c config, def string) []string {
	switch c.transport {
	case "":
		if def == "all" {
			return []string{"trackEvents", "trackEvent", "v1batch"}
		}
		return []string{def}
	case "all":
		return []string{"trackEvents", "trackEvent", "v1batch"}
	}
	return []string{c.transport}
}

func pids(tgs ...*target) []int {
	var out []int
	for _, t := range tgs {
		if t.pid != 0 {
			out = append(out, t.pid)
		}
	}
	return out
}

// runID keeps message and user IDs of runs against one database apart.
var runID = time.Now().UTC().Format("150405")

// seed: the seed example. Segment "Facebook sign-ups" on "Sign Up" with
// user.Channel = "Facebook" AND event."Sign Up Date" > 2025-01-01, an
// ACTIVE campaign, a subscriber; half of the events' users match.
func seed(ctx context.Context, c config, tg *target, t *table) error {
	segID, err := createSegment(ctx, tg, "Facebook sign-ups", []string{"Sign Up"}, map[string]any{"and": []any{
		pred("USER", "Channel", "EQ", "Facebook"), pred("EVENT", "Sign Up Date", "GT", "2025-01-01")}})
	if err != nil {
		return err
	}
	if err := createCampaign(ctx, tg, "Welcome Mission", segID); err != nil {
		return err
	}
	sub, err := subscribe(ctx, tg, segID)
	if err != nil {
		return err
	}
	defer sub.close()
	var results []*driveResult
	for _, tr := range transports(c, "all") {
		d := &drive{label: tr, transport: tr, sub: sub, pids: pids(tg), makeEvent: func(i int) benchEvent {
			channel := "Google"
			if i%2 == 0 {
				channel = "Facebook"
			}
			id := fmt.Sprintf("seed-%s-%s-%d", runID, tr, i)
			return benchEvent{MessageID: id, UserID: id, Name: "Sign Up", Enters: i%2 == 0,
				Traits: map[string]any{"Channel": channel},
				Props:  map[string]any{"Sign Up Date": "2025-03-01", "Reward Amount": i % 100}}
		}}
		r, err := d.run(ctx, c, tg)
		if err != nil {
			return err
		}
		results = append(results, r)
	}
	return finish(ctx, c, tg, t, "seed", results)
}

// finish measures the baselines and reports the drives.
func finish(ctx context.Context, c config, tg *target, t *table, scenario string, results []*driveResult) error {
	b, err := measureBaselines(ctx, c, tg, results)
	if err != nil {
		return err
	}
	for _, r := range results {
		report(t, scenario, r, b)
	}
	if b.trivial != nil {
		t.add(scenario+" · baseline", "GraphQL { __typename } round trips",
			fmt.Sprintf("%s; p50 %s p95 %s p99 %s", fmtRate(b.trivial.rate()), fmtDur(b.trivial.lat.pct(0.5)), fmtDur(b.trivial.lat.pct(0.95)), fmtDur(b.trivial.lat.pct(0.99))),
			fmt.Sprintf("%d workers", c.workers), "")
	}
	return nil
}

// hot: one segment that every event's user enters, with an ACTIVE
// campaign: every event writes a membership, a change and an activation.
func hot(ctx context.Context, c config, tg *target, t *table) error {
	segID, err := createSegment(ctx, tg, "Everyone who opens the app", []string{"App Open"}, pred("EVENT", "Screen", "EXISTS", nil))
	if err != nil {
		return err
	}
	if err := createCampaign(ctx, tg, "Hot campaign", segID); err != nil {
		return err
	}
	sub, err := subscribe(ctx, tg, segID)
	if err != nil {
		return err
	}
	defer sub.close()
	var results []*driveResult
	for _, tr := range transports(c, "trackEvents") {
		d := &drive{label: tr, transport: tr, sub: sub, pids: pids(tg), makeEvent: func(i int) benchEvent {
			id := fmt.Sprintf("hot-%s-%s-%d", runID, tr, i)
			return benchEvent{MessageID: id, UserID: id, Name: "App Open", Enters: true,
				Props: map[string]any{"Screen": "home"}, Traits: map[string]any{"Plan": "free"}}
		}}
		r, err := d.run(ctx, c, tg)
		if err != nil {
			return err
		}
		results = append(results, r)
	}
	return finish(ctx, c, tg, t, "hot", results)
}

// segments10k: c.segments EVENT_TRIGGERED segments, 10 of them triggered by
// "Purchase" (the event sent), the rest by other names.
func segments10k(ctx context.Context, c config, tg *target, t *table) error {
	const triggered = 10
	fmt.Fprintf(progress, "  creating %d segments ...\n", c.segments)
	start := time.Now()
	var (
		next     atomic.Int64
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
		first    string
		mu       sync.Mutex
	)
	for range c.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= c.segments || ctx.Err() != nil {
					return
				}
				trig := fmt.Sprintf("Other event %d", i)
				if i < triggered {
					trig = "Purchase"
				}
				id, err := createSegment(ctx, tg, fmt.Sprintf("Segment %d", i), []string{trig}, pred("EVENT", "Amount", "GT", 50+i%10))
				if err != nil {
					errOnce.Do(func() { firstErr = err })
					return
				}
				if i == 0 {
					mu.Lock()
					first = id
					mu.Unlock()
				}
				if (i+1)%2000 == 0 {
					fmt.Fprintf(progress, "  %d segments\n", i+1)
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	t.add("segments10k · setup", fmt.Sprintf("%d createSegment calls", c.segments), time.Since(start).Round(100*time.Millisecond).String(), "", "")
	if err := createCampaign(ctx, tg, "Big spenders", first); err != nil {
		return err
	}
	sub, err := subscribe(ctx, tg, first)
	if err != nil {
		return err
	}
	defer sub.close()
	var results []*driveResult
	for _, tr := range transports(c, "trackEvents") {
		d := &drive{label: tr, transport: tr, sub: sub, pids: pids(tg), makeEvent: func(i int) benchEvent {
			id := fmt.Sprintf("s10k-%s-%s-%d", runID, tr, i)
			amount := i % 100
			return benchEvent{MessageID: id, UserID: id, Name: "Purchase", Enters: amount > 50,
				Props: map[string]any{"Amount": amount}, Traits: map[string]any{"Plan": "pro"}}
		}}
		r, err := d.run(ctx, c, tg)
		if err != nil {
			return err
		}
		results = append(results, r)
	}
	return finish(ctx, c, tg, t, "segments10k", results)
}

// replicas: two segmentd processes on one PostgreSQL database; events go
// to A, the subscriber listens on B.
func replicas(ctx context.Context, c config, bin string, t *table) error {
	if c.url != "" {
		return skipf("replicas: segbench starts both replicas itself; run it without -url")
	}
	if !isPostgres(c.databaseURL) {
		return skipf("replicas: needs -database-url postgres://... (SQLite has one process)")
	}
	dbURL, drop, err := freshDatabase(ctx, c, "replicas")
	if err != nil {
		return err
	}
	defer drop()
	a, err := startServer(ctx, bin, dbURL)
	if err != nil {
		return err
	}
	defer a.stop()
	b, err := startServer(ctx, bin, dbURL)
	if err != nil {
		return err
	}
	defer b.stop()
	ta := &target{url: a.url, key: a.key, writeKey: a.writeKey, pid: a.cmd.Process.Pid, databaseURL: dbURL}
	tb := &target{url: b.url, key: b.key, writeKey: b.writeKey, pid: b.cmd.Process.Pid, databaseURL: dbURL}
	segID, err := createSegment(ctx, ta, "Replicated sign-ups", []string{"Sign Up"}, pred("EVENT", "Reward Amount", "GT", 50))
	if err != nil {
		return err
	}
	if err := createCampaign(ctx, ta, "Replicated campaign", segID); err != nil {
		return err
	}
	sub, err := subscribe(ctx, tb, segID)
	if err != nil {
		return err
	}
	defer sub.close()
	var results []*driveResult
	for _, tr := range transports(c, "trackEvents") {
		d := &drive{label: tr + " to A, subscriber on B", transport: tr, sub: sub, pids: pids(ta, tb), makeEvent: func(i int) benchEvent {
			id := fmt.Sprintf("rep-%s-%s-%d", runID, tr, i)
			reward := i % 100
			return benchEvent{MessageID: id, UserID: id, Name: "Sign Up", Enters: reward > 50,
				Props: map[string]any{"Reward Amount": reward}, Traits: map[string]any{"Channel": "Facebook"}}
		}}
		r, err := d.run(ctx, c, ta)
		if err != nil {
			return err
		}
		results = append(results, r)
	}
	if err := finish(ctx, c, ta, t, "replicas", results); err != nil {
		return err
	}
	t.add("replicas · note", "CPU and peak RSS", "sum of both processes", "", "")
	return nil
}
