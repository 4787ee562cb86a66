package graph_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/segmentd/segmentd/internal/testenv"
)

// mySeedCondition is the README's example:
// user."Sign Up Date" > 2025-01-01 AND (user.Channel = "Facebook" OR event."Reward Amount" > 50)
func mySeedCondition() map[string]any {
	return map[string]any{"and": []any{
		map[string]any{"scope": "USER", "property": "Sign Up Date", "operator": "GT", "value": "2025-01-01"},
		map[string]any{"or": []any{
			map[string]any{"scope": "USER", "property": "Channel", "operator": "EQ", "value": "Facebook"},
			map[string]any{"scope": "EVENT", "property": "Reward Amount", "operator": "GT", "value": 50},
		}},
	}}
}

const mySeedText = `user."Sign Up Date" > "2025-01-01" AND (user.Channel = "Facebook" OR event."Reward Amount" > 50)`

const conditionFields = `kind scope property operator value`

// conditionQuery reads a tree three levels deep, enough for the seed.
var conditionQuery = fmt.Sprintf(`condition { %[1]s children { %[1]s children { %[1]s children { %[1]s } } } }`, conditionFields)

func createSeed(t *testing.T, c *testenv.Client) (segID string) {
	t.Helper()
	var out struct{ CreateSegment struct{ ID string } }
	c.MustDo(t, `mutation($in: CreateSegmentInput!) { createSegment(input: $in) { id } }`, map[string]any{"in": map[string]any{
		"name": "Activation Experiment - New Users", "kind": "EVENT_TRIGGERED",
		"triggerEvents": []string{"Sign Up"}, "condition": mySeedCondition(),
	}}, &out)
	return out.CreateSegment.ID
}

// toInput turns a Condition read back into the input shape, dropping the
// nulls and empty children a predicate or group reads back with.
func toInput(c map[string]any) map[string]any {
	out := map[string]any{}
	switch c["kind"] {
	case "AND", "OR":
		var kids []any
		for _, k := range c["children"].([]any) {
			kids = append(kids, toInput(k.(map[string]any)))
		}
		out[strings.ToLower(c["kind"].(string))] = kids
	case "NOT":
		out["not"] = toInput(c["children"].([]any)[0].(map[string]any))
	default:
		for _, f := range []string{"scope", "property", "operator", "value"} {
			out[f] = c[f]
		}
	}
	return out
}

func deref(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}
