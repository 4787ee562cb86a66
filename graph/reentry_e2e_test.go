package graph_test

// End-to-end tests of campaign re-entry policies over real HTTP, on SQLite
// and PostgreSQL: ONCE activates a user once ever, EVERY_ENTRY once per
// entry (removeUsersFromSegment then addUsersToSegment is an exit and an
// entry), a cooldown suppresses a re-entry inside it, entry numbers count
// 1, 2, ..., concurrent events of one user activate once per entry, bad
// input is refused with nothing written, and campaignActivated resumes
// from a cursor.

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/segmentd/segmentd/internal/testenv"
	"github.com/segmentd/segmentd/server"
)

type reentryActivation struct {
	Entry       int
	Cursor      string
	ActivatedAt time.Time
	User        struct{ UserID string }
}

type reentryCampaign struct {
	ID              string
	Reentry         string
	Cooldown        *string
	ActivationCount int
	Activations     struct {
		Edges []struct{ Node reentryActivation }
	}
}

const reentryCampaignQuery = `query($id: ID!) { node(id: $id) { ... on Campaign { id reentry cooldown activationCount
  activations(first: 100) { edges { node { entry cursor activatedAt user { userId } } } } } } }`

func readReentryCampaign(t *testing.T, c *testenv.Client, id string) reentryCampaign {
	t.Helper()
	var out struct{ Node reentryCampaign }
	c.MustDo(t, reentryCampaignQuery, map[string]any{"id": id}, &out)
	return out.Node
}

// entriesOf lists the entry numbers of user's activations, in order.
func (c reentryCampaign) entriesOf(user string) []int {
	var out []int
	for _, e := range c.Activations.Edges {
		if e.Node.User.UserID == user {
			out = append(out, e.Node.Entry)
		}
	}
	slices.Sort(out)
	return out
}

func createReentryCampaign(t *testing.T, c *testenv.Client, in map[string]any) string {
	t.Helper()
	var out struct{ CreateCampaign struct{ ID string } }
	c.MustDo(t, `mutation($in: CreateCampaignInput!) { createCampaign(input: $in) { id } }`, map[string]any{"in": in}, &out)
	return out.CreateCampaign.ID
}

func staticSegment(t *testing.T, c *testenv.Client, name string) string {
	t.Helper()
	var out struct{ CreateSegment struct{ ID string } }
	c.MustDo(t, `mutation($n: String!) { createSegment(input: {name: $n, kind: STATIC}) { id } }`, map[string]any{"n": name}, &out)
	return out.CreateSegment.ID
}

func addUsers(t *testing.T, c *testenv.Client, seg string, users ...string) {
	t.Helper()
	c.MustDo(t, `mutation($s: ID!, $u: [String!]!) { addUsersToSegment(segmentId: $s, userIds: $u) { added } }`,
		map[string]any{"s": seg, "u": users}, nil)
}

func removeUsers(t *testing.T, c *testenv.Client, seg string, users ...string) {
	t.Helper()
	c.MustDo(t, `mutation($s: ID!, $u: [String!]!) { removeUsersFromSegment(segmentId: $s, userIds: $u) { removed } }`,
		map[string]any{"s": seg, "u": users}, nil)
}

