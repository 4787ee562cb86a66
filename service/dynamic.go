package service

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/segmentd/segmentd/changelog"
	"github.com/segmentd/segmentd/ent"
	"github.com/segmentd/segmentd/ent/event"
	"github.com/segmentd/segmentd/ent/membership"
	"github.com/segmentd/segmentd/ent/schema/pulid"
	"github.com/segmentd/segmentd/ent/user"
	"github.com/segmentd/segmentd/ledger"
	"github.com/segmentd/segmentd/trigger"
)

// dynamicPage is how many users a DYNAMIC fill reads at a time.
const dynamicPage = 1000

// syncDynamic makes a DYNAMIC segment's members exactly the users for whom
// its condition holds now, inside the create or update transaction: users
// who match and are not members enter, members who do not match leave,
// both with source BACKFILL (the segment's rules, not a user's change,
// caused them). It returns the topics to publish after commit.
func (s *Service) syncDynamic(ctx context.Context, tx *ent.Tx, seg *ent.Segment) (ledger.Topics, error) {
	root, err := ConditionTree(ctx, tx.Client(), seg.ID)
	if err != nil {
		return ledger.Topics{}, err
	}
	prog, err := trigger.Compile(TriggerNode(root))
	if err != nil {
		return ledger.Topics{}, fmt.Errorf("compile conditions: %w", err)
	}
	members, err := tx.Membership.Query().Where(membership.SegmentRef(seg.ID)).All(ctx)
	if err != nil {
		return ledger.Topics{}, fmt.Errorf("load members: %w", err)
	}
	byUser := make(map[pulid.ID]*ent.Membership, len(members))
	for _, m := range members {
		byUser[m.UserRef] = m
	}
	now := s.now()
	w := s.ledger().Writer(tx)
	// The clock's deadlines follow the new condition: none, or one for
	// each user the clock can move (written below).
	if err := w.ClearReevaluations(ctx, seg.ID, ""); err != nil {
		return ledger.Topics{}, err
	}
	x := &exitSegment{segment: seg, program: prog}
	x.setBehaviors(prog)
	x.timeDependent = hasOperator(TriggerNode(root), trigger.OpWithinLast) || len(x.behaviors) > 0
	build, err := s.keysToBuild(ctx, tx, seg.ID, prog)
	if err != nil {
		return ledger.Topics{}, err
	}
	pages := func(fn func([]*ent.User) error) error { return eachUserPage(ctx, tx.Client(), s.usersPerPage(), fn) }
	if len(build) > 0 {
		pages = func(fn func([]*ent.User) error) error { return s.eachUserPageWithProgress(ctx, tx, seg, fn) }
	}
	err = pages(func(page []*ent.User) error {
		// The behaviours' states: kept by other segments, or built from
		// the page's stored events.
		bs, err := statesForPage(ctx, tx, now, prog, page, build)
		if err != nil {
			return err
		}
		var (
			entries []ledger.Entry
			exits   []ledger.Exit
			reevals []ledger.Reevaluation
		)
		for _, u := range page {
			env := bs.envFor(u.ID, prog, u.Traits, now)
			if x.timeDependent {
				if at := x.nextReevaluation(env); at != nil {
					reevals = append(reevals, ledger.Reevaluation{Segment: seg.ID, User: u.ID, At: at})
				}
			}
			r := prog.Eval(env)
			m := byUser[u.ID]
			switch {
			case r.Matched && m == nil:
				entries = append(entries, ledger.Entry{Segment: seg.ID, User: u.ID, Source: changelog.SourceBackfill, At: now,
					Reason: "filled from current traits: " + strings.TrimPrefix(r.Reason, "matched: ")})
			case !r.Matched && m != nil:
				exits = append(exits, ledger.ExitOf(m, changelog.SourceBackfill, "left: "+r.Reason, now))
			}
		}
		if _, err := w.ExitMany(ctx, exits); err != nil {
			return err
		}
		if _, err := w.EnterMany(ctx, entries); err != nil {
			return err
		}
		return w.ScheduleReevaluations(ctx, reevals)
	})
	if err != nil {
		return ledger.Topics{}, err
	}
	if err := s.dropUnusedBehaviorStates(ctx, tx); err != nil {
		return ledger.Topics{}, err
	}
	return w.Flush(ctx)
}

