package main

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// held (PostgreSQL): event-to-subscriber latency at 500 events/s, first
// with nothing else running, then while another session holds a
// transaction open (with a transaction id of its own, as a report that
// writes a scratch table or a psql session left in BEGIN does) for the
// whole drive. Live delivery waits only for segmentd's own log writers,
// so the two should match; before, every subscriber waited for the held
// transaction to end.
func held(ctx context.Context, c config, tg *target, t *table) error {
	if !isPostgres(tg.databaseURL) {
		return skipf("held: a PostgreSQL scenario (-database-url postgres://...)")
	}
	segID, err := createSegment(ctx, tg, "segbench held", []string{"Sign Up"}, pred("EVENT", "Reward Amount", "GT", 50))
	if err != nil {
		return err
	}
	sub, err := subscribe(ctx, tg, segID)
	if err != nil {
		return err
	}
	defer sub.close()
	dc := c
	if dc.rate == 0 {
		dc.rate = 500
	}
	drive := func(label string) (*driveResult, error) {
		d := &drive{label: label, transport: "trackEvents", sub: sub, pids: pids(tg), makeEvent: func(i int) benchEvent {
			id := fmt.Sprintf("held-%s-%s-%d", runID, label, i)
			return benchEvent{MessageID: id, UserID: id, Name: "Sign Up", Enters: true, Props: map[string]any{"Reward Amount": 80}}
		}}
		return d.run(ctx, dc, tg)
	}
	idle, err := drive(fmt.Sprintf("at %d/s, nothing else running", dc.rate))
	if err != nil {
		return err
	}
	db, err := sql.Open("postgres", pgDSN(tg.databaseURL))
	if err != nil {
		return fmt.Errorf("held: %w", err)
	}
	defer db.Close()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("held: begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // the point is never to commit
	var xid string
	if err := tx.QueryRowContext(ctx, `SELECT pg_current_xact_id()::text`).Scan(&xid); err != nil {
		return fmt.Errorf("held: take a transaction id: %w", err)
	}
	opened := time.Now()
	beside, err := drive(fmt.Sprintf("at %d/s, another session's transaction open", dc.rate))
	if err != nil {
		return err
	}
	fmt.Fprintf(progress, "  the other session's transaction (id %s) was open %s\n", xid, time.Since(opened).Round(time.Second))
	return finish(ctx, dc, tg, t, "held", []*driveResult{idle, beside})
}
