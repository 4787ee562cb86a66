package crashtest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/segmentd/segmentd/changelog"
	"github.com/segmentd/segmentd/ent/membershipchange"
	"github.com/segmentd/segmentd/ent/schema/pulid"
	"github.com/segmentd/segmentd/internal/testenv"
	"github.com/segmentd/segmentd/store"
)

const (
	// reevaluatedUsers is how many users of TestCrashDuringReevaluationSweeps
	// fall out of its segments at one instant: with two segments, enough
	// re-evaluation deadlines for several sweep transactions, so that the
	// kills land mid-sweep.
	reevaluatedUsers = 4000
	// reevaluationWindow is the WITHIN_LAST window of its first round's
	// segments (the second's is twice as long, the third's three times):
	// long enough for the users' visits to be ingested before they come
	// due.
	reevaluationWindow = 15 * time.Second
	// visitsPerBatch is how many users' messages one /v1/batch carries.
	visitsPerBatch = 500
)

// TestCrashDuringReevaluationSweeps: reevaluatedUsers users are identified
// (/v1/batch), each with the same lastSeen trait, and visit; so they are
// members of a DYNAMIC segment `user.lastSeen WITHIN_LAST` the window and
// of an EVENT_TRIGGERED one with the same condition that they leave
// whenConditionFails. When the window has passed, all of them leave both
// at once, through the re-evaluation sweep (REEVALUATE deadlines,
// SweepReevaluations); segmentd is killed with SIGKILL several times
// during it (killDuringSweep) and restarted on the same database.
// Afterwards each user has entered each segment once and left it once (one
// EXITED change of source TIME, at the instant the window passed), no
// deadline is left, the figures (stats, growth, membersAt) are exact and
// Verify is clean.
func TestCrashDuringReevaluationSweeps(t *testing.T) {
	if testing.Short() {
		t.Skip("kills real processes")
	}
	bin := testenv.BuildSegmentd(t, "..")
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		ctx := context.Background()
		start := func() *testenv.Process {
			return testenv.StartProcess(t, bin, dbURL, "SEGMENTD_RATE_LIMIT=-1", "TMPDIR="+t.TempDir())
		}
		// A round makes reevaluatedUsers members of two new segments, due
		// to leave together, and kills the server during their sweep; as in
		// TestCrashDuringExpirySweeps, up to three rounds run until a kill
		// lands mid-sweep.
		runRound := func(round int) (midSweep int) {
			// Each round's window is longer, in case a loaded machine made
			// the last one too short for the visits.
			window := time.Duration(round) * reevaluationWindow
			seen := map[string]any{"scope": "USER", "property": "lastSeen", "operator": "WITHIN_LAST",
				"value": fmt.Sprintf("%ds", int(window.Seconds()))}
			proc := start()
			admin := proc.Admin()
			create := func(in map[string]any) pulid.ID {
				var out struct{ CreateSegment struct{ ID string } }
				admin.MustDo(t, `mutation($in: CreateSegmentInput!) { createSegment(input: $in) { id } }`, map[string]any{"in": in}, &out)
				return pulid.ID(out.CreateSegment.ID)
			}
			segs := []pulid.ID{
				create(map[string]any{"name": fmt.Sprintf("Seen lately %d", round), "kind": "DYNAMIC", "condition": seen}),
				create(map[string]any{"name": fmt.Sprintf("Visited, seen lately %d", round), "kind": "EVENT_TRIGGERED",
					"triggerEvents": []string{"Visit"}, "condition": seen, "exitRules": map[string]any{"whenConditionFails": true}}),
			}
			// Every user's lastSeen is the same instant (whole seconds, as
			// RFC 3339 says it), so that all of them come due together.
			lastSeen := time.Now().UTC().Truncate(time.Second)
			// The condition holds at lastSeen + window and fails the instant
			// after (trigger.Program.NextChange), which the stores keep as
			// the next microsecond.
			due := lastSeen.Add(window + time.Microsecond)
			// Through the Segment-compatible API: an identify says when the
			// user was last seen (the DYNAMIC segment takes them in, source
			// TRAITS), then a Visit enters the other one (source EVENT).
			for from := 0; from < reevaluatedUsers; from += visitsPerBatch {
				var batch []map[string]any
				for i := from; i < min(from+visitsPerBatch, reevaluatedUsers); i++ {
					user := fmt.Sprintf("seen-%d-%d", round, i)
					batch = append(batch,
						map[string]any{"type": "identify", "userId": user, "messageId": "identify-" + user,
							"traits": map[string]any{"lastSeen": lastSeen.Format(time.RFC3339)}},
						map[string]any{"type": "track", "userId": user, "messageId": "visit-" + user, "event": "Visit"})
				}
				postBatch(t, proc, batch)
			}
			// A user identified after the window passed is rightly no member:
			// the round proves nothing then, and another one runs.
			if late := time.Since(due.Add(-time.Second)); late > 0 {
				t.Logf("round %d: the visits were acknowledged %v too late for a %v window", round, late, window)
				proc.Kill()
				return 0
			}
			st, err := store.Open(ctx, dbURL)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			count := func(q string) int {
				n := 0
				for _, seg := range segs {
					var c int
					if err := st.DB.QueryRowContext(ctx, rebind(st, q), seg).Scan(&c); err != nil {
						t.Fatal(err)
					}
					n += c
				}
				return n
			}
			const (
				members = `SELECT count(*) FROM memberships WHERE segment_ref = ?`
				left    = `SELECT count(*) FROM membership_changes WHERE segment_ref = ? AND kind = 'EXITED' AND source = 'TIME'`
			)
			total := len(segs) * reevaluatedUsers
			if n, x := count(members), count(left); n+x != total || x == total {
				t.Fatalf("the visits made %d members (%d left already), want %d", n+x, x, total)
			}
			// Frozen before the users come due (the visits were acknowledged,
			// so committed), so that the sweep runs only in killDuringSweep's
			// steps.
			proc.Pause()
			time.Sleep(time.Until(due))
			proc, midSweep = killDuringSweep(t, proc, start, func() int { return count(left) }, total, 4)
			waited := time.Now()
			for count(members) > 0 && time.Since(waited) < time.Minute {
				time.Sleep(20 * time.Millisecond)
			}
			if n := count(members); n != 0 {
				t.Errorf("%d members left, want 0", n)
			}
			if n := count(`SELECT count(*) FROM membership_deadlines WHERE segment_ref = ?`); n != 0 {
				t.Errorf("%d deadlines left, want 0", n)
			}
			for i, seg := range segs {
				checkLeftOnce(t, ctx, st, seg, []changelog.Source{changelog.SourceTraits, changelog.SourceEvent}[i], due,
					"left: condition failed: user.lastSeen within last", reevaluatedUsers)
				checkFiguresAfterExits(t, proc.Admin(), seg, lastSeen, reevaluatedUsers)
			}
			proc.Kill()
			svc := verifiedService(t, ctx, st)
			for _, seg := range segs {
				stats, err := svc.Stats(ctx, seg, time.UTC)
				if err != nil {
					t.Fatal(err)
				}
				if stats.TotalUsers != 0 {
					t.Errorf("segment %s stats: %d members, want 0", seg, stats.TotalUsers)
				}
			}
			return midSweep
		}
		landed := 0
		for round := 1; round <= 3 && landed == 0; round++ {
			landed = runRound(round)
			t.Logf("round %d: %d kills landed mid-sweep", round, landed)
		}
		if landed == 0 {
			t.Errorf("no kill landed mid-sweep in 3 rounds: the run proves little")
		}
	})
}

