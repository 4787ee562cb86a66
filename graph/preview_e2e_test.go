package graph_test

// previewSegment over real HTTP, on SQLite and PostgreSQL: who a definition
// would hold over the stored events, counted once per user, with since,
// validated as createSegment is, refused for STATIC and for WRITE keys, and
// writing nothing.

import (
	"context"
	"database/sql"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"entgo.io/ent/dialect"

	"github.com/segmentd/segmentd/auth"
	"github.com/segmentd/segmentd/internal/testenv"
)

const previewQuery = `query($in: CreateSegmentInput!, $since: Time, $n: Int) {
  previewSegment(input: $in, since: $since) { matchingUsers sample(first: $n) { userId traits } } }`

type previewView struct {
	MatchingUsers int
	Sample        []struct {
		UserID string
		Traits map[string]any
	}
}

func (p previewView) sampleIDs() []string {
	ids := []string{}
	for _, u := range p.Sample {
		ids = append(ids, u.UserID)
	}
	return ids
}

// preview runs previewSegment with the definition in (since and the
// sample's size n when not nil) and fails the test on any error.
func preview(t *testing.T, c *testenv.Client, in map[string]any, since any, n any) previewView {
	t.Helper()
	var out struct{ PreviewSegment previewView }
	c.MustDo(t, previewQuery, map[string]any{"in": in, "since": since, "n": n}, &out)
	return out.PreviewSegment
}

func purchases(cond any, events ...string) map[string]any {
	if len(events) == 0 {
		events = []string{"Purchase Completed"}
	}
	in := map[string]any{"name": "Big spenders", "kind": "EVENT_TRIGGERED", "triggerEvents": events}
	if cond != nil {
		in["condition"] = cond
	}
	return in
}

// rowCounts counts the rows of every table of the server's database, by
// its own catalog (so that a table added later is counted too).
func rowCounts(t *testing.T, srv *testenv.Server) map[string]int {
	t.Helper()
	st := srv.Store()
	ctx := context.Background()
	list := `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'`
	if st.Dialect == dialect.Postgres {
		list = `SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'`
	}
	rows, err := st.DB.QueryContext(ctx, list)
	if err != nil {
		t.Fatalf("list tables: %v", err)
	}
	var tables []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatalf("list tables: %v", err)
		}
		tables = append(tables, name)
	}
	if err := rows.Close(); err != nil {
		t.Fatalf("list tables: %v", err)
	}
	if len(tables) < 10 {
		t.Fatalf("only %d tables found: %v", len(tables), tables)
	}
	counts := map[string]int{}
	for _, table := range tables {
		var n int
		if err := st.DB.QueryRowContext(ctx, fmt.Sprintf(`SELECT count(*) FROM %q`, table)).Scan(&n); err != nil && err != sql.ErrNoRows {
			t.Fatalf("count %s: %v", table, err)
		}
		counts[table] = n
	}
	return counts
}