// TestCampaignReentryPolicies: with an injected clock, a user enters a
// segment three times (at 0, +10 minutes and +2 hours). A ONCE campaign
// activates once; EVERY_ENTRY three times, numbered 1, 2, 3; EVERY_ENTRY
// with a one-hour cooldown at 0 and +2h only (entries 1 and 2). Pausing and
// resuming an EVERY_ENTRY campaign activates no one again for the same
// entry, and a campaign that starts on the segment activates its current
// members once each.
func TestCampaignReentryPolicies(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		t0 := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
		clk := &figuresClock{t: t0}
		srv := testenv.StartServer(t, dbURL, func(c *server.Config) { c.Now = clk.Now })
		admin := srv.Admin()
		seg := staticSegment(t, admin, "Reentry")
		once := createReentryCampaign(t, admin, map[string]any{"name": "Once", "segmentId": seg, "status": "ACTIVE"})
		every := createReentryCampaign(t, admin, map[string]any{"name": "Every", "segmentId": seg, "status": "ACTIVE", "reentry": "EVERY_ENTRY"})
		cool := createReentryCampaign(t, admin, map[string]any{"name": "Cool", "segmentId": seg, "status": "ACTIVE", "reentry": "EVERY_ENTRY", "cooldown": "1h"})

		if c := readReentryCampaign(t, admin, once); c.Reentry != "ONCE" || c.Cooldown != nil {
			t.Errorf("default campaign: reentry %s cooldown %v, want ONCE and null", c.Reentry, c.Cooldown)
		}
		if c := readReentryCampaign(t, admin, cool); c.Reentry != "EVERY_ENTRY" || c.Cooldown == nil || *c.Cooldown != "1h" {
			t.Errorf("cool campaign: reentry %s cooldown %v, want EVERY_ENTRY and 1h", c.Reentry, c.Cooldown)
		}

		addUsers(t, admin, seg, "ann", "bob")
		clk.Set(t0.Add(10 * time.Minute))
		removeUsers(t, admin, seg, "ann")
		addUsers(t, admin, seg, "ann")
		clk.Set(t0.Add(2 * time.Hour))
		removeUsers(t, admin, seg, "ann")
		addUsers(t, admin, seg, "ann")

		for _, want := range []struct {
			name, id string
			ann      []int
			count    int
		}{
			{"ONCE", once, []int{1}, 2},
			{"EVERY_ENTRY", every, []int{1, 2, 3}, 4},
			{"EVERY_ENTRY with a 1h cooldown", cool, []int{1, 2}, 3},
		} {
			c := readReentryCampaign(t, admin, want.id)
			if got := c.entriesOf("ann"); !slices.Equal(got, want.ann) {
				t.Errorf("%s: ann's entries %v, want %v", want.name, got, want.ann)
			}
			if got := c.entriesOf("bob"); !slices.Equal(got, []int{1}) {
				t.Errorf("%s: bob's entries %v, want [1]", want.name, got)
			}
			if c.ActivationCount != want.count || len(c.Activations.Edges) != want.count {
				t.Errorf("%s: activationCount %d with %d activations listed, want %d", want.name, c.ActivationCount, len(c.Activations.Edges), want.count)
			}
		}
		// The cooldown's second activation is the one at +2h.
		for _, e := range readReentryCampaign(t, admin, cool).Activations.Edges {
			if e.Node.User.UserID == "ann" && e.Node.Entry == 2 && !e.Node.ActivatedAt.Equal(t0.Add(2*time.Hour)) {
				t.Errorf("cooldown: ann's entry 2 activated at %s, want %s", e.Node.ActivatedAt, t0.Add(2*time.Hour))
			}
		}

		// Paused and resumed while ann and bob stay members: the same
		// entries activate nothing again.
		clk.Set(t0.Add(3 * time.Hour))
		admin.MustDo(t, `mutation($id: ID!) { updateCampaign(id: $id, input: {status: PAUSED}) { id } }`, map[string]any{"id": every}, nil)
		admin.MustDo(t, `mutation($id: ID!) { updateCampaign(id: $id, input: {status: ACTIVE}) { id } }`, map[string]any{"id": every}, nil)
		if c := readReentryCampaign(t, admin, every); c.ActivationCount != 4 {
			t.Errorf("EVERY_ENTRY paused and resumed: %d activations, want still 4", c.ActivationCount)
		}
		// A campaign that starts on the segment: one activation per
		// current member, entry 1.
		late := createReentryCampaign(t, admin, map[string]any{"name": "Late", "segmentId": seg, "status": "ACTIVE", "reentry": "EVERY_ENTRY"})
		c := readReentryCampaign(t, admin, late)
		if !slices.Equal(c.entriesOf("ann"), []int{1}) || !slices.Equal(c.entriesOf("bob"), []int{1}) || c.ActivationCount != 2 {
			t.Errorf("campaign started on current members: ann %v bob %v count %d, want [1] [1] 2", c.entriesOf("ann"), c.entriesOf("bob"), c.ActivationCount)
		}
		// After an exit, the started campaign activates again on entry.
		removeUsers(t, admin, seg, "bob")
		addUsers(t, admin, seg, "bob")
		if got := readReentryCampaign(t, admin, late).entriesOf("bob"); !slices.Equal(got, []int{1, 2}) {
			t.Errorf("started campaign after bob's re-entry: %v, want [1 2]", got)
		}
		// Switching the policy to ONCE: no further activations.
		admin.MustDo(t, `mutation($id: ID!) { updateCampaign(id: $id, input: {reentry: ONCE}) { id } }`, map[string]any{"id": late}, nil)
		removeUsers(t, admin, seg, "bob")
		addUsers(t, admin, seg, "bob")
		if got := readReentryCampaign(t, admin, late).entriesOf("bob"); !slices.Equal(got, []int{1, 2}) {
			t.Errorf("after switching to ONCE: %v, want [1 2]", got)
		}
	})
}

