package service

import (
	"context"
	"fmt"

	"github.com/segmentd/segmentd"
	"github.com/segmentd/segmentd/ent"
	"github.com/segmentd/segmentd/ent/condition"
	"github.com/segmentd/segmentd/ent/schema/pulid"
	"github.com/segmentd/segmentd/ent/segment"
	"github.com/segmentd/segmentd/trigger"
)

const exitRulesField = "input.exitRules"

// ExitRulesInput is the GraphQL input of a segment's exit rules.
type ExitRulesInput struct {
	WhenConditionFails *bool
	OnEvents           []string
	OnEventCondition   *trigger.ConditionInput
	After              *string
}

// ExitRules is what the API shows of a segment's exit rules; the exit-event
// condition tree is loaded by the resolver from SegmentID.
type ExitRules struct {
	SegmentID          pulid.ID
	WhenConditionFails bool
	OnEvents           []string
	After              *string
}

// exitRules is a validated ExitRulesInput, ready to store.
type exitRules struct {
	whenConditionFails bool
	onEvents           []string
	onEventCondition   *trigger.Node
	after              *string
}

// SegmentExitRules returns a segment's exit rules, or nil when it has none.
func SegmentExitRules(seg *ent.Segment) *ExitRules {
	if !HasExitRules(seg) {
		return nil
	}
	onEvents := seg.ExitOnEvents
	if onEvents == nil {
		onEvents = []string{}
	}
	return &ExitRules{SegmentID: seg.ID, WhenConditionFails: seg.ExitWhenConditionFails, OnEvents: onEvents, After: seg.ExitAfter}
}

// HasExitRules says whether members of seg can leave by a rule.
func HasExitRules(seg *ent.Segment) bool {
	return seg.ExitWhenConditionFails || len(seg.ExitOnEvents) > 0 || seg.ExitAfter != nil
}

// parseExitRules validates exit rules against the segment's kind, whether
// it has a condition and how many behaviour predicates (performed) that
// condition holds: the limit of trigger.MaxPerformed is the segment's,
// condition and exit condition together. A nil input gives nil.
func parseExitRules(in *ExitRulesInput, kind segment.Kind, hasCondition bool, entryPerformed int) (*exitRules, error) {
	if in == nil {
		return nil, nil
	}
	out := &exitRules{whenConditionFails: in.WhenConditionFails != nil && *in.WhenConditionFails}
	if out.whenConditionFails && !hasCondition {
		return nil, segmentd.Invalid(exitRulesField+".whenConditionFails", "needs a condition: without one the condition never fails")
	}
	if in.OnEvents != nil {
		events, err := cleanTriggerEvents(exitRulesField+".onEvents", in.OnEvents)
		if err != nil {
			return nil, err
		}
		out.onEvents = events
	}
	if kind == segment.KindDYNAMIC && len(out.onEvents) > 0 {
		return nil, segmentd.Invalid(exitRulesField+".onEvents", "a DYNAMIC segment's members leave exactly when its condition stops holding")
	}
	if in.OnEventCondition != nil {
		if len(out.onEvents) == 0 {
			return nil, segmentd.Invalid(exitRulesField+".onEventCondition", "needs onEvents: the events whose condition it is")
		}
		root, err := trigger.ParseAt(in.OnEventCondition, exitRulesField+".onEventCondition")
		if err != nil {
			return nil, asInvalid(err)
		}
		prog, err := trigger.Compile(root)
		if err != nil {
			return nil, asInvalid(err)
		}
		// A behaviour here is judged when the exit event arrives, that
		// event counted ("left on Purchase once it was the 3rd in 7d").
		if n := len(prog.Behaviors()); n > 0 && n+entryPerformed > trigger.MaxPerformed {
			return nil, segmentd.Invalid(exitRulesField+".onEventCondition",
				"at most %d behaviour predicates (performed) in one segment, its condition (%d) and exit condition (%d) together",
				trigger.MaxPerformed, entryPerformed, n)
		}
		out.onEventCondition = root
	}
	if in.After != nil {
		if kind == segment.KindDYNAMIC {
			return nil, segmentd.Invalid(exitRulesField+".after", "a DYNAMIC segment's members leave exactly when its condition stops holding")
		}
		if _, err := trigger.ParseDuration(*in.After); err != nil {
			return nil, segmentd.Invalid(exitRulesField+".after", "%v", err)
		}
		after := *in.After
		out.after = &after
	}
	return out, nil
}

