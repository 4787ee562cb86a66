package service

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/segmentd/segmentd"
	"github.com/segmentd/segmentd/changelog"
	"github.com/segmentd/segmentd/ent"
	"github.com/segmentd/segmentd/ent/event"
	"github.com/segmentd/segmentd/ent/schema"
	"github.com/segmentd/segmentd/ent/schema/pulid"
	"github.com/segmentd/segmentd/ent/segment"
	"github.com/segmentd/segmentd/ent/segmenttrigger"
	"github.com/segmentd/segmentd/ent/user"
	"github.com/segmentd/segmentd/ledger"
	"github.com/segmentd/segmentd/trigger"
)

// Ingestion limits.
const (
	MaxBatch       = 1000 // events in one trackEvents call
	MaxIDLen       = 256  // user IDs, anonymous IDs, message IDs, event names
	maxBatchTxRows = 1000
)

// TrackInput is one incoming event: the GraphQL TrackInput, and what the
// Segment-compatible API decodes.
type TrackInput struct {
	Event       string
	UserID      *string
	AnonymousID *string
	Properties  map[string]any
	// Traits are merged into the user's traits before evaluation (like
	// Segment's context.traits); a null trait removes it.
	Traits    map[string]any
	Timestamp *time.Time
	MessageID *string
	Context   map[string]any
	// Type is TRACK unless the Segment API says otherwise.
	Type event.Type
	// GroupID is the group of a GROUP call (the Segment API's group): the
	// user is recorded as a member of it, and Traits are the group's own,
	// kept on the group and never merged into the user's traits.
	GroupID string
}

// TrackResult says what one event did.
type TrackResult struct {
	Event     *ent.Event
	Duplicate bool
	// Taken: a duplicate whose messageId belongs to another user's
	// message; Event is then what this call sent.
	Taken              bool
	EnteredSegments    []*ent.Segment
	ActivatedCampaigns []*ent.Campaign
}

// TrackBatchResult says what a batch did, event by event, in input order.
type TrackBatchResult struct {
	Accepted   int
	Duplicates int
	Results    []*TrackResult
}

// IdentifyInput merges traits into a user; a null trait removes it.
type IdentifyInput struct {
	UserID    string
	Traits    map[string]any
	Timestamp *time.Time
	MessageID *string
	Context   map[string]any
}

// Track ingests one event. See TrackBatch.
func (s *Service) Track(ctx context.Context, in TrackInput) (*TrackResult, error) {
	res, err := s.ingest(ctx, []TrackInput{in}, "input")
	if err != nil {
		return nil, err
	}
	return res.Results[0], nil
}

// TrackBatch ingests up to MaxBatch events. Every event is validated first:
// one bad event refuses the whole batch, naming it (inputs[3].event), and
// nothing is written. Then, in one transaction, each event is stored (a
// repeated messageId is a duplicate and changes nothing), its user is
// created or updated, and the user enters every EVENT_TRIGGERED segment that
// the event's name triggers and whose condition holds, activating the
// segment's ACTIVE campaigns. All of it commits together or not at all.
func (s *Service) TrackBatch(ctx context.Context, ins []*TrackInput) (*TrackBatchResult, error) {
	vals := make([]TrackInput, len(ins))
	for i, in := range ins {
		if in != nil {
			vals[i] = *in
		}
	}
	return s.ingest(ctx, vals, "inputs")
}

// Identify merges traits into a user, creating it on first sight, and
// stores the call as an IDENTIFY event (deduplicated by messageId).
func (s *Service) Identify(ctx context.Context, in IdentifyInput) (*ent.User, error) {
	uid := in.UserID
	res, err := s.ingest(ctx, []TrackInput{{
		Type:      event.TypeIDENTIFY,
		UserID:    &uid,
		Traits:    in.Traits,
		Timestamp: in.Timestamp,
		MessageID: in.MessageID,
		Context:   in.Context,
	}}, "input")
	if err != nil {
		return nil, err
	}
	if res.Results[0].Taken {
		// Nothing was stored: the answer would be a user the call did not
		// change, or none at all.
		return nil, segmentd.Errorf(segmentd.CodeConflict, "input.messageId: %q is already the messageId of another user's message; nothing was stored", *in.MessageID)
	}
	u, err := s.client.User.Query().Where(user.UserID(segmentd.NormalizeID(uid))).Only(ctx)
	if err != nil {
		return nil, fmt.Errorf("service.Identify: %w", err)
	}
	return u, nil
}