// TestCampaignReentryRealClockCooldown: with the real clock and a 2s
// cooldown, a re-entry at once activates nothing and one after 2s does.
func TestCampaignReentryRealClockCooldown(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL)
		admin := srv.Admin()
		seg := staticSegment(t, admin, "Cooldown")
		cool := createReentryCampaign(t, admin, map[string]any{"name": "Cool", "segmentId": seg, "status": "ACTIVE", "reentry": "EVERY_ENTRY", "cooldown": "2s"})
		addUsers(t, admin, seg, "cat")
		start := time.Now()
		removeUsers(t, admin, seg, "cat")
		addUsers(t, admin, seg, "cat")
		if time.Since(start) < 2*time.Second {
			if got := readReentryCampaign(t, admin, cool).entriesOf("cat"); !slices.Equal(got, []int{1}) {
				t.Errorf("re-entry within the 2s cooldown: entries %v, want [1]", got)
			}
		}
		time.Sleep(time.Until(start.Add(2100 * time.Millisecond)))
		removeUsers(t, admin, seg, "cat")
		addUsers(t, admin, seg, "cat")
		if got := readReentryCampaign(t, admin, cool).entriesOf("cat"); !slices.Equal(got, []int{1, 2}) {
			t.Errorf("re-entry after the 2s cooldown: entries %v, want [1 2]", got)
		}
	})
}

// TestCampaignReentryConcurrentEvents: a user's trigger events sent at
// once from several connections enter the segment once, and an EVERY_ENTRY
// campaign activates once for that entry; after an exit, the same again
// gives entry 2, and nothing more.
func TestCampaignReentryConcurrentEvents(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL)
		admin := srv.Admin()
		seg, _ := liveSegmentOn(t, admin, "Joined")
		every := createReentryCampaign(t, admin, map[string]any{"name": "Every", "segmentId": seg, "status": "ACTIVE", "reentry": "EVERY_ENTRY"})
		burst := func(round int) {
			var wg sync.WaitGroup
			for w := range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					r := admin.Do(t, `mutation($in: TrackInput!) { trackEvent(input: $in) { duplicate } }`, map[string]any{"in": map[string]any{
						"event": "Joined", "userId": "dan", "messageId": fmt.Sprintf("r%d-w%d", round, w),
						"traits": map[string]any{"Channel": "Facebook"}}})
					if len(r.Errors) > 0 {
						t.Errorf("trackEvent: %+v", r.Errors)
					}
				}()
			}
			wg.Wait()
		}
		burst(1)
		if got := readReentryCampaign(t, admin, every).entriesOf("dan"); !slices.Equal(got, []int{1}) {
			t.Fatalf("after 8 concurrent events: entries %v, want [1]", got)
		}
		removeUsers(t, admin, seg, "dan")
		burst(2)
		if got := readReentryCampaign(t, admin, every).entriesOf("dan"); !slices.Equal(got, []int{1, 2}) {
			t.Fatalf("after an exit and 8 more concurrent events: entries %v, want [1 2]", got)
		}
	})
}

