package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentd/segmentd"
	"github.com/segmentd/segmentd/changelog"
	"github.com/segmentd/segmentd/ent"
	"github.com/segmentd/segmentd/ent/campaign"
	"github.com/segmentd/segmentd/ent/campaignactivation"
	"github.com/segmentd/segmentd/ent/event"
	"github.com/segmentd/segmentd/ent/membership"
	"github.com/segmentd/segmentd/ent/membershipchange"
	"github.com/segmentd/segmentd/ent/schema/pulid"
	"github.com/segmentd/segmentd/ent/segment"
	"github.com/segmentd/segmentd/ent/segmentcounter"
	"github.com/segmentd/segmentd/internal/testenv"
	"github.com/segmentd/segmentd/ledger"
	"github.com/segmentd/segmentd/store"
)

// The ledger's tests: one list of functions, each run against every store
// (as ent's entc/integration does), on one database per store, one after
// the other. Each makes its own segments, so that they do not meet.
var tests = []struct {
	name string
	fn   func(t *testing.T, f *fixture)
}{
	{"EnterRowAndMany", testEnter},
	{"ExitRowAndMany", testExit},
	{"ActivationsOncePerCampaignAndUser", testActivations},
	{"ActivateCampaignOnCurrentMembers", testActivateCampaign},
	{"EnterStaged", testEnterStaged},
	{"ExitStaged", testExitStaged},
	{"ReplaceStaged", testReplaceStaged},
	{"CountStagedWritesNothing", testCountStaged},
	{"TopicsOfATransaction", testTopics},
	{"LockAudienceOfAMissingSegment", testLockAudience},
	// Last: it compares every counter of the database with a rebuild.
	{"RebuildEqualsIncrementalCounters", testRebuild},
}

func TestNewRefusesAnUnknownStore(t *testing.T) {
	if _, err := ledger.New("mysql"); err == nil {
		t.Error("ledger.New(\"mysql\") gave a ledger; want an error")
	}
}

func TestLedger(t *testing.T) {
	for _, name := range testenv.Stores {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := open(t, name)
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) { tt.fn(t, f) })
			}
		})
	}
}

// at is the time of the tests' changes: microseconds, as both stores keep.
var at = time.Date(2026, 3, 1, 10, 7, 30, 0, time.UTC)

type fixture struct {
	ctx context.Context
	st  *store.Store
	l   *ledger.Ledger
}

