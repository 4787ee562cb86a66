package crashtest_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/segmentd/segmentd/behavior"
	"github.com/segmentd/segmentd/changelog"
	"github.com/segmentd/segmentd/ent/membershipchange"
	"github.com/segmentd/segmentd/ent/schema/pulid"
	"github.com/segmentd/segmentd/internal/testenv"
	"github.com/segmentd/segmentd/store"
)

const (
	// loginUsers is how many users of TestCrashDuringBehaviorSweeps log in
	// once, at one instant: with two segments, 2 × loginUsers re-evaluation
	// deadlines come due together, enough for several sweep transactions
	// (service.SweepBatch each), so that the kills land mid-sweep.
	loginUsers = 4000
	// loginWindow is the `within` of its first round's segments (the
	// second's is twice as long, the third's three times), as
	// reevaluationWindow is: long enough for the logins to be ingested
	// before they leave the window.
	loginWindow = 15 * time.Second
)

// TestCrashDuringBehaviorSweeps: loginUsers users each send one Login
// (/v1/batch), all dated the same second, so that they enter a DYNAMIC
// segment `performed "Login" within` the window (source EVENT) and, when
// the window has passed, all leave it at one instant (source TIME), while
// they all enter at that instant, by TIME, a second DYNAMIC segment that
// says the opposite (`count EQ 0`: "no login within" the window). Both
// moves are the re-evaluation sweep's (REEVALUATE deadlines, which read
// the users' behaviour states); segmentd is killed with SIGKILL several
// times during it (killDuringSweep) and restarted on the same database.
// Afterwards each user entered the first segment once and left it once,
// at the instant, and entered the second once at the same instant; the
// first has no member and the second every user, no deadline is left,
// the figures are exact and Verify is clean.
func TestCrashDuringBehaviorSweeps(t *testing.T) {
	if testing.Short() {
		t.Skip("kills real processes")
	}
	bin := testenv.BuildSegmentd(t, "..")
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		ctx := context.Background()
		start := func() *testenv.Process {
			return testenv.StartProcess(t, bin, dbURL, "SEGMENTD_RATE_LIMIT=-1", "TMPDIR="+t.TempDir())
		}
		// As in TestCrashDuringReevaluationSweeps, up to three rounds run
		// until a kill lands mid-sweep. A round's segments count only its
		// own logins (where event.round = the round), so that an earlier
		// round's users never enter the first; they have no login of the
		// round, so the second's fill takes them in at its creation
		// (source BACKFILL): before counts them.
		runRound := func(round, before int) (midSweep int) {
			window := time.Duration(round) * loginWindow
			within := fmt.Sprintf("%ds", int(window.Seconds()))
			ofRound := map[string]any{"scope": "EVENT", "property": "round", "operator": "EQ", "value": round}
			proc := start()
			admin := proc.Admin()
			create := func(in map[string]any) pulid.ID {
				var out struct{ CreateSegment struct{ ID string } }
				admin.MustDo(t, `mutation($in: CreateSegmentInput!) { createSegment(input: $in) { id } }`, map[string]any{"in": in}, &out)
				return pulid.ID(out.CreateSegment.ID)
			}
			loggedIn := create(map[string]any{"name": fmt.Sprintf("Logged in lately %d", round), "kind": "DYNAMIC",
				"condition": map[string]any{"performed": map[string]any{"event": "Login", "where": ofRound, "within": within}}})
			notLoggedIn := create(map[string]any{"name": fmt.Sprintf("No login lately %d", round), "kind": "DYNAMIC",
				"condition": map[string]any{"performed": map[string]any{"event": "Login", "where": ofRound, "within": within,
					"count": map[string]any{"operator": "EQ", "value": 0}}}})
			// Every login is dated the same instant, so that all of them
			// leave the window together: the window holds its ends, so the
			// answer changes the nanosecond after login + window
			// (behavior.State.NextChange), which the stores keep as the
			// next microsecond.
			login := time.Now().UTC().Truncate(time.Second)
			due := login.Add(window + time.Microsecond)
			for from := 0; from < loginUsers; from += visitsPerBatch {
				var batch []map[string]any
				for i := from; i < min(from+visitsPerBatch, loginUsers); i++ {
					user := fmt.Sprintf("login-%d-%d", round, i)
					batch = append(batch, map[string]any{"type": "track", "userId": user, "messageId": "login-" + user,
						"event": "Login", "timestamp": login.Format(time.RFC3339Nano), "properties": map[string]any{"round": round}})
				}
				postBatch(t, proc, batch)
			}
			if late := time.Since(due.Add(-time.Second)); late > 0 {
				t.Logf("round %d: the logins were acknowledged %v too late for a %v window", round, late, window)
				proc.Kill()
				return 0
			}
			st, err := store.Open(ctx, dbURL)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			count := func(seg pulid.ID, q string) int {
				var n int
				if err := st.DB.QueryRowContext(ctx, rebind(st, q), seg).Scan(&n); err != nil {
					t.Fatal(err)
				}
				return n
			}
			const (
				members     = `SELECT count(*) FROM memberships WHERE segment_ref = ?`
				leftByTime  = `SELECT count(*) FROM membership_changes WHERE segment_ref = ? AND kind = 'EXITED' AND source = 'TIME'`
				inByTime    = `SELECT count(*) FROM membership_changes WHERE segment_ref = ? AND kind = 'ENTERED' AND source = 'TIME'`
				deadlines   = `SELECT count(*) FROM membership_deadlines WHERE segment_ref = ?`
				reevaluates = `SELECT count(*) FROM membership_deadlines WHERE segment_ref = ? AND why = 'REEVALUATE'`
			)
			// made: the sweep's changes, the first segment's exits and the
			// second's entries.
			made := func() int { return count(loggedIn, leftByTime) + count(notLoggedIn, inByTime) }
			total := 2 * loginUsers
			if n, x := count(loggedIn, members), count(loggedIn, leftByTime); n+x != loginUsers || made() == total {
				t.Fatalf("the logins made %d members (%d left already; %d changes of %d made), want %d", n+x, x, made(), total, loginUsers)
			}
			if n := count(loggedIn, reevaluates) + count(notLoggedIn, reevaluates); n != total-made() {
				t.Errorf("%d re-evaluation deadlines before the sweep, want %d", n, total-made())
			}
			// Frozen before the logins leave the window (they were
			// acknowledged, so committed), so that the sweep runs only in
			// killDuringSweep's steps.
			proc.Pause()
			time.Sleep(time.Until(due))
			proc, midSweep = killDuringSweep(t, proc, start, made, total, 4)
			waited := time.Now()
			for made() < total && time.Since(waited) < time.Minute {
				time.Sleep(20 * time.Millisecond)
			}
			if n := count(loggedIn, members); n != 0 {
				t.Errorf("segment %s: %d members left, want 0", loggedIn, n)
			}
			if n, want := count(notLoggedIn, members), before+loginUsers; n != want {
				t.Errorf("segment %s: %d members, want %d", notLoggedIn, n, want)
			}
			for _, seg := range []pulid.ID{loggedIn, notLoggedIn} {
				if n := count(seg, deadlines); n != 0 {
					t.Errorf("segment %s: %d deadlines left, want 0", seg, n)
				}
			}
			checkLeftOnce(t, ctx, st, loggedIn, changelog.SourceEvent, due,
				fmt.Sprintf(`left: condition failed: performed "Login" where event.round = %d at least 1 time within %s (was 0`, round, within), loginUsers)
			checkFiguresAfterExits(t, proc.Admin(), loggedIn, login, loginUsers)
			checkEnteredByTime(t, ctx, st, notLoggedIn, due, fmt.Sprintf("login-%d-", round), loginUsers, before)
			proc.Kill()
			svc := verifiedService(t, ctx, st)
			for seg, want := range map[pulid.ID]int{loggedIn: 0, notLoggedIn: before + loginUsers} {
				stats, err := svc.Stats(ctx, seg, time.UTC)
				if err != nil {
					t.Fatal(err)
				}
				if stats.TotalUsers != want {
					t.Errorf("segment %s stats: %d members, want %d", seg, stats.TotalUsers, want)
				}
			}
			return midSweep
		}
		landed := 0
		for round := 1; round <= 3 && landed == 0; round++ {
			landed = runRound(round, (round-1)*loginUsers)
			t.Logf("round %d: %d kills landed mid-sweep", round, landed)
		}
		if landed == 0 {
			t.Errorf("no kill landed mid-sweep in 3 rounds: the run proves little")
		}
	})
}

