package graph_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/segmentd/segmentd/internal/testenv"
)

// TestIngestCampaignActivationTiming: a campaign activates for each member
// of its segment exactly once, ever: on entry while it is ACTIVE; for
// earlier members when it becomes ACTIVE (DRAFT→ACTIVE, PAUSED→ACTIVE),
// when it is created ACTIVE, and when an ACTIVE campaign gets a segment.
// Entries while it is DRAFT, PAUSED or ENDED activate nothing at that moment.
func TestIngestCampaignActivationTiming(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL)
		c := srv.Admin()
		segID, _ := ingSeed(t, c, "")
		draft := ingCreateCampaign(t, c, "Welcome Mission", segID, "DRAFT")
		enter := func(userID string) ingTrackResult {
			t.Helper()
			r := ingTrack(t, c, map[string]any{"event": "Sign Up", "userId": userID, "traits": ingFacebook})
			if len(r.EnteredSegments) != 1 {
				t.Fatalf("%s did not enter: %+v", userID, r)
			}
			return r
		}
		activations := func(campID string, want ...string) {
			t.Helper()
			if want == nil {
				want = []string{}
			}
			n, users := ingActivations(t, c, campID)
			if n != len(want) || !reflect.DeepEqual(users, want) {
				t.Fatalf("campaign %s: %d activations %v, want %v", campID, n, users, want)
			}
		}

		for _, u := range []string{"u1", "u2", "u3"} {
			if r := enter(u); len(r.ActivatedCampaigns) != 0 {
				t.Fatalf("a DRAFT campaign activated: %+v", r.ActivatedCampaigns)
			}
		}
		activations(draft.ID)

		// Launch: the three members activate, in the mutation's answer already.
		if got := ingUpdateCampaign(t, c, draft.ID, map[string]any{"status": "ACTIVE"}); got.Status != "ACTIVE" || got.ActivationCount != 3 {
			t.Fatalf("launched: %+v, want ACTIVE with 3 activations", got)
		}
		activations(draft.ID, "u1", "u2", "u3")
		// ACTIVE again: nothing new.
		if got := ingUpdateCampaign(t, c, draft.ID, map[string]any{"status": "ACTIVE", "name": "Welcome Mission"}); got.ActivationCount != 3 {
			t.Fatalf("ACTIVE again: %+v", got)
		}
		// Paused: u4 enters without activating; resumed: u4 activates, the
		// others do not again.
		ingUpdateCampaign(t, c, draft.ID, map[string]any{"status": "PAUSED"})
		if r := enter("u4"); len(r.ActivatedCampaigns) != 0 {
			t.Fatalf("a PAUSED campaign activated: %+v", r.ActivatedCampaigns)
		}
		activations(draft.ID, "u1", "u2", "u3")
		if got := ingUpdateCampaign(t, c, draft.ID, map[string]any{"status": "ACTIVE"}); got.ActivationCount != 4 {
			t.Fatalf("resumed: %+v, want 4 activations", got)
		}
		ingUpdateCampaign(t, c, draft.ID, map[string]any{"status": "PAUSED"})
		if got := ingUpdateCampaign(t, c, draft.ID, map[string]any{"status": "ACTIVE"}); got.ActivationCount != 4 {
			t.Fatalf("paused and resumed with no new member: %+v, want still 4", got)
		}
		activations(draft.ID, "u1", "u2", "u3", "u4")
		// ACTIVE: an entry activates at once, and says so.
		if r := enter("u5"); len(r.ActivatedCampaigns) != 1 || r.ActivatedCampaigns[0].ID != draft.ID {
			t.Fatalf("entry into an ACTIVE campaign's segment: %+v", r.ActivatedCampaigns)
		}
		members := []string{"u1", "u2", "u3", "u4", "u5"}

		// Created ACTIVE on a segment with members: they activate at once.
		created := ingCreateCampaign(t, c, "Second Mission", segID, "ACTIVE")
		if created.ActivationCount != 5 {
			t.Fatalf("created ACTIVE: %+v, want 5 activations", created)
		}
		activations(created.ID, members...)
		// Created DRAFT: nothing.
		if d := ingCreateCampaign(t, c, "Someday", segID, "DRAFT"); d.ActivationCount != 0 {
			t.Fatalf("created DRAFT: %+v", d)
		}

		// ACTIVE without a segment, then given one: its members activate.
		floating := ingCreateCampaign(t, c, "Floating", "", "ACTIVE")
		activations(floating.ID)
		if got := ingUpdateCampaign(t, c, floating.ID, map[string]any{"segmentId": segID}); got.ActivationCount != 5 {
			t.Fatalf("ACTIVE campaign given the segment: %+v, want 5 activations", got)
		}
		if got := ingUpdateCampaign(t, c, floating.ID, map[string]any{"segmentId": segID}); got.ActivationCount != 5 {
			t.Fatalf("given the same segment again: %+v", got)
		}

		// A new member activates every ACTIVE campaign of the segment once.
		r := enter("u6")
		if got := ingSegNames(r.ActivatedCampaigns); !reflect.DeepEqual(got, []string{"Floating", "Second Mission", "Welcome Mission"}) {
			t.Fatalf("u6 activated %v", got)
		}
		members = append(members, "u6")
		activations(draft.ID, members...)
		activations(created.ID, members...)
		activations(floating.ID, members...)

		// Moved to another segment: only its members who never activated
		// this campaign activate now.
		buyersID := ingCreateSegment(t, c, map[string]any{"name": "Buyers", "kind": "EVENT_TRIGGERED", "triggerEvents": []string{"Purchase Completed"}})
		for _, u := range []string{"u1", "x1"} {
			if r := ingTrack(t, c, map[string]any{"event": "Purchase Completed", "userId": u}); len(r.EnteredSegments) != 1 {
				t.Fatalf("%s did not enter Buyers: %+v", u, r)
			}
		}
		if got := ingUpdateCampaign(t, c, floating.ID, map[string]any{"segmentId": buyersID}); got.ActivationCount != 7 {
			t.Fatalf("moved to Buyers: %+v, want 7 activations (x1 added, u1 not again)", got)
		}

		// ENDED: entries do not activate it, and it cannot restart.
		ingUpdateCampaign(t, c, created.ID, map[string]any{"status": "ENDED"})
		r = enter("u7")
		if got := ingSegNames(r.ActivatedCampaigns); !reflect.DeepEqual(got, []string{"Welcome Mission"}) {
			t.Fatalf("u7 activated %v, want only Welcome Mission", got)
		}
		activations(created.ID, members...)
		e := c.MustFail(t, "BAD_USER_INPUT", `mutation($id: ID!) { updateCampaign(id: $id, input: {status: ACTIVE}) { id } }`, map[string]any{"id": created.ID})
		if e.Field() != "input.status" {
			t.Fatalf("restarting an ENDED campaign: field %q", e.Field())
		}
		activations(created.ID, members...)
	})
}

