package service

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/segmentd/segmentd"
	"github.com/segmentd/segmentd/ent"
	"github.com/segmentd/segmentd/ent/campaign"
	"github.com/segmentd/segmentd/ent/condition"
	"github.com/segmentd/segmentd/ent/schema/pulid"
	"github.com/segmentd/segmentd/ent/segment"
	"github.com/segmentd/segmentd/ent/segmenttrigger"
	"github.com/segmentd/segmentd/ledger"
	"github.com/segmentd/segmentd/trigger"
)

// Limits on segment definitions.
const (
	MaxNameLen          = 200
	MaxDescriptionLen   = 2000
	MaxTriggerEvents    = 50
	MaxEventNameLen     = 256
	conditionInputField = "input.condition"
)

// CreateSegmentInput is the GraphQL input of createSegment.
type CreateSegmentInput struct {
	Name          string
	Description   *string
	Kind          segment.Kind
	TriggerEvents []string
	Condition     *trigger.ConditionInput
	ExitRules     *ExitRulesInput
}

// UpdateSegmentInput is the GraphQL input of updateSegment; nil fields stay
// as they are.
type UpdateSegmentInput struct {
	Name             *string
	Description      *string
	ClearDescription *bool
	TriggerEvents    []string
	Condition        *trigger.ConditionInput
	ClearCondition   *bool
	ExitRules        *ExitRulesInput
	ClearExitRules   *bool
}

// ReevaluationPolicy says what an update does to existing members.
type ReevaluationPolicy string

// The reevaluation policies.
const (
	FutureOnly ReevaluationPolicy = "FUTURE_ONLY"
	Backfill   ReevaluationPolicy = "BACKFILL"
	Reconcile  ReevaluationPolicy = "RECONCILE"
)

// newSegment is a CreateSegmentInput that passed validateNewSegment.
type newSegment struct {
	name   string
	desc   *string
	kind   segment.Kind
	events []string // trimmed, without repeats
	root   *trigger.Node
	exits  *exitRules // nil: none
}

// validateNewSegment checks a CreateSegmentInput as createSegment does
// (and previewSegment, with the same codes and fields): BAD_USER_INPUT
// naming the field at fault.
func validateNewSegment(in CreateSegmentInput) (*newSegment, error) {
	name, err := cleanName("input.name", in.Name)
	if err != nil {
		return nil, err
	}
	desc, err := cleanDescription("input.description", in.Description)
	if err != nil {
		return nil, err
	}
	if err := segment.KindValidator(in.Kind); err != nil {
		return nil, segmentd.Invalid("input.kind", "unknown kind %q", in.Kind)
	}
	events, err := cleanTriggerEvents("input.triggerEvents", in.TriggerEvents)
	if err != nil {
		return nil, err
	}
	root, err := parseCondition(in.Condition)
	if err != nil {
		return nil, err
	}
	switch in.Kind {
	case segment.KindSTATIC:
		if len(events) > 0 {
			return nil, segmentd.Invalid("input.triggerEvents", "a STATIC segment has no trigger events: its users are added by hand or by import")
		}
		if root != nil {
			return nil, segmentd.Invalid(conditionInputField, "a STATIC segment has no conditions: its users are added by hand or by import")
		}
	case segment.KindEVENT_TRIGGERED:
		if len(events) == 0 {
			return nil, segmentd.Invalid("input.triggerEvents", "an EVENT_TRIGGERED segment needs at least one trigger event")
		}
	case segment.KindDYNAMIC:
		if err := checkDynamic(events, root); err != nil {
			return nil, err
		}
	}
	exits, err := parseExitRules(in.ExitRules, in.Kind, root != nil, countPerformed(root))
	if err != nil {
		return nil, err
	}
	return &newSegment{name: name, desc: desc, kind: in.Kind, events: events, root: root, exits: exits}, nil
}

