package server_test

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/segmentd/segmentd/auth"
	"github.com/segmentd/segmentd/internal/testenv"
	"github.com/segmentd/segmentd/server"
)

// attackServer starts a server whose log the test reads, and at the end
// fails if any of the secrets it is given appears in it.
type attackServer struct {
	*testenv.Server
	Log     *testenv.LogBuffer
	secrets []string
}

func startAttackServer(t *testing.T, dbURL string, opts ...func(*server.Config)) *attackServer {
	t.Helper()
	a := &attackServer{Log: &testenv.LogBuffer{}}
	a.Server = testenv.StartServerLogging(t, dbURL, a.Log, opts...)
	a.secrets = append(a.secrets, testenv.AdminKey)
	t.Cleanup(func() {
		log := a.Log.String()
		for _, s := range a.secrets {
			if strings.Contains(log, s) {
				t.Errorf("the server's log holds the secret %q:\n%s", s, excerpt(log, s))
			}
		}
	})
	return a
}

// secret registers a string that must never reach the log and returns it.
func (a *attackServer) secret(s string) string {
	a.secrets = append(a.secrets, s)
	return s
}

func excerpt(log, s string) string {
	i := strings.Index(log, s)
	lo, hi := max(0, i-300), min(len(log), i+len(s)+300)
	return log[lo:hi]
}

// An undecodable GraphQL body is refused as the client's mistake, and
// neither the log nor the answer repeats it: it may hold keys and traits.
func TestUndecodableBodyIsNotLogged(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := startAttackServer(t, dbURL)
		writeKey := srv.secret(newKey(t, srv.Server, "writer", auth.RoleWrite))
		trait := srv.secret("trait-secret-4417")
		body := `{"query":"mutation($in: TrackInput!) { trackEvent(input: $in) { duplicate } }","variables":{"in":{"event":"Sign Up","userId":"u-1","traits":{"ssn":"` +
			trait + `"}}},"Authorization":"Bearer ` + writeKey + `"` // no closing brace
		for _, b := range []string{body, strings.Replace(body, "Sign Up", "Sign\x01Up", 1) + "}", `[` + body + `}]`, `{"query": 5, "x": "` + trait + `"}`} {
			req, _ := http.NewRequest(http.MethodPost, srv.URL+"/graphql", strings.NewReader(b))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+writeKey)
			resp, err := httpClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest || !bytes.Contains(raw, []byte(`"code":"BAD_REQUEST"`)) {
				t.Errorf("body %.60q: %d %s, want 400 BAD_REQUEST", b, resp.StatusCode, raw)
			}
			if bytes.Contains(raw, []byte(trait)) || bytes.Contains(raw, []byte(writeKey)) {
				t.Errorf("the answer repeats the body: %s", raw)
			}
		}
		if events, users := counts(t, srv.Admin()); events != 0 || users != 0 {
			t.Errorf("%d events and %d users stored, want none", events, users)
		}
	})
}

