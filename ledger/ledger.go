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
)

// BulkRows is how many rows one multi-row INSERT writes.
const BulkRows = 1000

// Ledger writes memberships, their log, activations and counters on one
// store. It holds no state of its own: a Ledger is safe for concurrent use.
type Ledger struct {
	st store
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

// Dialect is the ent dialect name the ledger writes for.
func (l *Ledger) Dialect() string { return l.st.dialect() }

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
	// ID, if set, is the new membership's ID: a caller that may exit the
	// membership later in the same transaction needs to know it.
	ID      pulid.ID
	Segment pulid.ID
	User    pulid.ID
	// Event is the event that caused the entry, if one did.
	Event  *pulid.ID
	Source changelog.Source
	Reason string
	At     time.Time
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
// entry's segment that the user has not activated before (at most once per
// campaign and user, ever), and the expiry deadline of each entry that has
// ExpiresAt. The entries must not be members already (the
// caller has read that under its locks); a duplicate fails on the unique
// index. The memberships are written before the campaigns are read: see
// LockAudience.
func (w *Writer) EnterMany(ctx context.Context, entries []Entry) (*Result, error) {
	res := &Result{Entered: entries}
	if len(entries) == 0 {
		return res, nil
	}
	tx := w.tx
	err := bulk(entries, func(chunk []Entry) error {
		rows := make([]*ent.MembershipCreate, len(chunk))
		for i, e := range chunk {
			rows[i] = tx.Membership.Create().
				SetNillableID(nonEmpty(e.ID)).SetSegmentRef(e.Segment).SetUserRef(e.User).SetNillableEventRef(e.Event).
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
	}
	w.record(res)
	return res, nil
}

// activate activates the ACTIVE campaigns of the entered segments for the
// users who entered, each (campaign, user) once ever: it reads the
// activations the users already have (BulkRows users a query) and inserts
// the others, with ON CONFLICT DO NOTHING for an activation committed
// meanwhile. Campaigns come in creation order.
func (w *Writer) activate(ctx context.Context, entries []Entry, topics *Topics) ([]Activation, error) {
	tx := w.tx
	segSet := map[pulid.ID]bool{}
	userSet := map[pulid.ID]bool{}
	for _, e := range entries {
		segSet[e.Segment] = true
		userSet[e.User] = true
	}
	camps, err := tx.Campaign.Query().
		Where(campaign.SegmentRefIn(keys(segSet)...), campaign.StatusEQ(campaign.StatusACTIVE)).
		Order(ent.Asc(campaign.FieldCreatedAt), ent.Asc(campaign.FieldID)).All(ctx)
	if err != nil {
		return nil, fmt.Errorf("find campaigns: %w", err)
	}
	if len(camps) == 0 {
		return nil, nil
	}
	bySeg := map[pulid.ID][]*ent.Campaign{}
	campIDs := make([]pulid.ID, len(camps))
	for i, c := range camps {
		bySeg[*c.SegmentRef] = append(bySeg[*c.SegmentRef], c.Unwrap())
		campIDs[i] = c.ID
	}
	type ck struct{ campaign, user pulid.ID }
	done := map[ck]bool{}
	err = bulk(keys(userSet), func(chunk []pulid.ID) error {
		rows, err := tx.CampaignActivation.Query().
			Where(campaignactivation.CampaignRefIn(campIDs...), campaignactivation.UserRefIn(chunk...)).
			Select(campaignactivation.FieldCampaignRef, campaignactivation.FieldUserRef).All(ctx)
		if err != nil {
			return fmt.Errorf("find activations: %w", err)
		}
		for _, a := range rows {
			done[ck{a.CampaignRef, a.UserRef}] = true
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
	for i, e := range entries {
		for _, c := range bySeg[e.Segment] {
			k := ck{c.ID, e.User}
			if done[k] {
				continue
			}
			done[k] = true
			acts = append(acts, tx.CampaignActivation.Create().
				SetCampaignRef(c.ID).SetUserRef(e.User).SetSegmentRef(e.Segment).
				SetNillableEventRef(e.Event).SetActivatedAt(e.At))
			out = append(out, Activation{Entry: i, Campaign: c})
			topics.campaign(c.ID)
		}
	}
	err = bulk(acts, func(b []*ent.CampaignActivationCreate) error {
		err := tx.CampaignActivation.CreateBulk(b...).
			OnConflictColumns(campaignactivation.FieldCampaignRef, campaignactivation.FieldUserRef).
			DoNothing().Exec(ctx)
		if isNoRows(err) {
			return nil
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store activations: %w", err)
	}
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
func nonEmpty(id pulid.ID) *pulid.ID {
	if id == "" {
		return nil
	}
	return &id
}

func isNoRows(err error) bool { return errors.Is(err, sql.ErrNoRows) }