// TestIngestReevaluation: updateSegment's reevaluate policies. FUTURE_ONLY
// keeps the members and applies the new rules to new events only. BACKFILL
// also replays stored TRACK events of the (new) trigger events against the
// new condition and the users' current traits, and adds the matches with
// source BACKFILL, activating campaigns; it never removes. RECONCILE also
// removes members who entered by event or backfill and no longer match,
// and keeps members added by hand.
func TestIngestReevaluation(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL)
		c := srv.Admin()
		segID := ingCreateSegment(t, c, map[string]any{"name": "Big spenders", "kind": "EVENT_TRIGGERED",
			"triggerEvents": []string{"Purchase Completed"},
			"condition":     map[string]any{"scope": "EVENT", "property": "amount", "operator": "GT", "value": 100}})
		vip := ingCreateCampaign(t, c, "VIP", segID, "ACTIVE")

		buy := func(userID, messageID, name string, amount int) ingTrackResult {
			t.Helper()
			in := map[string]any{"event": name, "messageId": messageID, "properties": map[string]any{"amount": amount}}
			if userID != "" {
				in["userId"] = userID
			} else {
				in["anonymousId"] = "anon-" + messageID
			}
			return ingTrack(t, c, in)
		}
		buy("a", "m-a", "Purchase Completed", 150) // enters
		buy("b", "m-b", "Purchase Completed", 80)
		buy("c", "m-c", "Purchase Completed", 40)
		buy("d", "m-d", "Order Placed", 300) // not a trigger event (yet)
		buy("", "m-anon", "Purchase Completed", 900)
		ingIdentify(t, c, map[string]any{"userId": "i", "traits": map[string]any{"amount": 1000}}) // an IDENTIFY, never replayed

		var manual struct{ AddUsersToSegment struct{ Added int } }
		c.MustDo(t, `mutation($s: ID!) { addUsersToSegment(segmentId: $s, userIds: ["manual"]) { added } }`, map[string]any{"s": segID}, &manual)
		if manual.AddUsersToSegment.Added != 1 {
			t.Fatalf("addUsersToSegment: %+v", manual)
		}

		type want map[string]string // user ID -> source
		check := func(label string, w want) map[string]ingMember {
			t.Helper()
			got := ingMembers(t, c, segID)
			sources := want{}
			for u, m := range got {
				sources[u] = m.Source
			}
			if !reflect.DeepEqual(sources, w) {
				t.Fatalf("%s: members %v, want %v", label, sources, w)
			}
			return got
		}
		// update changes the segment with policy; "" sends none (the default).
		update := func(policy string, input map[string]any) {
			t.Helper()
			if policy == "" {
				c.MustDo(t, `mutation($s: ID!, $in: UpdateSegmentInput!) { updateSegment(id: $s, input: $in) { id } }`,
					map[string]any{"s": segID, "in": input}, nil)
				return
			}
			c.MustDo(t, `mutation($s: ID!, $in: UpdateSegmentInput!, $p: ReevaluationPolicy) { updateSegment(id: $s, input: $in, reevaluate: $p) { id } }`,
				map[string]any{"s": segID, "in": input, "p": policy}, nil)
		}
		amountGT := func(v int) map[string]any {
			return map[string]any{"condition": map[string]any{"scope": "EVENT", "property": "amount", "operator": "GT", "value": v}}
		}
		check("before", want{"a": "EVENT", "manual": "MANUAL"})

		// FUTURE_ONLY (also the default): b (80) would match, but stays out;
		// a new event under the new rules enters.
		update("FUTURE_ONLY", amountGT(50))
		check("FUTURE_ONLY", want{"a": "EVENT", "manual": "MANUAL"})
		update("", amountGT(50))
		check("default policy", want{"a": "EVENT", "manual": "MANUAL"})
		if r := buy("f", "m-f", "Purchase Completed", 60); len(r.EnteredSegments) != 1 {
			t.Fatalf("a new event under the new rules: %+v", r)
		}
		check("after f", want{"a": "EVENT", "manual": "MANUAL", "f": "EVENT"})
		if n, _ := ingActivations(t, c, vip.ID); n != 3 {
			t.Fatalf("activations %d, want 3 (a, manual, f)", n)
		}

		// BACKFILL: b's stored event matches now; c's (40), the anonymous
		// one and the IDENTIFY do not count.
		update("BACKFILL", amountGT(50))
		got := check("BACKFILL", want{"a": "EVENT", "manual": "MANUAL", "f": "EVENT", "b": "BACKFILL"})
		if m := got["b"]; m.Event == nil || m.Event.MessageID != "m-b" || !strings.Contains(m.Reason, "backfill") {
			t.Fatalf("b's membership: %+v, want the event m-b and a backfill reason", m)
		}
		if n, users := ingActivations(t, c, vip.ID); n != 4 || !reflect.DeepEqual(users, []string{"a", "b", "f", "manual"}) {
			t.Fatalf("activations after BACKFILL: %d %v", n, users)
		}
		if ex := ingExplain(t, c, segID, "b"); !ex.Member || ex.Membership == nil || ex.Membership.Source != "BACKFILL" {
			t.Fatalf("explain b: %+v", ex)
		}
		// BACKFILL with a new trigger event replays that event's history too.
		update("BACKFILL", map[string]any{"triggerEvents": []string{"Purchase Completed", "Order Placed"},
			"condition": map[string]any{"scope": "EVENT", "property": "amount", "operator": "GT", "value": 200}})
		got = check("BACKFILL with Order Placed", want{"a": "EVENT", "manual": "MANUAL", "f": "EVENT", "b": "BACKFILL", "d": "BACKFILL"})
		if m := got["d"]; m.Event == nil || m.Event.MessageID != "m-d" {
			t.Fatalf("d's membership: %+v", m)
		}
		// BACKFILL never removes, even when nobody matches any more.
		update("BACKFILL", amountGT(5000))
		check("BACKFILL matching nobody", want{"a": "EVENT", "manual": "MANUAL", "f": "EVENT", "b": "BACKFILL", "d": "BACKFILL"})

		// RECONCILE: back to Purchase Completed > 100. a (150) stays; f (60,
		// EVENT), b (80, BACKFILL) and d (Order Placed no longer a trigger)
		// leave; manual stays.
		update("RECONCILE", map[string]any{"triggerEvents": []string{"Purchase Completed"}, "condition": amountGT(100)["condition"]})
		check("RECONCILE", want{"a": "EVENT", "manual": "MANUAL"})
		for _, u := range []string{"b", "d", "f"} {
			if ex := ingExplain(t, c, segID, u); ex.Member {
				t.Fatalf("%s is still a member after RECONCILE: %+v", u, ex)
			}
			if usr := ingGetUser(t, c, u); len(usr.Memberships) != 0 {
				t.Fatalf("%s still lists memberships: %+v", u, usr.Memberships)
			}
		}
		// Activations are history: leaving does not undo them, and
		// re-entering does not repeat them.
		if n, _ := ingActivations(t, c, vip.ID); n != 5 {
			t.Fatalf("activations after RECONCILE: %d, want still 5", n)
		}
		update("RECONCILE", amountGT(50))
		check("RECONCILE to > 50", want{"a": "EVENT", "manual": "MANUAL", "f": "BACKFILL", "b": "BACKFILL"})
		if n, _ := ingActivations(t, c, vip.ID); n != 5 {
			t.Fatalf("activations after re-entry: %d, want still 5", n)
		}

		// Evaluation uses the users' traits as they are now.
		goldID := ingCreateSegment(t, c, map[string]any{"name": "Gold buyers", "kind": "EVENT_TRIGGERED",
			"triggerEvents": []string{"Purchase Completed"},
			"condition":     map[string]any{"scope": "USER", "property": "tier", "operator": "EQ", "value": "gold"}})
		ingTrack(t, c, map[string]any{"event": "Purchase Completed", "userId": "g", "traits": map[string]any{"tier": "silver"}})
		ingTrack(t, c, map[string]any{"event": "Purchase Completed", "userId": "h", "traits": map[string]any{"tier": "gold"}})
		ingIdentify(t, c, map[string]any{"userId": "g", "traits": map[string]any{"tier": "gold"}})
		ingIdentify(t, c, map[string]any{"userId": "h", "traits": map[string]any{"tier": "silver"}})
		c.MustDo(t, `mutation($s: ID!) { updateSegment(id: $s, input: {description: "now"}, reevaluate: BACKFILL) { id } }`, map[string]any{"s": goldID}, nil)
		gold := ingMembers(t, c, goldID)
		if len(gold) != 2 || gold["g"].Source != "BACKFILL" || gold["h"].Source != "EVENT" {
			t.Fatalf("Gold buyers after BACKFILL: %+v", gold)
		}
		c.MustDo(t, `mutation($s: ID!) { updateSegment(id: $s, input: {description: "again"}, reevaluate: RECONCILE) { id } }`, map[string]any{"s": goldID}, nil)
		if gold := ingMembers(t, c, goldID); len(gold) != 1 || gold["g"].Source != "BACKFILL" {
			t.Fatalf("Gold buyers after RECONCILE: %+v (h is silver now)", gold)
		}

		// A STATIC segment has nothing to reevaluate.
		staticID := ingCreateSegment(t, c, map[string]any{"name": "Static", "kind": "STATIC"})
		e := c.MustFail(t, "BAD_USER_INPUT", `mutation($s: ID!) { updateSegment(id: $s, input: {name: "S"}, reevaluate: BACKFILL) { id } }`, map[string]any{"s": staticID})
		if e.Field() != "reevaluate" {
			t.Fatalf("BACKFILL on a STATIC segment: field %q", e.Field())
		}
	})
}
