package graph

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	"github.com/segmentd/segmentd/ent"
	"github.com/segmentd/segmentd/ent/condition"
	"github.com/segmentd/segmentd/graph/model"
	"github.com/segmentd/segmentd/trigger"
)

// conditionChildren are a group's children in order. A PERFORMED node's one
// child is its where tree, which the API shows as performed.where instead.
func conditionChildren(ctx context.Context, c *ent.Condition) ([]*ent.Condition, error) {
	if c.Kind == trigger.KindPerformed {
		return []*ent.Condition{}, nil
	}
	if c.Edges.Children != nil {
		return c.Edges.Children, nil
	}
	return c.QueryChildren().Order(ent.Asc(condition.FieldPosition)).All(ctx)
}

// performedOf is a PERFORMED node's predicate as the API shows it; nil for
// any other kind.
func performedOf(ctx context.Context, c *ent.Condition) (*model.Performed, error) {
	if c.Kind != trigger.KindPerformed || c.Performed == nil {
		return nil, nil
	}
	pn := c.Performed
	out := &model.Performed{Event: pn.Event}
	if pn.Within != "" {
		w := pn.Within
		out.Within = &w
	}
	if pn.Count != nil {
		v, err := jsonValue(pn.Count.Value)
		if err != nil {
			return nil, fmt.Errorf("condition %s: count: %w", c.ID, err)
		}
		out.Count = &model.Comparison{Operator: pn.Count.Operator, Value: v}
	}
	if a := pn.Aggregate; a != nil {
		v, err := jsonValue(a.Value)
		if err != nil {
			return nil, fmt.Errorf("condition %s: aggregate: %w", c.ID, err)
		}
		out.Aggregate = &model.Aggregate{Function: a.Function, Property: a.Property, Operator: a.Operator, Value: v}
	}
	where := c.Edges.Children
	if where == nil {
		var err error
		if where, err = c.QueryChildren().Order(ent.Asc(condition.FieldPosition)).All(ctx); err != nil {
			return nil, fmt.Errorf("condition %s: where: %w", c.ID, err)
		}
	}
	if len(where) > 0 {
		out.Where = where[0]
	}
	return out, nil
}

// jsonValue decodes a stored canonical JSON value keeping its digits.
func jsonValue(raw json.RawMessage) (any, error) {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}
