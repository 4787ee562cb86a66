package graph_test

// Every validation rule of segments, sent over HTTP: the error is
// BAD_USER_INPUT with extensions.field naming the bad node or field, and
// nothing is written.

import (
	"strings"
	"testing"

	"github.com/segmentd/segmentd/internal/testenv"
)

// eventTriggered is a valid EVENT_TRIGGERED CreateSegmentInput with cond.
func eventTriggered(cond any) map[string]any {
	return map[string]any{"name": "Invalid", "kind": "EVENT_TRIGGERED", "triggerEvents": []string{"Sign Up"}, "condition": cond}
}

// nestedNots wraps a predicate in n NOT groups: n+1 levels.
func nestedNots(n int) map[string]any {
	c := pred("USER", "Channel", "EQ", "Facebook")
	for i := 0; i < n; i++ {
		c = map[string]any{"not": c}
	}
	return c
}

// andOf returns an AND group of n predicates: n+1 nodes.
func andOf(n int) map[string]any {
	list := make([]any, n)
	for i := range list {
		list[i] = pred("EVENT", "n", "EQ", i)
	}
	return map[string]any{"and": list}
}

type validationCase struct {
	name  string
	in    map[string]any
	field string
}

func segmentValidationCases() []validationCase {
	ok := pred("USER", "Channel", "EQ", "Facebook")
	or := func(second any) map[string]any { return map[string]any{"or": []any{ok, second}} }
	return []validationCase{
		// Groups.
		{"group with no children", eventTriggered(map[string]any{"and": []any{}}), "input.condition.and"},
		{"empty or", eventTriggered(map[string]any{"or": []any{}}), "input.condition.or"},
		{"nested group with no children", eventTriggered(or(map[string]any{"and": []any{}})), "input.condition.or[1].and"},
		{"and and or at once", eventTriggered(map[string]any{"and": []any{ok}, "or": []any{ok}}), "input.condition"},
		{"and and not at once", eventTriggered(map[string]any{"and": []any{ok}, "not": ok}), "input.condition"},
		{"group and predicate at once", eventTriggered(map[string]any{"and": []any{ok}, "scope": "USER", "property": "Channel", "operator": "EQ", "value": "x"}), "input.condition"},
		{"not with a property", eventTriggered(or(map[string]any{"not": ok, "property": "Channel"})), "input.condition.or[1]"},
		{"empty condition", eventTriggered(map[string]any{}), "input.condition"},
		// Predicates.
		{"predicate without scope", eventTriggered(or(map[string]any{"property": "Channel", "operator": "EQ", "value": "x"})), "input.condition.or[1].scope"},
		{"predicate without property", eventTriggered(or(map[string]any{"scope": "USER", "operator": "EQ", "value": "x"})), "input.condition.or[1].property"},
		{"predicate without operator", eventTriggered(or(map[string]any{"scope": "USER", "property": "Channel", "value": "x"})), "input.condition.or[1].operator"},
		{"blank property", eventTriggered(pred("USER", "  ", "EQ", "x")), "input.condition.property"},
		{"value alone", eventTriggered(map[string]any{"value": 1}), "input.condition.scope"},
		// Values of the wrong shape for the operator.
		{"BETWEEN with one value", eventTriggered(or(pred("EVENT", "Reward Amount", "BETWEEN", []any{10}))), "input.condition.or[1].value"},
		{"BETWEEN with three values", eventTriggered(or(pred("EVENT", "Reward Amount", "BETWEEN", []any{1, 2, 3}))), "input.condition.or[1].value"},
		{"BETWEEN with a number", eventTriggered(or(pred("EVENT", "Reward Amount", "BETWEEN", 10))), "input.condition.or[1].value"},
		{"IN with a non-list", eventTriggered(or(pred("USER", "Channel", "IN", "Facebook"))), "input.condition.or[1].value"},
		{"NOT_IN with a non-list", eventTriggered(or(pred("USER", "Channel", "NOT_IN", "Facebook"))), "input.condition.or[1].value"},
		{"WITHIN_LAST 7 days", eventTriggered(pred("USER", "Sign Up Date", "WITHIN_LAST", "7 days")), "input.condition.value"},
		{"WITHIN_LAST a number", eventTriggered(pred("USER", "Sign Up Date", "WITHIN_LAST", 7)), "input.condition.value"},
		{"MATCHES (", eventTriggered(map[string]any{"and": []any{ok, map[string]any{"not": pred("USER", "email", "MATCHES", "(")}}}), "input.condition.and[1].not.value"},
		// Size.
		{"11 levels", eventTriggered(nestedNots(10)), "input.condition" + strings.Repeat(".not", 10)},
		{"201 nodes", eventTriggered(andOf(200)), "input.condition"},
		// Kind against trigger events and conditions.
		{"STATIC with trigger events", map[string]any{"name": "Invalid", "kind": "STATIC", "triggerEvents": []string{"Sign Up"}}, "input.triggerEvents"},
		{"STATIC with a condition", map[string]any{"name": "Invalid", "kind": "STATIC", "condition": ok}, "input.condition"},
		{"EVENT_TRIGGERED without trigger events", map[string]any{"name": "Invalid", "kind": "EVENT_TRIGGERED", "condition": ok}, "input.triggerEvents"},
		{"EVENT_TRIGGERED with an empty list", map[string]any{"name": "Invalid", "kind": "EVENT_TRIGGERED", "triggerEvents": []string{}}, "input.triggerEvents"},
		{"blank trigger event", map[string]any{"name": "Invalid", "kind": "EVENT_TRIGGERED", "triggerEvents": []string{"Sign Up", " "}}, "input.triggerEvents[1]"},
		// Name.
		{"empty name", map[string]any{"name": "", "kind": "STATIC"}, "input.name"},
		{"blank name", map[string]any{"name": "   ", "kind": "STATIC"}, "input.name"},
		{"name with a control character", map[string]any{"name": "a\x00b", "kind": "STATIC"}, "input.name"},
		{"name too long", map[string]any{"name": strings.Repeat("n", 201), "kind": "STATIC"}, "input.name"},
	}
}

