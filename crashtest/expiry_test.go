package crashtest_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/segmentd/segmentd/ent/membership"
	"github.com/segmentd/segmentd/ent/schema/pulid"
	"github.com/segmentd/segmentd/internal/testenv"
	"github.com/segmentd/segmentd/store"
)

// expiringRows is how many memberships come due together in
// TestCrashDuringExpirySweeps: enough that sweeping them takes many
// batches, so that the kills land mid-sweep.
const expiringRows = 60_000

// TestCrashDuringExpirySweeps: an import puts expiringRows users into a
// segment whose members expire 3 s after entry; segmentd is killed with
// SIGKILL several times while its sweeper expires them, and restarted on
// the same database. Afterwards every member has expired exactly once (one
// EXITED change of source TIME each, at entry + 3 s), no deadline is left,
// the counters say 0 members and Verify is clean.
func TestCrashDuringExpirySweeps(t *testing.T) {
	if testing.Short() {
		t.Skip("kills real processes")
	}
	bin := testenv.BuildSegmentd(t, "..")
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		ctx := context.Background()
		start := func() *testenv.Process {
			return testenv.StartProcess(t, bin, dbURL, "SEGMENTD_RATE_LIMIT=-1", "TMPDIR="+t.TempDir())
		}
		// A round imports expiringRows members due together and kills the
		// server during their sweep. A restarted server may finish a sweep
		// before it reports ready, or CI's load may delay the test's polls
		// until the sweep is over; then the round interrupted nothing, and
		// another round (new users, a new segment) runs, up to three.
		runRound := func(round int) (midSweep int) {
			proc := start()
			admin := proc.Admin()
			var seg struct{ CreateSegment struct{ ID string } }
			admin.MustDo(t, fmt.Sprintf(`mutation { createSegment(input: {name: "Trial %d", kind: STATIC, exitRules: {after: "3s"}}) { id } }`, round), nil, &seg)
			segID := seg.CreateSegment.ID
			var csv strings.Builder
			for i := range expiringRows {
				fmt.Fprintf(&csv, "trial-%d-%d\n", round, i)
			}
			r := admin.Upload(t, `mutation($f: Upload!, $s: ID!) { importSegmentUsers(segmentId: $s, file: $f, mode: ADD) { id } }`,
				map[string]any{"s": segID}, "f", "trial.csv", strings.NewReader(csv.String()))
			if len(r.Errors) > 0 || r.Status != http.StatusOK {
				t.Fatalf("import: status %d, errors %+v", r.Status, r.Errors)
			}
			st, err := store.Open(ctx, dbURL)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			count := func(q string) int {
				var n int
				if err := st.DB.QueryRowContext(ctx, rebind(st, q), segID).Scan(&n); err != nil {
					t.Fatal(err)
				}
				return n
			}
			const (
				members = `SELECT count(*) FROM memberships WHERE segment_ref = ?`
				expired = `SELECT count(*) FROM membership_changes WHERE segment_ref = ? AND kind = 'EXITED' AND source = 'TIME'`
			)
			// The server is frozen as soon as the import has committed
			// (under CI's load the commit can come after the members are
			// due, and the sweep starts at once), so that the sweep runs only
			// in the steps below.
			imported := time.Now()
			for count(members)+count(expired) < expiringRows && time.Since(imported) < 2*time.Minute {
				time.Sleep(20 * time.Millisecond)
			}
			proc.Pause()
			if n, x := count(members), count(expired); n+x != expiringRows || x == expiringRows {
				t.Fatalf("the import made %d members (%d expired already), want %d", n+x, x, expiringRows)
			}
			first, err := st.Client.Membership.Query().Where(membership.SegmentRef(pulid.ID(segID))).First(ctx)
			if err != nil {
				t.Fatal(err)
			}
			entered := first.EnteredAt
			due := entered.Add(3 * time.Second)
			time.Sleep(time.Until(due))
			// Kills in the sweep (killDuringSweep).
			proc, midSweep = killDuringSweep(t, proc, start, func() int { return count(expired) }, expiringRows, 4)
			waited := time.Now()
			for count(members) > 0 && time.Since(waited) < time.Minute {
				time.Sleep(20 * time.Millisecond)
			}
			proc.Kill()
			if n := count(members); n != 0 {
				t.Errorf("%d members left, want 0", n)
			}
			if n := count(expired); n != expiringRows {
				t.Errorf("%d TIME exits, want %d", n, expiringRows)
			}
			if n := count(`SELECT count(DISTINCT user_ref) FROM membership_changes WHERE segment_ref = ? AND kind = 'EXITED'`); n != expiringRows {
				t.Errorf("%d users exited, want %d (each once)", n, expiringRows)
			}
			if n := count(`SELECT count(*) FROM membership_deadlines WHERE segment_ref = ?`); n != 0 {
				t.Errorf("%d deadlines left, want 0", n)
			}
			svc := verifiedService(t, ctx, st)
			stats, err := svc.Stats(ctx, pulid.ID(segID), time.UTC)
			if err != nil {
				t.Fatal(err)
			}
			if stats.TotalUsers != 0 {
				t.Errorf("stats: %d members, want 0", stats.TotalUsers)
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