// CreateSegment validates and stores a new segment with its condition tree
// and exit rules; a DYNAMIC segment is filled with the users for whom its
// condition holds.
func (s *Service) CreateSegment(ctx context.Context, in CreateSegmentInput) (*ent.Segment, error) {
	def, err := validateNewSegment(in)
	if err != nil {
		return nil, err
	}
	name, desc, events, root, exits := def.name, def.desc, def.events, def.root, def.exits
	var (
		created *ent.Segment
		topics  ledger.Topics
	)
	err = s.inTx(ctx, func(tx *ent.Tx) error {
		now := s.now()
		seg, err := tx.Segment.Create().
			SetName(name).
			SetNillableDescription(desc).
			SetKind(in.Kind).
			SetTriggerEvents(events).
			SetCreatedAt(now).
			SetUpdatedAt(now).
			Save(ctx)
		if err != nil {
			return fmt.Errorf("create segment: %w", err)
		}
		if err := saveTriggers(ctx, tx, seg.ID, events); err != nil {
			return err
		}
		if err := saveCondition(ctx, tx, seg.ID, root); err != nil {
			return err
		}
		if exits != nil {
			if err := setExitRules(ctx, tx, seg.ID, exits); err != nil {
				return err
			}
			if seg, err = tx.Segment.Get(ctx, seg.ID); err != nil {
				return err
			}
		}
		created = seg
		if seg.Kind == segment.KindDYNAMIC {
			topics, err = s.syncDynamic(ctx, tx, seg)
			return err
		}
		if !hasBehaviors(root) && (exits == nil || !hasBehaviors(exits.onEventCondition)) {
			return nil // a new segment without behaviours leaves no state unused
		}
		return s.rebuildBehaviorStates(ctx, tx, seg)
	})
	if err != nil {
		return nil, fmt.Errorf("service.CreateSegment: %w", err)
	}
	s.publish(topics)
	return created.Unwrap(), nil
}

// UpdateSegment changes a segment in one transaction. With FUTURE_ONLY,
// members stay and the new rules apply to events from now on; BACKFILL and
// RECONCILE also apply them to the stored events (see reevaluate).
func (s *Service) UpdateSegment(ctx context.Context, id pulid.ID, in UpdateSegmentInput, policy ReevaluationPolicy) (*ent.Segment, error) {
	switch policy {
	case "":
		policy = FutureOnly
	case FutureOnly, Backfill, Reconcile:
	default:
		return nil, segmentd.Invalid("reevaluate", "unknown reevaluation policy %q", policy)
	}
	var (
		name, desc *string
		err        error
	)
	if in.Name != nil {
		n, err := cleanName("input.name", *in.Name)
		if err != nil {
			return nil, err
		}
		name = &n
	}
	if in.Description != nil && in.ClearDescription != nil && *in.ClearDescription {
		return nil, segmentd.Invalid("input.clearDescription", "give either description or clearDescription, not both")
	}
	if desc, err = cleanDescription("input.description", in.Description); err != nil {
		return nil, err
	}
	clearCond := in.ClearCondition != nil && *in.ClearCondition
	if clearCond && in.Condition != nil {
		return nil, segmentd.Invalid("input.clearCondition", "give either condition or clearCondition, not both")
	}
	root, err := parseCondition(in.Condition)
	if err != nil {
		return nil, err
	}
	clearExits := in.ClearExitRules != nil && *in.ClearExitRules
	if clearExits && in.ExitRules != nil {
		return nil, segmentd.Invalid("input.clearExitRules", "give either exitRules or clearExitRules, not both")
	}
	var (
		updated *ent.Segment
		topics  ledger.Topics
	)
	err = s.inTx(ctx, func(tx *ent.Tx) error {
		seg, err := tx.Segment.Get(ctx, id)
		if ent.IsNotFound(err) {
			return segmentd.Errorf(segmentd.CodeNotFound, "no segment with id %q", id)
		}
		if err != nil {
			return err
		}
		upd := tx.Segment.UpdateOneID(id).SetUpdatedAt(s.now())
		if name != nil {
			upd.SetName(*name)
		}
		if desc != nil {
			upd.SetDescription(*desc)
		}
		if in.ClearDescription != nil && *in.ClearDescription {
			upd.ClearDescription()
		}
		if in.TriggerEvents != nil {
			if err := replaceTriggers(ctx, tx, seg, upd, in.TriggerEvents); err != nil {
				return err
			}
		}
		if root != nil || clearCond {
			if err := replaceCondition(ctx, tx, seg, root); err != nil {
				return err
			}
		}
		if err := updateExitRules(ctx, tx, seg, in, root, clearCond, clearExits); err != nil {
			return err
		}
		if updated, err = upd.Save(ctx); err != nil {
			return fmt.Errorf("update segment: %w", err)
		}
		return s.applyRuleChange(ctx, tx, seg, updated, policy, &topics)
	})
	if err != nil {
		return nil, fmt.Errorf("service.UpdateSegment: %w", err)
	}
	s.publish(topics)
	return updated.Unwrap(), nil
}