// TestSegmentValidationRules: each bad createSegment input is refused with
// BAD_USER_INPUT, extensions.field at the bad node, and the path at the start
// of the message; no segment is written. The limits themselves (10 levels,
// 200 nodes) are accepted.
func TestSegmentValidationRules(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL)
		c := srv.Admin()
		for _, tc := range segmentValidationCases() {
			r := c.Do(t, `mutation($in: CreateSegmentInput!) { createSegment(input: $in) { id } }`, map[string]any{"in": tc.in})
			if len(r.Errors) != 1 {
				t.Errorf("%s: want one error, got data %s errors %+v", tc.name, r.Data, r.Errors)
				continue
			}
			e := r.Errors[0]
			if e.Code() != "BAD_USER_INPUT" || e.Field() != tc.field {
				t.Errorf("%s: code %s field %q, want BAD_USER_INPUT at %q (%s)", tc.name, e.Code(), e.Field(), tc.field, e.Message)
			}
			if !strings.HasPrefix(e.Message, tc.field+": ") || len(e.Message) <= len(tc.field)+2 {
				t.Errorf("%s: message %q should start with the path and say what is wrong", tc.name, e.Message)
			}
			if len(r.Data) > 0 && string(r.Data) != "null" {
				t.Errorf("%s: data %s, want null", tc.name, r.Data)
			}
		}
		if n := segmentCount(t, c); n != 0 {
			t.Fatalf("refused inputs wrote %d segments", n)
		}

		// Exactly at the limits: 10 levels, 200 nodes.
		deep := createSegment(t, c, eventTriggered(nestedNots(9)))
		if got := strings.Count(deep.Condition.shape(), "NOT("); got != 5 { // the query reads 5 levels
			t.Fatalf("10 levels read back as %s", deep.Condition.shape())
		}
		if !strings.HasPrefix(strOrNull(deep.ConditionText), strings.Repeat("NOT (", 9)+`user.Channel = "Facebook"`) {
			t.Fatalf("10 levels: conditionText %s", strOrNull(deep.ConditionText))
		}
		wide := createSegment(t, c, eventTriggered(andOf(199)))
		if got := len(wide.Condition.Children); got != 199 {
			t.Fatalf("200 nodes read back with %d children", got)
		}
		if n := segmentCount(t, c); n != 2 {
			t.Fatalf("segments %d, want the 2 at the limits", n)
		}
	})
}

