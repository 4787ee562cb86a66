package graph_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentd/segmentd/auth"
	"github.com/segmentd/segmentd/ent/membership"
	"github.com/segmentd/segmentd/ent/schema/pulid"
	"github.com/segmentd/segmentd/ent/user"
	"github.com/segmentd/segmentd/internal/testenv"
)

// erasedSecrets are what alice's identity, traits and events carry: after
// deleteUser no response may contain any of them.
var erasedSecrets = []string{`"alice"`, "alice@example.com", "alice-secret-coupon", "msg-alice-1", "msg-alice-2"}

func assertNoSecrets(t *testing.T, label, body string) {
	t.Helper()
	for _, s := range erasedSecrets {
		if strings.Contains(body, s) {
			t.Errorf("%s shows %s after the erasure: %s", label, s, body)
		}
	}
}

type erasureChange struct {
	MembershipChanged struct {
		Cursor  string
		Kind    string
		Source  string
		Reason  string
		User    *struct{ UserID string }
		Segment struct{ ID string }
	}
}

const erasureChangesQuery = `subscription($after: String) {
  membershipChanged(after: $after) { cursor kind source reason user { userId traits } segment { id } event { messageId properties } } }`

// TestDeleteUser: alice is a member of an EVENT_TRIGGERED segment with an
// ACTIVE campaign (entered on an event) and of a STATIC one (added by
// hand). deleteUser exits both memberships (source ERASURE, streamed to a
// live subscriber), deletes her events, and leaves nothing that shows her
// ID, traits or event contents in any query, export or replay; the figures
// stay exact, verify is clean, and a later event with her ID starts a new
// user who enters again. READ and WRITE keys are refused.
func TestDeleteUser(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL)
		admin := srv.Admin()
		evSeg, campID := liveSegment(t, admin) // "Sign Up" with Channel = Facebook, ACTIVE campaign
		var static struct{ CreateSegment struct{ ID string } }
		admin.MustDo(t, `mutation { createSegment(input: {name: "VIP", kind: STATIC}) { id } }`, nil, &static)
		stSeg := static.CreateSegment.ID

		track := func(user, msg string, props map[string]any) {
			t.Helper()
			admin.MustDo(t, `mutation($in: TrackInput!) { trackEvent(input: $in) { duplicate } }`, map[string]any{"in": map[string]any{
				"event": "Sign Up", "userId": user, "messageId": msg, "properties": props,
				"traits": map[string]any{"Channel": "Facebook", "email": user + "@example.com"},
			}}, nil)
		}
		track("alice", "msg-alice-1", map[string]any{"coupon": "alice-secret-coupon"})
		track("alice", "msg-alice-2", map[string]any{"coupon": "alice-secret-coupon"})
		track("bob", "msg-bob-1", map[string]any{"coupon": "bob-coupon"})
		admin.MustDo(t, `mutation($s: ID!) { addUsersToSegment(segmentId: $s, userIds: ["alice", "bob"]) { added } }`,
			map[string]any{"s": stSeg}, nil)
		var before struct{ User struct{ ID string } }
		admin.MustDo(t, `{ user(userId: "alice") { id } }`, nil, &before)
		oldID := before.User.ID

		// Other keys may not erase, and nothing is written.
		_, readKey := newKey(t, srv, "dashboard", auth.RoleRead)
		_, writeKey := newKey(t, srv, "tracker", auth.RoleWrite)
		for role, key := range map[string]string{"READ": readKey, "WRITE": writeKey} {
			r := srv.Client(key).Do(t, `mutation { deleteUser(userId: "alice") { userId } }`, nil)
			if len(r.Errors) == 0 || r.Errors[0].Code() != "FORBIDDEN" {
				t.Errorf("%s key: deleteUser answered %+v, want FORBIDDEN", role, r)
			}
			noData(t, role+" deleteUser", r)
		}
		if e := admin.MustFail(t, "NOT_FOUND", `mutation { deleteUser(userId: "nobody") { userId } }`, nil); e.Field() != "userId" {
			t.Errorf("unknown user: field %q, want userId", e.Field())
		}
		for _, bad := range []string{"", "  ", "a\u0007b"} {
			if e := admin.MustFail(t, "BAD_USER_INPUT", `mutation($u: String!) { deleteUser(userId: $u) { userId } }`, map[string]any{"u": bad}); e.Field() != "userId" {
				t.Errorf("userId %q: field %q, want userId", bad, e.Field())
			}
		}

		// A live subscriber sees both exits.
		ws := srv.DialWS(t, testenv.AdminKey, testenv.TransportWS)
		ws.Subscribe(t, "live", erasureChangesQuery, nil)
		time.Sleep(150 * time.Millisecond) // graphql-transport-ws has no subscribe ack
		since := time.Now().UTC().Add(-time.Hour)

		var del struct {
			DeleteUser struct {
				UserID      string
				Events      int
				Memberships int
			}
		}
		admin.MustDo(t, `mutation { deleteUser(userId: " alice ") { userId events memberships } }`, nil, &del)
		if d := del.DeleteUser; d.UserID != "alice" || d.Events != 2 || d.Memberships != 2 {
			t.Fatalf("deleteUser = %+v, want alice, 2 events, 2 memberships", d)
		}
		left := map[string]bool{}
		for len(left) < 2 {
			var ch erasureChange
			ws.NextData(t, "live", 30*time.Second, &ch)
			c := ch.MembershipChanged
			if c.Kind == "ENTERED" {
				continue // committed before the subscription and still on its way: the live tail may start a little before now
			}
			if c.Kind != "EXITED" || c.Source != "ERASURE" || c.Reason != "left: the user was erased" || c.User != nil {
				t.Errorf("live change %+v, want EXITED, ERASURE, the erasure's reason, user null", c)
			}
			left[c.Segment.ID] = true
		}
		if !left[evSeg] || !left[stSeg] {
			t.Errorf("exits streamed for %v, want both segments", left)
		}
		ws.Quiet(t, 300*time.Millisecond)

		// Figures: bob stays in both; alice's exit is counted.
		now := time.Now().UTC()
		for _, seg := range []string{evSeg, stSeg} {
			var f struct {
				Node struct {
					Stats   struct{ TotalUsers int }
					Growth  []struct{ Entered, Exited, Total int }
					Members struct {
						TotalCount int
						Edges      []struct {
							Node struct{ User struct{ UserID string } }
						}
					}
					MembersAt struct{ TotalCount int }
				}
			}
			admin.MustDo(t, `query($s: ID!, $from: Time!, $to: Time!, $now: Time!) { node(id: $s) { ... on Segment {
				stats { totalUsers }
				growth(interval: HOUR, from: $from, to: $to) { entered exited total }
				members(first: 10) { totalCount edges { node { user { userId } } } }
				membersAt(time: $now) { totalCount } } } }`,
				map[string]any{"s": seg, "from": since.Truncate(time.Hour), "to": now.Add(time.Hour), "now": now}, &f)
			n := f.Node
			var entered, exited, total int
			for _, p := range n.Growth {
				entered += p.Entered
				exited += p.Exited
				total = p.Total
			}
			if n.Stats.TotalUsers != 1 || n.Members.TotalCount != 1 || n.MembersAt.TotalCount != 1 || entered != 2 || exited != 1 || total != 1 {
				t.Errorf("segment %s after the erasure: totalUsers %d, members %d, membersAt %d, growth entered %d exited %d total %d; want 1, 1, 1, 2, 1, 1",
					seg, n.Stats.TotalUsers, n.Members.TotalCount, n.MembersAt.TotalCount, entered, exited, total)
			}
			if len(n.Members.Edges) != 1 || n.Members.Edges[0].Node.User.UserID != "bob" {
				t.Errorf("segment %s members: %+v, want bob", seg, n.Members.Edges)
			}
		}
		var camp struct {
			Node struct {
				ActivationCount int
				Activations     struct {
					Edges []struct {
						Node struct{ User *struct{ UserID string } }
					}
				}
			}
		}
		admin.MustDo(t, `query($c: ID!) { node(id: $c) { ... on Campaign { activationCount activations(first: 10) { edges { node { user { userId traits } event { messageId } } } } } } }`,
			map[string]any{"c": campID}, &camp)
		named := 0
		for _, e := range camp.Node.Activations.Edges {
			if e.Node.User != nil {
				named++
			}
		}
		if camp.Node.ActivationCount != 2 || len(camp.Node.Activations.Edges) != 2 || named != 1 {
			t.Errorf("campaign after the erasure: %d activations, %d listed, %d naming a user; want 2, 2, 1 (bob's)",
				camp.Node.ActivationCount, len(camp.Node.Activations.Edges), named)
		}

		// No query, export or replay shows alice.
		reads := []struct {
			label, query string
			vars         map[string]any
		}{
			{"users", `{ users(first: 50) { totalCount edges { node { id userId traits memberships { segment { id } } } } } }`, nil},
			{"user", `{ user(userId: "alice") { id userId traits } }`, nil},
			{"node(old id)", `query($id: ID!) { node(id: $id) { id ... on User { userId traits } } }`, map[string]any{"id": oldID}},
			{"events", `{ events(first: 50) { totalCount edges { node { messageId userId properties traits context outcomes { reason } } } } }`, nil},
			{"alice's events", `{ events(first: 50, where: {userID: "alice"}) { totalCount edges { node { messageId } } } }`, nil},
			{"campaign", `query($c: ID!) { node(id: $c) { ... on Campaign { activations(first: 50) { edges { node { user { userId traits } event { messageId properties } } } } } } }`, map[string]any{"c": campID}},
			{"explainMembership", `query($s: ID!) { explainMembership(segmentId: $s, userId: "alice") { member user { id } membership { id } lastEvaluatedEvent { messageId } } }`, map[string]any{"s": evSeg}},
		}
		for _, rd := range reads {
			r := admin.Do(t, rd.query, rd.vars)
			if len(r.Errors) > 0 && rd.label != "node(old id)" {
				t.Errorf("%s: %+v", rd.label, r.Errors)
			}
			assertNoSecrets(t, rd.label, string(r.Data))
		}
		var gone struct {
			User    *struct{ ID string }
			Explain struct {
				Member bool
				User   *struct{ ID string }
			}
		}
		admin.MustDo(t, `query($s: ID!) { user(userId: "alice") { id }
			explain: explainMembership(segmentId: $s, userId: "alice") { member user { id } } }`, map[string]any{"s": evSeg}, &gone)
		var unknown struct{ Node *struct{ ID string } }
		unknownRes := admin.Do(t, `{ node(id: "usr_01ZZZZZZZZZZZZZZZZZZZZZZZZ") { id } }`, nil)
		_ = json.Unmarshal(unknownRes.Data, &unknown)
		oldRes := admin.Do(t, `query($id: ID!) { node(id: $id) { id } }`, map[string]any{"id": oldID})
		sameErrors := len(oldRes.Errors) == len(unknownRes.Errors)
		for i := range oldRes.Errors {
			sameErrors = sameErrors && i < len(unknownRes.Errors) && oldRes.Errors[i].Code() == unknownRes.Errors[i].Code() &&
				strings.ReplaceAll(oldRes.Errors[i].Message, oldID, "X") == strings.ReplaceAll(unknownRes.Errors[i].Message, "usr_01ZZZZZZZZZZZZZZZZZZZZZZZZ", "X")
		}
		if string(oldRes.Data) != string(unknownRes.Data) || !sameErrors {
			t.Errorf("node(id) of the erased user: %s %+v; want what an unknown user ID gives: %s %+v", oldRes.Data, oldRes.Errors, unknownRes.Data, unknownRes.Errors)
		}
		if gone.User != nil || gone.Explain.Member || gone.Explain.User != nil {
			t.Errorf("after the erasure: user(userId: alice) %+v, explainMembership %+v; want null, not a member, no user", gone.User, gone.Explain)
		}
		var users struct{ Users struct{ TotalCount int } }
		admin.MustDo(t, `{ users { totalCount } }`, nil, &users)
		if users.Users.TotalCount != 1 {
			t.Errorf("users: totalCount %d, want 1 (bob)", users.Users.TotalCount)
		}
		for _, seg := range []string{evSeg, stSeg} {
			req, _ := http.NewRequest(http.MethodGet, srv.URL+"/segments/"+seg+"/members.csv", nil)
			req.Header.Set("Authorization", "Bearer "+testenv.AdminKey)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || !strings.Contains(string(body), "bob") {
				t.Errorf("export of %s: %d %s", seg, resp.StatusCode, body)
			}
			if strings.Contains(string(body), "alice") {
				t.Errorf("export of %s shows alice after the erasure: %s", seg, body)
			}
		}
		// Replay of the whole log from its start: every change stays (2
		// entries and 2 exits of alice's, 2 entries of bob's), alice's name
		// no one.
		replay := srv.DialWS(t, testenv.AdminKey, testenv.LegacyWS)
		replay.Subscribe(t, "replay", erasureChangesQuery, map[string]any{"after": "0.0"})
		anonymous, kinds := 0, map[string]int{}
		for range 6 {
			m := replay.Next(t, 30*time.Second)
			assertNoSecrets(t, "membershipChanged replay", string(m.Payload))
			var p struct{ Data erasureChange }
			if err := json.Unmarshal(m.Payload, &p); err != nil {
				t.Fatalf("replay message %s: %v", m.Payload, err)
			}
			c := p.Data.MembershipChanged
			kinds[c.Kind+" "+c.Source]++
			if c.User == nil {
				anonymous++
			}
		}
		replay.Quiet(t, 300*time.Millisecond)
		if anonymous != 4 || kinds["EXITED ERASURE"] != 2 || kinds["ENTERED EVENT"] != 2 || kinds["ENTERED MANUAL"] != 2 {
			t.Errorf("replay: %d changes naming no one, kinds %v; want 4, 2 EXITED ERASURE, 2 ENTERED EVENT, 2 ENTERED MANUAL", anonymous, kinds)
		}

		rep, err := newService(t, srv.Store()).Verify(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if !rep.OK() {
			t.Errorf("verify after the erasure: %s", rep)
		}

		// The same user ID again is a new user, who enters and activates
		// anew, with only the new traits.
		var again struct {
			TrackEvent struct {
				EnteredSegments    []struct{ ID string }
				ActivatedCampaigns []struct{ ID string }
			}
		}
		admin.MustDo(t, `mutation { trackEvent(input: {event: "Sign Up", userId: "alice", traits: {Channel: "Facebook"}}) {
			enteredSegments { id } activatedCampaigns { id } } }`, nil, &again)
		if e := again.TrackEvent; len(e.EnteredSegments) != 1 || e.EnteredSegments[0].ID != evSeg || len(e.ActivatedCampaigns) != 1 || e.ActivatedCampaigns[0].ID != campID {
			t.Errorf("the same user ID again: %+v, want an entry into %s and an activation of %s", e, evSeg, campID)
		}
		var fresh struct {
			User struct {
				ID          string
				Traits      map[string]any
				Memberships []struct{ Source string }
			}
		}
		admin.MustDo(t, `{ user(userId: "alice") { id traits memberships { source } } }`, nil, &fresh)
		if u := fresh.User; u.ID == "" || u.ID == oldID || len(u.Traits) != 1 || u.Traits["Channel"] != "Facebook" || len(u.Memberships) != 1 {
			t.Errorf("the new alice: %+v, want a new id (not %s), only the new trait, one membership", u, oldID)
		}
		admin.MustDo(t, `{ users { totalCount } }`, nil, &users)
		if users.Users.TotalCount != 2 {
			t.Errorf("users: totalCount %d, want 2 (bob and the new alice)", users.Users.TotalCount)
		}
		if rep, err := newService(t, srv.Store()).Verify(context.Background()); err != nil || !rep.OK() {
			t.Errorf("verify after the new alice: %v %v", err, rep)
		}
	})
}

