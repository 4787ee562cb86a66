package main

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/segmentd/segmentd/ent/membership"
	"github.com/segmentd/segmentd/ent/schema/pulid"
	"github.com/segmentd/segmentd/store"
)

// expiryRate is the ingestion rate, events per second, while the
// memberships expire.
const expiryRate = 500

// expiryIngest drives trackEvents ingestion at expiryRate events/s for d
// (new users, an event no segment triggers on), beside the expiries.
func expiryIngest(ctx context.Context, c config, tg *target, label string, d time.Duration) (*driveResult, error) {
	c.rate, c.duration, c.events = expiryRate, d, expiryRate*int(d/time.Second+1)
	dr := &drive{label: label, transport: "trackEvents", pids: pids(tg), makeEvent: func(i int) benchEvent {
		id := fmt.Sprintf("expev-%s-%s-%d", runID, label, i)
		return benchEvent{MessageID: id, UserID: id, Name: "App Open", Props: map[string]any{"Screen": "home"}}
	}}
	return dr.run(ctx, c, tg)
}

// expiryScenario (expiry): c.expiryRows users imported into a STATIC
// segment whose members expire c.expiryAfter after entry (long enough for
// the import and an idle drive before they come due) (an import enters
// them all at one instant, so that they come due in the same second),
// while trackEvents ingestion runs at expiryRate events/s. It reports how
// long after their instant half, 99 % and all of the exits were made (the
// segment's member count, polled every 200 ms from the database), and the
// ingestion acknowledgement p99 meanwhile against an idle drive at the same
// rate before. Skipped without the server's database URL.
func expiryScenario(ctx context.Context, c config, tg *target, t *table) error {
	if tg.databaseURL == "" {
		return skipf("expiry: needs the server's -database-url to watch the members")
	}
	if c.expiryRate > 0 {
		return expirySustained(ctx, c, tg, t)
	}
	var seg struct{ CreateSegment struct{ ID string } }
	if err := gql(ctx, tg, `mutation($in: CreateSegmentInput!) { createSegment(input: $in) { id } }`, map[string]any{"in": map[string]any{
		"name": "Expiring trial", "kind": "STATIC", "exitRules": map[string]any{"after": fmt.Sprintf("%ds", int(c.expiryAfter/time.Second))}}}, &seg); err != nil {
		return fmt.Errorf("create the expiring segment: %w", err)
	}
	segID := seg.CreateSegment.ID
	var csv bytes.Buffer
	csv.WriteString("userId\n")
	for i := 0; i < c.expiryRows; i++ {
		fmt.Fprintf(&csv, "exp-%s-%d\n", runID, i)
	}
	fmt.Fprintf(progress, "  importing %d members that expire %s after entry\n", c.expiryRows, c.expiryAfter)
	res, err := upload(ctx, tg, segID, "ADD", csv.Bytes())
	if err == nil {
		_, err = waitJob(ctx, tg, res)
	}
	if err != nil {
		return fmt.Errorf("expiry: import: %w", err)
	}
	st, err := store.Open(ctx, tg.databaseURL)
	if err != nil {
		return err
	}
	defer st.Close()
	first, err := st.Client.Membership.Query().Where(membership.SegmentRef(pulid.ID(segID))).First(ctx)
	if err != nil {
		return fmt.Errorf("expiry: read a member: %w", err)
	}
	due := first.EnteredAt.Add(c.expiryAfter)
	members := func() (int, error) {
		return st.Client.Membership.Query().Where(membership.SegmentRef(pulid.ID(segID))).Count(ctx)
	}

	ingest := func(label string, d time.Duration) (*driveResult, error) { return expiryIngest(ctx, c, tg, label, d) }
	idleFor := min(5*time.Second, time.Until(due)-2*time.Second)
	if idleFor < time.Second {
		return fmt.Errorf("expiry: the import took too long (due in %s): raise -expiry-after", time.Until(due).Round(time.Millisecond))
	}
	idle, err := ingest("idle", idleFor)
	if err != nil {
		return err
	}
	time.Sleep(time.Until(due.Add(-time.Second)))

	// The watcher: when the member count fell to each share.
	type mark struct {
		share float64
		at    time.Duration // after the instant; -1: not reached
	}
	marks := []*mark{{0.5, -1}, {0.99, -1}, {1, -1}}
	watched := make(chan error, 1)
	go func() {
		limit := due.Add(2 * time.Minute)
		for time.Now().Before(limit) {
			n, err := members()
			if err != nil {
				watched <- err
				return
			}
			now := time.Now()
			gone := float64(c.expiryRows-n) / float64(c.expiryRows)
			for _, m := range marks {
				if m.at < 0 && gone >= m.share {
					m.at = now.Sub(due)
				}
			}
			if n == 0 {
				watched <- nil
				return
			}
			// Not more often: counting 100,000 members takes a while
			// itself, and the watcher must not slow the sweep it times.
			time.Sleep(200 * time.Millisecond)
		}
		watched <- fmt.Errorf("expiry: members left 2 minutes after their instant")
	}()
	during, err := ingest("during the expiry", 12*time.Second)
	if err != nil {
		return err
	}
	if err := <-watched; err != nil {
		t.add("expiry", fmt.Sprintf("%d memberships due in one second", c.expiryRows), "failed: "+err.Error(), "", "")
	}
	for _, m := range marks {
		value := "not reached"
		if m.at >= 0 {
			value = fmtDur(m.at)
		}
		t.add("expiry", fmt.Sprintf("%d due at one instant, ingesting %d/s: %g %% exited after", c.expiryRows, expiryRate, m.share*100), value, "", "")
	}
	if m := marks[len(marks)-1]; m.at >= 0 {
		t.add("expiry", "expiries per second (all, from the instant)", fmtRate(float64(c.expiryRows)/m.at.Seconds()), "", "")
	}
	t.add("expiry", fmt.Sprintf("trackEvents ack p99 at %d events/s during the expiry", expiryRate),
		fmtDur(during.ack.pct(0.99)), "idle: "+fmtDur(idle.ack.pct(0.99)), ratio(float64(during.ack.pct(0.99)), float64(idle.ack.pct(0.99))))
	t.add("expiry", "acknowledged events during / idle", fmt.Sprintf("%d of %d sent; %d errors", during.acked, during.sent, during.errors),
		fmt.Sprintf("%d of %d sent; %d errors", idle.acked, idle.sent, idle.errors), "")
	return nil
}