// TestPreviewSegment: the users whom a stored event of the trigger names
// would have entered, with a condition on the event's properties or on
// the users' current traits; each counted once however many of their
// events match; since leaves older events out (an event exactly at since
// counts); events of other names, anonymous events and non-matching ones
// enter nobody. Nothing is written by any preview, accepted or refused.
func TestPreviewSegment(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL)
		admin := srv.Admin()
		track := func(user, name string, total float64, at string, traits map[string]any) {
			in := map[string]any{"event": name, "userId": user, "properties": map[string]any{"total": total}, "timestamp": at}
			if traits != nil {
				in["traits"] = traits
			}
			ingTrack(t, admin, in)
		}
		fb := map[string]any{"Channel": "Facebook"}
		google := map[string]any{"Channel": "Google"}
		// In the order the users are first seen (the sample's order).
		track("alice", "Purchase Completed", 120, "2026-01-10T09:00:00Z", fb)
		track("alice", "Purchase Completed", 200, "2026-01-12T09:00:00Z", nil) // a second match: alice counts once
		track("bob", "Purchase Completed", 30, "2026-01-11T09:00:00Z", google)
		track("carol", "Purchase Completed", 150, "2025-06-01T09:00:00Z", fb) // before since
		track("dave", "Page Viewed", 500, "2026-01-12T10:00:00Z", fb)         // not a trigger name
		track("erin", "Sign Up", 999, "2026-01-05T09:00:00Z", google)
		ingTrack(t, admin, map[string]any{"event": "Purchase Completed", "anonymousId": "anon-1",
			"properties": map[string]any{"total": 900}, "timestamp": "2026-01-12T11:00:00Z"}) // no user: enters nobody
		before := rowCounts(t, srv)
		unchanged := func(label string) {
			t.Helper()
			if after := rowCounts(t, srv); !maps.Equal(before, after) {
				t.Errorf("%s wrote:\nbefore %v\nafter  %v", label, before, after)
			}
		}

		// A condition on the event's properties.
		bigSpend := pred("EVENT", "total", "GT", 100)
		p := preview(t, admin, purchases(bigSpend), nil, nil)
		if p.MatchingUsers != 2 || !slices.Equal(p.sampleIDs(), []string{"alice", "carol"}) {
			t.Errorf("event.total > 100: %d users %v, want 2 [alice carol]", p.MatchingUsers, p.sampleIDs())
		}
		if len(p.Sample) > 0 && p.Sample[0].Traits["Channel"] != "Facebook" {
			t.Errorf("the sample's users carry their traits: %+v", p.Sample[0])
		}
		// since leaves carol's older event out.
		p = preview(t, admin, purchases(bigSpend), "2026-01-01T00:00:00Z", nil)
		if p.MatchingUsers != 1 || !slices.Equal(p.sampleIDs(), []string{"alice"}) {
			t.Errorf("event.total > 100 since 2026-01-01: %d users %v, want 1 [alice]", p.MatchingUsers, p.sampleIDs())
		}
		// A later since than alice's first match still finds her second one.
		p = preview(t, admin, purchases(bigSpend), "2026-01-11T00:00:00Z", nil)
		if p.MatchingUsers != 1 || !slices.Equal(p.sampleIDs(), []string{"alice"}) {
			t.Errorf("event.total > 100 since 2026-01-11: %d users %v, want 1 [alice]", p.MatchingUsers, p.sampleIDs())
		}

		// A condition on the users' traits, over two trigger names.
		fromFacebook := pred("USER", "Channel", "EQ", "Facebook")
		p = preview(t, admin, purchases(fromFacebook, "Purchase Completed", "Sign Up"), nil, nil)
		if p.MatchingUsers != 2 || !slices.Equal(p.sampleIDs(), []string{"alice", "carol"}) {
			t.Errorf("user.Channel = Facebook: %d users %v, want 2 [alice carol]", p.MatchingUsers, p.sampleIDs())
		}
		unchanged("previews")
		// Traits as they are now: erin moves to Facebook.
		ingIdentify(t, admin, map[string]any{"userId": "erin", "traits": fb})
		before = rowCounts(t, srv)
		p = preview(t, admin, purchases(fromFacebook, "Purchase Completed", "Sign Up"), nil, nil)
		if p.MatchingUsers != 3 || !slices.Equal(p.sampleIDs(), []string{"alice", "carol", "erin"}) {
			t.Errorf("user.Channel = Facebook after erin's identify: %d users %v, want 3 [alice carol erin]", p.MatchingUsers, p.sampleIDs())
		}
		// Both scopes at once.
		p = preview(t, admin, purchases(map[string]any{"and": []any{fromFacebook, pred("EVENT", "total", "GTE", 150)}}), nil, nil)
		if p.MatchingUsers != 2 || !slices.Equal(p.sampleIDs(), []string{"alice", "carol"}) {
			t.Errorf("Facebook and total >= 150: %d users %v, want 2 [alice carol]", p.MatchingUsers, p.sampleIDs())
		}

		// No condition: every user with a trigger event; since at bob's
		// event's instant exactly includes it.
		p = preview(t, admin, purchases(nil, "Purchase Completed", "Sign Up"), nil, 2)
		if p.MatchingUsers != 4 || !slices.Equal(p.sampleIDs(), []string{"alice", "bob"}) {
			t.Errorf("no condition, sample of 2: %d users %v, want 4 [alice bob]", p.MatchingUsers, p.sampleIDs())
		}
		p = preview(t, admin, purchases(nil, "Purchase Completed", "Sign Up"), "2026-01-11T09:00:00Z", nil)
		if p.MatchingUsers != 2 || !slices.Equal(p.sampleIDs(), []string{"alice", "bob"}) {
			t.Errorf("no condition since bob's event: %d users %v, want 2 [alice bob]", p.MatchingUsers, p.sampleIDs())
		}
		p = preview(t, admin, purchases(nil), nil, 0)
		if p.MatchingUsers != 3 || len(p.Sample) != 0 {
			t.Errorf("sample(first: 0): %d users %v, want 3 and an empty sample", p.MatchingUsers, p.sampleIDs())
		}
		// Nobody.
		p = preview(t, admin, purchases(pred("EVENT", "total", "GT", 10000)), nil, nil)
		if p.MatchingUsers != 0 || len(p.Sample) != 0 {
			t.Errorf("event.total > 10000: %d users %v, want none", p.MatchingUsers, p.sampleIDs())
		}
		p = preview(t, admin, purchases(nil, "Never Sent"), nil, nil)
		if p.MatchingUsers != 0 || len(p.Sample) != 0 {
			t.Errorf("a name never sent: %d users %v, want none", p.MatchingUsers, p.sampleIDs())
		}

		// sample(first) is bounded as any page is.
		e := admin.MustFail(t, "BAD_USER_INPUT", previewQuery, map[string]any{"in": purchases(nil), "n": 1001})
		if e.Field() != "first" {
			t.Errorf("sample(first: 1001): field %q (%s), want first", e.Field(), e.Message)
		}
		unchanged("previews")
		// A READ key may preview.
		_, readKey := newKey(t, srv, "dashboard", auth.RoleRead)
		before = rowCounts(t, srv)
		if p := preview(t, srv.Client(readKey), purchases(bigSpend), nil, nil); p.MatchingUsers != 2 {
			t.Errorf("READ key: %d users, want 2", p.MatchingUsers)
		}
		unchanged("a READ key's preview")
		var segs struct{ Segments struct{ TotalCount int } }
		admin.MustDo(t, `{ segments { totalCount } }`, nil, &segs)
		if segs.Segments.TotalCount != 0 {
			t.Errorf("previews created %d segments", segs.Segments.TotalCount)
		}
	})
}

