package graph_test

// End-to-end tests of event ingestion: trackEvent, trackEvents and identify
// over real HTTP, on SQLite and PostgreSQL, and what a user then sees in
// segments, memberships, campaigns, the events view and explainMembership.
// The helpers here are prefixed "ing" so that they cannot collide with the
// other end-to-end test files of this package.

import (
	"context"
	"net/http"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/segmentd/segmentd/auth"
	"github.com/segmentd/segmentd/internal/testenv"
)

// ---- helpers ----------------------------------------------------------------

type ingSeg struct{ ID, Name string }

type ingOutcome struct {
	Entered bool
	Reason  string
	Segment ingSeg
}

type ingEvent struct {
	ID          string
	MessageID   string
	Type        string
	Name        *string
	UserID      *string
	AnonymousID *string
	Properties  map[string]any
	Timestamp   time.Time
	ReceivedAt  time.Time
	Outcomes    []ingOutcome
}

const ingEventFields = `id messageId type name userId anonymousId properties timestamp receivedAt
	outcomes { entered reason segment { id name } }`

type ingTrackResult struct {
	Duplicate          bool
	EnteredSegments    []ingSeg
	ActivatedCampaigns []ingSeg
	Event              ingEvent
}

const ingTrackFields = `duplicate enteredSegments { id name } activatedCampaigns { id name } event { ` + ingEventFields + ` }`

const ingTrackMutation = `mutation($in: TrackInput!) { trackEvent(input: $in) { ` + ingTrackFields + ` } }`

// ingTrack sends one trackEvent and fails the test on any error.
func ingTrack(t *testing.T, c *testenv.Client, in map[string]any) ingTrackResult {
	t.Helper()
	var out struct{ TrackEvent ingTrackResult }
	c.MustDo(t, ingTrackMutation, map[string]any{"in": in}, &out)
	return out.TrackEvent
}

type ingBatchResult struct {
	Accepted   int
	Duplicates int
	Results    []ingTrackResult
}

const ingBatchMutation = `mutation($ins: [TrackInput!]!) { trackEvents(inputs: $ins) { accepted duplicates results { ` + ingTrackFields + ` } } }`

// ingTrackBatch sends one trackEvents call and fails the test on any error.
func ingTrackBatch(t *testing.T, c *testenv.Client, ins []map[string]any) ingBatchResult {
	t.Helper()
	var out struct{ TrackEvents ingBatchResult }
	c.MustDo(t, ingBatchMutation, map[string]any{"ins": ins}, &out)
	return out.TrackEvents
}

type ingMembership struct {
	Segment ingSeg
	Source  string
	Reason  string
	Event   *struct{ MessageID string }
}

type ingUser struct {
	UserID      string
	Traits      map[string]any
	Memberships []ingMembership
}

const ingUserFields = `userId traits memberships { segment { id name } source reason event { messageId } }`

// ingIdentify sends identify and returns the user it answers with.
func ingIdentify(t *testing.T, c *testenv.Client, in map[string]any) ingUser {
	t.Helper()
	var out struct{ Identify ingUser }
	c.MustDo(t, `mutation($in: IdentifyInput!) { identify(input: $in) { `+ingUserFields+` } }`, map[string]any{"in": in}, &out)
	return out.Identify
}

// ingGetUser reads user(userId); nil when the server answers null.
func ingGetUser(t *testing.T, c *testenv.Client, userID string) *ingUser {
	t.Helper()
	var out struct{ User *ingUser }
	c.MustDo(t, `query($u: String!) { user(userId: $u) { `+ingUserFields+` } }`, map[string]any{"u": userID}, &out)
	return out.User
}

// ingSeedCondition is the seed example's condition:
// user."Sign Up Date" > 2025-01-01 AND (user.Channel = "Facebook" OR event."Reward Amount" > 50).
func ingSeedCondition() map[string]any {
	return map[string]any{"and": []any{
		map[string]any{"scope": "USER", "property": "Sign Up Date", "operator": "GT", "value": "2025-01-01"},
		map[string]any{"or": []any{
			map[string]any{"scope": "USER", "property": "Channel", "operator": "EQ", "value": "Facebook"},
			map[string]any{"scope": "EVENT", "property": "Reward Amount", "operator": "GT", "value": 50},
		}},
	}}
}

const ingSeedName = "Activation Experiment - New Users"

// ingSeed creates the seed segment and, unless campaignStatus is empty, the
// campaign "Welcome Mission" on it with that status.
func ingSeed(t *testing.T, c *testenv.Client, campaignStatus string) (segID, campID string) {
	t.Helper()
	segID = ingCreateSegment(t, c, map[string]any{
		"name": ingSeedName, "kind": "EVENT_TRIGGERED", "triggerEvents": []string{"Sign Up"}, "condition": ingSeedCondition(),
	})
	if campaignStatus != "" {
		campID = ingCreateCampaign(t, c, "Welcome Mission", segID, campaignStatus).ID
	}
	return segID, campID
}