// TestDeleteUserWhileEventsArrive: events for alice stream in from two
// connections while she is erased. Each event commits wholly before the
// erasure (and is erased with her) or after it (and belongs to a new
// alice): afterwards every stored event of "alice" is the new user's, her
// membership matches them, and verify is clean.
func TestDeleteUserWhileEventsArrive(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL)
		admin := srv.Admin()
		evSeg, _ := liveSegment(t, admin)
		send := func(i, j int) error {
			r := admin.Do(t, `mutation($in: TrackInput!) { trackEvent(input: $in) { duplicate } }`, map[string]any{"in": map[string]any{
				"event": "Sign Up", "userId": "alice", "messageId": fmt.Sprintf("m-%d-%d", i, j),
				"traits": map[string]any{"Channel": "Facebook"},
			}})
			if len(r.Errors) > 0 {
				return fmt.Errorf("trackEvent: %+v", r.Errors)
			}
			return nil
		}
		if err := send(0, 0); err != nil {
			t.Fatal(err)
		}
		const perWorker = 40
		errs := make(chan error, 2*perWorker)
		var wg sync.WaitGroup
		for i := 1; i <= 2; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := range perWorker {
					if err := send(i, j); err != nil {
						errs <- err
					}
				}
			}()
		}
		time.Sleep(50 * time.Millisecond)
		var del struct {
			DeleteUser struct{ Events, Memberships int }
		}
		admin.MustDo(t, `mutation { deleteUser(userId: "alice") { events memberships } }`, nil, &del)
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		if del.DeleteUser.Events < 1 || del.DeleteUser.Memberships != 1 {
			t.Errorf("deleteUser = %+v, want at least the first event and the one membership", del.DeleteUser)
		}
		var after struct {
			Events struct{ TotalCount int }
			User   *struct {
				ID          string
				Memberships []struct{ Segment struct{ ID string } }
			}
			Users struct{ TotalCount int }
		}
		admin.MustDo(t, `{ events(where: {userID: "alice"}) { totalCount } user(userId: "alice") { id memberships { segment { id } } } users { totalCount } }`, nil, &after)
		if got, want := after.Events.TotalCount, 1+2*perWorker-del.DeleteUser.Events; got != want {
			t.Errorf("%d events of alice stored after the erasure, want %d (sent %d, erased %d)", got, want, 1+2*perWorker, del.DeleteUser.Events)
		}
		switch {
		case after.Events.TotalCount == 0 && (after.User != nil || after.Users.TotalCount != 0):
			t.Errorf("no event came after the erasure, yet user %+v, %d users", after.User, after.Users.TotalCount)
		case after.Events.TotalCount > 0 && (after.User == nil || len(after.User.Memberships) != 1 || after.User.Memberships[0].Segment.ID != evSeg || after.Users.TotalCount != 1):
			t.Errorf("%d events after the erasure, but user %+v, %d users; want a new alice in %s", after.Events.TotalCount, after.User, after.Users.TotalCount, evSeg)
		}
		t.Logf("erased %d events; %d came after", del.DeleteUser.Events, after.Events.TotalCount)
		rep, err := newService(t, srv.Store()).Verify(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if !rep.OK() {
			t.Errorf("verify: %s", rep)
		}
	})
}