// TestPreviewSegmentRefusals: a definition createSegment refuses is refused
// by previewSegment with the same code and field; a STATIC one (valid for
// createSegment) with BAD_USER_INPUT naming input.kind; a WRITE key with
// FORBIDDEN and no data. Nothing is written.
func TestPreviewSegmentRefusals(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL)
		admin := srv.Admin()
		ingTrack(t, admin, map[string]any{"event": "Sign Up", "userId": "u-1", "traits": map[string]any{"Channel": "Facebook"}})
		_, writeKey := newKey(t, srv, "web tracker", auth.RoleWrite)
		before := rowCounts(t, srv)

		for _, tc := range segmentValidationCases() {
			r := admin.Do(t, previewQuery, map[string]any{"in": tc.in})
			if len(r.Errors) != 1 {
				t.Errorf("%s: want one error, got data %s errors %+v", tc.name, r.Data, r.Errors)
				continue
			}
			e := r.Errors[0]
			if e.Code() != "BAD_USER_INPUT" || e.Field() != tc.field || !strings.HasPrefix(e.Message, tc.field+": ") {
				t.Errorf("%s: code %s field %q (%s), want BAD_USER_INPUT at %q as createSegment", tc.name, e.Code(), e.Field(), e.Message, tc.field)
			}
			noData(t, tc.name, r)
		}

		e := admin.MustFail(t, "BAD_USER_INPUT", previewQuery, map[string]any{"in": map[string]any{"name": "Beta testers", "kind": "STATIC"}})
		if e.Field() != "input.kind" || !strings.Contains(e.Message, "STATIC") {
			t.Errorf("STATIC: field %q (%s), want input.kind", e.Field(), e.Message)
		}

		r := srv.Client(writeKey).Do(t, previewQuery, map[string]any{"in": purchases(nil, "Sign Up")})
		noData(t, "WRITE key", r)
		if len(r.Errors) != 1 || r.Errors[0].Code() != "FORBIDDEN" {
			t.Errorf("WRITE key: errors %+v, want one FORBIDDEN", r.Errors)
		}

		// Each preview weighs 20,000 in the cost estimate: 11 in one
		// operation are over the default limit, refused before any runs.
		var many strings.Builder
		for i := range 11 {
			fmt.Fprintf(&many, "p%d: previewSegment(input: $in) { matchingUsers } ", i)
		}
		r = admin.Do(t, `query($in: CreateSegmentInput!) { `+many.String()+`}`, map[string]any{"in": purchases(nil, "Sign Up")})
		noData(t, "11 previews", r)
		if len(r.Errors) != 1 || r.Errors[0].Code() != "COST_LIMIT" {
			t.Errorf("11 previews in one operation: errors %+v, want one COST_LIMIT", r.Errors)
		}

		if after := rowCounts(t, srv); !maps.Equal(before, after) {
			t.Errorf("refused previews wrote:\nbefore %v\nafter  %v", before, after)
		}
	})
}

