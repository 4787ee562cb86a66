package ledger_test

import (
	"fmt"
	"sort"
	"testing"
	"time"

	"entgo.io/ent/dialect"

	"github.com/segmentd/segmentd/changelog"
	"github.com/segmentd/segmentd/ent"
	"github.com/segmentd/segmentd/ent/membership"
	"github.com/segmentd/segmentd/ent/membershipchange"
	"github.com/segmentd/segmentd/ent/membershipdeadline"
	"github.com/segmentd/segmentd/ent/schema/pulid"
	"github.com/segmentd/segmentd/internal/testenv"
	"github.com/segmentd/segmentd/ledger"
)

// The deadline index's tests, on every store, as TestLedger.
var deadlineTests = []struct {
	name string
	fn   func(t *testing.T, f *fixture)
}{
	{"EntriesWriteAndExitsClearDeadlines", testDeadlinesRowAtATime},
	{"StagedSetsWriteAndClearDeadlines", testDeadlinesStaged},
	{"ExpireDueExitsExactlyAtTheDeadline", testExpireDue},
	{"ExpireDueDropsADeadlineWithoutMembership", testExpireDueOrphan},
	{"ConcurrentSweepsTakeDifferentRows", testConcurrentSweeps},
}

func TestDeadlines(t *testing.T) {
	for _, name := range testenv.Stores {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := open(t, name)
			for _, tt := range deadlineTests {
				t.Run(tt.name, func(t *testing.T) { tt.fn(t, f) })
			}
		})
	}
}

const month = 30 * 24 * time.Hour

func expiring(seg pulid.ID, users []pulid.ID, after time.Duration) []ledger.Entry {
	out := entries(seg, users, changelog.SourceManual, "added by hand")
	for i := range out {
		due := out[i].At.Add(after)
		out[i].ExpiresAt = &due
	}
	return out
}