// eachUserPage hands every user (erased users left out) to fn, per users
// at a time in ID order.
func eachUserPage(ctx context.Context, client *ent.Client, per int, fn func([]*ent.User) error) error {
	var after pulid.ID
	for {
		// An erased user's tombstone (no traits) is nobody: a condition
		// that holds for empty traits must not take it in.
		q := client.User.Query().Where(NotErased()).Order(ent.Asc(user.FieldID)).Limit(per)
		if after != "" {
			q = q.Where(user.IDGT(after))
		}
		page, err := q.All(ctx)
		if err != nil {
			return fmt.Errorf("load users: %w", err)
		}
		if len(page) == 0 {
			return nil
		}
		after = page[len(page)-1].ID
		if err := fn(page); err != nil {
			return err
		}
	}
}

// reconcileExits returns the exits that a segment's exit rules would have
// made of its current members (RECONCILE): whenConditionFails removes the
// members whose current traits fail the condition (as a trait change
// would), onEvents the members with a stored exit event since they
// entered. Members in gone already leave. `after` is left to the expiry
// sweep, which removes every membership past its deadline anyway.
func (s *Service) reconcileExits(ctx context.Context, tx *ent.Tx, seg *ent.Segment, members []*ent.Membership, gone map[pulid.ID]bool, now time.Time) ([]ledger.Exit, error) {
	if !seg.ExitWhenConditionFails && len(seg.ExitOnEvents) == 0 {
		return nil, nil
	}
	x, err := compileExitSegment(ctx, tx.Client(), seg)
	if err != nil {
		return nil, err
	}
	var exits []ledger.Exit
	for start := 0; start < len(members); start += dynamicPage {
		chunk := members[start:min(start+dynamicPage, len(members))]
		refs := make([]pulid.ID, 0, len(chunk))
		for _, m := range chunk {
			refs = append(refs, m.UserRef)
		}
		users, err := tx.User.Query().Where(user.IDIn(refs...)).All(ctx)
		if err != nil {
			return nil, fmt.Errorf("load members' users: %w", err)
		}
		traits := make(map[pulid.ID]map[string]any, len(users))
		for _, u := range users {
			traits[u.ID] = u.Traits
		}
		// The behaviours' states, as the update left them.
		bs, err := loadBehaviorStates(ctx, tx.BehaviorState, now, programKeys(x.traitProgram), refs)
		if err != nil {
			return nil, err
		}
		exitEvents := map[pulid.ID][]*ent.Event{}
		// counted: the events an exit condition's behaviours count, each
		// user's in arrival order, to judge each exit event as ingestion
		// did (see exitHistoryEnv).
		counted := map[pulid.ID][]*ent.Event{}
		if len(seg.ExitOnEvents) > 0 {
			names := append([]string{}, seg.ExitOnEvents...)
			for _, b := range x.exitEvent.Behaviors() {
				names = append(names, b.Event)
			}
			evs, err := tx.Event.Query().Where(event.TypeEQ(event.TypeTRACK), event.NameIn(names...), event.UserRefIn(refs...)).
				Order(ent.Asc(event.FieldReceivedAt), ent.Asc(event.FieldID)).All(ctx)
			if err != nil {
				return nil, fmt.Errorf("load exit events: %w", err)
			}
			for _, e := range evs {
				counted[*e.UserRef] = append(counted[*e.UserRef], e)
				if slices.Contains(seg.ExitOnEvents, *e.Name) {
					exitEvents[*e.UserRef] = append(exitEvents[*e.UserRef], e)
				}
			}
		}
		for _, m := range chunk {
			if gone[m.ID] || m.Source == changelog.SourceManual || m.Source == changelog.SourceImport {
				continue
			}
			if seg.ExitWhenConditionFails {
				if r := x.traitProgram.Eval(bs.envFor(m.UserRef, x.traitProgram, traits[m.UserRef], now)); !r.Matched {
					exits = append(exits, ledger.ExitOf(m, changelog.SourceBackfill, "reconciled: left: "+r.Reason, now))
					continue
				}
			}
			for _, e := range exitEvents[m.UserRef] {
				if e.ReceivedAt.Before(m.EnteredAt) {
					continue
				}
				if x.exitEvent == nil || x.exitEvent.Eval(exitHistoryEnv(x.exitEvent, counted[m.UserRef], e, traits[m.UserRef])).Matched {
					exits = append(exits, ledger.ExitOf(m, changelog.SourceBackfill, fmt.Sprintf("reconciled: left on event %q (%s)", *e.Name, e.ID), now))
					break
				}
			}
		}
	}
	return exits, nil
}
