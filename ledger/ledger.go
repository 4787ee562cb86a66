// Package ledger is the one writer of segment membership: the memberships
// table, its change log (membership_changes), campaign activations and the
// maintained segment counters. Every way a user enters or leaves a segment
// (an event, a manual add or remove, a backfill, an import) goes through it,
// so that a membership row, its change-log row, its counter deltas and the
// activations that ACTIVE campaigns call for are always written together.
//
// The ledger works inside the caller's transaction (an *ent.Tx): the caller
// opens a Writer on it, makes its entries and exits, row at a time or as
// staged sets, flushes the Writer once before commit, and after commit
// publishes the Topics the Writer returned. SQL that differs by store lives
// behind one small interface (sqlite.go, postgres.go), chosen once by New.
package ledger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/segmentd/segmentd/changelog"
	"github.com/segmentd/segmentd/ent"
	"github.com/segmentd/segmentd/ent/campaign"
	"github.com/segmentd/segmentd/ent/campaignactivation"
	"github.com/segmentd/segmentd/ent/membership"
	"github.com/segmentd/segmentd/ent/schema/pulid"
	"github.com/segmentd/segmentd/trigger"
)

// BulkRows is how many rows one multi-row INSERT writes.
const BulkRows = 1000

// Ledger writes memberships, their log, activations and counters on one
// store. It holds no state of its own: a Ledger is safe for concurrent use.
type Ledger struct {
	st store
	// obs, if set, is told what each committed transaction wrote.
	obs Observer
}

// New returns the ledger of the store whose ent dialect name is given
// (dialect.SQLite or dialect.Postgres); any other name is an error, since
// SQL written for one store is not a safe guess for another.
func New(dialectName string) (*Ledger, error) {
	st, err := storeFor(dialectName)
	if err != nil {
		return nil, fmt.Errorf("ledger.New: %w", err)
	}
	return &Ledger{st: st}, nil
}

// Topics says which logs a transaction wrote, so that the caller can signal
// subscribers after it commits (and only then).
type Topics struct {
	// Segments whose change log got rows.
	Segments map[pulid.ID]bool
	// Campaigns that got activations.
	Campaigns map[pulid.ID]bool
	// Deadline is the earliest deadline written (zero: none), so that the
	// sweeper can wake for it (see Service's sweeper).
	Deadline time.Time
}

// Changes reports whether any membership change was written.
func (t Topics) Changes() bool { return len(t.Segments) > 0 }

// Activations reports whether any activation was written.
func (t Topics) Activations() bool { return len(t.Campaigns) > 0 }

// Merge adds o's topics to t.
func (t *Topics) Merge(o Topics) {
	for id := range o.Segments {
		t.segment(id)
	}
	for id := range o.Campaigns {
		t.campaign(id)
	}
	t.deadline(o.Deadline)
}

func (t *Topics) deadline(at time.Time) {
	if !at.IsZero() && (t.Deadline.IsZero() || at.Before(t.Deadline)) {
		t.Deadline = at
	}
}

func (t *Topics) segment(id pulid.ID) {
	if t.Segments == nil {
		t.Segments = map[pulid.ID]bool{}
	}
	t.Segments[id] = true
}

func (t *Topics) campaign(id pulid.ID) {
	if t.Campaigns == nil {
		t.Campaigns = map[pulid.ID]bool{}
	}
	t.Campaigns[id] = true
}

// Entry is a user entering a segment.
type Entry struct {
	Segment pulid.ID
	User    pulid.ID
	// Event is the event that caused the entry, if one did.
	Event *pulid.ID
	// Membership is the ID of the membership the entry creates; EnterMany
	// fills it in when empty. A caller that may exit the membership later
	// in the same transaction sets it.
	Membership pulid.ID
	Source     changelog.Source
	Reason     string
	At         time.Time
	// ExpiresAt, if set, is when the membership expires (the segment's
	// exit rule after, counted from At): the entry writes its deadline.
	ExpiresAt *time.Time
}

// Exit is a member leaving a segment: the membership row Membership is
// deleted and an EXITED change logged.
type Exit struct {
	Membership pulid.ID
	Segment    pulid.ID
	User       pulid.ID
	// EnteredAt is when the member entered (the counters count members by
	// the bucket they entered in).
	EnteredAt time.Time
	Source    changelog.Source
	Reason    string
	At        time.Time
}

// ExitOf is the exit of membership m.
func ExitOf(m *ent.Membership, source changelog.Source, reason string, at time.Time) Exit {
	return Exit{Membership: m.ID, Segment: m.SegmentRef, User: m.UserRef, EnteredAt: m.EnteredAt,
		Source: source, Reason: reason, At: at}
}