// checkEnteredByTime checks the change log of seg, a DYNAMIC segment that
// users whose IDs start with prefix (users of them) enter when time passes:
// each of them entered once, with source TIME, at due, and never left;
// the others (before of them), who were in it from its creation, entered
// once by BACKFILL and never left either.
func checkEnteredByTime(t *testing.T, ctx context.Context, st *store.Store, seg pulid.ID, due time.Time, prefix string, users, before int) {
	t.Helper()
	changes, err := st.Client.MembershipChange.Query().Where(membershipchange.SegmentRef(seg)).
		Order(membershipchange.ByID()).WithUser().All(ctx)
	if err != nil {
		t.Fatal(err)
	}
	bad := 0
	report := func(format string, args ...any) {
		if bad++; bad <= 5 {
			t.Errorf("segment %s: "+format, append([]any{seg}, args...)...)
		}
	}
	entered := map[pulid.ID]bool{}
	ours, others := 0, 0
	for _, c := range changes {
		if c.Kind != changelog.KindEntered {
			report("user %s: %s change (%s, %q)", c.UserRef, c.Kind, c.Source, c.Reason)
			continue
		}
		if entered[c.UserRef] {
			report("user %s entered again (%s, %q, %v)", c.UserRef, c.Source, c.Reason, c.At)
			continue
		}
		entered[c.UserRef] = true
		if c.Edges.User == nil || !strings.HasPrefix(c.Edges.User.UserID, prefix) {
			others++
			if c.Source != changelog.SourceBackfill {
				report("an earlier user, %s, entered with source %s (%q), want BACKFILL", c.UserRef, c.Source, c.Reason)
			}
			continue
		}
		ours++
		switch {
		case c.Source != changelog.SourceTime || !strings.HasPrefix(c.Reason, `entered as time passed: performed "Login"`):
			report("user %s entered with source %s, reason %q; want TIME, as time passed", c.Edges.User.UserID, c.Source, c.Reason)
		case !c.At.Equal(due):
			report("user %s entered at %v, want %v", c.Edges.User.UserID, c.At, due)
		}
	}
	if ours != users || others != before {
		t.Errorf("segment %s: %d of the round's users and %d others entered, want %d and %d", seg, ours, others, users, before)
	}
	if bad > 5 {
		t.Errorf("segment %s: %d wrong changes in all", seg, bad)
	}
}