// Ingest is the general form of Track for callers that set Type (the
// Segment-compatible API); field is the path prefix for errors.
func (s *Service) Ingest(ctx context.Context, ins []TrackInput, field string) (*TrackBatchResult, error) {
	return s.ingest(ctx, ins, field)
}

func (s *Service) ingest(ctx context.Context, ins []TrackInput, field string) (*TrackBatchResult, error) {
	if len(ins) == 0 {
		return &TrackBatchResult{Results: []*TrackResult{}}, nil
	}
	if len(ins) > MaxBatch {
		return nil, segmentd.Invalid(field, "at most %d events a call, got %d", MaxBatch, len(ins))
	}
	now := s.now()
	evs := make([]*incoming, len(ins))
	for i, in := range ins {
		path := field
		if len(ins) > 1 || field == "inputs" || field == "batch" {
			path = fmt.Sprintf("%s[%d]", field, i)
		}
		ev, err := validateTrack(in, path, now)
		if err != nil {
			return nil, err
		}
		evs[i] = ev
	}
	var out *TrackBatchResult
	// A concurrent writer can store the same messageId between our check
	// and our insert (PostgreSQL); the unique index refuses ours and the
	// retry sees it as a duplicate.
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		out, err = s.ingestTx(ctx, evs, now)
		if err == nil || !(ent.IsConstraintError(err) || isRetryable(err)) {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("service.ingest: %w", err)
	}
	s.countIngested(ctx, evs, out)
	return out, nil
}

// incoming is a validated event.
type incoming struct {
	id        pulid.ID
	typ       event.Type
	name      string
	userID    string // "" for anonymous events
	anonID    *string
	messageID string
	props     map[string]any
	traits    map[string]any
	context   map[string]any
	timestamp time.Time
	groupID   string // GROUP only
}

// duplicateOf is what the answer to ev shows of the stored event e that
// holds ev's messageId. A repeat for the same user (userId and anonymous
// ID: a retry, whatever else it carries) gets e, with its outcomes. A
// message for another user that reuses the messageId gets an event made of
// what it sent, with e's id and receipt and no outcomes: e is another
// user's, and its properties, traits and outcomes are not the sender's to
// read (a WRITE key could otherwise read any stored event whose messageId
// it learned).
func duplicateOf(e *ent.Event, ev *incoming) *ent.Event {
	sameAnon := (e.AnonymousID == nil) == (ev.anonID == nil) && (e.AnonymousID == nil || *e.AnonymousID == *ev.anonID)
	sameUser := (e.UserID == nil && ev.userID == "") || (e.UserID != nil && *e.UserID == ev.userID)
	if sameUser && sameAnon {
		return e
	}
	sent := &ent.Event{ID: e.ID, MessageID: e.MessageID, Type: ev.typ, AnonymousID: ev.anonID,
		Properties: ev.props, Traits: ev.traits, Context: ev.context, Timestamp: ev.timestamp,
		ReceivedAt: e.ReceivedAt, Outcomes: []schema.Outcome{}}
	if ev.name != "" {
		sent.Name = &ev.name
	}
	if ev.userID != "" {
		sent.UserID = &ev.userID
	}
	return sent
}

// carriesUserTraits reports whether an event's traits are the user's (and
// merge into them): every type but GROUP, whose traits are the group's.
// Ingestion and verify both follow it.
func carriesUserTraits(t event.Type) bool { return t != event.TypeGROUP }