// deadlines are the segment's deadlines by user.
func (f *fixture) deadlines(t *testing.T, seg pulid.ID) map[pulid.ID]time.Time {
	t.Helper()
	rows, err := f.st.Client.MembershipDeadline.Query().Where(membershipdeadline.SegmentRef(seg)).All(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := map[pulid.ID]time.Time{}
	for _, d := range rows {
		if d.Why != membershipdeadline.WhyEXPIRE {
			t.Errorf("deadline %d is %s, want EXPIRE", d.ID, d.Why)
		}
		out[d.UserRef] = d.DueAt
	}
	return out
}

func testDeadlinesRowAtATime(t *testing.T, f *fixture) {
	seg := f.segment(t)
	users, _ := f.users(t, 3)
	topics := f.write(t, func(w *ledger.Writer, _ *ent.Tx) error {
		in := expiring(seg, users[:2], month)
		in[1].ExpiresAt = new(at.Add(time.Hour)) // the earlier one
		in = append(in, entries(seg, users[2:], changelog.SourceManual, "no expiry")...)
		_, err := w.EnterMany(f.ctx, in)
		return err
	})
	if !topics.Deadline.Equal(at.Add(time.Hour)) {
		t.Errorf("topics' earliest deadline %v, want %v", topics.Deadline, at.Add(time.Hour))
	}
	d := f.deadlines(t, seg)
	if len(d) != 2 || !d[users[0]].Equal(at.Add(month)) || !d[users[1]].Equal(at.Add(time.Hour)) {
		t.Errorf("deadlines %v, want %s at +30d and %s at +1h", d, users[0], users[1])
	}
	m := f.members(t, seg)
	f.write(t, func(w *ledger.Writer, _ *ent.Tx) error {
		_, err := w.ExitMany(f.ctx, []ledger.Exit{ledger.ExitOf(m[users[0]], changelog.SourceManual, "removed", at)})
		return err
	})
	if d := f.deadlines(t, seg); len(d) != 1 || d[users[1]].IsZero() {
		t.Errorf("after an exit, deadlines %v, want only %s's", d, users[1])
	}
}

func testDeadlinesStaged(t *testing.T, f *fixture) {
	seg := f.segment(t)
	refs, names := f.users(t, 3)
	f.write(t, func(w *ledger.Writer, _ *ent.Tx) error { // a member before, with no expiry
		_, err := w.Enter(f.ctx, entries(seg, refs[:1], changelog.SourceManual, "in")[0])
		return err
	})
	set := f.stage(t, seg, names, "imported")
	set.ExpiresAt = new(at.Add(month))
	topics := f.write(t, func(w *ledger.Writer, _ *ent.Tx) error {
		_, err := w.EnterStaged(f.ctx, set)
		return err
	})
	if !topics.Deadline.Equal(at.Add(month)) {
		t.Errorf("topics' earliest deadline %v, want %v", topics.Deadline, at.Add(month))
	}
	if d := f.deadlines(t, seg); len(d) != 2 || !d[refs[1]].Equal(at.Add(month)) || !d[refs[2]].Equal(at.Add(month)) {
		t.Errorf("deadlines %v, want the two imported members' at +30d", d)
	}
	out := f.stage(t, seg, names[1:2], "removed by import")
	f.write(t, func(w *ledger.Writer, _ *ent.Tx) error {
		_, err := w.ExitStaged(f.ctx, out, ledger.Staged)
		return err
	})
	if d := f.deadlines(t, seg); len(d) != 1 || d[refs[2]].IsZero() {
		t.Errorf("after a staged exit, deadlines %v, want only %s's", d, refs[2])
	}
}

// exits are the segment's EXITED changes, as "SOURCE user at reason".
func (f *fixture) exits(t *testing.T, seg pulid.ID) []string {
	t.Helper()
	rows, err := f.st.Client.MembershipChange.Query().
		Where(membershipchange.SegmentRef(seg), membershipchange.KindEQ(changelog.KindExited)).All(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]string, len(rows))
	for i, c := range rows {
		out[i] = fmt.Sprintf("%s %s %s %s", c.Source, c.UserRef, c.At.UTC().Format(time.RFC3339Nano), c.Reason)
	}
	sort.Strings(out)
	return out
}

// clearDeadlines deletes every deadline, so that a test's sweeps see its
// own alone (the tests of a store share its database).
func (f *fixture) clearDeadlines(t *testing.T) {
	t.Helper()
	if _, err := f.st.Client.MembershipDeadline.Delete().Exec(f.ctx); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) sweep(t *testing.T, now time.Time, limit int) *ledger.Swept {
	t.Helper()
	var res *ledger.Swept
	f.write(t, func(w *ledger.Writer, _ *ent.Tx) (err error) {
		res, err = w.ExpireDue(f.ctx, now, limit)
		return err
	})
	return res
}

