package service_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/segmentd/segmentd/ent/campaign"
	"github.com/segmentd/segmentd/ent/segment"
	"github.com/segmentd/segmentd/internal/testenv"
	"github.com/segmentd/segmentd/service"
	"github.com/segmentd/segmentd/store"
)

// TestVerify: a history made through the service (entries, failed
// conditions, a trait change after a failed event, a manual removal, static
// members, an ACTIVE campaign) verifies clean; each kind of damage done
// behind the service's back is then reported.
func TestVerify(t *testing.T) {
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
		seg, err := svc.CreateSegment(ctx, service.CreateSegmentInput{
			Name: "Activation", Kind: segment.KindEVENT_TRIGGERED,
			TriggerEvents: []string{"Sign Up"}, Condition: signUpCondition(),
		})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := svc.CreateCampaign(ctx, service.CreateCampaignInput{
			Name: "Welcome", SegmentID: &seg.ID, Status: ref(campaign.StatusACTIVE),
		}); err != nil {
			t.Fatal(err)
		}
		static, err := svc.CreateSegment(ctx, service.CreateSegmentInput{Name: "VIP", Kind: segment.KindSTATIC})
		if err != nil {
			t.Fatal(err)
		}
		var ins []*service.TrackInput
		for i := range 20 {
			channel := "Google"
			if i%2 == 0 {
				channel = "Facebook"
			}
			ins = append(ins, &service.TrackInput{
				Event: "Sign Up", UserID: ref(fmt.Sprintf("u%d", i)), MessageID: ref(fmt.Sprintf("m%d", i)),
				Traits:     map[string]any{"Sign Up Date": "2025-03-01", "Channel": channel},
				Properties: map[string]any{"Reward Amount": json.Number("20")},
			})
		}
		// A repeated messageId and a second matching event of a member.
		ins = append(ins, ins[0], &service.TrackInput{Event: "Sign Up", UserID: ref("u0"), MessageID: ref("m0-again"),
			Properties: map[string]any{"Reward Amount": json.Number("99")}})
		res, err := svc.TrackBatch(ctx, ins)
		if err != nil {
			t.Fatal(err)
		}
		if res.Accepted != 21 || res.Duplicates != 1 {
			t.Fatalf("accepted %d, duplicates %d; want 21 and 1", res.Accepted, res.Duplicates)
		}
		// u1 failed on Google; now becomes Facebook. With the traits of
		// today u1's Sign Up would match: Verify must judge it with the
		// traits it met, and find nothing.
		if _, err := svc.Identify(ctx, service.IdentifyInput{UserID: "u1", Traits: map[string]any{"Channel": "Facebook"}, MessageID: ref("id-u1")}); err != nil {
			t.Fatal(err)
		}
		// u2 is removed by hand: a matching event, no membership, an EXITED change.
		if _, err := svc.RemoveUsers(ctx, seg.ID, []string{"u2"}); err != nil {
			t.Fatal(err)
		}
		if _, err := svc.AddUsers(ctx, static.ID, []string{"u3", "u5", "someone"}); err != nil {
			t.Fatal(err)
		}
		// u3 enters later with a high reward (the OR's other branch).
		if _, err := svc.Track(ctx, service.TrackInput{Event: "Sign Up", UserID: ref("u3"), MessageID: ref("m3-b"),
			Properties: map[string]any{"Reward Amount": json.Number("72")}}); err != nil {
			t.Fatal(err)
		}

		rep, err := svc.Verify(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !rep.OK() {
			t.Fatalf("a clean history has findings:\n%s", rep)
		}
		// 10 Facebook users, minus u2, plus u3.
		if rep.Events != 23 || rep.Memberships != 10+3 || rep.Activations != 11 || rep.Evaluated != 22 {
			t.Fatalf("read events %d memberships %d activations %d evaluated %d; want 23, 13, 11, 22:\n%s",
				rep.Events, rep.Memberships, rep.Activations, rep.Evaluated, rep)
		}

		exec := func(q string, args ...any) {
			t.Helper()
			if st.Dialect != "sqlite3" {
				q = pgPlaceholders(q)
			}
			r, err := st.DB.ExecContext(ctx, q, args...)
			if err != nil {
				t.Fatalf("%s: %v", q, err)
			}
			if n, _ := r.RowsAffected(); n != 1 {
				t.Fatalf("%s: %d rows, want 1", q, n)
			}
		}
		userRef := func(id string) string {
			u, err := svc.EntClient().User.Query().Where().All(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, x := range u {
				if x.UserID == id {
					return string(x.ID)
				}
			}
			t.Fatalf("no user %s", id)
			return ""
		}
		expect := func(kind string, n int) {
			t.Helper()
			rep, err := svc.Verify(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if got := rep.Count(kind); got != n {
				t.Fatalf("%s findings: %d, want %d:\n%s", kind, got, n, rep)
			}
		}

		// An activation lost.
		exec(`DELETE FROM campaign_activations WHERE user_ref = ?`, userRef("u4"))
		expect("missing-activation", 1)
		// A membership lost (its change log still says ENTERED).
		exec(`DELETE FROM memberships WHERE segment_ref = ? AND user_ref = ?`, string(seg.ID), userRef("u6"))
		expect("missing-membership", 1)
		expect("change-log-mismatch", 1)
		// A change log row lost: the membership has no ENTERED change and
		// the event that entered is half-written.
		exec(`DELETE FROM membership_changes WHERE segment_ref = ? AND user_ref = ?`, string(seg.ID), userRef("u8"))
		expect("missing-entered-change", 1)
		expect("half-written-event", 1)
		// A stored outcome that disagrees with the rules.
		exec(`UPDATE events SET outcomes = ? WHERE message_id = 'm10'`,
			fmt.Sprintf(`[{"segment_id":%q,"entered":false,"reason":"condition failed: made up"}]`, seg.ID))
		expect("outcome-mismatch", 1)
		expect("half-written-event", 1)
		// A membership no event justifies: u7 (Google, reward 20) put in as EVENT.
		exec(`INSERT INTO memberships (id, segment_ref, user_ref, event_ref, entered_at, source, reason) VALUES (?, ?, ?, (SELECT id FROM events WHERE message_id = 'm7'), ?, 'EVENT', 'forged')`,
			"mem_forged", string(seg.ID), userRef("u7"), time.Now().UTC())
		expect("unjustified-membership", 1)
		expect("missing-entered-change", 2)
	})
}

// pgPlaceholders turns ? into $1, $2, ...
func pgPlaceholders(q string) string {
	out, n := []byte{}, 0
	for i := 0; i < len(q); i++ {
		if q[i] == '?' {
			n++
			out = append(out, fmt.Sprintf("$%d", n)...)
			continue
		}
		out = append(out, q[i])
	}
	return string(out)
}

// TestVerifyAfterErasure: after DeleteUser erases a member of an
// EVENT_TRIGGERED segment with an ACTIVE campaign and of a STATIC one, verify
// is clean; data of the erased user put back behind the service's back (a
// membership, an event, traits) is reported as erased-user-data.
func TestVerifyAfterErasure(t *testing.T) {
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
		seg, err := svc.CreateSegment(ctx, service.CreateSegmentInput{
			Name: "Activation", Kind: segment.KindEVENT_TRIGGERED,
			TriggerEvents: []string{"Sign Up"}, Condition: signUpCondition(),
		})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := svc.CreateCampaign(ctx, service.CreateCampaignInput{
			Name: "Welcome", SegmentID: &seg.ID, Status: ref(campaign.StatusACTIVE),
		}); err != nil {
			t.Fatal(err)
		}
		static, err := svc.CreateSegment(ctx, service.CreateSegmentInput{Name: "VIP", Kind: segment.KindSTATIC})
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range []string{"alice", "bob"} {
			if _, err := svc.Track(ctx, service.TrackInput{Event: "Sign Up", UserID: ref(u), MessageID: ref("m-" + u),
				Traits:     map[string]any{"Sign Up Date": "2025-03-01", "Channel": "Facebook"},
				Properties: map[string]any{"Reward Amount": json.Number("20")}}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := svc.AddUsers(ctx, static.ID, []string{"alice", "bob"}); err != nil {
			t.Fatal(err)
		}
		res, err := svc.DeleteUser(ctx, "alice")
		if err != nil {
			t.Fatal(err)
		}
		if res.Events != 1 || res.Memberships != 2 {
			t.Fatalf("DeleteUser = %+v, want 1 event, 2 memberships", res)
		}
		rep, err := svc.Verify(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !rep.OK() {
			t.Fatalf("findings after an erasure:\n%s", rep)
		}
		if rep.Memberships != 2 || rep.Changes != 6 || rep.Activations != 2 {
			t.Fatalf("read memberships %d changes %d activations %d; want 2 (bob's), 6 (4 entries, 2 exits), 2:\n%s",
				rep.Memberships, rep.Changes, rep.Activations, rep)
		}
		users, err := svc.EntClient().User.Query().Where(service.Erased()).All(ctx)
		if err != nil || len(users) != 1 {
			t.Fatalf("tombstones: %d (%v), want 1", len(users), err)
		}
		tomb := string(users[0].ID)
		exec := func(q string, args ...any) {
			t.Helper()
			if st.Dialect != "sqlite3" {
				q = pgPlaceholders(q)
			}
			if _, err := st.DB.ExecContext(ctx, q, args...); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		expect := func(kind string, n int) {
			t.Helper()
			rep, err := svc.Verify(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if got := rep.Count(kind); got != n {
				t.Fatalf("%s findings: %d, want %d:\n%s", kind, got, n, rep)
			}
		}
		exec(`UPDATE users SET traits = ? WHERE id = ?`, `{"email":"alice@example.com"}`, tomb)
		expect("erased-user-data", 1)
		exec(`INSERT INTO memberships (id, segment_ref, user_ref, entered_at, source, reason) VALUES (?, ?, ?, ?, 'MANUAL', 'forged')`,
			"mem_forged", string(static.ID), tomb, time.Now().UTC())
		expect("erased-user-data", 2)
		exec(`INSERT INTO events (id, message_id, type, user_ref, properties, traits, context, timestamp, received_at, outcomes) VALUES (?, 'm-forged', 'TRACK', ?, '{}', '{}', '{}', ?, ?, '[]')`,
			"evt_forged", tomb, time.Now().UTC(), time.Now().UTC())
		expect("erased-user-data", 3)
	})
}