func validateTrack(in TrackInput, path string, now time.Time) (*incoming, error) {
	ev := &incoming{id: pulid.New("evt"), typ: in.Type, props: in.Properties, traits: in.Traits, context: in.Context}
	if ev.typ == "" {
		ev.typ = event.TypeTRACK
	}
	ev.name = strings.TrimSpace(in.Event)
	if ev.typ == event.TypeTRACK {
		if err := checkID(sub(path, "event"), ev.name, true); err != nil {
			return nil, err
		}
	} else if err := checkID(sub(path, "event"), ev.name, false); err != nil {
		return nil, err
	}
	if in.UserID != nil {
		ev.userID = segmentd.NormalizeID(*in.UserID)
		if err := checkID(sub(path, "userId"), ev.userID, false); err != nil {
			return nil, err
		}
	}
	if in.AnonymousID != nil {
		a := segmentd.NormalizeID(*in.AnonymousID)
		if err := checkID(sub(path, "anonymousId"), a, false); err != nil {
			return nil, err
		}
		if a != "" {
			ev.anonID = &a
		}
	}
	if ev.userID == "" && ev.anonID == nil {
		return nil, segmentd.Invalid(sub(path, "userId"), "an event needs a userId or an anonymousId")
	}
	if ev.typ == event.TypeGROUP {
		ev.groupID = strings.TrimSpace(in.GroupID)
		if err := checkID(sub(path, "groupId"), ev.groupID, true); err != nil {
			return nil, err
		}
	}
	if in.MessageID != nil {
		ev.messageID = segmentd.NormalizeID(*in.MessageID)
		if err := checkID(sub(path, "messageId"), ev.messageID, true); err != nil {
			return nil, err
		}
	} else {
		ev.messageID = "srv-" + string(ev.id)
	}
	ev.timestamp = now
	if in.Timestamp != nil {
		ev.timestamp = in.Timestamp.UTC()
	}
	if ev.props == nil {
		ev.props = map[string]any{}
	}
	if ev.traits == nil {
		ev.traits = map[string]any{}
	}
	if ev.context == nil {
		ev.context = map[string]any{}
	}
	for name, m := range map[string]map[string]any{"properties": ev.props, "traits": ev.traits, "context": ev.context} {
		if err := checkMap(sub(path, name), m); err != nil {
			return nil, err
		}
	}
	return ev, nil
}

// sub names a field under path ("inputs[2].event", or "event" at the top).
func sub(path, field string) string {
	if path == "" {
		return field
	}
	return path + "." + field
}

func checkID(field, v string, required bool) error {
	switch {
	case v == "" && required:
		return segmentd.Invalid(field, "must not be empty")
	case len(v) > MaxIDLen:
		return segmentd.Invalid(field, "must be at most %d bytes", MaxIDLen)
	case hasControl(v):
		return segmentd.Invalid(field, "must not contain control characters")
	}
	return nil
}

// Limits on property and trait maps, so that one event cannot make a row
// or an evaluation arbitrarily expensive.
const (
	maxMapKeys  = 1000
	maxMapDepth = 10
)

