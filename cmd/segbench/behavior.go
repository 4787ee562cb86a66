package main

import (
	"context"
	"fmt"
	"time"

	"github.com/segmentd/segmentd/ent/membership"
	"github.com/segmentd/segmentd/ent/schema/pulid"
	"github.com/segmentd/segmentd/store"
)

// behaviorWindow is the window of the behavior scenario's predicate: long
// enough to send every login before the first one leaves it, and short
// enough that every login is less than a minute late (so that it is
// evaluated at its own timestamp).
const behaviorWindow = 60 * time.Second

// behaviorScenario (behavior): a DYNAMIC segment "performed Login within
// 60s"; c.behaviorUsers users each send one Login, dated so that the
// logins leave the window at one instant (-behavior-rate 0) or evenly at
// -behavior-rate a second, starting a few seconds after the last login is
// sent; the running server's re-evaluation sweep then makes every exit
// with no event. trackEvents ingestion runs at expiryRate events/s beside
// it. Lateness is observed as in the sustained expiry mode: the member
// count is polled every expiryPoll, and exit k (in due order) counts as
// made at the first poll that saw k+1 members gone. Skipped without the
// server's database URL.
func behaviorScenario(ctx context.Context, c config, tg *target, t *table) error {
	if tg.databaseURL == "" {
		return skipf("behavior: needs the server's -database-url to watch the members")
	}
	total := c.behaviorUsers
	var seg struct{ CreateSegment struct{ ID string } }
	if err := gql(ctx, tg, `mutation($in: CreateSegmentInput!) { createSegment(input: $in) { id } }`, map[string]any{"in": map[string]any{
		"name": "Logged in this minute", "kind": "DYNAMIC",
		"condition": map[string]any{"performed": map[string]any{"event": "Login", "within": fmt.Sprintf("%ds", int(behaviorWindow/time.Second))}}}}, &seg); err != nil {
		return fmt.Errorf("behavior: create the segment: %w", err)
	}
	segID := pulid.ID(seg.CreateSegment.ID)
	// Login k leaves the window at start + k/rate: dated start - window +
	// k/rate. start leaves time to send them all (about 4,000 a second on
	// this machine, so allow 1 ms each) and is under a window away, so no
	// login is dated more than a minute before it is sent.
	start := time.Now().Add(5*time.Second + time.Duration(total)*time.Millisecond).UTC().Truncate(time.Microsecond)
	if time.Until(start) >= behaviorWindow {
		return fmt.Errorf("behavior: %d users take too long to send inside a %s window: lower -behavior-users", total, behaviorWindow)
	}
	due := make([]time.Time, total)
	for k := range due {
		due[k] = start
		if c.behaviorRate > 0 {
			due[k] = start.Add(time.Duration(k) * time.Second / time.Duration(c.behaviorRate))
		}
	}
	fmt.Fprintf(progress, "  sending %d logins that leave the window from %s\n", total, start.Format(time.RFC3339Nano))
	const batch = 500
	for i := 0; i < total; i += batch {
		in := make([]map[string]any, 0, batch)
		for k := i; k < min(i+batch, total); k++ {
			at := due[k].Add(-behaviorWindow)
			id := fmt.Sprintf("beh-%s-%d", runID, k)
			in = append(in, map[string]any{"event": "Login", "userId": id, "messageId": id, "timestamp": at.Format(time.RFC3339Nano)})
		}
		var out struct{ TrackEvents struct{ Accepted int } }
		if err := gql(ctx, tg, `mutation($in: [TrackInput!]!) { trackEvents(inputs: $in) { accepted } }`, map[string]any{"in": in}, &out); err != nil {
			return fmt.Errorf("behavior: send the logins: %w", err)
		}
	}
	st, err := store.Open(ctx, tg.databaseURL)
	if err != nil {
		return err
	}
	defer st.Close()
	members := func() (int, error) {
		return st.Client.Membership.Query().Where(membership.SegmentRef(segID)).Count(ctx)
	}
	if n, err := members(); err != nil || n != total {
		return fmt.Errorf("behavior: %d members after %d logins (%v)", n, total, err)
	}
	if time.Until(start) < time.Second {
		return fmt.Errorf("behavior: sending the logins took too long (the first leaves in %s)", time.Until(start).Round(time.Millisecond))
	}
	type ingested struct {
		res *driveResult
		err error
	}
	ingestion := make(chan ingested, 1)
	go func() {
		time.Sleep(time.Until(start.Add(-500 * time.Millisecond)))
		res, err := expiryIngest(ctx, c, tg, "beside the exits", due[total-1].Sub(start)+2*time.Second)
		ingestion <- ingested{res, err}
	}()
	lateness, err := watchDrain(due, members)
	if err != nil {
		return fmt.Errorf("behavior: count the members: %w", err)
	}
	in := <-ingestion
	if in.err != nil {
		return fmt.Errorf("behavior: ingestion: %w", in.err)
	}
	label := fmt.Sprintf("%d leaving a window at one instant, ingesting %d/s, each exit vs its instant", total, expiryRate)
	if c.behaviorRate > 0 {
		label = fmt.Sprintf("%d leaving a window at %d/s, ingesting %d/s, each exit vs its instant", total, c.behaviorRate, expiryRate)
	}
	addLateness(t, "behavior", label, "exits", lateness, due)
	t.add("behavior", fmt.Sprintf("trackEvents ack p99 at %d events/s beside the exits", expiryRate), fmtDur(in.res.ack.pct(0.99)),
		fmt.Sprintf("%d of %d sent; %d errors", in.res.acked, in.res.sent, in.res.errors), "")
	return nil
}