// Activation is a campaign activated for the user of an entry.
type Activation struct {
	// Entry is the index, in the call's entries, of the entry that
	// activated the campaign.
	Entry    int
	Campaign *ent.Campaign
	// Number is the activation's entry number: 1 for the user's first
	// activation of the campaign, 2 for the second...
	Number int
}

// Result says what one call wrote.
type Result struct {
	Entered     []Entry
	Exited      []Exit
	Activations []Activation
	Topics      Topics
}

// Writer is the ledger's work in one transaction: it writes through tx and
// collects the transaction's counter deltas, which Flush adds to the
// counters in a few statements, and the topics to publish after commit.
// A Writer is not safe for concurrent use (nor is a transaction).
type Writer struct {
	l      *Ledger
	tx     *ent.Tx
	counts counterDeltas
	topics Topics
	tally  tally
}

// Writer opens the ledger's work in tx.
func (l *Ledger) Writer(tx *ent.Tx) *Writer {
	return &Writer{l: l, tx: tx, counts: counterDeltas{}}
}

// Topics is what the writer's calls have written so far.
func (w *Writer) Topics() Topics { return w.topics }

// Flush adds the counter deltas collected so far to the counters (one
// upsert per BulkRows rows), and returns the topics written since the
// Writer was opened. Call it once, before commit (deltas collected after
// it wait for the next Flush).
func (w *Writer) Flush(ctx context.Context) (Topics, error) {
	if err := w.counts.flush(ctx, w.tx, w.l.st, w.l.st.shard()); err != nil {
		return Topics{}, fmt.Errorf("ledger.Flush: %w", err)
	}
	w.counts = counterDeltas{}
	return w.topics, nil
}

func (w *Writer) record(r *Result) { w.topics.Merge(r.Topics) }

// Enter makes one user a member of a segment: see EnterMany.
func (w *Writer) Enter(ctx context.Context, e Entry) (*Result, error) {
	return w.EnterMany(ctx, []Entry{e})
}

// EnterMany makes users members of segments, in multi-row INSERTs of
// BulkRows rows: a membership row and an ENTERED change per entry, the
// counter deltas, and an activation of every ACTIVE campaign of the
// entry's segment that its re-entry policy allows (see activateCampaigns),
// and the expiry deadline of each entry that has ExpiresAt. The entries
// must not be members already (the
// caller has read that under its locks); a duplicate fails on the unique
// index. The memberships are written before the campaigns are read: see
// LockAudience.
func (w *Writer) EnterMany(ctx context.Context, entries []Entry) (*Result, error) {
	res := &Result{Entered: entries}
	if len(entries) == 0 {
		return res, nil
	}
	tx := w.tx
	// The membership IDs are chosen here, so that each activation can name
	// the membership (the entry) that caused it.
	entries = append([]Entry(nil), entries...)
	for i := range entries {
		if entries[i].Membership == "" {
			entries[i].Membership = pulid.New("mem")
		}
	}
	res.Entered = entries
	err := bulk(entries, func(chunk []Entry) error {
		rows := make([]*ent.MembershipCreate, len(chunk))
		for i, e := range chunk {
			rows[i] = tx.Membership.Create().SetID(e.Membership).
				SetSegmentRef(e.Segment).SetUserRef(e.User).SetNillableEventRef(e.Event).
				SetEnteredAt(e.At).SetSource(e.Source).SetReason(e.Reason)
		}
		return tx.Membership.CreateBulk(rows...).Exec(ctx)
	})
	if err != nil {
		return nil, fmt.Errorf("ledger.EnterMany: store memberships: %w", err)
	}
	err = bulk(entries, func(chunk []Entry) error {
		rows := make([]*ent.MembershipChangeCreate, len(chunk))
		for i, e := range chunk {
			rows[i] = tx.MembershipChange.Create().
				SetSegmentRef(e.Segment).SetUserRef(e.User).SetNillableEventRef(e.Event).
				SetKind(changelog.KindEntered).SetSource(e.Source).
				SetAt(e.At).SetReason(e.Reason)
		}
		return tx.MembershipChange.CreateBulk(rows...).Exec(ctx)
	})
	if err != nil {
		return nil, fmt.Errorf("ledger.EnterMany: store membership changes: %w", err)
	}
	if err := w.writeExpiries(ctx, entries, &res.Topics); err != nil {
		return nil, fmt.Errorf("ledger.EnterMany: %w", err)
	}
	for _, e := range entries {
		w.counts.entered(e.Segment, e.At, 1)
		res.Topics.segment(e.Segment)
		w.changed(changelog.KindEntered, e.Source, 1)
	}
	if res.Activations, err = w.activate(ctx, entries, &res.Topics); err != nil {
		return nil, fmt.Errorf("ledger.EnterMany: %w", err)
	}
	w.record(res)
	return res, nil
}