// checkLeftOnce checks seg's change log: each of its users (users of them)
// entered once (with source entry) and left once, after the entry, with
// source TIME, at the instant the window passed (or at the entry, if that
// came later), with a reason that starts with reason (the condition's).
func checkLeftOnce(t *testing.T, ctx context.Context, st *store.Store, seg pulid.ID, entry changelog.Source, due time.Time, reason string, users int) {
	t.Helper()
	changes, err := st.Client.MembershipChange.Query().Where(membershipchange.SegmentRef(seg)).
		Order(membershipchange.ByID()).All(ctx)
	if err != nil {
		t.Fatal(err)
	}
	entered := map[pulid.ID]time.Time{}
	exits := map[pulid.ID]int{}
	bad := 0
	report := func(format string, args ...any) {
		if bad++; bad <= 5 {
			t.Errorf("segment %s: "+format, append([]any{seg}, args...)...)
		}
	}
	for _, c := range changes {
		switch c.Kind {
		case changelog.KindEntered:
			if _, again := entered[c.UserRef]; again {
				report("user %s entered again (%s, %s, %v)", c.UserRef, c.Source, c.Reason, c.At)
			} else if c.Source != entry {
				report("user %s entered with source %s, want %s", c.UserRef, c.Source, entry)
			}
			entered[c.UserRef] = c.At
		case changelog.KindExited:
			exits[c.UserRef]++
			in, ok := entered[c.UserRef]
			want := due
			if in.After(want) {
				want = in
			}
			switch {
			case !ok:
				report("user %s left before entering", c.UserRef)
			case exits[c.UserRef] > 1:
				report("user %s left %d times", c.UserRef, exits[c.UserRef])
			case c.Source != changelog.SourceTime || !strings.HasPrefix(c.Reason, reason):
				report("user %s left with source %s, reason %q; want TIME, the condition failing", c.UserRef, c.Source, c.Reason)
			case !c.At.Equal(want):
				report("user %s left at %v, want %v", c.UserRef, c.At, want)
			}
		}
	}
	if len(entered) != users || len(exits) != users {
		t.Errorf("segment %s: %d users entered and %d left, want %d each", seg, len(entered), len(exits), users)
	}
	if bad > 5 {
		t.Errorf("segment %s: %d wrong changes in all", seg, bad)
	}
}