// replaceTriggers sets the trigger events of an update.
func replaceTriggers(ctx context.Context, tx *ent.Tx, seg *ent.Segment, upd *ent.SegmentUpdateOne, triggerEvents []string) error {
	events, err := cleanTriggerEvents("input.triggerEvents", triggerEvents)
	if err != nil {
		return err
	}
	if seg.Kind == segment.KindSTATIC && len(events) > 0 {
		return segmentd.Invalid("input.triggerEvents", "a STATIC segment has no trigger events")
	}
	if seg.Kind == segment.KindEVENT_TRIGGERED && len(events) == 0 {
		return segmentd.Invalid("input.triggerEvents", "an EVENT_TRIGGERED segment needs at least one trigger event")
	}
	if seg.Kind == segment.KindDYNAMIC && len(events) > 0 {
		return segmentd.Invalid("input.triggerEvents", "a DYNAMIC segment has no trigger events: it is checked on each of the user's events and trait changes")
	}
	upd.SetTriggerEvents(events)
	if _, err := tx.SegmentTrigger.Delete().Where(segmenttrigger.SegmentRef(seg.ID)).Exec(ctx); err != nil {
		return fmt.Errorf("delete triggers: %w", err)
	}
	if err := saveTriggers(ctx, tx, seg.ID, events); err != nil {
		return err
	}
	return nil
}

// replaceCondition replaces the entry condition of an update (root nil:
// cleared).
func replaceCondition(ctx context.Context, tx *ent.Tx, seg *ent.Segment, root *trigger.Node) error {
	if root != nil && seg.Kind == segment.KindSTATIC {
		return segmentd.Invalid(conditionInputField, "a STATIC segment has no conditions")
	}
	if seg.Kind == segment.KindDYNAMIC {
		if err := checkDynamic(nil, root); err != nil {
			return err
		}
	}
	if _, err := tx.Condition.Delete().Where(condition.SegmentRef(seg.ID), condition.TreeEQ(condition.TreeENTRY)).Exec(ctx); err != nil {
		return fmt.Errorf("delete conditions: %w", err)
	}
	if err := saveCondition(ctx, tx, seg.ID, root); err != nil {
		return err
	}
	return nil
}

// updateExitRules applies an update's exit rules, checked against the
// condition the segment will have.
func updateExitRules(ctx context.Context, tx *ent.Tx, seg *ent.Segment, in UpdateSegmentInput, root *trigger.Node, clearCond, clearExits bool) error {
	// A cleared condition cannot keep whenConditionFails.
	hasCondition, performed := root != nil, countPerformed(root)
	if !clearCond && root == nil {
		kept, err := ConditionTree(ctx, tx.Client(), seg.ID)
		if err != nil {
			return err
		}
		hasCondition, performed = kept != nil, countPerformed(TriggerNode(kept))
	}
	switch {
	case in.ExitRules != nil:
		exits, err := parseExitRules(in.ExitRules, seg.Kind, hasCondition, performed)
		if err != nil {
			return err
		}
		if err := setExitRules(ctx, tx, seg.ID, exits); err != nil {
			return err
		}
	case clearExits:
		if err := setExitRules(ctx, tx, seg.ID, nil); err != nil {
			return err
		}
	case clearCond && seg.ExitWhenConditionFails:
		return segmentd.Invalid("input.clearCondition", "exitRules.whenConditionFails needs a condition: clear or change the exit rules too")
	case performed > 0 && len(seg.ExitOnEvents) > 0:
		// A new condition beside the kept exit condition: the limit on
		// behaviour predicates is the segment's.
		exitRoot, err := ExitConditionTree(ctx, tx.Client(), seg.ID)
		if err != nil {
			return err
		}
		if n := countPerformed(TriggerNode(exitRoot)); n > 0 && n+performed > trigger.MaxPerformed {
			return segmentd.Invalid(conditionInputField,
				"at most %d behaviour predicates (performed) in one segment, its condition (%d) and exit condition (%d) together",
				trigger.MaxPerformed, performed, n)
		}
	}
	return nil
}

// applyRuleChange brings the memberships in line with an update's new
// rules: expiry and re-evaluation deadlines, a DYNAMIC segment's fill, or
// the reevaluation policy.
func (s *Service) applyRuleChange(ctx context.Context, tx *ent.Tx, seg, updated *ent.Segment, policy ReevaluationPolicy, topics *ledger.Topics) error {
	if err := s.rescheduleExpiries(ctx, tx, seg, updated, topics); err != nil {
		return err
	}
	if policy != FutureOnly && seg.Kind == segment.KindSTATIC {
		return segmentd.Invalid("reevaluate", "a STATIC segment has no rules to reevaluate; use FUTURE_ONLY")
	}
	if seg.Kind == segment.KindDYNAMIC {
		// Membership of a DYNAMIC segment is its condition now, so
		// every policy brings it in line with the new rules.
		synced, err := s.syncDynamic(ctx, tx, updated)
		topics.Merge(synced)
		return err
	}
	if err := s.rebuildBehaviorStates(ctx, tx, updated); err != nil {
		return err
	}
	reevaluated, err := s.reevaluate(ctx, tx, updated, policy)
	topics.Merge(reevaluated)
	if err != nil {
		return err
	}
	return s.rescheduleReevaluations(ctx, tx, updated, topics)
}