func ingCreateSegment(t *testing.T, c *testenv.Client, in map[string]any) string {
	t.Helper()
	var out struct{ CreateSegment struct{ ID string } }
	c.MustDo(t, `mutation($in: CreateSegmentInput!) { createSegment(input: $in) { id } }`, map[string]any{"in": in}, &out)
	return out.CreateSegment.ID
}

type ingCampaign struct {
	ID              string
	Name            string
	Status          string
	ActivationCount int
}

// ingCreateCampaign creates a campaign; segID may be empty.
func ingCreateCampaign(t *testing.T, c *testenv.Client, name, segID, status string) ingCampaign {
	t.Helper()
	in := map[string]any{"name": name, "status": status}
	if segID != "" {
		in["segmentId"] = segID
	}
	var out struct{ CreateCampaign ingCampaign }
	c.MustDo(t, `mutation($in: CreateCampaignInput!) { createCampaign(input: $in) { id name status activationCount } }`,
		map[string]any{"in": in}, &out)
	return out.CreateCampaign
}

func ingUpdateCampaign(t *testing.T, c *testenv.Client, id string, in map[string]any) ingCampaign {
	t.Helper()
	var out struct{ UpdateCampaign ingCampaign }
	c.MustDo(t, `mutation($id: ID!, $in: UpdateCampaignInput!) { updateCampaign(id: $id, input: $in) { id name status activationCount } }`,
		map[string]any{"id": id, "in": in}, &out)
	return out.UpdateCampaign
}

// ingActivations returns a campaign's activationCount and the user IDs of
// its activations, sorted, read through the activations connection.
func ingActivations(t *testing.T, c *testenv.Client, campID string) (int, []string) {
	t.Helper()
	var out struct {
		Node struct {
			ActivationCount int
			Activations     struct {
				TotalCount int
				Edges      []struct {
					Node struct{ User struct{ UserID string } }
				}
			}
		}
	}
	c.MustDo(t, `query($c: ID!) { node(id: $c) { ... on Campaign { activationCount
		activations(first: 100) { totalCount edges { node { user { userId } } } } } } }`, map[string]any{"c": campID}, &out)
	if out.Node.ActivationCount != out.Node.Activations.TotalCount {
		t.Fatalf("campaign %s: activationCount %d but activations.totalCount %d", campID, out.Node.ActivationCount, out.Node.Activations.TotalCount)
	}
	users := []string{}
	for _, e := range out.Node.Activations.Edges {
		users = append(users, e.Node.User.UserID)
	}
	sort.Strings(users)
	return out.Node.ActivationCount, users
}

type ingMember struct {
	Source string
	Reason string
	Event  *struct{ MessageID string }
}

// ingMembers returns a segment's members by user ID, failing if the
// connection's totalCount disagrees with the edges.
func ingMembers(t *testing.T, c *testenv.Client, segID string) map[string]ingMember {
	t.Helper()
	var out struct {
		Node struct {
			Members struct {
				TotalCount int
				Edges      []struct {
					Node struct {
						ingMember
						User struct{ UserID string }
					}
				}
			}
		}
	}
	c.MustDo(t, `query($s: ID!) { node(id: $s) { ... on Segment { members(first: 100) { totalCount
		edges { node { source reason event { messageId } user { userId } } } } } } }`, map[string]any{"s": segID}, &out)
	m := map[string]ingMember{}
	for _, e := range out.Node.Members.Edges {
		if _, dup := m[e.Node.User.UserID]; dup {
			t.Fatalf("segment %s lists %s twice", segID, e.Node.User.UserID)
		}
		m[e.Node.User.UserID] = e.Node.ingMember
	}
	if len(m) != out.Node.Members.TotalCount {
		t.Fatalf("segment %s: totalCount %d, %d edges", segID, out.Node.Members.TotalCount, len(m))
	}
	return m
}

// ingKeys returns the sorted keys of m.
func ingKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// ingEventCount is events(where: where) { totalCount }; where may be nil.
func ingEventCount(t *testing.T, c *testenv.Client, where map[string]any) int {
	t.Helper()
	var out struct{ Events struct{ TotalCount int } }
	c.MustDo(t, `query($w: EventWhereInput) { events(where: $w) { totalCount } }`, map[string]any{"w": where}, &out)
	return out.Events.TotalCount
}

func ingUserCount(t *testing.T, c *testenv.Client) int {
	t.Helper()
	var out struct{ Users struct{ TotalCount int } }
	c.MustDo(t, `{ users { totalCount } }`, nil, &out)
	return out.Users.TotalCount
}

