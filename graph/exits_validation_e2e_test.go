package graph_test

// Exit rules and DYNAMIC segments over HTTP: each bad input is refused with
// BAD_USER_INPUT naming the field, nothing written; good ones read back.

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/segmentd/segmentd/internal/testenv"
)

func withExits(in map[string]any, exits map[string]any) map[string]any {
	in["exitRules"] = exits
	return in
}

func exitValidationCases() []validationCase {
	ok := pred("USER", "Channel", "EQ", "Facebook")
	noCond := func() map[string]any {
		return map[string]any{"name": "Invalid", "kind": "EVENT_TRIGGERED", "triggerEvents": []string{"Sign Up"}}
	}
	dynamic := func(cond any) map[string]any {
		return map[string]any{"name": "Invalid", "kind": "DYNAMIC", "condition": cond}
	}
	return []validationCase{
		{"whenConditionFails without a condition", withExits(noCond(), map[string]any{"whenConditionFails": true}), "input.exitRules.whenConditionFails"},
		{"STATIC whenConditionFails", withExits(map[string]any{"name": "Invalid", "kind": "STATIC"}, map[string]any{"whenConditionFails": true}), "input.exitRules.whenConditionFails"},
		{"DYNAMIC with trigger events", map[string]any{"name": "Invalid", "kind": "DYNAMIC", "triggerEvents": []string{"Sign Up"}, "condition": ok}, "input.triggerEvents"},
		{"DYNAMIC without a condition", map[string]any{"name": "Invalid", "kind": "DYNAMIC"}, "input.condition"},
		{"DYNAMIC with an EVENT predicate", dynamic(pred("EVENT", "total", "GT", 100)), "input.condition.scope"},
		{"DYNAMIC with a nested EVENT predicate", dynamic(map[string]any{"and": []any{ok, map[string]any{"not": pred("EVENT", "total", "GT", 100)}}}), "input.condition.and[1].not.scope"},
		{"DYNAMIC with onEvents", withExits(dynamic(ok), map[string]any{"onEvents": []string{"Unsubscribed"}}), "input.exitRules.onEvents"},
		{"after in words", withExits(eventTriggered(ok), map[string]any{"after": "30 days"}), "input.exitRules.after"},
		{"after empty", withExits(eventTriggered(ok), map[string]any{"after": ""}), "input.exitRules.after"},
		{"after in months", withExits(eventTriggered(ok), map[string]any{"after": "1mo"}), "input.exitRules.after"},
		{"after negative", withExits(eventTriggered(ok), map[string]any{"after": "-1d"}), "input.exitRules.after"},
		{"after zero", withExits(eventTriggered(ok), map[string]any{"after": "0d"}), "input.exitRules.after"},
		{"after over 100 years", withExits(eventTriggered(ok), map[string]any{"after": "36526d"}), "input.exitRules.after"},
		{"onEventCondition without onEvents", withExits(eventTriggered(ok), map[string]any{"onEventCondition": pred("EVENT", "total", "GT", 100)}), "input.exitRules.onEventCondition"},
		{"onEventCondition with an empty onEvents", withExits(eventTriggered(ok), map[string]any{"onEvents": []string{}, "onEventCondition": pred("EVENT", "total", "GT", 100)}), "input.exitRules.onEventCondition"},
		{"bad onEventCondition", withExits(eventTriggered(ok), map[string]any{"onEvents": []string{"Purchase Completed"}, "onEventCondition": map[string]any{"and": []any{}}}), "input.exitRules.onEventCondition.and"},
		{"blank exit event", withExits(eventTriggered(ok), map[string]any{"onEvents": []string{"Unsubscribed", " "}}), "input.exitRules.onEvents[1]"},
	}
}

type exitRulesView struct {
	WhenConditionFails   bool            `json:"whenConditionFails"`
	OnEvents             []string        `json:"onEvents"`
	OnEventCondition     json.RawMessage `json:"onEventCondition"`
	OnEventConditionText *string         `json:"onEventConditionText"`
	After                *string         `json:"after"`
}

const exitRulesFields = `exitRules { whenConditionFails onEvents onEventCondition { kind scope property operator value } onEventConditionText after }`

func readExitRules(t *testing.T, c *testenv.Client, id string) (kind string, rules *exitRulesView) {
	t.Helper()
	var out struct {
		Node struct {
			Kind      string         `json:"kind"`
			ExitRules *exitRulesView `json:"exitRules"`
		} `json:"node"`
	}
	c.MustDo(t, `query($id: ID!) { node(id: $id) { ... on Segment { kind `+exitRulesFields+` } } }`, map[string]any{"id": id}, &out)
	return out.Node.Kind, out.Node.ExitRules
}