const (
	// buyers is how many users of TestCrashDuringBehaviorBackfill have
	// stored purchases; each has 1 to 10, about 8,000 in all, spread
	// over 60 days, so that building the states of a new segment's
	// predicate (2 pages of users, in its create transaction) takes long
	// enough to be killed in, and no longer: on PostgreSQL a long
	// transaction holds back the live subscribers of every test running
	// beside this one on the cluster.
	buyers = 1500
	// purchaseWindow is the segment's window.
	purchaseWindow = 30 * 24 * time.Hour
	// backfillKills is how many kills, at most, land while the segment's
	// create runs; the test stops after that many, or backfillRounds
	// rounds.
	backfillKills  = 3
	backfillRounds = 8
	// editKills is how many kills, at most, land while an edit of its
	// condition runs (in at most backfillRounds rounds).
	editKills = 2
)

// purchaseCondition is the condition of TestCrashDuringBehaviorBackfill's
// segment: at least atLeast purchases within 30d.
func purchaseCondition(atLeast int) map[string]any {
	return map[string]any{"performed": map[string]any{"event": "Purchase", "within": "30d",
		"count": map[string]any{"operator": "GTE", "value": atLeast}}}
}

// TestCrashDuringBehaviorBackfill: buyers users' purchases are stored
// first (/v1/batch, no segment counts them); then a DYNAMIC segment
// `performed "Purchase" at least 3 times within 30d` is created, which
// builds every user's state from the stored events and fills the segment,
// all in its create transaction; segmentd is killed with SIGKILL while
// the create runs, and restarted, several times. After each kill the
// segment either does not exist and left nothing behind (no state, no
// membership, no change, no deadline), or exists with exactly the members
// the purchases sent say and a state for each user that answers as the
// purchases do (then it is deleted, which drops the states, so that the
// next round builds them again). Then the segment is created in full, and
// its condition edited (at least 3 ⇄ 4 purchases: a new predicate, whose
// states the update transaction builds, dropping the old ones) while
// segmentd is killed in the same way: after each kill the segment has the
// old condition or the new one, with the members and states (under its
// key alone) that it says. In the end Verify is clean.
func TestCrashDuringBehaviorBackfill(t *testing.T) {
	if testing.Short() {
		t.Skip("kills real processes")
	}
	bin := testenv.BuildSegmentd(t, "..")
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		ctx := context.Background()
		start := func() *testenv.Process {
			return testenv.StartProcess(t, bin, dbURL, "SEGMENTD_RATE_LIMIT=-1", "TMPDIR="+t.TempDir())
		}
		seed := uint64(time.Now().UnixNano())
		rnd := rand.New(rand.NewPCG(seed, 16))
		t.Logf("seed %d", seed)
		// The purchases, each dated a whole second ago (1 s to 60 days),
		// none within an hour of the window's start, so that none leaves
		// the window while the test runs.
		now := time.Now().UTC().Truncate(time.Second)
		purchases := map[string][]time.Time{}
		var batch []map[string]any
		proc := start()
		sent := 0
		for u := range buyers {
			user := fmt.Sprintf("buyer-%d", u)
			for range 1 + rnd.IntN(10) {
				var ago time.Duration
				for ago == 0 || (ago > purchaseWindow-time.Hour && ago < purchaseWindow+time.Hour) {
					ago = time.Duration(1+rnd.Int64N(int64(2*purchaseWindow/time.Second))) * time.Second
				}
				at := now.Add(-ago)
				purchases[user] = append(purchases[user], at)
				sent++
				batch = append(batch, map[string]any{"type": "track", "userId": user, "messageId": fmt.Sprintf("purchase-%d", sent),
					"event": "Purchase", "timestamp": at.Format(time.RFC3339), "properties": map[string]any{"total": rnd.IntN(100)}})
				if len(batch) == visitsPerBatch {
					postBatch(t, proc, batch)
					batch = nil
				}
			}
		}
		if len(batch) > 0 {
			postBatch(t, proc, batch)
		}
		t.Logf("%d purchases of %d users stored in %v; %d users bought at least 3 times within 30d",
			sent, buyers, time.Since(now).Round(time.Millisecond), len(membersOf(purchases, 3)))

		st, err := store.Open(ctx, dbURL)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		const name = "Frequent buyers"
		// A round sends the create, kills the server after a random delay,
		// restarts it and checks. The delay is drawn within the shortest
		// time a create took to return (the first round's, which is let
		// finish, or a later one's), so that most kills land while it runs.
		var took time.Duration
		landed := 0
		logged := 0 // changes in the log: the deleted segments'

		for round := 0; round < backfillRounds && landed < backfillKills; round++ {
			done := make(chan createResult, 1)
			began := time.Now()
			go func() {
				r := createSegment(proc.URL, name, purchaseCondition(3))
				r.took = time.Since(began)
				done <- r
			}()
			var res createResult
			if round == 0 {
				res = <-done
				took = res.took
				if res.err != nil {
					t.Fatalf("createSegment: %v", res.err)
				}
				t.Logf("round 0: the create took %v; the next rounds kill within it", took)
			} else {
				time.Sleep(time.Duration(float64(took) * (0.05 + 0.9*rnd.Float64())))
			}
			proc.Kill()
			killed := time.Since(began).Round(time.Millisecond)
			if round > 0 {
				res = <-done
			}
			proc = start()
			id := segmentNamed(t, ctx, st, name)
			switch {
			case res.err == nil:
				t.Logf("round %d: the create returned %v after it began, before the kill (%v)", round, res.took.Round(time.Millisecond), killed)
				took = min(took, res.took) // the first, on a cold cache, may take longer
				if id != res.id {
					t.Fatalf("round %d: the create returned segment %s, the database has %q", round, res.id, id)
				}
			case id == "":
				landed++
				t.Logf("round %d: killed %v into the create, which had not returned (%v); it left no segment", round, killed, res.err)
			default:
				landed++
				t.Logf("round %d: killed %v into the create, which had not returned (%v), after its commit", round, killed, res.err)
			}
			if id == "" {
				checkNothingLeft(t, ctx, st, logged)
				continue
			}
			checkBackfilled(t, ctx, st, id, purchases, 3, true)
			if round == 0 || landed < backfillKills {
				// Built again from the events in the next round.
				proc.Admin().MustDo(t, `mutation($id: ID!) { deleteSegment(id: $id) }`, map[string]any{"id": id}, nil)
				logged = rowsIn(t, ctx, st, "membership_changes") // the deleted segment's log stays
				checkNothingLeft(t, ctx, st, logged)
			}
		}
		if landed == 0 {
			t.Errorf("no kill landed during the create in %d rounds: the run proves little", backfillRounds)
		}
		id := segmentNamed(t, ctx, st, name)
		if id == "" {
			res := createSegment(proc.URL, name, purchaseCondition(3))
			if res.err != nil {
				t.Fatalf("createSegment: %v", res.err)
			}
			id = res.id
		}
		checkBackfilled(t, ctx, st, id, purchases, 3, true)

		// The edits, killed as the creates were.
		atLeast, edited := 3, 0
		for round := 0; round < backfillRounds && edited < editKills; round++ {
			target := 7 - atLeast // 3 ⇄ 4
			done := make(chan createResult, 1)
			began := time.Now()
			go func() {
				r := graphqlID(proc.URL, `mutation($id: ID!, $c: ConditionInput) { updateSegment(id: $id, input: {condition: $c}) { id } }`,
					map[string]any{"id": id, "c": purchaseCondition(target)}, "updateSegment")
				r.took = time.Since(began)
				done <- r
			}()
			time.Sleep(time.Duration(float64(took) * (0.05 + 0.9*rnd.Float64())))
			proc.Kill()
			killed := time.Since(began).Round(time.Millisecond)
			res := <-done
			proc = start()
			var seg struct {
				Node struct{ ConditionText string }
			}
			proc.Admin().MustDo(t, `query($id: ID!) { node(id: $id) { ... on Segment { conditionText } } }`, map[string]any{"id": id}, &seg)
			cur := 0
			for _, n := range []int{atLeast, target} {
				if strings.Contains(seg.Node.ConditionText, fmt.Sprintf("at least %d times", n)) {
					cur = n
				}
			}
			switch {
			case cur == 0:
				t.Fatalf("edit round %d: the condition is %q, neither the old one nor the new", round, seg.Node.ConditionText)
			case res.err == nil:
				t.Logf("edit round %d: the update returned %v after it began, before the kill (%v)", round, res.took.Round(time.Millisecond), killed)
				took = min(took, res.took)
				if cur != target {
					t.Fatalf("edit round %d: the update to at least %d returned, the condition is %q", round, target, seg.Node.ConditionText)
				}
			default:
				edited++
				t.Logf("edit round %d: killed %v into the update to at least %d, which had not returned (%v); the condition says at least %d",
					round, killed, target, res.err, cur)
			}
			atLeast = cur
			checkBackfilled(t, ctx, st, id, purchases, atLeast, false)
		}
		if edited == 0 {
			t.Errorf("no kill landed during an update in %d rounds: the run proves little", backfillRounds)
		}
		// One edit let finish, so that the states the update builds are
		// checked whatever the kills interrupted.
		atLeast = 7 - atLeast
		if res := graphqlID(proc.URL, `mutation($id: ID!, $c: ConditionInput) { updateSegment(id: $id, input: {condition: $c}) { id } }`,
			map[string]any{"id": id, "c": purchaseCondition(atLeast)}, "updateSegment"); res.err != nil {
			t.Fatalf("updateSegment: %v", res.err)
		}
		checkBackfilled(t, ctx, st, id, purchases, atLeast, false)
		proc.Kill()
		svc := verifiedService(t, ctx, st)
		stats, err := svc.Stats(ctx, id, time.UTC)
		if err != nil {
			t.Fatal(err)
		}
		if want := len(membersOf(purchases, atLeast)); stats.TotalUsers != want {
			t.Errorf("stats: %d members, want %d", stats.TotalUsers, want)
		}
	})
}