// ingEventByMessage reads the stored event with messageID from the events view.
func ingEventByMessage(t *testing.T, c *testenv.Client, messageID string) ingEvent {
	t.Helper()
	var out struct {
		Events struct {
			Edges []struct{ Node ingEvent }
		}
	}
	c.MustDo(t, `query($m: String!) { events(where: {messageID: $m}) { edges { node { `+ingEventFields+` } } } }`,
		map[string]any{"m": messageID}, &out)
	if len(out.Events.Edges) != 1 {
		t.Fatalf("events with messageId %q: %d, want 1", messageID, len(out.Events.Edges))
	}
	return out.Events.Edges[0].Node
}

type ingExplanation struct {
	Member             bool
	Reason             string
	Segment            ingSeg
	User               *struct{ UserID string }
	Membership         *ingMember
	LastEvaluatedEvent *struct{ MessageID string }
}

func ingExplain(t *testing.T, c *testenv.Client, segID, userID string) ingExplanation {
	t.Helper()
	var out struct{ ExplainMembership ingExplanation }
	c.MustDo(t, `query($s: ID!, $u: String!) { explainMembership(segmentId: $s, userId: $u) {
		member reason segment { id name } user { userId } membership { source reason event { messageId } } lastEvaluatedEvent { messageId } } }`,
		map[string]any{"s": segID, "u": userID}, &out)
	return out.ExplainMembership
}

// ingOwnClient returns a client with its own connection pool, so that
// concurrent requests really arrive on separate connections; close releases
// its idle connections.
func ingOwnClient(srv *testenv.Server, key string) (c *testenv.Client, close func()) {
	tr := &http.Transport{}
	return &testenv.Client{URL: srv.URL + "/graphql", Key: key, HTTP: &http.Client{Transport: tr, Timeout: 30 * time.Second}},
		tr.CloseIdleConnections
}

// ingKey creates an API key with role in the server's store and returns its secret.
func ingKey(t *testing.T, srv *testenv.Server, role auth.Role) string {
	t.Helper()
	_, secret, err := auth.NewKeys(srv.Store().Client).Create(context.Background(), "ingest test "+string(role), role)
	if err != nil {
		t.Fatalf("create %s key: %v", role, err)
	}
	return secret
}

func ingSegNames(segs []ingSeg) []string {
	out := make([]string, len(segs))
	for i, s := range segs {
		out[i] = s.Name
	}
	sort.Strings(out)
	return out
}

// ---- the seed example --------------------------------------------------------

