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
// returns, by user, the first one prog holds for with the event's
// properties and the user's current traits: segmentd keeps traits as they
// are now, not as they were. WITHIN_LAST measures from each event's
// timestamp, as at ingestion. It only reads: client may be a transaction's
// (reevaluate) or the plain client (preview, whose reads go to SQLite's
// readers and take no write lock).
//
// It reads replayPage events at a time by ID (keyset pagination: every page
// costs the same however deep), selecting only the columns evaluation
// needs, and loads each user's traits once; a user already matched costs
// no evaluation for their later events.
func matchStoredEvents(ctx context.Context, client *ent.Client, prog *trigger.Program, names []string, since *time.Time) (map[pulid.ID]match, error) {
	matched := map[pulid.ID]match{}
	if len(names) == 0 {
		return matched, nil
	}
	// Traits of users seen and not yet matched; a matched user's are
	// dropped, since their later events are skipped anyway.
	traits := map[pulid.ID]map[string]any{}
	var after pulid.ID
	for {
		where := []predicate.Event{event.TypeEQ(event.TypeTRACK), event.NameIn(names...), event.UserRefNotNil()}
		if since != nil {
			where = append(where, event.TimestampGTE(*since))
		}
		if after != "" {
			where = append(where, event.IDGT(after))
		}
		page, err := client.Event.Query().Where(where...).
			Order(ent.Asc(event.FieldID)).Limit(replayPage).
			Select(event.FieldID, event.FieldName, event.FieldUserRef, event.FieldProperties, event.FieldTimestamp).
			All(ctx)
		if err != nil {
			return nil, fmt.Errorf("replay events: %w", err)
		}
		if len(page) == 0 {
			return matched, nil
		}
		after = page[len(page)-1].ID
		var unknown []pulid.ID
		for _, ev := range page {
			ref := *ev.UserRef
			if _, done := matched[ref]; done {
				continue
			}
			if _, ok := traits[ref]; !ok {
				unknown = append(unknown, ref)
				traits[ref] = nil
			}
		}
		if len(unknown) > 0 {
			users, err := client.User.Query().Where(user.IDIn(unknown...)).
				Select(user.FieldID, user.FieldTraits).All(ctx)
			if err != nil {
				return nil, fmt.Errorf("load users: %w", err)
			}
			for _, u := range users {
				traits[u.ID] = u.Traits
			}
		}
		for _, ev := range page {
			ref := *ev.UserRef
			if _, done := matched[ref]; done {
				continue
			}
			r := prog.Eval(trigger.Env{Event: ev.Properties, User: traits[ref], Now: ev.Timestamp})
			if r.Matched {
				ev.Properties = nil // the match keeps the event's identity, not its payload
				matched[ref] = match{event: ev, reason: r.Reason}
				delete(traits, ref)
			}
		}
		if len(page) < replayPage {
			return matched, nil
		}
	}
}