// membersOf are the users who bought at least atLeast times within 30d.
func membersOf(purchases map[string][]time.Time, atLeast int) map[string]bool {
	out := map[string]bool{}
	now := time.Now()
	for user, ats := range purchases {
		if inWindow(ats, now) >= atLeast {
			out[user] = true
		}
	}
	return out
}

// inWindow is how many of ats are in the window that ends at now.
func inWindow(ats []time.Time, now time.Time) int {
	n := 0
	for _, at := range ats {
		if !at.After(now) && !at.Before(now.Add(-purchaseWindow)) {
			n++
		}
	}
	return n
}

type createResult struct {
	id   pulid.ID
	err  error         // the create did not return (the server was killed) or failed
	took time.Duration // from the request to the answer or error
}

// createSegment sends a createSegment of a DYNAMIC segment and reports
// whether it returned; a killed server's answer is an error.
func createSegment(url, name string, condition map[string]any) createResult {
	return graphqlID(url, `mutation($in: CreateSegmentInput!) { createSegment(input: $in) { id } }`,
		map[string]any{"in": map[string]any{"name": name, "kind": "DYNAMIC", "condition": condition}}, "createSegment")
}

// graphqlID sends a mutation whose field answers { id } and reports
// whether it returned; a killed server's answer is an error.
func graphqlID(url, query string, vars map[string]any, field string) createResult {
	body, err := json.Marshal(map[string]any{"query": query, "variables": vars})
	if err != nil {
		return createResult{err: err}
	}
	req, err := http.NewRequest(http.MethodPost, url+"/graphql", bytes.NewReader(body))
	if err != nil {
		return createResult{err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+testenv.AdminKey)
	resp, err := (&http.Client{Timeout: 2 * time.Minute}).Do(req)
	if err != nil {
		return createResult{err: err}
	}
	defer resp.Body.Close()
	var out struct {
		Data   map[string]*struct{ ID string }
		Errors []json.RawMessage
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return createResult{err: fmt.Errorf("status %d: %w", resp.StatusCode, err)}
	}
	if len(out.Errors) > 0 || out.Data[field] == nil {
		return createResult{err: fmt.Errorf("status %d, errors %s", resp.StatusCode, out.Errors)}
	}
	return createResult{id: pulid.ID(out.Data[field].ID)}
}

// segmentNamed is the ID of the segment named name, "" if there is none.
func segmentNamed(t *testing.T, ctx context.Context, st *store.Store, name string) pulid.ID {
	t.Helper()
	var id string
	err := st.DB.QueryRowContext(ctx, rebind(st, `SELECT id FROM segments WHERE name = ?`), name).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return pulid.ID(id)
}

// checkNothingLeft checks that no segment's work is left in the database:
// with no segment, no behaviour state, membership or deadline, and no
// change but the logged ones of deleted segments.
//
// On SQLite a kill midway through a create leaves the states it staged
// under keys no segment has; the restarted server drops them in the
// background (startup does not wait for it), so the check waits for that
// a while before it fails.
func checkNothingLeft(t *testing.T, ctx context.Context, st *store.Store, logged int) {
	t.Helper()
	want := map[string]int{"segments": 0, "behavior_states": 0, "memberships": 0, "membership_deadlines": 0, "membership_changes": logged}
	deadline := time.Now().Add(30 * time.Second)
	for {
		wrong := map[string]int{}
		for table, w := range want {
			if n := rowsIn(t, ctx, st, table); n != w {
				wrong[table] = n
			}
		}
		if len(wrong) == 0 {
			return
		}
		if time.Now().After(deadline) {
			for table, n := range wrong {
				t.Errorf("no segment exists, but %s has %d rows, want %d (30 s after the restart)", table, n, want[table])
			}
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// rowsIn counts the rows of table.
func rowsIn(t *testing.T, ctx context.Context, st *store.Store, table string) int {
	t.Helper()
	var n int
	if err := st.DB.QueryRowContext(ctx, `SELECT count(*) FROM `+table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// checkBackfilled checks segment seg of TestCrashDuringBehaviorBackfill,
// whose condition is at least atLeast purchases within 30d: its members
// are exactly the users who bought that often (fresh: just created, each
// entered once, source BACKFILL, and nothing else is in its log), and
// every user with a purchase in the window has one state, under one key
// (a user whose purchases are all older may have one too), which answers
// at the clock's instant as the purchases do.
func checkBackfilled(t *testing.T, ctx context.Context, st *store.Store, seg pulid.ID, purchases map[string][]time.Time, atLeast int, fresh bool) {
	t.Helper()
	want := membersOf(purchases, atLeast)
	rows, err := st.DB.QueryContext(ctx, rebind(st, `SELECT u.user_id FROM memberships m JOIN users u ON u.id = m.user_ref WHERE m.segment_ref = ?`), seg)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for rows.Next() {
		var u string
		if err := rows.Scan(&u); err != nil {
			t.Fatal(err)
		}
		got[u] = true
	}
	if err := rows.Close(); err != nil {
		t.Fatal(err)
	}
	bad := 0
	report := func(format string, args ...any) {
		if bad++; bad <= 5 {
			t.Errorf("segment %s: "+format, append([]any{seg}, args...)...)
		}
	}
	for u := range want {
		if !got[u] {
			report("user %s bought %d times within 30d but is no member", u, inWindow(purchases[u], time.Now()))
		}
	}
	for u := range got {
		if !want[u] {
			report("user %s bought %d times within 30d but is a member", u, inWindow(purchases[u], time.Now()))
		}
	}
	var entries, changes int
	err = st.DB.QueryRowContext(ctx, rebind(st, `SELECT count(*), count(CASE WHEN kind = 'ENTERED' AND source = 'BACKFILL' THEN 1 END)
		FROM membership_changes WHERE segment_ref = ?`), seg).Scan(&changes, &entries)
	if err != nil {
		t.Fatal(err)
	}
	if fresh && (changes != len(want) || entries != len(want)) {
		report("%d changes in the log (%d BACKFILL entries), want %d entries", changes, entries, len(want))
	}
	rows, err = st.DB.QueryContext(ctx, `SELECT u.user_id, b.key, b.state FROM behavior_states b JOIN users u ON u.id = b.user_ref`)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	keys := map[string]bool{}
	stated := map[string]bool{}
	for rows.Next() {
		var (
			u, key string
			raw    []byte
		)
		if err := rows.Scan(&u, &key, &raw); err != nil {
			t.Fatal(err)
		}
		keys[key] = true
		if stated[u] {
			report("user %s has two states", u)
		}
		stated[u] = true
		s, err := behavior.New(behavior.Spec{Within: purchaseWindow, Func: behavior.Count, Op: behavior.GTE, Value: float64(atLeast)})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.UnmarshalBinary(raw); err != nil {
			report("user %s: state does not decode: %v", u, err)
			continue
		}
		r, err := s.Eval(now)
		n := inWindow(purchases[u], now)
		switch {
		case err != nil:
			report("user %s: state answers %v", u, err)
		case r.Matched != (n >= atLeast) || (!r.AtLeast && r.Figure != float64(n)) || (r.AtLeast && r.Figure > float64(n)):
			report("user %s bought %d times within 30d, the state (at least %d) says %+v", u, n, atLeast, r)
		}
	}
	if err := rows.Close(); err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 {
		report("states under %d keys, want 1", len(keys))
	}
	for u, ats := range purchases {
		if !stated[u] && inWindow(ats, now) > 0 {
			report("user %s bought within 30d but has no state", u)
		}
	}
	if bad > 5 {
		t.Errorf("segment %s: %d wrong members or states in all", seg, bad)
	}
}
