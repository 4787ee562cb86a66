package main

import (
	"bytes"
	"context"
	"fmt"
	"time"
)

// importLive (PostgreSQL): event-to-subscriber latency of one segment
// while another segment takes a large import (-import-rows, 1,000,000 by
// default), and right after it commits: first at 1,000 and at 500 events/s
// with nothing else running, then at 500/s from the upload until the
// import has SUCCEEDED, then at 500/s for -duration after. The import's
// apply transaction announces itself as a writer of its segment's changes
// only, and the fan-out reads only the segments someone follows, so
// neither the minutes of the apply nor the million change rows it leaves
// should show in the other segment's latency.
func importLive(ctx context.Context, c config, tg *target, t *table) error {
	if !isPostgres(tg.databaseURL) {
		return skipf("importlive: a PostgreSQL scenario (-database-url postgres://...): SQLite writers take turns, so nothing commits while an import does")
	}
	hotID, err := createSegment(ctx, tg, "segbench importlive sign-ups", []string{"Sign Up"}, pred("EVENT", "Reward Amount", "GT", 50))
	if err != nil {
		return err
	}
	bulkID, err := createSegment(ctx, tg, "segbench importlive imported", nil, nil)
	if err != nil {
		return err
	}
	if err := createCampaign(ctx, tg, "segbench importlive welcome", bulkID); err != nil {
		return err
	}
	sub, err := subscribe(ctx, tg, hotID)
	if err != nil {
		return err
	}
	defer sub.close()
	drives := 0
	drive := func(label string, rate int, cc config) (*driveResult, error) {
		cc.rate = rate
		drives++
		k := drives // events are made concurrently: i is unique within one drive
		d := &drive{label: label, transport: "trackEvents", sub: sub, pids: pids(tg), makeEvent: func(i int) benchEvent {
			id := fmt.Sprintf("implive-%s-%d-%d", runID, k, i)
			return benchEvent{MessageID: id, UserID: id, Name: "Sign Up", Enters: true, Props: map[string]any{"Reward Amount": 80}}
		}}
		return d.run(ctx, cc, tg)
	}
	var results []*driveResult
	for _, rate := range []int{1000, 500} {
		r, err := drive(fmt.Sprintf("at %d/s, nothing else running", rate), rate, c)
		if err != nil {
			return err
		}
		results = append(results, r)
	}

	rows := c.importRows
	if rows == 0 {
		rows = 1_000_000
	}
	var csv bytes.Buffer
	csv.WriteString("userId\n")
	for i := 0; i < rows; i++ {
		fmt.Fprintf(&csv, "implive-%s-u%d\n", runID, i)
	}
	type outcome struct {
		elapsed time.Duration
		result  string
		err     error
	}
	done := make(chan outcome, 1)
	fmt.Fprintf(progress, "  importing %d rows (%d bytes) into another segment while ingesting\n", rows, csv.Len())
	go func() {
		s := time.Now()
		res, err := upload(ctx, tg, bulkID, "ADD", csv.Bytes())
		if err == nil {
			res, err = waitJob(ctx, tg, res)
		}
		done <- outcome{time.Since(s), res, err}
	}()
	// Chunks of 5 s until the import ends, merged into one result.
	chunk := c
	chunk.duration = 5 * time.Second
	chunk.events = 1 << 30
	var during *driveResult
	var imp outcome
	for finished := false; !finished; {
		r, err := drive(fmt.Sprintf("at 500/s, during a %d-row import", rows), 500, chunk)
		if err != nil {
			return err
		}
		during = mergeDrives(during, r)
		select {
		case imp = <-done:
			finished = true
		default:
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	if imp.err != nil {
		return fmt.Errorf("importlive: the import: %w", imp.err)
	}
	results = append(results, during)
	after, err := drive(fmt.Sprintf("at 500/s, right after the %d-row import committed", rows), 500, c)
	if err != nil {
		return err
	}
	results = append(results, after)
	t.add("importlive", fmt.Sprintf("import of %d rows into another segment (upload to SUCCEEDED); job", rows),
		fmt.Sprintf("%s; %.160s", imp.elapsed.Round(time.Millisecond), imp.result), "", "")
	return finish(ctx, c, tg, t, "importlive", results)
}

// mergeDrives adds r to acc (nil: r alone): the chunks of one drive.
func mergeDrives(acc, r *driveResult) *driveResult {
	if acc == nil {
		return r
	}
	acc.sent += r.sent
	acc.acked += r.acked
	acc.errors += r.errors
	acc.entered += r.entered
	if acc.firstErr == "" {
		acc.firstErr = r.firstErr
	}
	acc.elapsed += r.elapsed
	acc.ack.d = append(acc.ack.d, r.ack.d...)
	if acc.e2s != nil && r.e2s != nil {
		acc.e2s.d = append(acc.e2s.d, r.e2s.d...)
	}
	acc.cpu += r.cpu
	acc.hwm = max(acc.hwm, r.hwm)
	acc.ackedEvents = append(acc.ackedEvents, r.ackedEvents...)
	return acc
}