// TestIngestSeedExample walks the seed example: "Activation Experiment - New
// Users" (Sign Up; user."Sign Up Date" > 2025-01-01 AND (user.Channel =
// "Facebook" OR event."Reward Amount" > 50)) with the ACTIVE campaign
// "Welcome Mission". Users who match enter, activate the campaign once, and
// the membership names the event; users who do not match stay out, and the
// event's outcome says which predicate failed with the value it saw.
func TestIngestSeedExample(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL)
		c := srv.Admin()
		segID, campID := ingSeed(t, c, "ACTIVE")
		seg := ingSeg{ID: segID, Name: ingSeedName}
		welcome := ingSeg{ID: campID, Name: "Welcome Mission"}

		mustEnter := func(label string, r ingTrackResult, messageID, userID string) {
			t.Helper()
			if r.Duplicate || !reflect.DeepEqual(r.EnteredSegments, []ingSeg{seg}) || !reflect.DeepEqual(r.ActivatedCampaigns, []ingSeg{welcome}) {
				t.Fatalf("%s: want entered %v and activated %v, got %+v", label, seg, welcome, r)
			}
			if len(r.Event.Outcomes) != 1 || !r.Event.Outcomes[0].Entered || r.Event.Outcomes[0].Segment != seg ||
				!strings.HasPrefix(r.Event.Outcomes[0].Reason, "entered") {
				t.Fatalf("%s: outcomes %+v", label, r.Event.Outcomes)
			}
			// The same outcome, as stored and shown in the events view.
			if ev := ingEventByMessage(t, c, messageID); !reflect.DeepEqual(ev.Outcomes, r.Event.Outcomes) {
				t.Fatalf("%s: stored outcomes %+v, trackEvent said %+v", label, ev.Outcomes, r.Event.Outcomes)
			}
			u := ingGetUser(t, c, userID)
			if u == nil || len(u.Memberships) != 1 {
				t.Fatalf("%s: user %s: %+v", label, userID, u)
			}
			m := u.Memberships[0]
			if m.Segment != seg || m.Source != "EVENT" || m.Event == nil || m.Event.MessageID != messageID ||
				!strings.Contains(m.Reason, `"Sign Up"`) {
				t.Fatalf("%s: membership %+v", label, m)
			}
		}
		mustNotEnter := func(label string, r ingTrackResult, userID string, reasonHas ...string) {
			t.Helper()
			if r.Duplicate || len(r.EnteredSegments) != 0 || len(r.ActivatedCampaigns) != 0 {
				t.Fatalf("%s: want nothing entered or activated, got %+v", label, r)
			}
			if len(r.Event.Outcomes) != 1 || r.Event.Outcomes[0].Entered || r.Event.Outcomes[0].Segment != seg {
				t.Fatalf("%s: outcomes %+v", label, r.Event.Outcomes)
			}
			reason := r.Event.Outcomes[0].Reason
			if !strings.HasPrefix(reason, "condition failed:") {
				t.Fatalf("%s: reason %q does not start with \"condition failed:\"", label, reason)
			}
			for _, s := range reasonHas {
				if !strings.Contains(reason, s) {
					t.Fatalf("%s: reason %q does not show %s", label, reason, s)
				}
			}
			if u := ingGetUser(t, c, userID); u == nil || len(u.Memberships) != 0 {
				t.Fatalf("%s: user %s: %+v", label, userID, u)
			}
		}

		// Facebook, traits set by identify first.
		ingIdentify(t, c, map[string]any{"userId": "fb", "traits": map[string]any{"Sign Up Date": "2025-02-01", "Channel": "Facebook"}})
		mustEnter("Facebook", ingTrack(t, c, map[string]any{"event": "Sign Up", "userId": "fb", "messageId": "m-fb"}), "m-fb", "fb")
		if n, users := ingActivations(t, c, campID); n != 1 || !reflect.DeepEqual(users, []string{"fb"}) {
			t.Fatalf("after Facebook: %d activations %v", n, users)
		}

		// Google with a small reward, traits sent with the event.
		google := map[string]any{"Sign Up Date": "2025-02-01", "Channel": "Google"}
		r := ingTrack(t, c, map[string]any{"event": "Sign Up", "userId": "g20", "messageId": "m-g20",
			"traits": google, "properties": map[string]any{"Reward Amount": 20}})
		mustNotEnter("Google, 20", r, "g20", `"Reward Amount" > 50 (was 20)`, `(was "Google")`)
		if ev := ingEventByMessage(t, c, "m-g20"); !reflect.DeepEqual(ev.Outcomes, r.Event.Outcomes) {
			t.Fatalf("stored outcomes %+v, trackEvent said %+v", ev.Outcomes, r.Event.Outcomes)
		}

		// Google with a large reward enters; so does the reward as a numeric string.
		mustEnter("Google, 72", ingTrack(t, c, map[string]any{"event": "Sign Up", "userId": "g72", "messageId": "m-g72",
			"traits": google, "properties": map[string]any{"Reward Amount": 72}}), "m-g72", "g72")
		mustEnter(`Google, "72"`, ingTrack(t, c, map[string]any{"event": "Sign Up", "userId": "g72s", "messageId": "m-g72s",
			"traits": google, "properties": map[string]any{"Reward Amount": "72"}}), "m-g72s", "g72s")

		// Signed up in 2024: out, even from Facebook with a large reward.
		mustNotEnter("2024", ingTrack(t, c, map[string]any{"event": "Sign Up", "userId": "old", "messageId": "m-old",
			"traits": map[string]any{"Sign Up Date": "2024-06-01", "Channel": "Facebook"}, "properties": map[string]any{"Reward Amount": 99}}),
			"old", `"Sign Up Date"`, `2024-06-01`)

		// Another event name has no outcome for this segment, even for a
		// user who would match.
		r = ingTrack(t, c, map[string]any{"event": "Purchase Completed", "userId": "buyer", "messageId": "m-buy",
			"traits": map[string]any{"Sign Up Date": "2025-02-01", "Channel": "Facebook"}, "properties": map[string]any{"Reward Amount": 500}})
		if len(r.Event.Outcomes) != 0 || len(r.EnteredSegments) != 0 || len(r.ActivatedCampaigns) != 0 {
			t.Fatalf("Purchase Completed: %+v", r)
		}
		if u := ingGetUser(t, c, "buyer"); u == nil || len(u.Memberships) != 0 {
			t.Fatalf("Purchase Completed made a membership: %+v", u)
		}

		// A member signing up again stays a member and activates nothing.
		r = ingTrack(t, c, map[string]any{"event": "Sign Up", "userId": "fb", "messageId": "m-fb-2"})
		if len(r.EnteredSegments) != 0 || len(r.ActivatedCampaigns) != 0 || len(r.Event.Outcomes) != 1 ||
			r.Event.Outcomes[0].Entered || r.Event.Outcomes[0].Reason != "already a member" {
			t.Fatalf("second Sign Up of a member: %+v", r)
		}

		members := ingMembers(t, c, segID)
		if got := ingKeys(members); !reflect.DeepEqual(got, []string{"fb", "g72", "g72s"}) {
			t.Fatalf("members %v, want fb, g72, g72s", got)
		}
		if n, users := ingActivations(t, c, campID); n != 3 || !reflect.DeepEqual(users, []string{"fb", "g72", "g72s"}) {
			t.Fatalf("activations %d %v, want 3: fb, g72, g72s", n, users)
		}
	})
}

