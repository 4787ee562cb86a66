package trigger_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/segmentd/segmentd/trigger"
)

func TestNextChange(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	within := func(prop, dur string) *trigger.Node {
		v, _ := json.Marshal(dur)
		return &trigger.Node{Kind: trigger.KindPredicate, Scope: trigger.ScopeUser, Property: prop, Operator: trigger.OpWithinLast, Value: v}
	}
	eq := &trigger.Node{Kind: trigger.KindPredicate, Scope: trigger.ScopeUser, Property: "plan", Operator: trigger.OpEQ, Value: json.RawMessage(`"pro"`)}
	ts := func(d time.Duration) string { return now.Add(d).Format(time.RFC3339Nano) }
	for _, tc := range []struct {
		name   string
		node   *trigger.Node
		traits map[string]any
		want   time.Time // zero: none
	}{
		{"no clock", eq, map[string]any{"plan": "pro"}, time.Time{}},
		{"inside the window: leaves just after its end", within("seen", "7d"), map[string]any{"seen": ts(-24 * time.Hour)},
			now.Add(6*24*time.Hour + time.Nanosecond)},
		{"at the window's end: still holds now", within("seen", "1h"), map[string]any{"seen": ts(-time.Hour)}, now.Add(time.Nanosecond)},
		{"past the window: never again", within("seen", "1h"), map[string]any{"seen": ts(-2 * time.Hour)}, time.Time{}},
		{"in the future: turns true then", within("seen", "1h"), map[string]any{"seen": ts(30 * time.Minute)}, now.Add(30 * time.Minute)},
		{"missing trait", within("seen", "1h"), map[string]any{}, time.Time{}},
		{"not a time", within("seen", "1h"), map[string]any{"seen": 12}, time.Time{}},
		{"the earliest of two, under NOT", &trigger.Node{Kind: trigger.KindAnd, Children: []*trigger.Node{
			eq, {Kind: trigger.KindNot, Children: []*trigger.Node{within("a", "2h")}}, within("b", "1h")}},
			map[string]any{"a": ts(-time.Hour), "b": ts(-30 * time.Minute)}, now.Add(30*time.Minute + time.Nanosecond)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := trigger.Compile(tc.node)
			if err != nil {
				t.Fatal(err)
			}
			env := trigger.Env{User: tc.traits, Now: now}
			got, ok := p.NextChange(env)
			if ok != !tc.want.IsZero() || !got.Equal(tc.want) {
				t.Fatalf("NextChange = %v, %v; want %v", got, ok, tc.want)
			}
			if !ok {
				return
			}
			// The answer of the predicate that changes differs across the
			// instant, and stays the same until just before it.
			before := p.Eval(trigger.Env{User: tc.traits, Now: got.Add(-time.Nanosecond)}).Matched
			if p.Eval(env).Matched != before {
				t.Errorf("the answer changed before NextChange")
			}
			if tc.node.Kind == trigger.KindPredicate && p.Eval(trigger.Env{User: tc.traits, Now: got}).Matched == before {
				t.Errorf("the answer did not change at NextChange %v", got)
			}
		})
	}
}