// TestSegmentUpdateValidation: bad updateSegment input is refused with the
// field at fault and leaves the segment exactly as it was.
func TestSegmentUpdateValidation(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL)
		c := srv.Admin()
		seg := createSegment(t, c, seedSegment())
		static := createSegment(t, c, map[string]any{"name": "Beta testers", "kind": "STATIC"})
		ok := pred("USER", "Channel", "EQ", "Facebook")

		cases := []struct {
			name  string
			id    string
			in    map[string]any
			field string
		}{
			{"bad value in a new condition", seg.ID, map[string]any{"condition": map[string]any{"or": []any{ok, pred("USER", "Channel", "IN", "Facebook")}}}, "input.condition.or[1].value"},
			{"empty group", seg.ID, map[string]any{"condition": map[string]any{"and": []any{}}}, "input.condition.and"},
			{"condition and clearCondition", seg.ID, map[string]any{"condition": ok, "clearCondition": true}, "input.clearCondition"},
			{"no trigger events left", seg.ID, map[string]any{"triggerEvents": []string{}}, "input.triggerEvents"},
			{"empty name", seg.ID, map[string]any{"name": ""}, "input.name"},
			{"bad condition with a good name", seg.ID, map[string]any{"name": "Renamed", "condition": pred("USER", "d", "WITHIN_LAST", "7 days")}, "input.condition.value"},
			{"STATIC gets trigger events", static.ID, map[string]any{"triggerEvents": []string{"Sign Up"}}, "input.triggerEvents"},
			{"STATIC gets a condition", static.ID, map[string]any{"condition": ok}, "input.condition"},
		}
		for _, tc := range cases {
			e := c.MustFail(t, "BAD_USER_INPUT", `mutation($id: ID!, $in: UpdateSegmentInput!) { updateSegment(id: $id, input: $in) { id } }`,
				map[string]any{"id": tc.id, "in": tc.in})
			if e.Field() != tc.field {
				t.Errorf("%s: field %q, want %q (%s)", tc.name, e.Field(), tc.field, e.Message)
			}
		}
		for _, before := range []segmentView{seg, static} {
			after := getSegment(t, c, before.ID)
			if after.Name != before.Name || after.Condition.shape() != before.Condition.shape() ||
				strings.Join(after.TriggerEvents, ",") != strings.Join(before.TriggerEvents, ",") || !after.UpdatedAt.Equal(before.UpdatedAt) {
				t.Errorf("refused updates changed %s:\nbefore %+v\nafter  %+v", before.Name, before, *after)
			}
		}
	})
}