// TestDeleteUserDuringImport: alice is erased while an import that names
// her is applied. Either the import came first (and her membership exited
// with her) or the erasure did (and the import made a new alice): no
// member is ever the erased user's tombstone, the figures agree and verify
// is clean. (The erasure's exclusive lock against applies,
// storeSQL.lockAgainstErasure, closes a window this test does not reliably
// hit: an apply statement whose snapshot still saw her user ID.)
func TestDeleteUserDuringImport(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL)
		admin := srv.Admin()
		var csv strings.Builder
		csv.WriteString("user_id\n")
		for i := range 5_000 {
			fmt.Fprintf(&csv, "u%05d\n", i)
		}
		csv.WriteString("alice\n")
		for round, delay := range []time.Duration{0, 20 * time.Millisecond, 60 * time.Millisecond, 150 * time.Millisecond} {
			admin.MustDo(t, `mutation { identify(input: {userId: "alice", traits: {email: "alice@example.com"}}) { userId } }`, nil, nil)
			seg := createStatic(t, admin, fmt.Sprintf("Import %d", round))
			job := startImport(t, admin, seg, "ADD", false, "users.csv", csv.String())
			time.Sleep(delay)
			var del struct{ DeleteUser struct{ Memberships int } }
			admin.MustDo(t, `mutation { deleteUser(userId: "alice") { memberships } }`, nil, &del)
			if j := waitImport(t, admin, job); j.Status != "SUCCEEDED" {
				t.Fatalf("round %d: import %s: %s", round, j.Status, j.Failure)
			}
			var f struct {
				Node    struct{ Stats struct{ TotalUsers int } }
				Explain struct{ Member bool }
			}
			admin.MustDo(t, `query($s: ID!) { node(id: $s) { ... on Segment { stats { totalUsers } } }
				explain: explainMembership(segmentId: $s, userId: "alice") { member } }`, map[string]any{"s": seg}, &f)
			tombstones, err := srv.Store().Client.Membership.Query().Where(membership.SegmentRef(pulid.ID(seg))).
				QueryUser().Where(user.UserIDHasPrefix("\x7f")).Count(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if tombstones > 0 {
				t.Fatalf("round %d: %d members of the import's segment are an erased user's tombstone", round, tombstones)
			}
			aliceIn := f.Explain.Member
			// The import before the erasure: alice left with her erasure;
			// after it: a new alice is a member.
			if want := 5_000 + 1 - del.DeleteUser.Memberships; f.Node.Stats.TotalUsers != want || aliceIn == (del.DeleteUser.Memberships == 1) {
				t.Errorf("round %d: %d members (alice among them: %v) after the erasure left %d segments; want %d", round, f.Node.Stats.TotalUsers, aliceIn, del.DeleteUser.Memberships, want)
			}
			t.Logf("round %d (delay %s): the erasure left %d segments", round, delay, del.DeleteUser.Memberships)
			if aliceIn {
				admin.MustDo(t, `mutation { deleteUser(userId: "alice") { memberships } }`, nil, nil)
			}
		}
		rep, err := newService(t, srv.Store()).Verify(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if !rep.OK() {
			t.Errorf("verify: %s", rep)
		}
	})
}