// TestCampaignReentryBadInput: a cooldown with ONCE (given or by default),
// and cooldowns that are not durations, are BAD_USER_INPUT on
// input.cooldown, and nothing is written.
func TestCampaignReentryBadInput(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL)
		admin := srv.Admin()
		count := func() int {
			var out struct{ Campaigns struct{ TotalCount int } }
			admin.MustDo(t, `{ campaigns { totalCount } }`, nil, &out)
			return out.Campaigns.TotalCount
		}
		const create = `mutation($in: CreateCampaignInput!) { createCampaign(input: $in) { id } }`
		for _, in := range []map[string]any{
			{"name": "A", "reentry": "ONCE", "cooldown": "1h"},
			{"name": "B", "cooldown": "30m"},
			{"name": "C", "reentry": "EVERY_ENTRY", "cooldown": "5x"},
			{"name": "D", "reentry": "EVERY_ENTRY", "cooldown": "0s"},
			{"name": "E", "reentry": "EVERY_ENTRY", "cooldown": "-1h"},
			{"name": "F", "reentry": "EVERY_ENTRY", "cooldown": "1.5h"},
			{"name": "G", "reentry": "EVERY_ENTRY", "cooldown": "40000d"},
		} {
			e := admin.MustFail(t, "BAD_USER_INPUT", create, map[string]any{"in": in})
			if e.Field() != "input.cooldown" {
				t.Errorf("createCampaign(%v): field %q, want input.cooldown (%s)", in, e.Field(), e.Message)
			}
		}
		if n := count(); n != 0 {
			t.Fatalf("%d campaigns after refused creates, want 0", n)
		}
		once := createReentryCampaign(t, admin, map[string]any{"name": "Once"})
		every := createReentryCampaign(t, admin, map[string]any{"name": "Every", "reentry": "EVERY_ENTRY", "cooldown": "7d"})
		const update = `mutation($id: ID!, $in: UpdateCampaignInput!) { updateCampaign(id: $id, input: $in) { id } }`
		for _, u := range []struct {
			id string
			in map[string]any
		}{
			{once, map[string]any{"name": "Renamed", "cooldown": "1h"}},
			{every, map[string]any{"name": "Renamed", "reentry": "ONCE", "cooldown": "1h"}},
			{every, map[string]any{"name": "Renamed", "cooldown": "soon"}},
		} {
			e := admin.MustFail(t, "BAD_USER_INPUT", update, map[string]any{"id": u.id, "in": u.in})
			if e.Field() != "input.cooldown" {
				t.Errorf("updateCampaign(%v): field %q, want input.cooldown (%s)", u.in, e.Field(), e.Message)
			}
		}
		var out struct {
			A, B struct {
				Name, Reentry string
				Cooldown      *string
			}
		}
		admin.MustDo(t, `query($a: ID!, $b: ID!) { a: node(id: $a) { ... on Campaign { name reentry cooldown } } b: node(id: $b) { ... on Campaign { name reentry cooldown } } }`,
			map[string]any{"a": once, "b": every}, &out)
		if out.A.Name != "Once" || out.A.Reentry != "ONCE" || out.A.Cooldown != nil ||
			out.B.Name != "Every" || out.B.Reentry != "EVERY_ENTRY" || out.B.Cooldown == nil || *out.B.Cooldown != "7d" {
			t.Errorf("after refused updates: %+v, want both unchanged", out)
		}
		// Good updates: a new cooldown, then ONCE, which clears it.
		admin.MustDo(t, update, map[string]any{"id": every, "in": map[string]any{"cooldown": "2h"}}, nil)
		if c := readReentryCampaign(t, admin, every); c.Cooldown == nil || *c.Cooldown != "2h" {
			t.Errorf("cooldown after update: %v, want 2h", c.Cooldown)
		}
		admin.MustDo(t, update, map[string]any{"id": every, "in": map[string]any{"reentry": "ONCE"}}, nil)
		if c := readReentryCampaign(t, admin, every); c.Reentry != "ONCE" || c.Cooldown != nil {
			t.Errorf("after reentry ONCE: %s %v, want ONCE and no cooldown", c.Reentry, c.Cooldown)
		}
	})
}

type resumedActivation struct {
	CampaignActivated struct {
		Cursor string
		Entry  int
		User   struct{ UserID string }
	}
}

const campaignActivatedAfterQuery = `subscription($c: ID, $after: String) {
  campaignActivated(campaignId: $c, after: $after) { cursor entry user { userId } } }`