// ---- duplicates --------------------------------------------------------------

// TestIngestDuplicateMessageID: a messageId seen before is acknowledged as a
// duplicate with the stored event and changes nothing, whatever else the
// repeat carries (other traits, properties, even another name), through
// trackEvent, identify and trackEvents; within one trackEvents call a repeat
// is counted in duplicates and answered with the first one's event.
func TestIngestDuplicateMessageID(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL)
		c := srv.Admin()
		segID, campID := ingSeed(t, c, "ACTIVE")
		fb := map[string]any{"Sign Up Date": "2025-02-01", "Channel": "Facebook"}

		first := ingTrack(t, c, map[string]any{"event": "Sign Up", "userId": "dup", "messageId": "m-1", "traits": fb,
			"properties": map[string]any{"plan": "free"}})
		if first.Duplicate || len(first.EnteredSegments) != 1 || first.Event.MessageID != "m-1" {
			t.Fatalf("first: %+v", first)
		}
		events := ingEventCount(t, c, nil)
		before := ingGetUser(t, c, "dup")

		again := ingTrack(t, c, map[string]any{"event": "Purchase Completed", "userId": "dup", "messageId": "m-1",
			"traits": map[string]any{"Channel": "Google", "Plan": "pro", "Sign Up Date": nil}, "properties": map[string]any{"plan": "pro"}})
		if !again.Duplicate || again.Event.ID != first.Event.ID || len(again.EnteredSegments) != 0 || len(again.ActivatedCampaigns) != 0 {
			t.Fatalf("repeat: %+v\nfirst: %+v", again, first)
		}
		if again.Event.Name == nil || *again.Event.Name != "Sign Up" || again.Event.Properties["plan"] != "free" {
			t.Fatalf("the repeat answered with other data than the stored event: %+v", again.Event)
		}
		// identify with a used messageId is a duplicate too.
		idn := ingIdentify(t, c, map[string]any{"userId": "dup", "messageId": "m-1", "traits": map[string]any{"Channel": "Twitter"}})
		if !reflect.DeepEqual(idn.Traits, before.Traits) {
			t.Fatalf("identify with a used messageId changed traits: %v, were %v", idn.Traits, before.Traits)
		}
		if n := ingEventCount(t, c, nil); n != events {
			t.Fatalf("events %d after duplicates, want %d", n, events)
		}
		if after := ingGetUser(t, c, "dup"); !reflect.DeepEqual(after, before) {
			t.Fatalf("user changed by duplicates:\n%+v\nwas\n%+v", after, before)
		}
		if n, _ := ingActivations(t, c, campID); n != 1 {
			t.Fatalf("activations %d, want 1", n)
		}

		// Within one batch: b1 twice (the repeat's traits ignored) and m-1
		// from before.
		batch := []map[string]any{
			{"event": "Sign Up", "userId": "b1", "messageId": "m-b1", "traits": fb},
			{"event": "Sign Up", "userId": "b2", "messageId": "m-b2", "traits": map[string]any{"Channel": "Google"}},
			{"event": "Sign Up", "userId": "b1", "messageId": "m-b1", "traits": map[string]any{"Channel": "Google", "Extra": true}},
			{"event": "Sign Up", "userId": "dup", "messageId": "m-1", "traits": map[string]any{"Channel": "Google"}},
		}
		res := ingTrackBatch(t, c, batch)
		if res.Accepted != 2 || res.Duplicates != 2 || len(res.Results) != 4 {
			t.Fatalf("batch: accepted %d duplicates %d results %d; want 2, 2, 4", res.Accepted, res.Duplicates, len(res.Results))
		}
		for i, want := range []bool{false, false, true, true} {
			if res.Results[i].Duplicate != want {
				t.Fatalf("results[%d].duplicate = %v, want %v", i, res.Results[i].Duplicate, want)
			}
		}
		if res.Results[2].Event.ID != res.Results[0].Event.ID || res.Results[3].Event.ID != first.Event.ID {
			t.Fatalf("duplicates answered with other events: %s/%s, %s/%s",
				res.Results[2].Event.ID, res.Results[0].Event.ID, res.Results[3].Event.ID, first.Event.ID)
		}
		if got := ingSegNames(res.Results[0].EnteredSegments); !reflect.DeepEqual(got, []string{ingSeedName}) || len(res.Results[2].EnteredSegments) != 0 {
			t.Fatalf("batch entries: %+v / %+v", res.Results[0].EnteredSegments, res.Results[2].EnteredSegments)
		}
		if u := ingGetUser(t, c, "b1"); !reflect.DeepEqual(u.Traits, fb) {
			t.Fatalf("b1's traits %v, want %v (the in-batch repeat must change nothing)", u.Traits, fb)
		}
		if n := ingEventCount(t, c, nil); n != events+2 {
			t.Fatalf("events %d, want %d", n, events+2)
		}

		// The whole batch again: all duplicates.
		res = ingTrackBatch(t, c, batch)
		if res.Accepted != 0 || res.Duplicates != 4 {
			t.Fatalf("batch again: accepted %d duplicates %d; want 0, 4", res.Accepted, res.Duplicates)
		}
		if n := ingEventCount(t, c, nil); n != events+2 {
			t.Fatalf("events %d after a repeated batch, want %d", n, events+2)
		}
		if got := ingKeys(ingMembers(t, c, segID)); !reflect.DeepEqual(got, []string{"b1", "dup"}) {
			t.Fatalf("members %v, want b1, dup", got)
		}
		if n, _ := ingActivations(t, c, campID); n != 2 {
			t.Fatalf("activations %d, want 2", n)
		}
	})
}

