package graph_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/segmentd/segmentd/internal/testenv"
	"github.com/segmentd/segmentd/store"
)

// TestLiveAfterDeletes (issue 13, item 3): on SQLite the live tailers read
// "rowid > last", and SQLite gives a new row the largest rowid + 1: after a
// campaign (with its activations) or a segment (with its log) was deleted,
// new rows took the freed positions, behind the tailer, and were never
// delivered (5 of 5 activations lost). Every tailed log (membership
// changes, events, activations) now has positions that are never reused.
func TestLiveAfterDeletes(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL)
		liveAfterDeletes(t, srv, "")
	})
}

// liveAfterDeletes deletes the newest rows of each log (a campaign with its
// activations, a segment with its changes, events), then checks that a
// subscriber gets every row written after.
func liveAfterDeletes(t *testing.T, srv *testenv.Server, tag string) {
	t.Helper()
	c := srv.Admin()
	users := func(prefix string) []string {
		var out []string
		for i := 1; i <= 5; i++ {
			out = append(out, fmt.Sprintf("%s%s-%d", tag, prefix, i))
		}
		return out
	}
	add := func(seg string, ids []string) {
		t.Helper()
		c.MustDo(t, `mutation($s: ID!, $u: [String!]!) { addUsersToSegment(segmentId: $s, userIds: $u) { added } }`,
			map[string]any{"s": seg, "u": ids}, nil)
	}
	campaign := func(name, seg, status string) string {
		t.Helper()
		var out struct{ CreateCampaign struct{ ID string } }
		c.MustDo(t, `mutation($n: String!, $s: ID!, $st: CampaignStatus!) { createCampaign(input: {name: $n, segmentId: $s, status: $st}) { id } }`,
			map[string]any{"n": name, "s": seg, "st": status}, &out)
		return out.CreateCampaign.ID
	}
	track := func(ids ...string) {
		t.Helper()
		for _, id := range ids {
			c.MustDo(t, `mutation($m: String!) { trackEvent(input: {event: "Deleted Later", userId: "tracked", messageId: $m}) { duplicate } }`,
				map[string]any{"m": id}, nil)
		}
	}

	ws := srv.DialWS(t, testenv.AdminKey, testenv.TransportWS)
	ws.Subscribe(t, "evt", `subscription { eventReceived(name: "Deleted Later") { messageId } }`, nil)
	time.Sleep(300 * time.Millisecond) // graphql-transport-ws has no subscribe ack
	old := createStatic(t, c, tag+"Old audience")
	oldCampaign := campaign(tag+"Old campaign", old, "ACTIVE")
	add(old, users("old"))  // the newest activations and changes
	track(users("gone")...) // the newest events
	for range 5 {
		var e struct{ EventReceived struct{ MessageID string } }
		ws.NextData(t, "evt", 5*time.Second, &e)
	}

	next := createStatic(t, c, tag+"Next audience")
	nextCampaign := campaign(tag+"Next campaign", next, "ACTIVE")
	ws.Subscribe(t, "act", campaignActivatedQuery, map[string]any{"c": nextCampaign})
	ws.Subscribe(t, "chg", `subscription($s: ID) { membershipChanged(segmentId: $s) { kind user { userId } } }`, map[string]any{"s": next})
	time.Sleep(300 * time.Millisecond)

	// Free the newest positions of each log.
	c.MustDo(t, `mutation($id: ID!) { deleteCampaign(id: $id) }`, map[string]any{"id": oldCampaign}, nil)
	c.MustDo(t, `mutation($id: ID!) { deleteSegment(id: $id) }`, map[string]any{"id": old}, nil)
	// Nothing in the API deletes events; a database operator might.
	st := srv.Store()
	q := `DELETE FROM events WHERE message_id LIKE ?`
	if st.Dialect != "sqlite3" {
		q = strings.Replace(q, "?", "$1", 1)
	}
	if _, err := st.DB.Exec(q, tag+"gone-%"); err != nil {
		t.Fatal(err)
	}

	newUsers := users("new")
	add(next, newUsers)
	track(users("kept")...)

	got := map[string][]string{}
	for len(got["act"])+len(got["chg"])+len(got["evt"]) < 15 {
		m := ws.Next(t, 5*time.Second)
		var p struct {
			Data struct {
				CampaignActivated *struct{ User struct{ UserID string } }
				MembershipChanged *struct {
					Kind string
					User struct{ UserID string }
				}
				EventReceived *struct{ MessageID string }
			}
			Errors []testenv.GQLError
		}
		if m.Type != "next" || json.Unmarshal(m.Payload, &p) != nil || len(p.Errors) > 0 {
			t.Fatalf("unexpected %s %s %s", m.Type, m.ID, m.Payload)
		}
		switch d := p.Data; {
		case d.CampaignActivated != nil:
			got[m.ID] = append(got[m.ID], d.CampaignActivated.User.UserID)
		case d.MembershipChanged != nil:
			got[m.ID] = append(got[m.ID], d.MembershipChanged.User.UserID)
		case d.EventReceived != nil:
			got[m.ID] = append(got[m.ID], d.EventReceived.MessageID)
		}
	}
	t.Logf("received %v", got)
	ws.Quiet(t, 300*time.Millisecond)
	want := map[string][]string{"act": newUsers, "chg": newUsers, "evt": users("kept")}
	for id, w := range want {
		g := append([]string(nil), got[id]...)
		sort.Strings(g)
		if strings.Join(g, ",") != strings.Join(w, ",") {
			t.Errorf("%s: got %v, want %v", id, got[id], w)
		}
	}
}