// TestCampaignActivatedResume: a subscriber to campaignActivated sees an
// activation live, disconnects, and activations commit meanwhile;
// resuming with its last cursor (or the cursor a query gives the same
// activation) it gets exactly those, in order, none twice, then live ones.
// Before that, a campaign with activations is deleted, so that on SQLite
// the log's positions have passed its rowids (the cursor must still be
// accepted).
func TestCampaignActivatedResume(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL)
		admin := srv.Admin()
		seg := staticSegment(t, admin, "Resume")
		gone := createReentryCampaign(t, admin, map[string]any{"name": "Gone", "segmentId": seg, "status": "ACTIVE"})
		addUsers(t, admin, seg, "g1", "g2", "g3", "g4", "g5")
		admin.MustDo(t, `mutation($id: ID!) { deleteCampaign(id: $id) }`, map[string]any{"id": gone}, nil)
		removeUsers(t, admin, seg, "g1", "g2", "g3", "g4", "g5")

		camp := createReentryCampaign(t, admin, map[string]any{"name": "Resume", "segmentId": seg, "status": "ACTIVE", "reentry": "EVERY_ENTRY"})
		for _, proto := range testenv.Subprotocols {
			t.Run(proto, func(t *testing.T) {
				ws := srv.DialWS(t, testenv.AdminKey, proto)
				ws.Subscribe(t, "1", campaignActivatedAfterQuery, map[string]any{"c": camp})
				time.Sleep(100 * time.Millisecond) // graphql-transport-ws has no subscribe ack
				first := proto + "-first"
				addUsers(t, admin, seg, first)
				var a resumedActivation
				ws.NextData(t, "1", time.Minute, &a)
				if a.CampaignActivated.User.UserID != first || a.CampaignActivated.Entry != 1 {
					t.Fatalf("live: %+v, want %s entry 1", a.CampaignActivated, first)
				}
				last := a.CampaignActivated.Cursor
				// The query gives the same activation the same cursor.
				var q struct {
					Node struct {
						Activations struct {
							Edges []struct {
								Node struct {
									Cursor string
									User   struct{ UserID string }
								}
							}
						}
					}
				}
				admin.MustDo(t, `query($id: ID!) { node(id: $id) { ... on Campaign { activations(first: 100) { edges { node { cursor user { userId } } } } } } }`,
					map[string]any{"id": camp}, &q)
				found := false
				for _, e := range q.Node.Activations.Edges {
					if e.Node.User.UserID == first {
						found = true
						if e.Node.Cursor != last {
							t.Errorf("query cursor %q, stream cursor %q: want the same", e.Node.Cursor, last)
						}
					}
				}
				if !found {
					t.Errorf("query: no activation of %s", first)
				}
				// Resuming at once from the newest activation is accepted
				// (on SQLite its position is past every rowid of the table,
				// since the deleted campaign's activations are gone).
				ws.Subscribe(t, "probe", campaignActivatedAfterQuery, map[string]any{"c": camp, "after": last})
				ws.Quiet(t, 300*time.Millisecond)
				ws.Conn.Close()

				// While disconnected: new users, and a re-entry of first.
				var want []string
				for i := range 4 {
					u := fmt.Sprintf("%s-%d", proto, i)
					addUsers(t, admin, seg, u)
					want = append(want, u+"#1")
				}
				removeUsers(t, admin, seg, first)
				addUsers(t, admin, seg, first)
				want = append(want, first+"#2")

				ws2 := srv.DialWS(t, testenv.AdminKey, proto)
				ws2.Subscribe(t, "2", campaignActivatedAfterQuery, map[string]any{"c": camp, "after": last})
				var got []string
				for range want {
					var a resumedActivation
					ws2.NextData(t, "2", time.Minute, &a)
					got = append(got, fmt.Sprintf("%s#%d", a.CampaignActivated.User.UserID, a.CampaignActivated.Entry))
				}
				if !slices.Equal(got, want) {
					t.Fatalf("resumed after %s: %v, want %v", last, got, want)
				}
				live := proto + "-live"
				addUsers(t, admin, seg, live)
				var l resumedActivation
				ws2.NextData(t, "2", time.Minute, &l)
				if l.CampaignActivated.User.UserID != live {
					t.Fatalf("after the replay: %+v, want %s", l.CampaignActivated, live)
				}
				ws2.Quiet(t, 300*time.Millisecond)
				ws2.Conn.Close()

				// A cursor beyond the end is refused on after.
				ws3 := srv.DialWS(t, testenv.AdminKey, proto)
				ws3.Subscribe(t, "3", campaignActivatedAfterQuery, map[string]any{"c": camp, "after": "0.9223372036854775807"})
				if errs := ws3.NextError(t, "3", 5*time.Second); errs[0].Code() != "BAD_USER_INPUT" || errs[0].Field() != "after" {
					t.Errorf("cursor beyond the end: %+v, want BAD_USER_INPUT on after", errs)
				}
				ws3.Conn.Close()
			})
		}
	})
}