// TestExitRulesValidation: every bad exit rule and DYNAMIC definition is
// BAD_USER_INPUT at its field, on create and on update, and writes nothing.
func TestExitRulesValidation(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL)
		c := srv.Admin()
		for _, tc := range exitValidationCases() {
			r := c.Do(t, `mutation($in: CreateSegmentInput!) { createSegment(input: $in) { id } }`, map[string]any{"in": tc.in})
			if len(r.Errors) != 1 {
				t.Errorf("%s: want one error, got data %s errors %+v", tc.name, r.Data, r.Errors)
				continue
			}
			e := r.Errors[0]
			if e.Code() != "BAD_USER_INPUT" || e.Field() != tc.field {
				t.Errorf("%s: code %s field %q, want BAD_USER_INPUT at %q (%s)", tc.name, e.Code(), e.Field(), tc.field, e.Message)
			}
			if !strings.HasPrefix(e.Message, tc.field+": ") {
				t.Errorf("%s: message %q should start with the path", tc.name, e.Message)
			}
		}
		if n := segmentCount(t, c); n != 0 {
			t.Fatalf("refused inputs wrote %d segments", n)
		}

		// Update: the same rules, and the segment stays as it was.
		seg := createSegment(t, c, eventTriggered(pred("USER", "Channel", "EQ", "Facebook")))
		bad := []validationCase{
			{"after in words", map[string]any{"exitRules": map[string]any{"after": "a month"}}, "input.exitRules.after"},
			{"onEventCondition alone", map[string]any{"exitRules": map[string]any{"onEventCondition": pred("EVENT", "total", "GT", 1)}}, "input.exitRules.onEventCondition"},
			{"both exitRules and clearExitRules", map[string]any{"exitRules": map[string]any{"after": "1d"}, "clearExitRules": true}, "input.clearExitRules"},
			{"whenConditionFails with clearCondition", map[string]any{"clearCondition": true, "exitRules": map[string]any{"whenConditionFails": true}}, "input.exitRules.whenConditionFails"},
		}
		for _, tc := range bad {
			r := c.Do(t, `mutation($id: ID!, $in: UpdateSegmentInput!) { updateSegment(id: $id, input: $in) { id } }`, map[string]any{"id": seg.ID, "in": tc.in})
			if len(r.Errors) != 1 || r.Errors[0].Code() != "BAD_USER_INPUT" || r.Errors[0].Field() != tc.field {
				t.Errorf("update %s: errors %+v, want BAD_USER_INPUT at %q", tc.name, r.Errors, tc.field)
			}
		}
		if _, rules := readExitRules(t, c, seg.ID); rules != nil {
			t.Fatalf("refused updates wrote exit rules %+v", rules)
		}
		if got := getSegment(t, c, seg.ID); strOrNull(got.ConditionText) != `user.Channel = "Facebook"` {
			t.Fatalf("refused updates changed the condition: %s", strOrNull(got.ConditionText))
		}
	})
}

// TestExitRulesRoundTrip: exit rules read back as given; updating replaces
// them, clearExitRules removes them, and the entry condition is untouched.
func TestExitRulesRoundTrip(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL)
		c := srv.Admin()
		in := withExits(eventTriggered(pred("USER", "Channel", "EQ", "Facebook")), map[string]any{
			"whenConditionFails": true,
			"onEvents":           []string{"Unsubscribed", "Purchase Completed", "Unsubscribed"},
			"onEventCondition":   pred("EVENT", "total", "GT", 100),
			"after":              "30d",
		})
		seg := createSegment(t, c, in)
		_, rules := readExitRules(t, c, seg.ID)
		if rules == nil || !rules.WhenConditionFails || strings.Join(rules.OnEvents, ",") != "Unsubscribed,Purchase Completed" ||
			strOrNull(rules.After) != "30d" || strOrNull(rules.OnEventConditionText) != "event.total > 100" {
			t.Fatalf("exit rules read back as %+v", rules)
		}
		if got := compactJSON(rules.OnEventCondition); got != `{"kind":"PREDICATE","scope":"EVENT","property":"total","operator":"GT","value":100}` {
			t.Fatalf("onEventCondition %s", got)
		}
		if got := getSegment(t, c, seg.ID); strOrNull(got.ConditionText) != `user.Channel = "Facebook"` {
			t.Fatalf("entry condition became %s", strOrNull(got.ConditionText))
		}

		c.MustDo(t, `mutation($id: ID!) { updateSegment(id: $id, input: {exitRules: {after: "12h"}}) { id } }`, map[string]any{"id": seg.ID}, nil)
		_, rules = readExitRules(t, c, seg.ID)
		if rules == nil || rules.WhenConditionFails || len(rules.OnEvents) != 0 || strOrNull(rules.After) != "12h" || rules.OnEventCondition != nil && !jsonIsNull(rules.OnEventCondition) {
			t.Fatalf("replaced exit rules read back as %+v", rules)
		}
		c.MustDo(t, `mutation($id: ID!) { updateSegment(id: $id, input: {clearExitRules: true}) { id } }`, map[string]any{"id": seg.ID}, nil)
		if _, rules = readExitRules(t, c, seg.ID); rules != nil {
			t.Fatalf("cleared exit rules read back as %+v", rules)
		}
		if got := getSegment(t, c, seg.ID); strOrNull(got.ConditionText) != `user.Channel = "Facebook"` {
			t.Fatalf("entry condition became %s", strOrNull(got.ConditionText))
		}

		dyn := createSegment(t, c, map[string]any{"name": "Facebook users", "kind": "DYNAMIC", "condition": pred("USER", "Channel", "EQ", "Facebook")})
		if kind, rules := readExitRules(t, c, dyn.ID); kind != "DYNAMIC" || rules != nil {
			t.Fatalf("DYNAMIC segment: kind %s exit rules %+v", kind, rules)
		}
	})
}