func open(t *testing.T, name string) *fixture {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, testenv.DatabaseURL(t, name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	l, err := ledger.New(st.Dialect)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{ctx: ctx, st: st, l: l}
}

// write runs fn on a Writer in one transaction, flushes it and commits,
// and returns the topics to publish.
func (f *fixture) write(t *testing.T, fn func(w *ledger.Writer, tx *ent.Tx) error) ledger.Topics {
	t.Helper()
	tx, err := f.st.Client.Tx(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	w := f.l.Writer(tx)
	if err := fn(w, tx); err != nil {
		_ = tx.Rollback()
		t.Fatal(err)
	}
	topics, err := w.Flush(f.ctx)
	if err != nil {
		_ = tx.Rollback()
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	return topics
}

func (f *fixture) segment(t *testing.T) pulid.ID {
	t.Helper()
	s, err := f.st.Client.Segment.Create().SetName("s").SetKind(segment.KindSTATIC).Save(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	return s.ID
}

func (f *fixture) campaign(t *testing.T, seg pulid.ID, status campaign.Status) *ent.Campaign {
	t.Helper()
	c, err := f.st.Client.Campaign.Create().SetName(string(status)).SetStatus(status).SetSegmentRef(seg).Save(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// seq names users and events apart (the stores run in parallel).
var seq atomic.Int64

// event stores a TRACK event for entries to name.
func (f *fixture) event(t *testing.T) pulid.ID {
	t.Helper()
	e, err := f.st.Client.Event.Create().SetMessageID(fmt.Sprintf("m%d", seq.Add(1))).SetType(event.TypeTRACK).
		SetName("Signed Up").SetTimestamp(at).Save(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	return e.ID
}

// users creates n users and returns their IDs and user IDs.
func (f *fixture) users(t *testing.T, n int) ([]pulid.ID, []string) {
	t.Helper()
	refs, names := make([]pulid.ID, n), make([]string, n)
	for i := range n {
		names[i] = fmt.Sprintf("u%d", seq.Add(1))
		u, err := f.st.Client.User.Create().SetUserID(names[i]).Save(f.ctx)
		if err != nil {
			t.Fatal(err)
		}
		refs[i] = u.ID
	}
	return refs, names
}

func entries(seg pulid.ID, users []pulid.ID, source changelog.Source, reason string) []ledger.Entry {
	out := make([]ledger.Entry, len(users))
	for i, u := range users {
		out[i] = ledger.Entry{Segment: seg, User: u, Source: source, Reason: reason, At: at}
	}
	return out
}

// members are the segment's memberships by user.
func (f *fixture) members(t *testing.T, seg pulid.ID) map[pulid.ID]*ent.Membership {
	t.Helper()
	rows, err := f.st.Client.Membership.Query().Where(membership.SegmentRef(seg)).All(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := map[pulid.ID]*ent.Membership{}
	for _, m := range rows {
		out[m.UserRef] = m
	}
	return out
}

// changes are the segment's change log, as "KIND SOURCE user", sorted.
func (f *fixture) changes(t *testing.T, seg pulid.ID) []string {
	t.Helper()
	rows, err := f.st.Client.MembershipChange.Query().Where(membershipchange.SegmentRef(seg)).All(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]string, len(rows))
	for i, c := range rows {
		out[i] = fmt.Sprintf("%s %s %s", c.Kind, c.Source, c.UserRef)
		if !c.At.Equal(at) {
			t.Errorf("change %d at %v, want %v", c.ID, c.At, at)
		}
	}
	sort.Strings(out)
	return out
}

func change(kind changelog.Kind, source changelog.Source, users ...pulid.ID) []string {
	out := make([]string, len(users))
	for i, u := range users {
		out[i] = fmt.Sprintf("%s %s %s", kind, source, u)
	}
	return out
}

func sorted(parts ...[]string) []string {
	var out []string
	for _, p := range parts {
		out = append(out, p...)
	}
	sort.Strings(out)
	return out
}

// activated are the users who activated campaign c.
func (f *fixture) activated(t *testing.T, c pulid.ID) []pulid.ID {
	t.Helper()
	rows, err := f.st.Client.CampaignActivation.Query().Where(campaignactivation.CampaignRef(c)).All(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]pulid.ID, len(rows))
	for i, a := range rows {
		out[i] = a.UserRef
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// counter sums a segment's counter row over its shards.
func (f *fixture) counter(t *testing.T, seg pulid.ID, bucket int64) (entered, exited, members int64) {
	t.Helper()
	rows, err := f.st.Client.SegmentCounter.Query().
		Where(segmentcounter.SegmentRef(seg), segmentcounter.Bucket(bucket)).All(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		entered += r.Entered
		exited += r.Exited
		members += r.Members
	}
	return
}

func (f *fixture) checkCounters(t *testing.T, seg pulid.ID, entered, exited, members int64) {
	t.Helper()
	if _, _, m := f.counter(t, seg, ledger.TotalsBucket); m != members {
		t.Errorf("totals: %d members, want %d", m, members)
	}
	if m := int64(len(f.members(t, seg))); m != members {
		t.Errorf("%d membership rows, want %d", m, members)
	}
	e, x, m := f.counter(t, seg, ledger.BucketOf(at))
	if e != entered || x != exited || m != members {
		t.Errorf("bucket of the changes: entered %d exited %d members %d, want %d %d %d", e, x, m, entered, exited, members)
	}
	if _, _, m := f.counter(t, seg, ledger.DayKey(at)); m != members {
		t.Errorf("day row: %d members, want %d", m, members)
	}
}

func sameIDs(a, b []pulid.ID) bool {
	a, b = append([]pulid.ID(nil), a...), append([]pulid.ID(nil), b...)
	sort.Slice(a, func(i, j int) bool { return a[i] < a[j] })
	sort.Slice(b, func(i, j int) bool { return b[i] < b[j] })
	return fmt.Sprint(a) == fmt.Sprint(b)
}

func equal(a, b []string) bool { return fmt.Sprint(a) == fmt.Sprint(b) }

func onlySegment(t *testing.T, topics ledger.Topics, seg pulid.ID) {
	t.Helper()
	if len(topics.Segments) != 1 || !topics.Segments[seg] {
		t.Errorf("topics name segments %v, want only %s", topics.Segments, seg)
	}
}

func testEnter(t *testing.T, f *fixture) {
	seg := f.segment(t)
	users, _ := f.users(t, 4)
	ev := f.event(t)
	var one, many *ledger.Result
	topics := f.write(t, func(w *ledger.Writer, _ *ent.Tx) (err error) {
		e := ledger.Entry{Segment: seg, User: users[0], Event: &ev, Source: changelog.SourceEvent, Reason: "on an event", At: at}
		if one, err = w.Enter(f.ctx, e); err != nil {
			return err
		}
		many, err = w.EnterMany(f.ctx, entries(seg, users[1:], changelog.SourceManual, "added by hand"))
		return err
	})
	if len(one.Entered) != 1 || len(many.Entered) != 3 || len(one.Activations)+len(many.Activations) != 0 {
		t.Errorf("results: %d and %d entered, %d activations; want 1, 3, 0", len(one.Entered), len(many.Entered), len(one.Activations)+len(many.Activations))
	}
	onlySegment(t, topics, seg)
	if topics.Activations() {
		t.Errorf("topics name campaigns %v, want none", topics.Campaigns)
	}
	m := f.members(t, seg)
	if first := m[users[0]]; first == nil || first.Source != changelog.SourceEvent || first.Reason != "on an event" ||
		first.EventRef == nil || *first.EventRef != ev || !first.EnteredAt.Equal(at) {
		t.Errorf("the event's member is %+v", first)
	}
	if later := m[users[3]]; later == nil || later.Source != changelog.SourceManual || later.EventRef != nil {
		t.Errorf("a manual member is %+v", later)
	}
	want := sorted(change(changelog.KindEntered, changelog.SourceEvent, users[0]),
		change(changelog.KindEntered, changelog.SourceManual, users[1:]...))
	if got := f.changes(t, seg); !equal(got, want) {
		t.Errorf("changes %v, want %v", got, want)
	}
	f.checkCounters(t, seg, 4, 0, 4)

	// A member entering again is refused whole: the caller checks first.
	tx, err := f.st.Client.Tx(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := f.l.Writer(tx).Enter(f.ctx, entries(seg, users[:1], changelog.SourceManual, "again")[0]); !ent.IsConstraintError(err) {
		t.Errorf("entering a member again: %v, want a constraint error", err)
	}
}

func testExit(t *testing.T, f *fixture) {
	seg := f.segment(t)
	users, _ := f.users(t, 3)
	f.write(t, func(w *ledger.Writer, _ *ent.Tx) error {
		_, err := w.EnterMany(f.ctx, entries(seg, users, changelog.SourceManual, "in"))
		return err
	})
	m := f.members(t, seg)
	var one, many *ledger.Result
	topics := f.write(t, func(w *ledger.Writer, _ *ent.Tx) (err error) {
		if one, err = w.Exit(f.ctx, ledger.ExitOf(m[users[0]], changelog.SourceBackfill, "reconciled", at)); err != nil {
			return err
		}
		many, err = w.ExitMany(f.ctx, []ledger.Exit{
			ledger.ExitOf(m[users[1]], changelog.SourceManual, "removed by hand", at),
			ledger.ExitOf(m[users[2]], changelog.SourceManual, "removed by hand", at),
		})
		return err
	})
	if len(one.Exited) != 1 || len(many.Exited) != 2 {
		t.Errorf("results: %d and %d exited, want 1 and 2", len(one.Exited), len(many.Exited))
	}
	onlySegment(t, topics, seg)
	want := sorted(change(changelog.KindEntered, changelog.SourceManual, users...),
		change(changelog.KindExited, changelog.SourceBackfill, users[0]),
		change(changelog.KindExited, changelog.SourceManual, users[1:]...))
	if got := f.changes(t, seg); !equal(got, want) {
		t.Errorf("changes %v, want %v", got, want)
	}
	f.checkCounters(t, seg, 3, 3, 0)
}

func testActivations(t *testing.T, f *fixture) {
	seg, other := f.segment(t), f.segment(t)
	active := f.campaign(t, seg, campaign.StatusACTIVE)
	paused := f.campaign(t, seg, campaign.StatusPAUSED)
	elsewhere := f.campaign(t, other, campaign.StatusACTIVE)
	users, _ := f.users(t, 2)
	ev := f.event(t)
	var res *ledger.Result
	topics := f.write(t, func(w *ledger.Writer, _ *ent.Tx) (err error) {
		es := entries(seg, users, changelog.SourceEvent, "entered")
		es[1].Event = &ev
		res, err = w.EnterMany(f.ctx, es)
		return err
	})
	if len(res.Activations) != 2 || res.Activations[0].Campaign.ID != active.ID || res.Activations[0].Entry != 0 ||
		res.Activations[1].Campaign.ID != active.ID || res.Activations[1].Entry != 1 {
		t.Errorf("activations %+v, want the ACTIVE campaign for entries 0 and 1", res.Activations)
	}
	if len(topics.Campaigns) != 1 || !topics.Campaigns[active.ID] {
		t.Errorf("topics name campaigns %v, want only %s", topics.Campaigns, active.ID)
	}
	if got := f.activated(t, active.ID); !sameIDs(got, users) {
		t.Errorf("ACTIVE campaign activated for %v, want %v", got, users)
	}
	if got := f.activated(t, paused.ID); len(got) != 0 {
		t.Errorf("PAUSED campaign activated for %v", got)
	}
	if got := f.activated(t, elsewhere.ID); len(got) != 0 {
		t.Errorf("another segment's campaign activated for %v", got)
	}
	acts, err := f.st.Client.CampaignActivation.Query().Where(campaignactivation.CampaignRef(active.ID), campaignactivation.UserRef(users[1])).Only(f.ctx)
	if err != nil || acts.EventRef == nil || *acts.EventRef != ev || !acts.ActivatedAt.Equal(at) {
		t.Errorf("the event's activation is %+v (%v)", acts, err)
	}

	// Out and in again: the campaign activated once ever.
	m := f.members(t, seg)
	f.write(t, func(w *ledger.Writer, _ *ent.Tx) error {
		_, err := w.ExitMany(f.ctx, []ledger.Exit{ledger.ExitOf(m[users[0]], changelog.SourceManual, "out", at)})
		return err
	})
	topics = f.write(t, func(w *ledger.Writer, _ *ent.Tx) (err error) {
		res, err = w.Enter(f.ctx, entries(seg, users[:1], changelog.SourceManual, "back")[0])
		return err
	})
	if len(res.Activations) != 0 || topics.Activations() {
		t.Errorf("re-entry activated %+v (topics %v), want nothing", res.Activations, topics.Campaigns)
	}
	if got := f.activated(t, active.ID); !sameIDs(got, users) {
		t.Errorf("after re-entry the campaign activated for %v, want %v", got, users)
	}
}

func testActivateCampaign(t *testing.T, f *fixture) {
	seg := f.segment(t)
	users, _ := f.users(t, 3)
	f.write(t, func(w *ledger.Writer, _ *ent.Tx) error {
		_, err := w.EnterMany(f.ctx, entries(seg, users, changelog.SourceManual, "in"))
		return err
	})
	c := f.campaign(t, seg, campaign.StatusACTIVE)
	for range 2 { // the second time changes nothing
		topics := f.write(t, func(w *ledger.Writer, tx *ent.Tx) error {
			if err := f.l.LockAudience(f.ctx, tx, "segmentId", seg); err != nil {
				return err
			}
			n, err := w.ActivateCampaign(f.ctx, c, at)
			if n != 3 {
				t.Errorf("went through %d members, want 3", n)
			}
			return err
		})
		if !topics.Campaigns[c.ID] {
			t.Errorf("topics name campaigns %v, want %s", topics.Campaigns, c.ID)
		}
		if got := f.activated(t, c.ID); !sameIDs(got, users) {
			t.Errorf("campaign activated for %v, want %v", got, users)
		}
	}
	// And the campaign on the segment, for one who enters now: once.
	more, _ := f.users(t, 1)
	var res *ledger.Result
	f.write(t, func(w *ledger.Writer, _ *ent.Tx) (err error) {
		res, err = w.Enter(f.ctx, entries(seg, more, changelog.SourceManual, "in")[0])
		return err
	})
	if len(res.Activations) != 1 {
		t.Errorf("a new member activated %+v, want the campaign", res.Activations)
	}
	moved, err := f.l.CampaignForChange(f.ctx, mustTx(t, f), c.ID, nil, true)
	if err != nil || moved.ID != c.ID {
		t.Errorf("CampaignForChange: %v, %v", moved, err)
	}
}

func mustTx(t *testing.T, f *fixture) *ent.Tx {
	t.Helper()
	tx, err := f.st.Client.Tx(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tx.Rollback() })
	return tx
}

// stage stages user IDs as an import does, under a new job ID.
func (f *fixture) stage(t *testing.T, seg pulid.ID, userIDs []string, reason string) ledger.StagedSet {
	t.Helper()
	job := pulid.New("imp")
	for _, u := range userIDs {
		if _, err := f.st.Client.ExecContext(f.ctx, "INSERT INTO import_ids (job_ref, user_id, k) VALUES ($1, $2, $3)",
			string(job), u, pulid.NewULID()); err != nil {
			t.Fatal(err)
		}
	}
	return ledger.StagedSet{Job: job, Segment: seg, At: at, Reason: reason}
}

func testEnterStaged(t *testing.T, f *fixture) {
	seg := f.segment(t)
	first := f.campaign(t, seg, campaign.StatusACTIVE)
	second := f.campaign(t, seg, campaign.StatusACTIVE)
	paused := f.campaign(t, seg, campaign.StatusPAUSED)
	refs, names := f.users(t, 4)
	f.write(t, func(w *ledger.Writer, _ *ent.Tx) error { // a member before the import
		_, err := w.Enter(f.ctx, entries(seg, refs[:1], changelog.SourceManual, "in")[0])
		return err
	})
	set := f.stage(t, seg, names, "imported")
	var res *ledger.StagedResult
	topics := f.write(t, func(w *ledger.Writer, _ *ent.Tx) (err error) {
		res, err = w.EnterStaged(f.ctx, set)
		return err
	})
	if res.Entered != 3 || res.Exited != 0 {
		t.Errorf("entered %d, exited %d; want 3, 0", res.Entered, res.Exited)
	}
	if !sameIDs(res.Campaigns, []pulid.ID{first.ID, second.ID}) {
		t.Errorf("activated campaigns %v, want the two ACTIVE ones", res.Campaigns)
	}
	onlySegment(t, topics, seg)
	if len(topics.Campaigns) != 2 {
		t.Errorf("topics name campaigns %v, want the two ACTIVE ones", topics.Campaigns)
	}
	want := sorted(change(changelog.KindEntered, changelog.SourceManual, refs[0]),
		change(changelog.KindEntered, changelog.SourceImport, refs[1:]...))
	if got := f.changes(t, seg); !equal(got, want) {
		t.Errorf("changes %v, want %v", got, want)
	}
	if m := f.members(t, seg)[refs[2]]; m == nil || m.Source != changelog.SourceImport || m.Reason != "imported" {
		t.Errorf("an imported member is %+v", m)
	}
	f.checkCounters(t, seg, 4, 0, 4)
	// The member from before had activated both; each activates once.
	for _, c := range []pulid.ID{first.ID, second.ID} {
		if got := f.activated(t, c); !sameIDs(got, refs) {
			t.Errorf("campaign %s activated for %v, want %v", c, got, refs)
		}
	}
	if got := f.activated(t, paused.ID); len(got) != 0 {
		t.Errorf("PAUSED campaign activated for %v", got)
	}
	// Again: nothing to do, nothing to publish.
	again := f.stage(t, seg, names, "imported")
	topics = f.write(t, func(w *ledger.Writer, _ *ent.Tx) (err error) {
		res, err = w.EnterStaged(f.ctx, again)
		return err
	})
	if res.Entered != 0 || topics.Changes() || topics.Activations() {
		t.Errorf("a repeated import entered %d, topics %+v", res.Entered, topics)
	}
}

func testExitStaged(t *testing.T, f *fixture) {
	seg := f.segment(t)
	refs, names := f.users(t, 3)
	f.write(t, func(w *ledger.Writer, _ *ent.Tx) error {
		_, err := w.EnterMany(f.ctx, entries(seg, refs, changelog.SourceManual, "in"))
		return err
	})
	set := f.stage(t, seg, append(names[:2:2], "nobody"), "removed by import")
	var res *ledger.StagedResult
	topics := f.write(t, func(w *ledger.Writer, _ *ent.Tx) (err error) {
		res, err = w.ExitStaged(f.ctx, set, ledger.Staged)
		return err
	})
	if res.Exited != 2 {
		t.Errorf("exited %d, want 2", res.Exited)
	}
	onlySegment(t, topics, seg)
	m := f.members(t, seg)
	if len(m) != 1 || m[refs[2]] == nil {
		t.Errorf("members left %v, want only %s", m, refs[2])
	}
	want := sorted(change(changelog.KindEntered, changelog.SourceManual, refs...),
		change(changelog.KindExited, changelog.SourceImport, refs[:2]...))
	if got := f.changes(t, seg); !equal(got, want) {
		t.Errorf("changes %v, want %v", got, want)
	}
	f.checkCounters(t, seg, 3, 2, 1)
}

func testReplaceStaged(t *testing.T, f *fixture) {
	seg := f.segment(t)
	refs, names := f.users(t, 4) // members a, b, c; the file b, c, d
	f.write(t, func(w *ledger.Writer, _ *ent.Tx) error {
		_, err := w.EnterMany(f.ctx, entries(seg, refs[:3], changelog.SourceManual, "in"))
		return err
	})
	set := f.stage(t, seg, names[1:], "imported")
	var res *ledger.StagedResult
	topics := f.write(t, func(w *ledger.Writer, _ *ent.Tx) (err error) {
		res, err = w.ReplaceStaged(f.ctx, set, "not in the file")
		return err
	})
	if res.Entered != 1 || res.Exited != 1 {
		t.Errorf("entered %d, exited %d; want 1, 1", res.Entered, res.Exited)
	}
	onlySegment(t, topics, seg)
	m := f.members(t, seg)
	if len(m) != 3 || m[refs[0]] != nil || m[refs[3]] == nil {
		t.Errorf("members %v, want b, c, d", m)
	}
	want := sorted(change(changelog.KindEntered, changelog.SourceManual, refs[:3]...),
		change(changelog.KindExited, changelog.SourceImport, refs[0]),
		change(changelog.KindEntered, changelog.SourceImport, refs[3]))
	if got := f.changes(t, seg); !equal(got, want) {
		t.Errorf("changes %v, want %v", got, want)
	}
	f.checkCounters(t, seg, 4, 1, 3)
}

func testCountStaged(t *testing.T, f *fixture) {
	seg := f.segment(t)
	refs, names := f.users(t, 3)
	f.write(t, func(w *ledger.Writer, _ *ent.Tx) error {
		_, err := w.EnterMany(f.ctx, entries(seg, refs[:2], changelog.SourceManual, "in"))
		return err
	})
	set := f.stage(t, seg, names[1:], "imported")
	tx := mustTx(t, f)
	in, err := f.l.CountStaged(f.ctx, tx, set, ledger.Staged)
	if err != nil {
		t.Fatal(err)
	}
	out, err := f.l.CountStaged(f.ctx, tx, set, ledger.Unstaged)
	if err != nil {
		t.Fatal(err)
	}
	if in != 1 || out != 1 {
		t.Errorf("staged members %d, unstaged %d; want 1, 1", in, out)
	}
	_ = tx.Rollback()
	if len(f.members(t, seg)) != 2 {
		t.Error("counting changed the members")
	}
}

func testTopics(t *testing.T, f *fixture) {
	a, b := f.segment(t), f.segment(t)
	c := f.campaign(t, b, campaign.StatusACTIVE)
	refs, _ := f.users(t, 2)
	topics := f.write(t, func(w *ledger.Writer, _ *ent.Tx) error {
		if _, err := w.EnterMany(f.ctx, entries(a, refs, changelog.SourceManual, "in")); err != nil {
			return err
		}
		if got := w.Topics(); len(got.Segments) != 1 || got.Activations() {
			t.Errorf("topics after the first call %+v, want segment %s only", got, a)
		}
		_, err := w.Enter(f.ctx, entries(b, refs[:1], changelog.SourceManual, "in")[0])
		return err
	})
	if len(topics.Segments) != 2 || !topics.Segments[a] || !topics.Segments[b] {
		t.Errorf("segments %v, want %s and %s", topics.Segments, a, b)
	}
	if len(topics.Campaigns) != 1 || !topics.Campaigns[c.ID] {
		t.Errorf("campaigns %v, want %s", topics.Campaigns, c.ID)
	}
	// A transaction that writes nothing has nothing to publish.
	if empty := f.write(t, func(*ledger.Writer, *ent.Tx) error { return nil }); empty.Changes() || empty.Activations() {
		t.Errorf("an empty transaction's topics are %+v", empty)
	}
}

func testLockAudience(t *testing.T, f *fixture) {
	tx := mustTx(t, f) // one: SQLite has one writer
	err := f.l.LockAudience(f.ctx, tx, "input.segmentId", "seg_missing")
	var e *segmentd.Error
	if !errors.As(err, &e) || e.Code != segmentd.CodeNotFound || e.Field != "input.segmentId" {
		t.Errorf("LockAudience of a missing segment: %v, want NOT_FOUND on input.segmentId", err)
	}
	if _, err := f.l.CampaignForChange(f.ctx, tx, "cmp_missing", nil, true); !errors.As(err, &e) || e.Code != segmentd.CodeNotFound {
		t.Errorf("CampaignForChange of a missing campaign: %v, want NOT_FOUND", err)
	}
}

type counterRow struct{ entered, exited, members int64 }

// allCounters sums every counter of the database over shards.
func (f *fixture) allCounters(t *testing.T) map[string]counterRow {
	t.Helper()
	rows, err := f.st.Client.SegmentCounter.Query().All(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]counterRow{}
	for _, r := range rows {
		k := fmt.Sprintf("%s/%d", r.SegmentRef, r.Bucket)
		c := out[k]
		c.entered += r.Entered
		c.exited += r.Exited
		c.members += r.Members
		if c == (counterRow{}) {
			delete(out, k)
			continue
		}
		out[k] = c
	}
	return out
}

func testRebuild(t *testing.T, f *fixture) {
	incremental := f.allCounters(t)
	if len(incremental) == 0 {
		t.Fatal("no counters to compare: the tests before wrote none")
	}
	tx := mustTx(t, f)
	if err := f.l.RebuildCounters(f.ctx, tx); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	rebuilt := f.allCounters(t)
	if fmt.Sprint(rebuilt) != fmt.Sprint(incremental) {
		t.Errorf("rebuilt counters differ from the incremental ones:\nrebuilt     %v\nincremental %v", rebuilt, incremental)
	}
	// Compacting the shards keeps every sum.
	if _, err := f.l.CompactCounters(f.ctx, f.st.Client, at.Add(48*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if compacted := f.allCounters(t); fmt.Sprint(compacted) != fmt.Sprint(incremental) {
		t.Errorf("compacted counters differ:\ncompacted   %v\nincremental %v", compacted, incremental)
	}
}