// Exit removes one membership: see ExitMany.
func (w *Writer) Exit(ctx context.Context, x Exit) (*Result, error) {
	return w.ExitMany(ctx, []Exit{x})
}

// ExitMany deletes memberships and logs an EXITED change for each, with the
// counter deltas, BulkRows rows a statement; their expiry deadlines go with
// them (one statement per segment and BulkRows members).
func (w *Writer) ExitMany(ctx context.Context, exits []Exit) (*Result, error) {
	res := &Result{Exited: exits}
	if len(exits) == 0 {
		return res, nil
	}
	tx := w.tx
	err := bulk(exits, func(chunk []Exit) error {
		ids := make([]pulid.ID, len(chunk))
		for i, x := range chunk {
			ids[i] = x.Membership
		}
		_, err := tx.Membership.Delete().Where(membership.IDIn(ids...)).Exec(ctx)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("ledger.ExitMany: delete memberships: %w", err)
	}
	if err := w.clearExpiries(ctx, exits); err != nil {
		return nil, fmt.Errorf("ledger.ExitMany: %w", err)
	}
	err = bulk(exits, func(chunk []Exit) error {
		rows := make([]*ent.MembershipChangeCreate, len(chunk))
		for i, x := range chunk {
			rows[i] = tx.MembershipChange.Create().SetSegmentRef(x.Segment).SetUserRef(x.User).
				SetKind(changelog.KindExited).SetSource(x.Source).SetAt(x.At).SetReason(x.Reason)
		}
		return tx.MembershipChange.CreateBulk(rows...).Exec(ctx)
	})
	if err != nil {
		return nil, fmt.Errorf("ledger.ExitMany: store membership changes: %w", err)
	}
	for _, x := range exits {
		w.counts.exited(x.Segment, x.EnteredAt, x.At)
		res.Topics.segment(x.Segment)
		w.changed(changelog.KindExited, x.Source, 1)
	}
	w.record(res)
	return res, nil
}

// activate activates the ACTIVE campaigns of the entered segments for the
// users who entered (see activateCampaigns). Campaigns come in creation
// order.
func (w *Writer) activate(ctx context.Context, entries []Entry, topics *Topics) ([]Activation, error) {
	segSet := map[pulid.ID]bool{}
	for _, e := range entries {
		segSet[e.Segment] = true
	}
	camps, err := w.tx.Campaign.Query().
		Where(campaign.SegmentRefIn(keys(segSet)...), campaign.StatusEQ(campaign.StatusACTIVE)).
		Order(ent.Asc(campaign.FieldCreatedAt), ent.Asc(campaign.FieldID)).All(ctx)
	if err != nil {
		return nil, fmt.Errorf("find campaigns: %w", err)
	}
	if len(camps) == 0 {
		return nil, nil
	}
	for i, c := range camps {
		camps[i] = c.Unwrap()
	}
	eps := make([]episode, len(entries))
	for i, e := range entries {
		eps[i] = episode{Index: i, Segment: e.Segment, User: e.User, Membership: e.Membership,
			Event: e.Event, EnteredAt: e.At, At: e.At}
	}
	return w.activateCampaigns(ctx, camps, eps, topics)
}

// episode is one membership (an entry into a segment, until the exit) that
// may activate the segment's campaigns.
type episode struct {
	// Index is the entry's index in the caller's entries.
	Index      int
	Segment    pulid.ID
	User       pulid.ID
	Membership pulid.ID
	Event      *pulid.ID
	EnteredAt  time.Time
	// At is when the activation happens: the entry, or the campaign's
	// start for the members it finds.
	At time.Time
}

// activationState is what a user's earlier activations of a campaign say
// about the next one.
type activationState struct {
	last      int       // the highest entry number; 0 for none
	lastAt    time.Time // the latest activation
	episodes  map[pulid.ID]bool
	unmarkedN int // activations with no membership (written before re-entry)
}

// activateCampaigns activates each campaign of camps (on the episodes'
// segments) for each episode, as its re-entry policy allows:
//
//   - ONCE: if the user has no activation of the campaign yet (entry 1).
//   - EVERY_ENTRY: if this membership has not activated it yet (an
//     activation without a membership, from before re-entry existed,
//     counts for the membership it falls in), and the user's last
//     activation is not within the cooldown of At; numbered one past the
//     user's highest entry.
//
// It reads the users' activations (BulkRows users a query) and inserts the
// new ones with ON CONFLICT DO NOTHING on every unique index: an
// activation with the same (campaign, user, entry) or (campaign,
// membership) committed meanwhile by another transaction wins, so that no
// entry activates a campaign twice.
func (w *Writer) activateCampaigns(ctx context.Context, camps []*ent.Campaign, eps []episode, topics *Topics) ([]Activation, error) {
	tx := w.tx
	bySeg := map[pulid.ID][]*ent.Campaign{}
	campIDs := make([]pulid.ID, len(camps))
	cooldowns := map[pulid.ID]time.Duration{}
	for i, c := range camps {
		bySeg[*c.SegmentRef] = append(bySeg[*c.SegmentRef], c)
		campIDs[i] = c.ID
		if c.Reentry == campaign.ReentryEVERY_ENTRY && c.Cooldown != nil && *c.Cooldown != "" {
			d, err := trigger.ParseDuration(*c.Cooldown)
			if err != nil {
				return nil, fmt.Errorf("campaign %s: cooldown: %w", c.ID, err)
			}
			cooldowns[c.ID] = d
		}
	}
	userSet := map[pulid.ID]bool{}
	for _, e := range eps {
		userSet[e.User] = true
	}
	type ck struct{ campaign, user pulid.ID }
	state := map[ck]*activationState{}
	get := func(k ck) *activationState {
		st := state[k]
		if st == nil {
			st = &activationState{episodes: map[pulid.ID]bool{}}
			state[k] = st
		}
		return st
	}
	err := bulk(keys(userSet), func(chunk []pulid.ID) error {
		rows, err := tx.CampaignActivation.Query().
			Where(campaignactivation.CampaignRefIn(campIDs...), campaignactivation.UserRefIn(chunk...)).
			Select(campaignactivation.FieldCampaignRef, campaignactivation.FieldUserRef, campaignactivation.FieldEntry,
				campaignactivation.FieldActivatedAt, campaignactivation.FieldMembershipRef).All(ctx)
		if err != nil {
			return fmt.Errorf("find activations: %w", err)
		}
		for _, a := range rows {
			st := get(ck{a.CampaignRef, a.UserRef})
			st.last = max(st.last, a.Entry)
			if a.ActivatedAt.After(st.lastAt) {
				st.lastAt = a.ActivatedAt
			}
			if a.MembershipRef != nil {
				st.episodes[*a.MembershipRef] = true
			} else {
				st.unmarkedN++
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var (
		acts []*ent.CampaignActivationCreate
		out  []Activation
	)
	for _, e := range eps {
		for _, c := range bySeg[e.Segment] {
			st := get(ck{c.ID, e.User})
			if c.Reentry == campaign.ReentryEVERY_ENTRY {
				if st.episodes[e.Membership] {
					continue
				}
				// An activation from before re-entry was recorded without
				// its membership: one at or after this entry belongs to it.
				if st.unmarkedN > 0 && !st.lastAt.Before(e.EnteredAt) {
					continue
				}
				if d, ok := cooldowns[c.ID]; ok && st.last > 0 && e.At.Before(st.lastAt.Add(d)) {
					continue
				}
			} else if st.last > 0 {
				continue
			}
			st.last++
			st.lastAt = e.At
			st.episodes[e.Membership] = true
			acts = append(acts, tx.CampaignActivation.Create().
				SetCampaignRef(c.ID).SetUserRef(e.User).SetSegmentRef(e.Segment).
				SetNillableEventRef(e.Event).SetActivatedAt(e.At).
				SetEntry(st.last).SetMembershipRef(e.Membership))
			out = append(out, Activation{Entry: e.Index, Campaign: c, Number: st.last})
			topics.campaign(c.ID)
		}
	}
	err = bulk(acts, func(b []*ent.CampaignActivationCreate) error {
		err := tx.CampaignActivation.CreateBulk(b...).OnConflict().DoNothing().Exec(ctx)
		if isNoRows(err) {
			return nil
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store activations: %w", err)
	}
	w.activated(len(acts))
	return out, nil
}

// bulk runs write on rows in chunks of BulkRows.
func bulk[T any](rows []T, write func([]T) error) error {
	for start := 0; start < len(rows); start += BulkRows {
		if err := write(rows[start:min(start+BulkRows, len(rows))]); err != nil {
			return err
		}
	}
	return nil
}

func keys[K comparable](m map[K]bool) []K {
	out := make([]K, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// isNoRows: ent reports an upsert that wrote nothing (every row a
// conflict) as sql.ErrNoRows on some stores.
func isNoRows(err error) bool { return errors.Is(err, sql.ErrNoRows) }