func checkMap(field string, m map[string]any) error {
	keys := 0
	var walk func(v any, depth int) error
	walk = func(v any, depth int) error {
		if depth > maxMapDepth {
			return segmentd.Invalid(field, "nests more than %d levels", maxMapDepth)
		}
		switch v := v.(type) {
		case map[string]any:
			for k, e := range v {
				keys++
				if keys > maxMapKeys {
					return segmentd.Invalid(field, "has more than %d keys", maxMapKeys)
				}
				if len(k) > MaxIDLen {
					return segmentd.Invalid(field, "key %.40q… is longer than %d bytes", k, MaxIDLen)
				}
				if err := walk(e, depth+1); err != nil {
					return err
				}
			}
		case []any:
			for _, e := range v {
				if err := walk(e, depth+1); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := walk(m, 0); err != nil {
		return err
	}
	// Numbers outside float64 and NUL characters: neither store could
	// keep them readable (see segmentd.CheckValue).
	if err := segmentd.CheckValue(field, m); err != nil {
		return err
	}
	toFloats(m)
	return nil
}

// toFloats stores every number as the 64-bit float that every reader
// decodes it to: the event as stored, as the trigger saw it at ingestion
// and as verify sees it later are then one value, on both stores (a
// literal such as 1.000…0 with 17,000 digits, or 1e-20000, fits a float64
// but overflows PostgreSQL's numeric). Numbers were checked to fit.
func toFloats(v any) any {
	switch x := v.(type) {
	case json.Number:
		if f, err := strconv.ParseFloat(string(x), 64); err == nil {
			return f
		}
	case map[string]any:
		for k, e := range x {
			x[k] = toFloats(e)
		}
	case []any:
		for i, e := range x {
			x[i] = toFloats(e)
		}
	}
	return v
}

// mergeTraits applies incoming traits to old ones: a nil value removes the
// trait. It reports whether anything changed.
func mergeTraits(old, in map[string]any) (map[string]any, bool) {
	if len(in) == 0 {
		return old, false
	}
	merged := make(map[string]any, len(old)+len(in))
	for k, v := range old {
		merged[k] = v
	}
	changed := false
	for k, v := range in {
		if v == nil {
			if _, ok := merged[k]; ok {
				delete(merged, k)
				changed = true
			}
			continue
		}
		merged[k] = v
		changed = true
	}
	return merged, changed
}

// ingestTx stores a validated batch in one transaction.
func (s *Service) ingestTx(ctx context.Context, evs []*incoming, now time.Time) (*TrackBatchResult, error) {
	out := &TrackBatchResult{Results: make([]*TrackResult, len(evs))}
	var topics ledger.Topics
	var names []string
	for _, ev := range evs {
		if ev.typ == event.TypeTRACK && !slices.Contains(names, ev.name) {
			names = append(names, ev.name)
		}
	}
	err := s.inTx(ctx, func(tx *ent.Tx) error {
		// First, before the segments are read: a segment change building
		// behaviour states that count these names waits for this batch, or
		// this batch for it (lockEventNames).
		if err := s.sql.lockEventNames(ctx, tx, names, false); err != nil {
			return err
		}
		// Duplicates: already stored, or repeated within this batch.
		msgIDs := make([]string, len(evs))
		for i, ev := range evs {
			msgIDs[i] = ev.messageID
		}
		existing, err := tx.Event.Query().Where(event.MessageIDIn(msgIDs...)).All(ctx)
		if err != nil {
			return fmt.Errorf("find duplicates: %w", err)
		}
		stored := make(map[string]*ent.Event, len(existing))
		for _, e := range existing {
			stored[e.MessageID] = e.Unwrap()
		}
		fresh := make([]*incoming, 0, len(evs))
		for i, ev := range evs {
			e, ok := stored[ev.messageID]
			if ok && e != nil {
				shown := duplicateOf(e, ev)
				out.Results[i] = &TrackResult{Event: shown, Duplicate: true, Taken: shown != e}
				out.Duplicates++
				continue
			}
			if ok {
				continue // a repeat within this batch: answered below with the first one's event
			}
			stored[ev.messageID] = nil
			fresh = append(fresh, ev)
		}
		users, err := s.lockUsers(ctx, tx, fresh, now)
		if err != nil {
			return err
		}
		st := &batchState{
			tx:       tx,
			now:      now,
			users:    users,
			triggers: map[string][]*compiledSegment{},
			dirty:    map[pulid.ID]bool{},
		}
		// Apply the first of each messageId; later repeats in the batch
		// are duplicates of it.
		first := map[string]int{}
		var apply []*incoming
		for i, ev := range evs {
			if out.Results[i] != nil {
				continue
			}
			if _, ok := first[ev.messageID]; !ok {
				first[ev.messageID] = len(apply)
				apply = append(apply, ev)
			}
		}
		results, err := s.applyBatch(ctx, st, apply)
		if err != nil {
			return err
		}
		topics = st.topics
		seen := map[string]bool{}
		for i, ev := range evs {
			if out.Results[i] != nil {
				continue
			}
			r := results[first[ev.messageID]]
			if seen[ev.messageID] {
				out.Results[i] = &TrackResult{Event: r.Event, Duplicate: true,
					EnteredSegments: []*ent.Segment{}, ActivatedCampaigns: []*ent.Campaign{}}
				out.Duplicates++
				continue
			}
			seen[ev.messageID] = true
			out.Results[i] = r
			out.Accepted++
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	// Published only now, after the commit: subscribers never see a change
	// that was rolled back.
	if out.Accepted > 0 {
		s.notify(changelog.Events.Topic)
	}
	s.publish(topics)
	return out, nil
}

// lockUsers creates the batch's unknown users and locks all of its users'
// rows in user ID order (storeSQL.lockForNoKeyUpdate: a row lock on a
// store with replicas, nothing where the write transaction already
// serializes). The lock serializes concurrent events for one user, which
// is what makes "enters once" and trait merges exact; the fixed order
// keeps concurrent batches from deadlocking.
func (s *Service) lockUsers(ctx context.Context, tx *ent.Tx, evs []*incoming, now time.Time) (map[string]*ent.User, error) {
	ids := make([]string, 0, len(evs))
	seen := map[string]bool{}
	for _, ev := range evs {
		if ev.userID != "" && !seen[ev.userID] {
			seen[ev.userID] = true
			ids = append(ids, ev.userID)
		}
	}
	users := make(map[string]*ent.User, len(ids))
	if len(ids) == 0 {
		return users, nil
	}
	sq := s.sql
	sort.Strings(ids)
	for start := 0; start < len(ids); start += maxBatchTxRows {
		chunk := ids[start:min(start+maxBatchTxRows, len(ids))]
		// A user erased (DeleteUser) between the insert, which found the
		// row, and the lock, which waited for the erasure, is gone from
		// the lock's answer: create that one anew and lock again.
		for attempt := 0; len(chunk) > 0; attempt++ {
			if attempt == 3 {
				return nil, fmt.Errorf("lock users: %d users vanished under the lock 3 times", len(chunk))
			}
			builders := make([]*ent.UserCreate, len(chunk))
			for i, id := range chunk {
				builders[i] = tx.User.Create().SetUserID(id).SetTraits(map[string]any{}).
					SetFirstSeenAt(now).SetLastSeenAt(now)
			}
			err := tx.User.CreateBulk(builders...).OnConflictColumns(user.FieldUserID).DoNothing().Exec(ctx)
			if err != nil && !isNoRows(err) {
				return nil, fmt.Errorf("create users: %w", err)
			}
			rows, err := tx.User.Query().Where(user.UserIDIn(chunk...), sq.lockForNoKeyUpdate).
				Order(ent.Asc(user.FieldUserID)).All(ctx)
			if err != nil {
				return nil, fmt.Errorf("lock users: %w", err)
			}
			for _, u := range rows {
				users[u.UserID] = u
			}
			var missing []string
			for _, id := range chunk {
				if users[id] == nil {
					missing = append(missing, id)
				}
			}
			chunk = missing
		}
	}
	return users, nil
}

// batchState is what one transaction knows while it applies a batch.
type batchState struct {
	tx       *ent.Tx
	now      time.Time
	users    map[string]*ent.User
	dirty    map[pulid.ID]bool // users whose traits or last_seen_at changed
	triggers map[string][]*compiledSegment
	// behaviors are the batch's users' behaviour states.
	behaviors *behaviorStates
	// topics are what the ledger wrote, to publish after commit.
	topics ledger.Topics
}

type compiledSegment struct {
	segment *ent.Segment
	program *trigger.Program
}

// segmentsFor returns the EVENT_TRIGGERED segments that an event name
// triggers, with their compiled conditions, ordered by creation. Programs are
// cached by segment and updated_at, so that a tree is compiled once per
// change, not once per event.
func (s *Service) segmentsFor(ctx context.Context, st *batchState, name string) ([]*compiledSegment, error) {
	if c, ok := st.triggers[name]; ok {
		return c, nil
	}
	segs, err := st.tx.Segment.Query().
		Where(segment.KindEQ(segment.KindEVENT_TRIGGERED),
			segment.HasTriggersWith(segmenttrigger.EventName(name))).
		Order(ent.Asc(segment.FieldCreatedAt), ent.Asc(segment.FieldID)).
		All(ctx)
	if err != nil {
		return nil, fmt.Errorf("find segments for %q: %w", name, err)
	}
	out := make([]*compiledSegment, 0, len(segs))
	for _, seg := range segs {
		prog, err := s.programs.get(ctx, st.tx.Client(), seg)
		if err != nil {
			return nil, err
		}
		out = append(out, &compiledSegment{segment: seg.Unwrap(), program: prog})
	}
	st.triggers[name] = out
	return out, nil
}