// DeleteSegment deletes a segment with its conditions, memberships and
// history. It is refused with CONFLICT while an ACTIVE campaign uses the
// segment; other campaigns lose their segment.
func (s *Service) DeleteSegment(ctx context.Context, id pulid.ID) error {
	sq := s.sql
	err := s.inTx(ctx, func(tx *ent.Tx) error {
		// Lock the row so that no campaign can take this segment while we
		// check.
		if _, err := tx.Segment.Query().Where(segment.ID(id), sq.lockForUpdate).Only(ctx); ent.IsNotFound(err) {
			return segmentd.Errorf(segmentd.CodeNotFound, "no segment with id %q", id)
		} else if err != nil {
			return err
		}
		active, err := tx.Campaign.Query().
			Where(campaign.SegmentRef(id), campaign.StatusEQ(campaign.StatusACTIVE)).
			Select(campaign.FieldName).Strings(ctx)
		if err != nil {
			return err
		}
		if len(active) > 0 {
			return segmentd.Errorf(segmentd.CodeConflict,
				"segment %s is the audience of ACTIVE campaign(s) %s: pause, end or move them first", id, quoteList(active))
		}
		if _, err := tx.Campaign.Update().Where(campaign.SegmentRef(id)).ClearSegmentRef().Save(ctx); err != nil {
			return fmt.Errorf("detach campaigns: %w", err)
		}
		if err := s.ledger().Writer(tx).DropSegmentDeadlines(ctx, id); err != nil {
			return err
		}
		if err := tx.Segment.DeleteOneID(id).Exec(ctx); err != nil {
			return err
		}
		return s.dropUnusedBehaviorStates(ctx, tx)
	})
	if err != nil {
		return fmt.Errorf("service.DeleteSegment: %w", err)
	}
	return nil
}

// ConditionTree loads a segment's condition tree: the root with every
// node's children loaded in order, or nil when the segment has none.
func ConditionTree(ctx context.Context, client *ent.Client, segmentID pulid.ID) (*ent.Condition, error) {
	rows, err := client.Condition.Query().Where(condition.SegmentRef(segmentID), condition.TreeEQ(condition.TreeENTRY)).All(ctx)
	if err != nil {
		return nil, fmt.Errorf("load conditions: %w", err)
	}
	return BuildTree(rows), nil
}

// BuildTree links condition rows into a tree and returns its root.
func BuildTree(rows []*ent.Condition) *ent.Condition {
	byID := make(map[pulid.ID]*ent.Condition, len(rows))
	for _, r := range rows {
		r.Edges.Children = []*ent.Condition{}
		byID[r.ID] = r
	}
	var root *ent.Condition
	for _, r := range rows {
		if r.ParentRef == nil {
			root = r
			continue
		}
		if p := byID[*r.ParentRef]; p != nil {
			p.Edges.Children = append(p.Edges.Children, r)
		}
	}
	for _, r := range rows {
		sort.Slice(r.Edges.Children, func(i, j int) bool {
			return r.Edges.Children[i].Position < r.Edges.Children[j].Position
		})
	}
	return root
}

// TriggerNode converts a loaded condition tree to the condition language's
// form, for evaluation and text.
func TriggerNode(c *ent.Condition) *trigger.Node {
	if c == nil {
		return nil
	}
	n := &trigger.Node{Kind: c.Kind, Value: c.Value}
	if c.Scope != nil {
		n.Scope = *c.Scope
	}
	if c.Property != nil {
		n.Property = *c.Property
	}
	if c.Operator != nil {
		n.Operator = *c.Operator
	}
	if c.Kind == trigger.KindPerformed {
		// The where tree is the node's one child.
		if c.Performed != nil {
			pn := *c.Performed
			if len(c.Edges.Children) > 0 {
				pn.Where = TriggerNode(c.Edges.Children[0])
			}
			n.Performed = &pn
		}
		return n
	}
	for _, ch := range c.Edges.Children {
		n.Children = append(n.Children, TriggerNode(ch))
	}
	return n
}

