package service_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/segmentd/segmentd/behavior"
	"github.com/segmentd/segmentd/ent"
	"github.com/segmentd/segmentd/ent/behaviorstate"
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

// TestVerifyClockDrivenAnswers: a DYNAMIC segment on "seen within 7d" and
// its deadlines verify clean, also once the clock passed a window and the
// sweeper has not run (the due deadline excuses it) and after it ran; a
// deadline lost behind the service's back is reported as missing-deadline,
// and, once the clock passed it, the member the clock should have removed
// as dynamic-mismatch.
func TestVerifyClockDrivenAnswers(t *testing.T) {
	for _, name := range testenv.Stores {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			t0 := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
			clk := &testClock{t: t0}
			svc, st := openService(t, testenv.DatabaseURL(t, name), clk)
			seen := &trigger.ConditionInput{Scope: ref(trigger.ScopeUser), Property: ref("lastSeen"), Operator: ref(trigger.OpWithinLast), Value: "7d"}
			seg, err := svc.CreateSegment(ctx, service.CreateSegmentInput{Name: "Seen this week", Kind: segment.KindDYNAMIC, Condition: seen})
			if err != nil {
				t.Fatal(err)
			}
			for i, u := range []string{"a", "b"} {
				at := t0.Add(-time.Duration(i+1) * 24 * time.Hour).Format(time.RFC3339)
				if _, err := svc.Identify(ctx, service.IdentifyInput{UserID: u, Traits: map[string]any{"lastSeen": at}}); err != nil {
					t.Fatal(err)
				}
			}
			verify := func(want map[string]int) {
				t.Helper()
				rep, err := svc.Verify(ctx)
				if err != nil {
					t.Fatal(err)
				}
				total := 0
				for kind, n := range want {
					total += n
					if rep.Count(kind) != n {
						t.Errorf("%d %s findings, want %d", rep.Count(kind), kind, n)
					}
				}
				if len(rep.Findings) != total {
					t.Errorf("findings:\n%s\nwant %v", rep, want)
				}
			}
			verify(nil)
			if n := countMembers(t, st.Client, seg.ID); n != 2 {
				t.Fatalf("%d members, want 2", n)
			}
			// b's window passed; the sweeper has not run.
			clk.Set(t0.Add(5*24*time.Hour + time.Hour))
			verify(nil)
			if n, err := svc.SweepReevaluations(ctx); err != nil || n != 1 {
				t.Fatalf("the sweep made %d changes (%v), want b's exit", n, err)
			}
			verify(nil)
			// a's deadline is lost: reported now, and once her window
			// passed, her membership too.
			if _, err := st.Client.MembershipDeadline.Delete().Exec(ctx); err != nil {
				t.Fatal(err)
			}
			verify(map[string]int{"missing-deadline": 1})
			clk.Set(t0.Add(7 * 24 * time.Hour))
			verify(map[string]int{"dynamic-mismatch": 1})
		})
	}
}

// TestVerifyBehaviorStates: a stored behaviour state that says more than
// the user's stored events is behavior-state-mismatch, one that does not
// decode behavior-state-unreadable, and one under a key no segment has
// orphan-behavior-state; intact states are clean.
func TestVerifyBehaviorStates(t *testing.T) {
	for _, name := range testenv.Stores {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			t0 := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
			clk := &testClock{t: t0}
			svc, st := openService(t, testenv.DatabaseURL(t, name), clk)
			cond := &trigger.ConditionInput{Performed: &trigger.PerformedInput{Event: "Purchase", Within: ref("7d"),
				Count: &trigger.ComparisonInput{Operator: trigger.OpGTE, Value: json.Number("2")}}}
			if _, err := svc.CreateSegment(ctx, service.CreateSegmentInput{Name: "Bought twice", Kind: segment.KindDYNAMIC, Condition: cond}); err != nil {
				t.Fatal(err)
			}
			for i, u := range []string{"a", "b", "c"} {
				if _, err := svc.TrackBatch(ctx, []*service.TrackInput{{Event: "Purchase", UserID: ref(u), MessageID: ref(fmt.Sprintf("p%d", i))}}); err != nil {
					t.Fatal(err)
				}
			}
			findings := func() map[string]int {
				t.Helper()
				rep, err := svc.Verify(ctx)
				if err != nil {
					t.Fatal(err)
				}
				out := map[string]int{}
				for _, f := range rep.Findings {
					out[f.Kind]++
				}
				return out
			}
			if f := findings(); len(f) != 0 {
				t.Fatalf("intact states: %v", f)
			}
			rows, err := st.Client.BehaviorState.Query().Order(ent.Asc(behaviorstate.FieldID)).All(ctx)
			if err != nil || len(rows) != 3 {
				t.Fatalf("%d states (%v), want 3", len(rows), err)
			}
			// a's state counts a second purchase a never made.
			bh, err := behavior.New(behavior.Spec{Within: 7 * 24 * time.Hour, Op: behavior.GTE, Value: 2})
			if err != nil {
				t.Fatal(err)
			}
			bh.Add(t0, 0, false)
			bh.Add(t0.Add(-time.Hour), 0, false)
			forged, _ := bh.MarshalBinary()
			if err := st.Client.BehaviorState.UpdateOne(rows[0]).SetState(forged).Exec(ctx); err != nil {
				t.Fatal(err)
			}
			if err := st.Client.BehaviorState.UpdateOne(rows[1]).SetState([]byte{0xff, 0xff}).Exec(ctx); err != nil {
				t.Fatal(err)
			}
			if err := st.Client.BehaviorState.Create().SetUserRef(rows[2].UserRef).SetKey("0123456789abcdef0123456789abcdef").SetState(rows[2].State).Exec(ctx); err != nil {
				t.Fatal(err)
			}
			f := findings()
			if f["behavior-state-mismatch"] != 1 || f["behavior-state-unreadable"] != 1 || f["orphan-behavior-state"] != 1 {
				t.Fatalf("findings %v, want one mismatch, one unreadable, one orphan", f)
			}
		})
	}
}