// nodes(ids:), the values of IN and NOT_IN filters, and how deep and how
// big a where argument is are bounded: past the bounds, BAD_USER_INPUT
// naming the argument and the bound, on both stores, instead of SQLite's
// limits answering INTERNAL (or a query costing thousands of lookups).
func TestListArgumentsAreBounded(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := startAttackServer(t, dbURL)
		admin := srv.Admin()
		segID, _ := seedSignUp(t, admin)

		ids := make([]string, 30000)
		for i := range ids {
			ids[i] = segID
		}
		e := admin.MustFail(t, "BAD_USER_INPUT", `query($ids: [ID!]!) { nodes(ids: $ids) { id } }`, map[string]any{"ids": ids})
		if e.Field() != "ids" || e.Contains("1000") != nil {
			t.Errorf("nodes(ids: 30000): %+v, want field ids and the bound 1000", e)
		}
		// At the bound, it works.
		var ok struct{ Nodes []struct{ ID string } }
		admin.MustDo(t, `query($ids: [ID!]!) { nodes(ids: $ids) { id } }`, map[string]any{"ids": ids[:server.MaxNodeIDs]}, &ok)
		if len(ok.Nodes) != server.MaxNodeIDs {
			t.Errorf("nodes(ids: 1000): %d nodes", len(ok.Nodes))
		}

		names := make([]string, 50000)
		for i := range names {
			names[i] = fmt.Sprintf("segment %d", i)
		}
		for _, f := range []string{"nameIn", "nameNotIn"} {
			e = admin.MustFail(t, "BAD_USER_INPUT", `query($w: SegmentWhereInput) { segments(where: $w) { totalCount } }`,
				map[string]any{"w": map[string]any{f: names}})
			if e.Field() != "where."+f || e.Contains("1000") != nil {
				t.Errorf("%s with 50,000 values: %+v, want field where.%s and the bound", f, e, f)
			}
		}
		// Inside an edge filter too.
		e = admin.MustFail(t, "BAD_USER_INPUT", `query($w: CampaignWhereInput) { campaigns(where: $w) { totalCount } }`,
			map[string]any{"w": map[string]any{"hasSegmentWith": []any{map[string]any{"nameIn": names}}}})
		if e.Field() != "where.hasSegmentWith[0].nameIn" {
			t.Errorf("an IN inside an edge filter: %+v", e)
		}

		deep := map[string]any{"name": "x"}
		for range 1000 {
			deep = map[string]any{"not": deep}
		}
		e = admin.MustFail(t, "BAD_USER_INPUT", `query($w: SegmentWhereInput) { segments(where: $w) { totalCount } }`, map[string]any{"w": deep})
		if !strings.HasPrefix(e.Field(), "where.not") || e.Contains("10 levels") != nil {
			t.Errorf("where 1,000 deep: %+v", e)
		}
		wide := make([]any, 5000)
		for i := range wide {
			wide[i] = map[string]any{"nameContains": fmt.Sprint(i)}
		}
		e = admin.MustFail(t, "BAD_USER_INPUT", `query($w: SegmentWhereInput) { events(first: 1) { totalCount } segments(where: $w) { totalCount } }`,
			map[string]any{"w": map[string]any{"or": wide}})
		if !strings.HasPrefix(e.Field(), "where") || e.Contains("200 filters") != nil {
			t.Errorf("where of 5,000 filters: %+v", e)
		}
		// Reasonable filters still work.
		var segs struct{ Segments struct{ TotalCount int } }
		admin.MustDo(t, `query($w: SegmentWhereInput) { segments(where: $w) { totalCount } }`,
			map[string]any{"w": map[string]any{"or": []any{map[string]any{"nameIn": names[:1000]}, map[string]any{"not": map[string]any{"nameContains": "zz"}}}}}, &segs)
		if segs.Segments.TotalCount != 1 {
			t.Errorf("a bounded filter: totalCount %d, want 1", segs.Segments.TotalCount)
		}
	})
}

