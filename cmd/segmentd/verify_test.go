package main

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/segmentd/segmentd/store"
)

// TestVerifyCommand: `segmentd verify` on consistent data says so and
// succeeds; on a database with a membership but no ENTERED change in the
// log it prints the discrepancy and fails (main exits 1).
func TestVerifyCommand(t *testing.T) {
	db := newDatabase(t)
	out, errOut, err := run(t, "verify", "--database-url", db)
	if err != nil || !strings.Contains(out, "no discrepancies") {
		t.Fatalf("verify on an empty database: %v\nstdout %q\nstderr %q", err, out, errOut)
	}

	ctx := context.Background()
	st, err := store.Open(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, q := range []string{
		`INSERT INTO segments (id, name, kind, trigger_events, created_at, updated_at) VALUES ('seg_x', 'VIP', 'STATIC', '[]', '2025-01-01 00:00:00', '2025-01-01 00:00:00')`,
		`INSERT INTO users (id, user_id, traits, first_seen_at, last_seen_at) VALUES ('usr_x', 'u-1', '{}', '2025-01-01 00:00:00', '2025-01-01 00:00:00')`,
		`INSERT INTO memberships (id, segment_ref, user_ref, entered_at, source, reason) VALUES ('mem_x', 'seg_x', 'usr_x', '2025-01-01 00:00:00', 'MANUAL', 'behind its back')`,
	} {
		if _, err := st.DB.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	out, _, err = run(t, "verify", "--database-url", db)
	if !errors.Is(err, errDiscrepancies) {
		t.Fatalf("verify on a damaged database: err %v, want errDiscrepancies\n%s", err, out)
	}
	if !strings.Contains(out, "missing-entered-change: 1") || !strings.Contains(out, "mem_x") {
		t.Fatalf("verify printed %q; want the missing ENTERED change of mem_x", out)
	}
}