// checkFiguresAfterExits checks seg's figures through GraphQL once every
// one of its users members, who entered after since, left: no member
// (totalUsers, stats, members, membersAt now) and growth counting each
// entry and exit once.
func checkFiguresAfterExits(t *testing.T, admin *testenv.Client, seg pulid.ID, since time.Time, users int) {
	t.Helper()
	var f struct {
		Node struct {
			TotalUsers int
			Stats      struct{ TotalUsers int }
			Growth     []struct{ Entered, Exited, Total int }
			Members    struct{ TotalCount int }
			MembersAt  struct{ TotalCount int }
		}
	}
	now := time.Now().UTC()
	admin.MustDo(t, `query($s: ID!, $from: Time!, $to: Time!, $now: Time!) { node(id: $s) { ... on Segment {
		totalUsers
		stats { totalUsers }
		growth(interval: HOUR, from: $from, to: $to) { entered exited total }
		members(first: 1) { totalCount }
		membersAt(time: $now) { totalCount } } } }`,
		map[string]any{"s": seg, "from": since.Truncate(time.Hour), "to": now.Add(time.Hour), "now": now}, &f)
	n := f.Node
	var entered, exited, total int
	for _, p := range n.Growth {
		entered += p.Entered
		exited += p.Exited
		total = p.Total
	}
	if n.TotalUsers != 0 || n.Stats.TotalUsers != 0 || n.Members.TotalCount != 0 || n.MembersAt.TotalCount != 0 ||
		entered != users || exited != users || total != 0 {
		t.Errorf("segment %s after the sweep: totalUsers %d, stats %d, members %d, membersAt %d, growth entered %d exited %d total %d; want 0, 0, 0, 0, %d, %d, 0",
			seg, n.TotalUsers, n.Stats.TotalUsers, n.Members.TotalCount, n.MembersAt.TotalCount, entered, exited, total, users, users)
	}
}

// postBatch posts messages to proc's /v1/batch with the admin key, which
// may send events, and fails the test unless they are all accepted.
func postBatch(t *testing.T, proc *testenv.Process, messages []map[string]any) {
	t.Helper()
	body, err := json.Marshal(map[string]any{"batch": messages})
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, proc.URL+"/v1/batch", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+testenv.AdminKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST /v1/batch: %v", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var answer struct{ Success bool }
	if resp.StatusCode != http.StatusOK || json.Unmarshal(raw, &answer) != nil || !answer.Success {
		t.Fatalf("POST /v1/batch: %d %s", resp.StatusCode, raw)
	}
}
