package service_test

import (
	"context"
	"testing"
	"time"

	"github.com/segmentd/segmentd/ent/segment"
	"github.com/segmentd/segmentd/ent/user"
	"github.com/segmentd/segmentd/internal/testenv"
	"github.com/segmentd/segmentd/service"
	"github.com/segmentd/segmentd/store"
	"github.com/segmentd/segmentd/trigger"
)

// TestVerifyExits: a history with exits by traits, by exit events and a
// DYNAMIC segment verifies clean; a trait change stored behind the
// service's back (so nobody left) is reported as missed-exit and
// dynamic-mismatch.
func TestVerifyExits(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, databaseURL string) {
		ctx := context.Background()
		st, err := store.Open(ctx, databaseURL)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		if err := st.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		svc := newService(t, st, service.Config{})
		fb := &trigger.ConditionInput{Scope: ref(trigger.ScopeUser), Property: ref("Channel"), Operator: ref(trigger.OpEQ), Value: "Facebook"}
		mustCreate := func(in service.CreateSegmentInput) {
			t.Helper()
			if _, err := svc.CreateSegment(ctx, in); err != nil {
				t.Fatal(err)
			}
		}
		mustCreate(service.CreateSegmentInput{Name: "Facebook sign-ups", Kind: segment.KindEVENT_TRIGGERED, TriggerEvents: []string{"Sign Up"},
			Condition: fb, ExitRules: &service.ExitRulesInput{WhenConditionFails: ref(true), OnEvents: []string{"Unsubscribed"}}})
		mustCreate(service.CreateSegmentInput{Name: "Facebook users", Kind: segment.KindDYNAMIC, Condition: fb})
		for _, u := range []string{"a", "b", "c"} {
			if _, err := svc.Track(ctx, service.TrackInput{Event: "Sign Up", UserID: ref(u), Traits: map[string]any{"Channel": "Facebook"}}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := svc.Identify(ctx, service.IdentifyInput{UserID: "a", Traits: map[string]any{"Channel": "Google"}}); err != nil {
			t.Fatal(err)
		}
		if _, err := svc.Track(ctx, service.TrackInput{Event: "Unsubscribed", UserID: ref("b")}); err != nil {
			t.Fatal(err)
		}
		rep, err := svc.Verify(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !rep.OK() || rep.Memberships != 3 { // c in the first; b and c in the DYNAMIC one
			t.Fatalf("a clean history: %d memberships, findings:\n%s", rep.Memberships, rep)
		}

		// c's channel changes in a stored event that ingestion never saw.
		c, err := svc.EntClient().User.Query().Where(user.UserID("c")).Only(ctx)
		if err != nil {
			t.Fatal(err)
		}
		q := `INSERT INTO events (id, message_id, type, user_id, properties, traits, context, timestamp, received_at, outcomes, user_ref)
			VALUES (?, ?, 'IDENTIFY', 'c', '{}', '{"Channel":"Google"}', '{}', ?, ?, '[]', ?)`
		if st.Dialect != "sqlite3" {
			q = pgPlaceholders(q)
		}
		now := time.Now().UTC().Add(time.Second)
		if _, err := st.DB.ExecContext(ctx, q, "evt_behind", "behind-the-back", now, now, string(c.ID)); err != nil {
			t.Fatal(err)
		}
		rep, err = svc.Verify(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Count("missed-exit") != 1 || rep.Count("dynamic-mismatch") != 1 || len(rep.Findings) != 2 {
			t.Fatalf("want one missed-exit and one dynamic-mismatch:\n%s", rep)
		}
	})
}