// TestCampaignReentryImport: the staged (import) path numbers and
// suppresses like the others: an ADD import activates an EVERY_ENTRY
// campaign for each new member; after a REMOVE import, an ADD import of the
// same user activates it again (entry 2), but not a ONCE campaign, nor one
// whose cooldown has not passed.
func TestCampaignReentryImport(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL)
		admin := srv.Admin()
		seg := staticSegment(t, admin, "Imported")
		once := createReentryCampaign(t, admin, map[string]any{"name": "Once", "segmentId": seg, "status": "ACTIVE"})
		every := createReentryCampaign(t, admin, map[string]any{"name": "Every", "segmentId": seg, "status": "ACTIVE", "reentry": "EVERY_ENTRY"})
		cool := createReentryCampaign(t, admin, map[string]any{"name": "Cool", "segmentId": seg, "status": "ACTIVE", "reentry": "EVERY_ENTRY", "cooldown": "1h"})
		runImport(t, admin, seg, "ADD", false, "imp-1\nimp-2\n")
		runImport(t, admin, seg, "REMOVE", false, "imp-1\n")
		runImport(t, admin, seg, "ADD", false, "imp-1\nimp-2\nimp-3\n")
		for _, want := range []struct {
			name, id     string
			one, two, th []int
		}{
			{"ONCE", once, []int{1}, []int{1}, []int{1}},
			{"EVERY_ENTRY", every, []int{1, 2}, []int{1}, []int{1}},
			{"EVERY_ENTRY with a 1h cooldown", cool, []int{1}, []int{1}, []int{1}},
		} {
			c := readReentryCampaign(t, admin, want.id)
			if !slices.Equal(c.entriesOf("imp-1"), want.one) || !slices.Equal(c.entriesOf("imp-2"), want.two) || !slices.Equal(c.entriesOf("imp-3"), want.th) {
				t.Errorf("%s: entries imp-1 %v imp-2 %v imp-3 %v, want %v %v %v", want.name,
					c.entriesOf("imp-1"), c.entriesOf("imp-2"), c.entriesOf("imp-3"), want.one, want.two, want.th)
			}
		}
	})
}

// TestCampaignReentryMigrated: a database from before re-entry (no entry
// or membership columns, a unique index on (campaign, user)) keeps its
// activations, numbered 1, and after the migration an EVERY_ENTRY campaign
// activates a returning user again.
func TestCampaignReentryMigrated(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv, stop := testenv.StartStoppableServer(t, dbURL)
		admin := srv.Admin()
		seg := staticSegment(t, admin, "Old")
		camp := createReentryCampaign(t, admin, map[string]any{"name": "Old", "segmentId": seg, "status": "ACTIVE"})
		addUsers(t, admin, seg, "old-1", "old-2")
		// Back to the schema as it was.
		for _, q := range []string{
			`DROP INDEX campaignactivation_campaign_ref_user_ref_entry`,
			`DROP INDEX campaignactivation_campaign_ref_membership_ref`,
			`ALTER TABLE campaign_activations DROP COLUMN entry`,
			`ALTER TABLE campaign_activations DROP COLUMN membership_ref`,
			`CREATE UNIQUE INDEX campaignactivation_campaign_ref_user_ref ON campaign_activations (campaign_ref, user_ref)`,
		} {
			if _, err := srv.Store().DB.Exec(q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		stop()

		srv = testenv.StartServer(t, dbURL)
		admin = srv.Admin()
		c := readReentryCampaign(t, admin, camp)
		if !slices.Equal(c.entriesOf("old-1"), []int{1}) || !slices.Equal(c.entriesOf("old-2"), []int{1}) || c.ActivationCount != 2 {
			t.Fatalf("after the migration: old-1 %v old-2 %v count %d, want [1] [1] 2", c.entriesOf("old-1"), c.entriesOf("old-2"), c.ActivationCount)
		}
		admin.MustDo(t, `mutation($id: ID!) { updateCampaign(id: $id, input: {reentry: EVERY_ENTRY}) { id } }`, map[string]any{"id": camp}, nil)
		// Paused and resumed: the members' current entries, activated
		// before the migration, activate nothing again.
		admin.MustDo(t, `mutation($id: ID!) { updateCampaign(id: $id, input: {status: PAUSED}) { id } }`, map[string]any{"id": camp}, nil)
		admin.MustDo(t, `mutation($id: ID!) { updateCampaign(id: $id, input: {status: ACTIVE}) { id } }`, map[string]any{"id": camp}, nil)
		removeUsers(t, admin, seg, "old-1")
		addUsers(t, admin, seg, "old-1")
		c = readReentryCampaign(t, admin, camp)
		if !slices.Equal(c.entriesOf("old-1"), []int{1, 2}) || !slices.Equal(c.entriesOf("old-2"), []int{1}) {
			t.Fatalf("re-entry after the migration: old-1 %v old-2 %v, want [1 2] [1]", c.entriesOf("old-1"), c.entriesOf("old-2"))
		}
	})
}