func testExpireDue(t *testing.T, f *fixture) {
	f.clearDeadlines(t)
	seg := f.segment(t)
	users, _ := f.users(t, 3)
	f.write(t, func(w *ledger.Writer, _ *ent.Tx) error {
		in := expiring(seg, users, month)
		in[2].ExpiresAt = new(at.Add(month + time.Second))
		_, err := w.EnterMany(f.ctx, in)
		return err
	})
	if res := f.sweep(t, at.Add(month-time.Microsecond), 10); res.Taken != 0 {
		t.Errorf("a sweep before the deadline took %d", res.Taken)
	}
	due := at.Add(month)
	res := f.sweep(t, due.Add(300*time.Millisecond), 10)
	if res.Taken != 2 || len(res.Exited) != 2 || res.Dropped != 0 || res.Skipped != 0 {
		t.Errorf("sweep: %+v, want 2 taken and exited", res)
	}
	when := due.Format(time.RFC3339Nano)
	want := []string{
		fmt.Sprintf("TIME %s %s left: expired 30d after entry", users[0], when),
		fmt.Sprintf("TIME %s %s left: expired 30d after entry", users[1], when),
	}
	sort.Strings(want)
	if got := f.exits(t, seg); !equal(got, want) {
		t.Errorf("exits %v, want %v", got, want)
	}
	if m := f.members(t, seg); len(m) != 1 || m[users[2]] == nil {
		t.Errorf("members %v, want only %s", m, users[2])
	}
	if d := f.deadlines(t, seg); len(d) != 1 {
		t.Errorf("deadlines %v, want only %s's", d, users[2])
	}
	// Counted by the exit's own instant, the members by entry.
	if _, x, _ := f.counter(t, seg, ledger.BucketOf(due)); x != 2 {
		t.Errorf("bucket of the expiry: exited %d, want 2", x)
	}
	if _, _, m := f.counter(t, seg, ledger.TotalsBucket); m != 1 {
		t.Errorf("totals: %d members, want 1", m)
	}
	if res := f.sweep(t, due.Add(time.Second), 10); len(res.Exited) != 1 {
		t.Errorf("the last expiry: %+v, want 1 exit", res)
	}
	if n, _ := f.st.Client.MembershipDeadline.Query().Where(membershipdeadline.SegmentRef(seg)).Count(f.ctx); n != 0 {
		t.Errorf("%d deadlines left, want 0", n)
	}
}

func testExpireDueOrphan(t *testing.T, f *fixture) {
	f.clearDeadlines(t)
	seg := f.segment(t)
	users, _ := f.users(t, 1)
	f.write(t, func(w *ledger.Writer, _ *ent.Tx) error {
		_, err := w.EnterMany(f.ctx, expiring(seg, users, time.Second))
		return err
	})
	// As a deleted segment's cascade leaves it: the membership gone, the
	// deadline not.
	if _, err := f.st.Client.Membership.Delete().Where(membership.SegmentRef(seg)).Exec(f.ctx); err != nil {
		t.Fatal(err)
	}
	res := f.sweep(t, at.Add(time.Minute), 10)
	if res.Taken != 1 || res.Dropped != 1 || len(res.Exited) != 0 {
		t.Errorf("sweep: %+v, want 1 taken and dropped", res)
	}
	if got := f.exits(t, seg); len(got) != 0 {
		t.Errorf("exits %v, want none", got)
	}
}

// testConcurrentSweeps: a sweep that has locked deadlines (uncommitted) and
// a second sweep: the second takes the others (PostgreSQL) and, whoever
// commits, each member expires once.
func testConcurrentSweeps(t *testing.T, f *fixture) {
	if f.st.Dialect != dialect.Postgres {
		t.Skip("SQLite has one writer at a time: there is no concurrent sweep")
	}
	f.clearDeadlines(t)
	seg := f.segment(t)
	users, _ := f.users(t, 5)
	f.write(t, func(w *ledger.Writer, _ *ent.Tx) error {
		_, err := w.EnterMany(f.ctx, expiring(seg, users, time.Second))
		return err
	})
	now := at.Add(time.Minute)
	tx1, err := f.st.Client.Tx(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx1.Rollback()
	w1 := f.l.Writer(tx1)
	first, err := w1.ExpireDue(f.ctx, now, 2)
	if err != nil {
		t.Fatal(err)
	}
	second := f.sweep(t, now, 10) // commits while the first is open
	if _, err := w1.Flush(f.ctx); err != nil {
		t.Fatal(err)
	}
	if err := tx1.Commit(); err != nil {
		t.Fatal(err)
	}
	if len(first.Exited) != 2 || len(second.Exited) != 3 {
		t.Errorf("the sweeps exited %d and %d, want 2 and 3", len(first.Exited), len(second.Exited))
	}
	if got := f.exits(t, seg); len(got) != 5 {
		t.Errorf("%d exits, want 5 (one per member): %v", len(got), got)
	}
	if _, _, m := f.counter(t, seg, ledger.TotalsBucket); m != 0 {
		t.Errorf("totals: %d members, want 0", m)
	}
}