// TestReplayFirstMatchAcrossNames: the replay that previewSegment shares
// with BACKFILL reads one trigger name at a time; the event a backfilled
// member entered on is still their first matching one in arrival order,
// whatever the order of the trigger names, and the preview counts the user
// once.
func TestReplayFirstMatchAcrossNames(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL)
		admin := srv.Admin()
		ingTrack(t, admin, map[string]any{"event": "Trial Started", "userId": "u-1", "messageId": "first", "properties": map[string]any{"total": 10}})
		ingTrack(t, admin, map[string]any{"event": "Purchase Completed", "userId": "u-1", "messageId": "second", "properties": map[string]any{"total": 20}})
		ingTrack(t, admin, map[string]any{"event": "Trial Started", "userId": "u-1", "messageId": "third", "properties": map[string]any{"total": 30}})
		names := []string{"Purchase Completed", "Trial Started"} // the later event's name first
		in := purchases(pred("EVENT", "total", "GTE", 10), names...)
		if p := preview(t, admin, in, nil, nil); p.MatchingUsers != 1 || !slices.Equal(p.sampleIDs(), []string{"u-1"}) {
			t.Errorf("preview: %d users %v, want 1 [u-1]", p.MatchingUsers, p.sampleIDs())
		}
		segID := ingCreateSegment(t, admin, purchases(pred("EVENT", "total", "GT", 1000), names...))
		admin.MustDo(t, `mutation($id: ID!, $in: UpdateSegmentInput!) { updateSegment(id: $id, input: $in, reevaluate: BACKFILL) { id } }`,
			map[string]any{"id": segID, "in": map[string]any{"condition": pred("EVENT", "total", "GTE", 10)}}, nil)
		u := ingGetUser(t, admin, "u-1")
		if u == nil || len(u.Memberships) != 1 || u.Memberships[0].Event == nil || u.Memberships[0].Event.MessageID != "first" {
			t.Fatalf("backfilled membership %+v, want one entered on event \"first\"", u)
		}
		if !strings.Contains(u.Memberships[0].Reason, `"Trial Started"`) {
			t.Errorf("reason %q, want the first event's name", u.Memberships[0].Reason)
		}
	})
}

// TestPreviewDynamicSegment: a DYNAMIC definition previews the users for
// whom its condition holds now, with their current traits (a trait change
// moves a user in or out of the preview), writing nothing; an EVENT-scope
// predicate is refused as createSegment refuses it.
func TestPreviewDynamicSegment(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL)
		admin := srv.Admin()
		ingIdentify(t, admin, map[string]any{"userId": "fb-1", "traits": map[string]any{"Channel": "Facebook"}})
		ingIdentify(t, admin, map[string]any{"userId": "fb-2", "traits": map[string]any{"Channel": "Facebook", "plan": "pro"}})
		ingIdentify(t, admin, map[string]any{"userId": "g-1", "traits": map[string]any{"Channel": "Google"}})
		ingTrack(t, admin, map[string]any{"event": "Page Viewed", "userId": "no-traits"})
		dynamic := map[string]any{"name": "Facebook users", "kind": "DYNAMIC", "condition": pred("USER", "Channel", "EQ", "Facebook")}
		before := rowCounts(t, srv)
		p := preview(t, admin, dynamic, nil, nil)
		if p.MatchingUsers != 2 || !slices.Equal(p.sampleIDs(), []string{"fb-1", "fb-2"}) {
			t.Fatalf("DYNAMIC preview: %+v", p)
		}
		if p.Sample[1].Traits["plan"] != "pro" {
			t.Errorf("sample traits: %+v", p.Sample[1])
		}
		if after := rowCounts(t, srv); !maps.Equal(before, after) {
			t.Errorf("the preview wrote:\nbefore %v\nafter  %v", before, after)
		}
		if p := preview(t, admin, dynamic, nil, 1); p.MatchingUsers != 2 || len(p.Sample) != 1 {
			t.Errorf("sample(first: 1): %+v", p)
		}
		// Current traits: fb-1 moves to Google, g-1 to Facebook.
		ingIdentify(t, admin, map[string]any{"userId": "fb-1", "traits": map[string]any{"Channel": "Google"}})
		ingIdentify(t, admin, map[string]any{"userId": "g-1", "traits": map[string]any{"Channel": "Facebook"}})
		if p := preview(t, admin, dynamic, nil, nil); !slices.Equal(p.sampleIDs(), []string{"fb-2", "g-1"}) {
			t.Errorf("after trait changes: %+v", p)
		}
		// since concerns stored events; a DYNAMIC preview has none to filter.
		if p := preview(t, admin, dynamic, "2030-01-01T00:00:00Z", nil); p.MatchingUsers != 2 {
			t.Errorf("with since: %+v", p)
		}
		bad := map[string]any{"name": "x", "kind": "DYNAMIC", "condition": pred("EVENT", "total", "GT", 1)}
		errs := admin.Do(t, previewQuery, map[string]any{"in": bad}).Errors
		createErrs := admin.Do(t, `mutation($in: CreateSegmentInput!) { createSegment(input: $in) { id } }`, map[string]any{"in": bad}).Errors
		if len(errs) != 1 || len(createErrs) != 1 || errs[0].Code() != "BAD_USER_INPUT" ||
			errs[0].Field() != createErrs[0].Field() || errs[0].Field() == "" {
			t.Errorf("EVENT predicate in a DYNAMIC preview: %+v; createSegment: %+v", errs, createErrs)
		}
	})
}