// ---- identify and traits -------------------------------------------------------

// TestIngestIdentifyTraits: identify creates the user and merges traits (a
// null removes one) without entering segments; TrackInput.traits merge
// before evaluation, so the event that sets Channel to Facebook enters, and
// the one that removes Sign Up Date does not.
func TestIngestIdentifyTraits(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL)
		c := srv.Admin()
		segID, _ := ingSeed(t, c, "")

		if u := ingGetUser(t, c, "ida"); u != nil {
			t.Fatalf("unknown user: %+v", u)
		}
		u := ingIdentify(t, c, map[string]any{"userId": "ida", "traits": map[string]any{"a": 1, "b": "x", "nested": map[string]any{"k": "v"}}})
		if u.UserID != "ida" || !reflect.DeepEqual(u.Traits, map[string]any{"a": 1.0, "b": "x", "nested": map[string]any{"k": "v"}}) {
			t.Fatalf("identify created %+v", u)
		}
		u = ingIdentify(t, c, map[string]any{"userId": "ida", "traits": map[string]any{"b": "y", "c": true}})
		if want := map[string]any{"a": 1.0, "b": "y", "c": true, "nested": map[string]any{"k": "v"}}; !reflect.DeepEqual(u.Traits, want) {
			t.Fatalf("merged traits %v, want %v", u.Traits, want)
		}
		u = ingIdentify(t, c, map[string]any{"userId": "ida", "traits": map[string]any{"a": nil, "nested": nil, "gone": nil}})
		if want := map[string]any{"b": "y", "c": true}; !reflect.DeepEqual(u.Traits, want) {
			t.Fatalf("after removing a and nested: %v, want %v", u.Traits, want)
		}
		if got := ingGetUser(t, c, "ida"); !reflect.DeepEqual(got.Traits, u.Traits) {
			t.Fatalf("user(userId) says %v, identify said %v", got.Traits, u.Traits)
		}
		if n := ingEventCount(t, c, map[string]any{"type": "IDENTIFY", "userID": "ida"}); n != 3 {
			t.Fatalf("IDENTIFY events of ida: %d, want 3", n)
		}

		// identify alone never enters an event-triggered segment.
		ingIdentify(t, c, map[string]any{"userId": "ch", "traits": map[string]any{"Sign Up Date": "2025-02-01", "Channel": "Google"}})
		if u := ingGetUser(t, c, "ch"); len(u.Memberships) != 0 {
			t.Fatalf("identify made memberships: %+v", u.Memberships)
		}
		// The event's traits apply first: Channel becomes Facebook and she enters.
		r := ingTrack(t, c, map[string]any{"event": "Sign Up", "userId": "ch", "traits": map[string]any{"Channel": "Facebook"}})
		if len(r.EnteredSegments) != 1 {
			t.Fatalf("Sign Up with traits {Channel: Facebook}: %+v", r)
		}
		if u := ingGetUser(t, c, "ch"); !reflect.DeepEqual(u.Traits, map[string]any{"Sign Up Date": "2025-02-01", "Channel": "Facebook"}) {
			t.Fatalf("traits after the event: %v", u.Traits)
		}
		// A null trait in an event removes it before evaluation.
		ingIdentify(t, c, map[string]any{"userId": "rm", "traits": map[string]any{"Sign Up Date": "2025-02-01", "Channel": "Facebook"}})
		r = ingTrack(t, c, map[string]any{"event": "Sign Up", "userId": "rm", "traits": map[string]any{"Sign Up Date": nil}})
		if len(r.EnteredSegments) != 0 || len(r.Event.Outcomes) != 1 || !strings.Contains(r.Event.Outcomes[0].Reason, "missing") {
			t.Fatalf("Sign Up removing Sign Up Date: %+v", r)
		}
		if u := ingGetUser(t, c, "rm"); !reflect.DeepEqual(u.Traits, map[string]any{"Channel": "Facebook"}) {
			t.Fatalf("traits after removal: %v", u.Traits)
		}
		// trackEvent creates unknown users too.
		ingTrack(t, c, map[string]any{"event": "Page Viewed", "userId": "new-by-track"})
		if u := ingGetUser(t, c, "new-by-track"); u == nil || len(u.Traits) != 0 {
			t.Fatalf("user created by trackEvent: %+v", u)
		}
		if got := ingKeys(ingMembers(t, c, segID)); !reflect.DeepEqual(got, []string{"ch"}) {
			t.Fatalf("members %v, want ch", got)
		}
	})
}

