package main

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/segmentd/segmentd/internal/testenv"
	"github.com/segmentd/segmentd/store"
)

// TestVerifyPoisonedRows (issue 13, item 1): `segmentd verify` reads a
// database holding numbers outside float64 (a user's trait and an event's
// property, written there directly, as older versions stored them) and
// prints its report instead of aborting.
func TestVerifyPoisonedRows(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		ctx := context.Background()
		st, err := store.Open(ctx, dbURL)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		if err := st.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		for _, q := range []string{
			`INSERT INTO users (id, user_id, traits, first_seen_at, last_seen_at) VALUES ('usr_x', 'u-1', '{"big": 1e400}', '2025-01-01 00:00:00', '2025-01-01 00:00:00')`,
			`INSERT INTO events (id, message_id, type, name, user_id, user_ref, properties, traits, context, timestamp, received_at, outcomes)
			 VALUES ('evt_x', 'm-1', 'TRACK', 'View', 'u-1', 'usr_x', '{"n": -1e400}', '{"big": 1e400}', '{}', '2025-01-01 00:00:00', '2025-01-01 00:00:00', '[]')`,
		} {
			if _, err := st.DB.ExecContext(ctx, q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		out, errOut, err := run(t, "verify", "--database-url", dbURL)
		if err != nil && !errors.Is(err, errDiscrepancies) {
			t.Fatalf("verify aborted: %v\nstdout %q\nstderr %q", err, out, errOut)
		}
		if !strings.Contains(out, "checked 1 events, 1 users") {
			t.Fatalf("verify printed %q; want it to have read the event and the user", out)
		}
	})
}