// A query that runs past the request deadline answers TIMEOUT (not
// INTERNAL), and its database work is cancelled, not left running.
func TestRequestDeadlineCancelsTheQuery(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		const timeout = 100 * time.Millisecond
		srv := startAttackServer(t, dbURL, func(c *server.Config) { c.RequestTimeout = timeout })
		fillUsers(t, srv.Store().DB, srv.Store().Dialect, 200_000)
		slow := make([]any, 90)
		for i := range slow {
			slow[i] = map[string]any{"userIDContains": fmt.Sprintf("x%dy", i)}
		}
		q := `query($w: UserWhereInput) { users(where: $w) { totalCount } }`
		vars := map[string]any{"w": map[string]any{"or": slow}}

		t0 := time.Now()
		e := srv.Admin().MustFail(t, "TIMEOUT", q, vars)
		took := time.Since(t0)
		if e.Contains("deadline") != nil {
			t.Errorf("timeout error: %+v", e)
		}
		// The same query under a long deadline, for comparison: it either
		// runs to its end or times out too; either way it shows how long the
		// query runs. (Without any deadline it took over 100 s under -race
		// on a loaded machine.)
		const longer = 4 * time.Second
		// A database of its own: one server serves a SQLite file.
		long := testenv.StartServer(t, testenv.DatabaseURL(t, storeOf(dbURL)), func(c *server.Config) { c.RequestTimeout = longer })
		fillUsers(t, long.Store().DB, long.Store().Dialect, 200_000)
		t1 := time.Now()
		r := long.Admin().Do(t, q, vars)
		full := time.Since(t1)
		if len(r.Errors) > 0 && r.Errors[0].Extensions["code"] != "TIMEOUT" {
			t.Fatalf("under a %v deadline: %+v", longer, r.Errors)
		}
		t.Logf("timed out after %v; under a %v deadline the query answered after %v (%d errors)", took, longer, full, len(r.Errors))
		if full < 4*timeout {
			t.Fatalf("the query takes only %v: too fast to test a %v deadline", full, timeout)
		}
		if took > timeout+full/2 {
			t.Errorf("the timed-out request took %v: its query ran on (%v under a %v deadline)", took, full, longer)
		}
		if srv.Store().Dialect == "postgres" {
			// Nothing of it is still running on the database.
			// The whole query would run for longer than this.
			var n int
			for range 10 {
				err := srv.Store().DB.QueryRow(`SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%"users"%' || repeat('LIKE%', 90)`).Scan(&n)
				if err != nil {
					t.Fatal(err)
				}
				if n == 0 {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			if n != 0 {
				t.Errorf("%d statements of the timed-out request still run on PostgreSQL", n)
			}
		}
	})
}

// fillUsers inserts n users straight into the database.
func fillUsers(t testing.TB, db *sql.DB, dialect string, n int) {
	t.Helper()
	ctx := context.Background()
	var stmt string
	if dialect == "postgres" {
		stmt = `INSERT INTO users (id, user_id, traits, first_seen_at, last_seen_at)
			SELECT 'usr_fill' || lpad(i::text, 10, '0'), 'fill-user-' || i, '{}', now(), now() FROM generate_series(1, $1) AS i`
	} else {
		stmt = `WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < ?)
			INSERT INTO users (id, user_id, traits, first_seen_at, last_seen_at)
			SELECT printf('usr_fill%010d', i), 'fill-user-' || i, '{}', datetime('now'), datetime('now') FROM s`
	}
	if _, err := db.ExecContext(ctx, stmt, n); err != nil {
		t.Fatalf("fill users: %v", err)
	}
}

// Subscriptions have no deadline: one outlives the request timeout many
// times over and still delivers; a query on the same socket gets the
// deadline.
func TestSubscriptionsOutliveTheDeadline(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := startAttackServer(t, dbURL, func(c *server.Config) { c.RequestTimeout = 200 * time.Millisecond })
		admin := srv.Admin()
		var seg struct{ CreateSegment struct{ ID string } }
		admin.MustDo(t, `mutation { createSegment(input: {name: "followed", kind: STATIC}) { id } }`, nil, &seg)
		ws := srv.DialWS(t, testenv.AdminKey, testenv.TransportWS)
		ws.Subscribe(t, "s", `subscription($s: ID!) { membershipChanged(segmentId: $s, after: "0.0") { kind user { userId } } }`, map[string]any{"s": seg.CreateSegment.ID})
		time.Sleep(time.Second) // five deadlines
		admin.MustDo(t, `mutation($s: ID!) { addUsersToSegment(segmentId: $s, userIds: ["late"]) { added } }`, map[string]any{"s": seg.CreateSegment.ID}, nil)
		var got struct {
			MembershipChanged struct {
				Kind string
				User struct{ UserID string }
			}
		}
		ws.NextData(t, "s", 15*time.Second, &got)
		if got.MembershipChanged.Kind != "ENTERED" || got.MembershipChanged.User.UserID != "late" {
			t.Errorf("after the deadline, the subscription delivered %+v", got)
		}
	})
}