// ---- explainMembership ---------------------------------------------------------

// TestIngestExplainMembership: explainMembership answers for a member (the
// membership's reason), for a user whose event failed the condition, for a
// user who never sent the trigger event, and for a user segmentd never saw.
func TestIngestExplainMembership(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL)
		c := srv.Admin()
		segID, _ := ingSeed(t, c, "ACTIVE")
		fb := map[string]any{"Sign Up Date": "2025-02-01", "Channel": "Facebook"}

		ingTrack(t, c, map[string]any{"event": "Sign Up", "userId": "in", "messageId": "m-in", "traits": fb})
		ex := ingExplain(t, c, segID, "in")
		if !ex.Member || ex.Membership == nil || ex.User == nil || ex.User.UserID != "in" || ex.Segment.ID != segID {
			t.Fatalf("member: %+v", ex)
		}
		if ex.Reason != ex.Membership.Reason || ex.Membership.Source != "EVENT" || ex.Membership.Event == nil ||
			ex.Membership.Event.MessageID != "m-in" || !strings.Contains(ex.Reason, `"Sign Up"`) {
			t.Fatalf("member's explanation: %+v, membership %+v", ex, ex.Membership)
		}
		// A later failing event does not make a member a non-member.
		ingTrack(t, c, map[string]any{"event": "Sign Up", "userId": "in", "traits": map[string]any{"Channel": "Google"}})
		if ex := ingExplain(t, c, segID, "in"); !ex.Member {
			t.Fatalf("member after a failing event: %+v", ex)
		}

		ingTrack(t, c, map[string]any{"event": "Sign Up", "userId": "out", "messageId": "m-out",
			"traits": map[string]any{"Sign Up Date": "2025-02-01", "Channel": "Google"}, "properties": map[string]any{"Reward Amount": 20}})
		ex = ingExplain(t, c, segID, "out")
		if ex.Member || ex.Membership != nil || ex.User == nil || !strings.Contains(ex.Reason, "condition failed") ||
			!strings.Contains(ex.Reason, "(was 20)") || ex.LastEvaluatedEvent == nil || ex.LastEvaluatedEvent.MessageID != "m-out" {
			t.Fatalf("non-member after a failing event: %+v", ex)
		}

		ex = ingExplain(t, c, segID, "stranger")
		if ex.Member || ex.User != nil || ex.Membership != nil || !strings.Contains(ex.Reason, "never seen") {
			t.Fatalf("unknown user: %+v", ex)
		}
		if u := ingGetUser(t, c, "stranger"); u != nil {
			t.Fatalf("explainMembership created the user: %+v", u)
		}

		ingTrack(t, c, map[string]any{"event": "Purchase Completed", "userId": "shopper", "traits": fb})
		ex = ingExplain(t, c, segID, "shopper")
		if ex.Member || ex.User == nil || !strings.Contains(ex.Reason, `no event named "Sign Up"`) || ex.LastEvaluatedEvent != nil {
			t.Fatalf("user without a Sign Up: %+v", ex)
		}

		// A member removed by hand after a repeat Sign Up ("already a
		// member") is explained as someone who left, not as a member.
		ingTrack(t, c, map[string]any{"event": "Sign Up", "userId": "gone", "traits": fb})
		ingTrack(t, c, map[string]any{"event": "Sign Up", "userId": "gone"})
		c.MustDo(t, `mutation($s: ID!) { removeUsersFromSegment(segmentId: $s, userIds: ["gone"]) { removed } }`, map[string]any{"s": segID}, nil)
		ex = ingExplain(t, c, segID, "gone")
		if ex.Member || !strings.HasPrefix(ex.Reason, "not a member any more") || strings.Contains(ex.Reason, "already a member") {
			t.Fatalf("removed member: %+v", ex)
		}

		e := c.MustFail(t, "NOT_FOUND", `query { explainMembership(segmentId: "seg_01AAAAAAAAAAAAAAAAAAAAAAAA", userId: "in") { member } }`, nil)
		if e.Message == "" {
			t.Fatal("NOT_FOUND without a message")
		}
	})
}

// ---- which segments an event evaluates ------------------------------------------