func asInvalid(err error) error {
	if perr, ok := err.(*trigger.Error); ok {
		return segmentd.Invalid(perr.Path, "%s", perr.Message)
	}
	return err
}

// checkDynamic validates a DYNAMIC segment's definition: no trigger events,
// and a condition on traits alone, since it is evaluated without an event.
func checkDynamic(events []string, root *trigger.Node) error {
	if len(events) > 0 {
		return segmentd.Invalid("input.triggerEvents", "a DYNAMIC segment has no trigger events: it is checked on each of the user's events and trait changes")
	}
	if root == nil {
		return segmentd.Invalid(conditionInputField, "a DYNAMIC segment needs a condition: its members are the users for whom it holds")
	}
	if path := eventScopePath(root, conditionInputField); path != "" {
		return segmentd.Invalid(path, "a DYNAMIC segment's condition tests user traits only (scope USER): it is evaluated without an event")
	}
	return nil
}

// eventScopePath returns the input path of the first EVENT-scope predicate
// in n, with the same path syntax as trigger.ParseAt, or "".
func eventScopePath(n *trigger.Node, path string) string {
	switch n.Kind {
	case trigger.KindPredicate:
		if n.Scope == trigger.ScopeEvent {
			return path + ".scope"
		}
	case trigger.KindNot:
		return eventScopePath(n.Children[0], path+".not")
	case trigger.KindAnd, trigger.KindOr:
		field := "and"
		if n.Kind == trigger.KindOr {
			field = "or"
		}
		for i, ch := range n.Children {
			if p := eventScopePath(ch, fmt.Sprintf("%s.%s[%d]", path, field, i)); p != "" {
				return p
			}
		}
	}
	return ""
}

// setExitRules stores rules (nil: none) on a segment being created or
// updated, replacing its exit-event condition tree.
func setExitRules(ctx context.Context, tx *ent.Tx, segmentID pulid.ID, rules *exitRules) error {
	if rules == nil {
		rules = &exitRules{}
	}
	upd := tx.Segment.UpdateOneID(segmentID).
		SetExitWhenConditionFails(rules.whenConditionFails).
		SetExitOnEvents(append([]string{}, rules.onEvents...)).
		SetNillableExitAfter(rules.after)
	if rules.after == nil {
		upd.ClearExitAfter()
	}
	if err := upd.Exec(ctx); err != nil {
		return fmt.Errorf("save exit rules: %w", err)
	}
	if _, err := tx.Condition.Delete().Where(condition.SegmentRef(segmentID), condition.TreeEQ(condition.TreeEXIT_EVENT)).Exec(ctx); err != nil {
		return fmt.Errorf("delete exit condition: %w", err)
	}
	return saveConditionTree(ctx, tx, segmentID, condition.TreeEXIT_EVENT, rules.onEventCondition)
}

// ExitConditionTree loads the condition of a segment's exit events, or nil.
func ExitConditionTree(ctx context.Context, client *ent.Client, segmentID pulid.ID) (*ent.Condition, error) {
	rows, err := client.Condition.Query().Where(condition.SegmentRef(segmentID), condition.TreeEQ(condition.TreeEXIT_EVENT)).All(ctx)
	if err != nil {
		return nil, fmt.Errorf("load exit conditions: %w", err)
	}
	return BuildTree(rows), nil
}
