package main

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/segmentd/segmentd/ent/membership"
	"github.com/segmentd/segmentd/ent/membershipdeadline"
	"github.com/segmentd/segmentd/ent/schema/pulid"
	"github.com/segmentd/segmentd/ledger"
	"github.com/segmentd/segmentd/store"
)

// expiryPoll is how often the sustained expiry mode counts the members
// left: the resolution of its lateness figures.
const expiryPoll = 50 * time.Millisecond

// expirySustained (expiry with -expiry-rate N): N×D users imported into a
// STATIC segment with exitRules {after: 1h}; segbench then rewrites their
// deadlines (membership_deadlines.due_at, in the database) so that they
// come due evenly at N per second for D (-expiry-for) seconds, starting a
// few seconds later, and the running server's sweeper expires them. The
// exit change's `at` is the due instant itself, so lateness is observed:
// the member count is polled every expiryPoll, and since the sweeper takes
// due deadlines earliest first, exit k (in due order) was made by the first
// poll that saw k+1 members gone. Lateness = that poll's time − due
// instant k: an upper bound, up to expiryPoll plus a count query late.
// trackEvents ingestion runs at expiryRate events/s meanwhile, and its
// acknowledgement p99 is reported.
func expirySustained(ctx context.Context, c config, tg *target, t *table) error {
	total := c.expiryRate * int(c.expiryFor/time.Second)
	if total <= 0 {
		return fmt.Errorf("expiry: -expiry-for must be at least 1s")
	}
	var seg struct{ CreateSegment struct{ ID string } }
	if err := gql(ctx, tg, `mutation($in: CreateSegmentInput!) { createSegment(input: $in) { id } }`, map[string]any{"in": map[string]any{
		"name": "Sustained expiry", "kind": "STATIC", "exitRules": map[string]any{"after": "3600s"}}}, &seg); err != nil {
		return fmt.Errorf("create the expiring segment: %w", err)
	}
	segID := pulid.ID(seg.CreateSegment.ID)
	var csv bytes.Buffer
	csv.WriteString("userId\n")
	for i := 0; i < total; i++ {
		fmt.Fprintf(&csv, "sexp-%s-%d\n", runID, i)
	}
	fmt.Fprintf(progress, "  importing %d members, to come due at %d/s for %s\n", total, c.expiryRate, c.expiryFor)
	res, err := upload(ctx, tg, string(segID), "ADD", csv.Bytes())
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

	ids, err := st.Client.MembershipDeadline.Query().
		Where(membershipdeadline.SegmentRef(segID), membershipdeadline.WhyEQ(membershipdeadline.WhyEXPIRE)).IDs(ctx)
	if err != nil {
		return fmt.Errorf("expiry: read the deadlines: %w", err)
	}
	if len(ids) != total {
		return fmt.Errorf("expiry: %d deadlines after importing %d members", len(ids), total)
	}
	// Spread them: deadline k due at start + k/N. start leaves time for
	// the rewrite (one UPDATE a row, in one transaction) to commit and for the sweeper (which looks again within
	// a second) to see the new earliest deadline.
	fmt.Fprintf(progress, "  spreading %d deadlines\n", total)
	tx, err := st.Client.Tx(ctx)
	if err != nil {
		return err
	}
	// Only the ledger writes deadlines (a test keeps it so).
	l, err := ledger.New(st.Dialect)
	if err != nil {
		_ = tx.Rollback()
		return err
	}
	w := l.Writer(tx)
	// One UPDATE a row: about 0.5 ms each on PostgreSQL here, so allow 1 ms.
	start := time.Now().Add(5*time.Second + time.Duration(total)*time.Millisecond).UTC().Truncate(time.Microsecond)
	due := make([]time.Time, total)
	for k, id := range ids {
		due[k] = start.Add(time.Duration(k) * time.Second / time.Duration(c.expiryRate))
		if err := w.MoveDeadline(ctx, id, due[k]); err != nil {
			_ = tx.Rollback()
			return fmt.Errorf("expiry: spread the deadlines: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("expiry: spread the deadlines: %w", err)
	}
	if time.Until(start) < time.Second {
		return fmt.Errorf("expiry: spreading the deadlines took too long (start in %s)", time.Until(start).Round(time.Millisecond))
	}

	// Ingestion at expiryRate beside the expiries, from just before the
	// first instant to just after the last.
	type ingested struct {
		res *driveResult
		err error
	}
	ingestion := make(chan ingested, 1)
	go func() {
		time.Sleep(time.Until(start.Add(-500 * time.Millisecond)))
		res, err := expiryIngest(ctx, c, tg, "beside the expiries", c.expiryFor+time.Second)
		ingestion <- ingested{res, err}
	}()

	// The watcher: the first poll that saw each count gone.
	lateness, err := watchDrain(due, func() (int, error) {
		return st.Client.Membership.Query().Where(membership.SegmentRef(segID)).Count(ctx)
	})
	if err != nil {
		return fmt.Errorf("expiry: count the members: %w", err)
	}
	in := <-ingestion
	if in.err != nil {
		return fmt.Errorf("expiry: ingestion: %w", in.err)
	}
	label := fmt.Sprintf("%d/s due for %s (%d), ingesting %d/s, each exit vs its instant", c.expiryRate, c.expiryFor, total, expiryRate)
	addLateness(t, "expiry", label, "expiries", lateness, due)
	t.add("expiry", fmt.Sprintf("trackEvents ack p99 at %d events/s beside the expiries", expiryRate), fmtDur(in.res.ack.pct(0.99)),
		fmt.Sprintf("%d of %d sent; %d errors", in.res.acked, in.res.sent, in.res.errors), "")
	return nil
}

// watchDrain polls count (the members left) every expiryPoll until every
// one of the changes due at due (earliest first) was made, or 2 minutes
// after the last instant, and returns each change's lateness: change k (in
// due order) counts as made at the first poll that saw k+1 members gone.
func watchDrain(due []time.Time, count func() (int, error)) ([]time.Duration, error) {
	total := len(due)
	lateness := make([]time.Duration, 0, total)
	limit := due[total-1].Add(2 * time.Minute)
	for len(lateness) < total && time.Now().Before(limit) {
		n, err := count()
		if err != nil {
			return lateness, err
		}
		now := time.Now()
		for gone := len(lateness); gone < total-n; gone++ {
			lateness = append(lateness, now.Sub(due[gone]))
		}
		time.Sleep(expiryPoll)
	}
	return lateness, nil
}

// addLateness adds watchDrain's figures to the table: the lateness
// percentiles, how many within 1 s of their instant, and the rate.
func addLateness(t *table, scenario, label, what string, lateness []time.Duration, due []time.Time) {
	total := len(due)
	if len(lateness) < total {
		t.add(scenario, label, fmt.Sprintf("failed: %d of %d made within 2 minutes of the last instant", len(lateness), total), "", "")
	}
	if len(lateness) == 0 {
		return
	}
	sorted := slices.Clone(lateness)
	slices.Sort(sorted)
	pct := func(p float64) time.Duration { return sorted[min(len(sorted)-1, int(p*float64(len(sorted))))] }
	within := 0
	for _, l := range lateness {
		if l <= time.Second {
			within++
		}
	}
	t.add(scenario, label+": lateness p50 / p95 / p99 / max",
		fmt.Sprintf("%s / %s / %s / %s", fmtDur(pct(0.50)), fmtDur(pct(0.95)), fmtDur(pct(0.99)), fmtDur(sorted[len(sorted)-1])),
		fmt.Sprintf("poll every %s", expiryPoll), "")
	t.add(scenario, "exits within 1 s of their instant", fmt.Sprintf("%d of %d (%.2f %%)", within, total, 100*float64(within)/float64(total)), "", "")
	if len(lateness) == total {
		t.add(scenario, what+" per second (first instant to last exit seen)",
			fmtRate(float64(total)/(lateness[total-1]+due[total-1].Sub(due[0])).Seconds()), "", "")
	}
}