func parseCondition(in *trigger.ConditionInput) (*trigger.Node, error) {
	if in == nil {
		return nil, nil
	}
	root, err := trigger.ParseAt(in, conditionInputField)
	var perr *trigger.Error
	if errors.As(err, &perr) {
		return nil, segmentd.Invalid(perr.Path, "%s", perr.Message)
	}
	return root, err
}

// saveCondition inserts the tree in pre-order (parents before children) with
// one multi-row INSERT.
func saveCondition(ctx context.Context, tx *ent.Tx, segmentID pulid.ID, root *trigger.Node) error {
	return saveConditionTree(ctx, tx, segmentID, condition.TreeENTRY, root)
}

// saveConditionTree is saveCondition for either of a segment's trees.
func saveConditionTree(ctx context.Context, tx *ent.Tx, segmentID pulid.ID, tree condition.Tree, root *trigger.Node) error {
	if root == nil {
		return nil
	}
	var builders []*ent.ConditionCreate
	var walk func(n *trigger.Node, parent *pulid.ID, pos int)
	walk = func(n *trigger.Node, parent *pulid.ID, pos int) {
		id := pulid.New("cnd")
		b := tx.Condition.Create().
			SetID(id).
			SetSegmentRef(segmentID).
			SetTree(tree).
			SetNillableParentRef(parent).
			SetPosition(pos).
			SetKind(n.Kind)
		if n.Kind == trigger.KindPredicate {
			b.SetScope(n.Scope).SetProperty(n.Property).SetOperator(n.Operator)
			if n.Value != nil {
				b.SetValue(n.Value)
			}
		}
		builders = append(builders, b)
		if n.Kind == trigger.KindPerformed && n.Performed != nil {
			// The event, window and measure in the row; the where tree
			// as its one child.
			pn := *n.Performed
			pn.Where = nil
			b.SetPerformed(&pn)
			if n.Performed.Where != nil {
				walk(n.Performed.Where, &id, 0)
			}
			return
		}
		for i, ch := range n.Children {
			walk(ch, &id, i)
		}
	}
	walk(root, nil, 0)
	if err := tx.Condition.CreateBulk(builders...).Exec(ctx); err != nil {
		return fmt.Errorf("save conditions: %w", err)
	}
	return nil
}

func saveTriggers(ctx context.Context, tx *ent.Tx, segmentID pulid.ID, events []string) error {
	if len(events) == 0 {
		return nil
	}
	builders := make([]*ent.SegmentTriggerCreate, len(events))
	for i, e := range events {
		builders[i] = tx.SegmentTrigger.Create().SetSegmentRef(segmentID).SetEventName(e)
	}
	if err := tx.SegmentTrigger.CreateBulk(builders...).Exec(ctx); err != nil {
		return fmt.Errorf("save trigger events: %w", err)
	}
	return nil
}

func cleanName(field, s string) (string, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return "", segmentd.Invalid(field, "must not be empty")
	case utf8.RuneCountInString(s) > MaxNameLen:
		return "", segmentd.Invalid(field, "must be at most %d characters", MaxNameLen)
	case hasControl(s):
		return "", segmentd.Invalid(field, "must not contain control characters")
	}
	return s, nil
}

func cleanDescription(field string, s *string) (*string, error) {
	if s == nil {
		return nil, nil
	}
	if utf8.RuneCountInString(*s) > MaxDescriptionLen {
		return nil, segmentd.Invalid(field, "must be at most %d characters", MaxDescriptionLen)
	}
	return s, nil
}

// cleanTriggerEvents trims names and drops repeats, keeping the first order.
func cleanTriggerEvents(field string, names []string) ([]string, error) {
	out := make([]string, 0, len(names))
	seen := map[string]bool{}
	for i, n := range names {
		n = strings.TrimSpace(n)
		switch {
		case n == "":
			return nil, segmentd.Invalid(fmt.Sprintf("%s[%d]", field, i), "an event name must not be empty")
		case len(n) > MaxEventNameLen:
			return nil, segmentd.Invalid(fmt.Sprintf("%s[%d]", field, i), "an event name must be at most %d bytes", MaxEventNameLen)
		case hasControl(n):
			return nil, segmentd.Invalid(fmt.Sprintf("%s[%d]", field, i), "an event name must not contain control characters")
		}
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	if len(out) > MaxTriggerEvents {
		return nil, segmentd.Invalid(field, "at most %d trigger events", MaxTriggerEvents)
	}
	return out, nil
}

func hasControl(s string) bool {
	return strings.IndexFunc(s, unicode.IsControl) >= 0 || !utf8.ValidString(s)
}

func quoteList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("%q", n)
	}
	return strings.Join(q, ", ")
}
