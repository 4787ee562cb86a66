package service

import (
	"context"
	"fmt"
	"time"

	"github.com/segmentd/segmentd/ent"
	"github.com/segmentd/segmentd/ent/event"
	"github.com/segmentd/segmentd/ent/predicate"
	"github.com/segmentd/segmentd/ent/schema/pulid"
	"github.com/segmentd/segmentd/ent/user"
	"github.com/segmentd/segmentd/trigger"
)

// replayPage is how many stored events a replay reads at a time.
const replayPage = 1000

// match is a user's first stored event that a condition holds for, in
// arrival (ID) order. event carries only what the scan reads: ID, name,
// user and timestamp (not properties or context).
type match struct {
	event  *ent.Event
	reason string
}

// matchStoredEvents replays the stored TRACK events whose name is one of
// names (with a user; since, when given, at or after that timestamp) and
// returns, by user, the first one (by ID: in arrival order) that prog holds
// for with the event's properties and the user's current traits: segmentd
// keeps traits as they are now, not as they were. WITHIN_LAST measures from
// each event's timestamp, as at ingestion. It only reads: client may be a
// transaction's (reevaluate) or the plain client (preview, whose reads go
// to SQLite's readers and take no write lock).
//
// It reads one name at a time, replayPage events at a time in ID order
// (keyset pagination on the index (type, name, id): every page costs the
// same however deep), selecting only the columns evaluation needs (the
// properties only when a predicate reads the event), and
// loads each user's traits once; an event later than its user's match so
// far costs no evaluation.
func matchStoredEvents(ctx context.Context, client *ent.Client, prog *trigger.Program, names []string, since *time.Time) (map[pulid.ID]match, error) {
	matched := map[pulid.ID]match{}
	traits := map[pulid.ID]map[string]any{} // of the users seen so far
	columns := []string{event.FieldID, event.FieldName, event.FieldUserRef, event.FieldTimestamp}
	if prog.ReadsEvent() {
		// Decoding the properties is most of a page's cost: only when a
		// predicate tests them.
		columns = append(columns, event.FieldProperties)
	}
	// Behaviours are answered from each user's whole history of counted
	// events, at each replayed event's timestamp.
	var histories *behaviorStates
	if len(prog.Behaviors()) > 0 {
		histories = &behaviorStates{states: map[stateKey]*behaviorEntry{}, touched: map[memberKey]bool{}}
	}
	for _, name := range names {
		var after pulid.ID
		for {
			where := []predicate.Event{event.TypeEQ(event.TypeTRACK), event.Name(name), event.UserRefNotNil()}
			if since != nil {
				where = append(where, event.TimestampGTE(*since))
			}
			if after != "" {
				where = append(where, event.IDGT(after))
			}
			page, err := client.Event.Query().Where(where...).
				Order(ent.Asc(event.FieldID)).Limit(replayPage).
				Select(columns...).All(ctx)
			if err != nil {
				return nil, fmt.Errorf("replay events: %w", err)
			}
			if len(page) == 0 {
				break
			}
			after = page[len(page)-1].ID
			if err := loadTraits(ctx, client, page, matched, traits, histories, prog); err != nil {
				return nil, err
			}
			for _, ev := range page {
				ref := *ev.UserRef
				if m, ok := matched[ref]; ok && m.event.ID < ev.ID {
					continue // an earlier event of theirs matched
				}
				env := histories.envFor(ref, prog, traits[ref], ev.Timestamp)
				env.Event = ev.Properties
				r := prog.Eval(env)
				if r.Matched {
					ev.Properties = nil // the match keeps the event's identity, not its payload
					matched[ref] = match{event: ev, reason: r.Reason}
				}
			}
			if len(page) < replayPage {
				break
			}
		}
	}
	if histories != nil && histories.err != nil {
		return nil, histories.err
	}
	return matched, nil
}

// loadTraits adds to traits the current traits of the users of page's
// events that will be evaluated and are not in it yet (nil for a user
// with no row).
func loadTraits(ctx context.Context, client *ent.Client, page []*ent.Event, matched map[pulid.ID]match, traits map[pulid.ID]map[string]any,
	histories *behaviorStates, prog *trigger.Program) error {
	var unknown []pulid.ID
	for _, ev := range page {
		ref := *ev.UserRef
		if m, ok := matched[ref]; ok && m.event.ID < ev.ID {
			continue
		}
		if _, ok := traits[ref]; !ok {
			unknown = append(unknown, ref)
			traits[ref] = nil
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	users, err := client.User.Query().Where(user.IDIn(unknown...)).
		Select(user.FieldID, user.FieldUserID, user.FieldTraits).All(ctx)
	if err != nil {
		return fmt.Errorf("load users: %w", err)
	}
	for _, u := range users {
		traits[u.ID] = u.Traits
	}
	if histories != nil {
		// The same users' counted events, once each.
		return countStoredEvents(ctx, client.Event, histories, prog, users, nil)
	}
	return nil
}