// TestUnknownEnumValues: an operator, scope or kind that the schema does
// not have is refused by GraphQL validation (inline or in variables) before
// anything runs, with gqlgen's code GRAPHQL_VALIDATION_FAILED; nothing is
// written.
func TestUnknownEnumValues(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL)
		c := srv.Admin()
		inline := []string{
			`mutation { createSegment(input: {name: "x", kind: EVENT_TRIGGERED, triggerEvents: ["Sign Up"], condition: {scope: USER, property: "a", operator: FOO, value: 1}}) { id } }`,
			`mutation { createSegment(input: {name: "x", kind: EVENT_TRIGGERED, triggerEvents: ["Sign Up"], condition: {scope: ACCOUNT, property: "a", operator: EQ, value: 1}}) { id } }`,
			`mutation { createSegment(input: {name: "x", kind: SMART}) { id } }`,
			`mutation { createSegment(input: {name: "x", kind: EVENT_TRIGGERED, triggerEvents: ["Sign Up"], condition: {scope: USER, property: "a", operator: eq, value: 1}}) { id } }`,
			`mutation { createSegment(input: {name: "x", kind: EVENT_TRIGGERED, triggerEvents: ["Sign Up"], condition: {scope: USER, property: "a", operator: "EQ", value: 1}}) { id } }`,
		}
		for _, q := range inline {
			r := c.Do(t, q, nil)
			if len(r.Errors) != 1 || r.Errors[0].Code() != "GRAPHQL_VALIDATION_FAILED" || (len(r.Data) > 0 && string(r.Data) != "null") {
				t.Errorf("%s:\n got HTTP %d data %s errors %+v; want one GRAPHQL_VALIDATION_FAILED and no data", q, r.Status, r.Data, r.Errors)
			}
		}
		vars := []struct {
			in   map[string]any
			want string
		}{
			{eventTriggered(pred("USER", "a", "FOO", 1)), "FOO is not a valid ConditionOperator"},
			{eventTriggered(pred("ACCOUNT", "a", "EQ", 1)), "ACCOUNT is not a valid ConditionScope"},
			{map[string]any{"name": "x", "kind": "SMART"}, "SMART is not a valid SegmentKind"},
		}
		for _, v := range vars {
			e := c.MustFail(t, "GRAPHQL_VALIDATION_FAILED", `mutation($in: CreateSegmentInput!) { createSegment(input: $in) { id } }`, map[string]any{"in": v.in})
			if err := e.Contains(v.want); err != nil {
				t.Error(err)
			}
		}
		if n := segmentCount(t, c); n != 0 {
			t.Fatalf("unknown enum values wrote %d segments", n)
		}
	})
}

// TestMalformedArguments: values that pass GraphQL validation but not their
// type's decoder (an enum value in the wrong case in a variable, a time, a
// cursor, an ID of the wrong type) are the client's mistake: BAD_USER_INPUT
// with the argument's path, never INTERNAL; nothing is written.
func TestMalformedArguments(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL)
		c := srv.Admin()
		seg := createSegment(t, c, map[string]any{"name": "Beta testers", "kind": "STATIC"})
		cases := []struct {
			name, query string
			vars        map[string]any
			field       string
		}{
			{"operator in lower case", `mutation($in: CreateSegmentInput!) { createSegment(input: $in) { id } }`,
				map[string]any{"in": eventTriggered(map[string]any{"or": []any{pred("USER", "a", "EQ", 1), pred("USER", "a", "eq", 1)}})},
				"input.condition.or[1].operator"},
			{"kind in lower case", `mutation($in: CreateSegmentInput!) { createSegment(input: $in) { id } }`,
				map[string]any{"in": map[string]any{"name": "x", "kind": "static"}}, "input.kind"},
			{"campaign status in lower case", `mutation($s: CampaignStatus) { createCampaign(input: {name: "x", status: $s}) { id } }`,
				map[string]any{"s": "active"}, "input.status"},
			{"time", `{ segments(where: {createdAtGT: "yesterday"}) { totalCount } }`, nil, "where.createdAtGT"},
			{"cursor", `{ segments(first: 1, after: "garbage") { totalCount } }`, nil, "after"},
			{"cursor of a nested connection", `query($id: ID!) { node(id: $id) { ... on Segment { members(after: "garbage") { totalCount } } } }`,
				map[string]any{"id": seg.ID}, "after"},
			{"numeric ID", `{ node(id: 5) { id } }`, nil, "id"},
		}
		for _, tc := range cases {
			r := c.Do(t, tc.query, tc.vars)
			if len(r.Errors) != 1 || r.Errors[0].Code() != "BAD_USER_INPUT" || r.Errors[0].Field() != tc.field {
				t.Errorf("%s: errors %+v, want one BAD_USER_INPUT at %q", tc.name, r.Errors, tc.field)
			}
		}
		if n := segmentCount(t, c); n != 1 {
			t.Fatalf("segments %d, want 1", n)
		}
		if names, n := campaignNames(t, c, nil); n != 0 {
			t.Fatalf("campaigns %q, want none", names)
		}
	})
}