// TestLivePositionsMigrated: a SQLite database from before the log
// positions (no log_seq, no trigger) gets them at start, its existing rows
// numbered in their old order, and then loses nothing after deletes.
func TestLivePositionsMigrated(t *testing.T) {
	dbURL := testenv.DatabaseURL(t, "sqlite")
	srv, stop := testenv.StartStoppableServer(t, dbURL)
	liveAfterDeletes(t, srv, "before-")
	stop()

	// Back to the schema as it was: rowid positions only.
	db, err := sql.Open("sqlite", strings.TrimPrefix(dbURL, "sqlite://"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tbl := range store.SQLiteLogTables {
		for _, q := range []string{"DROP TRIGGER " + tbl + "_log_seq", "DROP INDEX " + tbl + "_log_seq", "ALTER TABLE " + tbl + " DROP COLUMN log_seq"} {
			if _, err := db.Exec(q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
	}
	if _, err := db.Exec("DROP TABLE log_sequences"); err != nil {
		t.Fatal(err)
	}
	db.Close()

	srv = testenv.StartServer(t, dbURL)
	var unnumbered int
	if err := srv.Store().DB.QueryRow(`SELECT (SELECT count(*) FROM events WHERE log_seq IS NULL OR log_seq <> rowid) +
		(SELECT count(*) FROM campaign_activations WHERE log_seq IS NULL OR log_seq <> rowid)`).Scan(&unnumbered); err != nil {
		t.Fatal(err)
	}
	if unnumbered != 0 {
		t.Fatalf("%d rows from before the migration without their rowid as position", unnumbered)
	}
	liveAfterDeletes(t, srv, "after-")
}

// TestOpenTransactionElsewhereDoesNotDelaySubscribers: a session that holds
// a transaction open beside segmentd (a report, a psql left in BEGIN, with
// writes of its own on PostgreSQL) does not hold live delivery back: every
// entry reaches its subscriber in well under a second, not when that
// transaction ends (issue 19; the aim is 100 ms at p99, the bound here
// leaves room for a loaded CI machine).
func TestOpenTransactionElsewhereDoesNotDelaySubscribers(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL)
		c := srv.Admin()
		seg := ingCreateSegment(t, c, map[string]any{"name": "Sign-ups", "kind": "EVENT_TRIGGERED", "triggerEvents": []string{"Sign Up"}})
		next := exitStream(t, srv, seg)
		ctx := context.Background()
		other, err := store.Open(ctx, dbURL)
		if err != nil {
			t.Fatal(err)
		}
		defer other.Close()
		held, err := other.DB.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer held.Rollback() //nolint:errcheck
		if other.Dialect == "postgres" {
			// A transaction id of its own, older than every entry below.
			if _, err := held.ExecContext(ctx, `CREATE TABLE report_scratch (n int)`); err != nil {
				t.Fatal(err)
			}
		} else if _, err := held.ExecContext(ctx, `SELECT count(*) FROM events`); err != nil {
			t.Fatal(err)
		}
		worst := slowestSignUps(t, c, next, "u")
		t.Logf("slowest ack→subscriber beside an open transaction: %s", worst)
		if worst > 2*time.Second {
			t.Fatalf("an entry took %s to reach its subscriber while another session held a transaction open", worst)
		}
	})
}

// TestImportDoesNotDelaySubscribersOfOtherSegments (issue 19): on
// PostgreSQL an import's apply transaction announces itself as a writer of
// its segment's changes only, so that while it runs (minutes, for a large
// file) an entry into another segment still reaches that segment's
// subscriber at once; the import's own subscribers, and those of every
// segment, get all of its entries, in order, when it commits. The apply is
// held open by a user row another session is inserting (the import waits
// on it with its transaction id taken), the longest stretch an import can
// hold a reader back. PostgreSQL only: SQLite writers take turns, so an
// entry cannot commit while an import does.
func TestImportDoesNotDelaySubscribersOfOtherSegments(t *testing.T) {
	dbURL := testenv.DatabaseURL(t, "postgres")
	srv := testenv.StartServer(t, dbURL)
	c := srv.Admin()
	signups := ingCreateSegment(t, c, map[string]any{"name": "Sign-ups", "kind": "EVENT_TRIGGERED", "triggerEvents": []string{"Sign Up"}})
	vip := ingCreateSegment(t, c, map[string]any{"name": "VIP list", "kind": "STATIC"})
	c.MustDo(t, `mutation($in: CreateCampaignInput!) { createCampaign(input: $in) { id } }`,
		map[string]any{"in": map[string]any{"name": "VIP welcome", "segmentId": vip, "status": "ACTIVE"}}, nil)
	nextSignup := exitStream(t, srv, signups)
	nextVIP := exitStream(t, srv, vip)
	nextAny := exitStream(t, srv, "")

	ctx := context.Background()
	other, err := store.Open(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	const n = 2000
	held := fmt.Sprintf("vip-%04d", n-1) // the file's last row
	blocker, err := other.DB.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer blocker.Rollback() //nolint:errcheck
	if _, err := blocker.ExecContext(ctx, `INSERT INTO users (id, user_id, traits, first_seen_at, last_seen_at) VALUES ('usr_blocker', $1, '{}', now(), now())`, held); err != nil {
		t.Fatal(err)
	}
	var file strings.Builder
	file.WriteString("user_id\n")
	for i := range n {
		fmt.Fprintf(&file, "vip-%04d\n", i)
	}
	job := startImport(t, c, vip, "ADD", false, "vip.csv", file.String())

	// The apply waits on the held row with a transaction id of its own.
	deadline := time.Now().Add(30 * time.Second)
	for {
		var waiting int
		if err := other.DB.QueryRowContext(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock' AND backend_xid IS NOT NULL
			AND query LIKE 'INSERT INTO users%'`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the import's apply did not come to wait on the held user row in 30 s")
		}
		time.Sleep(20 * time.Millisecond)
	}

	worst := slowestSignUps(t, c, nextSignup, "s")
	t.Logf("slowest ack→subscriber of another segment while the import's apply was open: %s", worst)
	if worst > 2*time.Second {
		t.Fatalf("an entry into another segment took %s to reach its subscriber while an import was applied", worst)
	}

	if err := blocker.Rollback(); err != nil {
		t.Fatal(err)
	}
	if j := waitImport(t, c, job); j.Status != "SUCCEEDED" || j.Added != n {
		t.Fatalf("import %s, added %d: %s", j.Status, j.Added, j.Failure)
	}
	imported := func(what string, next func() exitChange) {
		t.Helper()
		seen := map[string]bool{}
		for range n {
			ch := next().MembershipChanged
			if ch.Kind != "ENTERED" || ch.Source != "IMPORT" || seen[ch.User.UserID] || !strings.HasPrefix(ch.User.UserID, "vip-") {
				t.Fatalf("%s: after %d of the import's entries: %+v", what, len(seen), ch)
			}
			seen[ch.User.UserID] = true
		}
	}
	imported("the imported segment's stream", nextVIP)
	// Every segment's stream: the import's transaction is older than the
	// sign-ups', so its entries come first, then the sign-ups, in order.
	imported("every segment's stream", nextAny)
	for i := range 10 {
		expectChange(t, nextAny(), "ENTERED", "EVENT", fmt.Sprintf("s%d", i), "")
	}
	start := time.Now()
	ingTrack(t, c, map[string]any{"event": "Sign Up", "userId": "after"})
	expectChange(t, nextSignup(), "ENTERED", "EVENT", "after", "")
	expectChange(t, nextAny(), "ENTERED", "EVENT", "after", "")
	t.Logf("ack→subscriber right after the import committed: %s", time.Since(start))
	verifyClean(t, srv)
}

// slowestSignUps tracks Sign Up for users prefix0..prefix9, one at a time,
// checks that each enters the segment next follows, and returns the
// slowest time from sending the event to its entry reaching the stream.
func slowestSignUps(t *testing.T, c *testenv.Client, next func() exitChange, prefix string) time.Duration {
	t.Helper()
	var worst time.Duration
	for i := range 10 {
		user := fmt.Sprintf("%s%d", prefix, i)
		start := time.Now()
		ingTrack(t, c, map[string]any{"event": "Sign Up", "userId": user})
		expectChange(t, next(), "ENTERED", "EVENT", user, "")
		worst = max(worst, time.Since(start))
	}
	return worst
}