// TestIngestSegmentMatching: an event is evaluated by every EVENT_TRIGGERED
// segment whose trigger events include its name (several at once, in
// creation order), never by STATIC segments; a segment without conditions
// takes everyone who sends a trigger event; WITHIN_LAST measures from the
// event's timestamp; within one trackEvents call events apply in order;
// outcomes of a deleted segment disappear from stored events.
func TestIngestSegmentMatching(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL)
		c := srv.Admin()
		seedID, _ := ingSeed(t, c, "ACTIVE")
		anyID := ingCreateSegment(t, c, map[string]any{"name": "Anyone active", "kind": "EVENT_TRIGGERED", "triggerEvents": []string{"Sign Up", "Login"}})
		ingCreateCampaign(t, c, "Hello", anyID, "ACTIVE")
		recentID := ingCreateSegment(t, c, map[string]any{"name": "Recent visitors", "kind": "EVENT_TRIGGERED", "triggerEvents": []string{"Login"},
			"condition": map[string]any{"scope": "EVENT", "property": "previous visit", "operator": "WITHIN_LAST", "value": "7d"}})
		staticID := ingCreateSegment(t, c, map[string]any{"name": "Static", "kind": "STATIC"})

		// Sign Up: both segments that it triggers, in creation order.
		r := ingTrack(t, c, map[string]any{"event": "Sign Up", "userId": "s1", "traits": ingFacebook})
		if len(r.Event.Outcomes) != 2 || r.Event.Outcomes[0].Segment.ID != seedID || r.Event.Outcomes[1].Segment.ID != anyID {
			t.Fatalf("Sign Up outcomes: %+v", r.Event.Outcomes)
		}
		if !r.Event.Outcomes[1].Entered || r.Event.Outcomes[1].Reason != "entered: no conditions" {
			t.Fatalf("segment without conditions: %+v", r.Event.Outcomes[1])
		}
		if got := ingSegNames(r.EnteredSegments); !reflect.DeepEqual(got, []string{ingSeedName, "Anyone active"}) {
			t.Fatalf("entered %v", got)
		}
		if got := ingSegNames(r.ActivatedCampaigns); !reflect.DeepEqual(got, []string{"Hello", "Welcome Mission"}) {
			t.Fatalf("activated %v", got)
		}
		if u := ingGetUser(t, c, "s1"); len(u.Memberships) != 2 {
			t.Fatalf("memberships %+v", u.Memberships)
		}

		// WITHIN_LAST counts back from the event's own timestamp.
		login := func(user, timestamp, previous string) ingTrackResult {
			return ingTrack(t, c, map[string]any{"event": "Login", "userId": user, "timestamp": timestamp,
				"properties": map[string]any{"previous visit": previous}})
		}
		r = login("recent", "2025-03-10T00:00:00Z", "2025-03-05T00:00:00Z")
		if len(r.Event.Outcomes) != 2 || !r.Event.Outcomes[1].Entered || r.Event.Outcomes[1].Segment.ID != recentID {
			t.Fatalf("visit 5 days before the event: %+v", r.Event.Outcomes)
		}
		r = login("stale", "2025-03-10T00:00:00Z", "2025-02-01T00:00:00Z")
		if len(r.Event.Outcomes) != 2 || r.Event.Outcomes[1].Entered || !strings.HasPrefix(r.Event.Outcomes[1].Reason, "condition failed:") {
			t.Fatalf("visit 37 days before the event: %+v", r.Event.Outcomes)
		}

		// Within one batch, events apply in order: traits set by the first
		// count for the second, and the third finds her a member.
		b := ingTrackBatch(t, c, []map[string]any{
			{"event": "Page Viewed", "userId": "inbatch", "traits": ingFacebook},
			{"event": "Sign Up", "userId": "inbatch"},
			{"event": "Sign Up", "userId": "inbatch"},
		})
		if len(b.Results[0].Event.Outcomes) != 0 || len(b.Results[1].EnteredSegments) != 2 || len(b.Results[2].EnteredSegments) != 0 {
			t.Fatalf("batch results: %+v", b.Results)
		}
		for _, o := range b.Results[2].Event.Outcomes {
			if o.Reason != "already a member" {
				t.Fatalf("third event's outcomes: %+v", b.Results[2].Event.Outcomes)
			}
		}
		if n := len(ingMembers(t, c, staticID)); n != 0 {
			t.Fatalf("events put %d users into a STATIC segment", n)
		}

		// Deleting a segment removes its outcomes from stored events.
		c.MustDo(t, `mutation($s: ID!) { deleteSegment(id: $s) }`, map[string]any{"s": recentID}, nil)
		if ev := ingEventByMessage(t, c, r.Event.MessageID); len(ev.Outcomes) != 1 || ev.Outcomes[0].Segment.ID != anyID {
			t.Fatalf("outcomes after the segment's deletion: %+v", ev.Outcomes)
		}
	})
}