// TestErasedUserIsNobodyToDynamicSegments: a DYNAMIC condition that holds
// for empty traits (NOT Channel = "Facebook") neither fills a new segment
// with an erased user's tombstone nor previews it.
func TestErasedUserIsNobodyToDynamicSegments(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL)
		admin := srv.Admin()
		ingIdentify(t, admin, map[string]any{"userId": "gone", "traits": map[string]any{"Channel": "Google"}})
		ingIdentify(t, admin, map[string]any{"userId": "stays", "traits": map[string]any{"Channel": "Google"}})
		admin.MustDo(t, `mutation { deleteUser(userId: "gone") { userId } }`, nil, nil)
		notFacebook := map[string]any{"not": pred("USER", "Channel", "EQ", "Facebook")}
		def := map[string]any{"name": "Not Facebook", "kind": "DYNAMIC", "condition": notFacebook}
		if p := preview(t, admin, def, nil, nil); p.MatchingUsers != 1 || !slices.Equal(p.sampleIDs(), []string{"stays"}) {
			t.Errorf("preview after an erasure: %+v, want only stays", p)
		}
		segID := ingCreateSegment(t, admin, def)
		if got := memberIDs(t, admin, segID); got != "stays" {
			t.Errorf("DYNAMIC fill after an erasure: members %q, want stays", got)
		}
		verifyClean(t, srv)
	})
}
