package trigger_test

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/segmentd/segmentd/trigger"
)

func TestParseRejects(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 1001)
	many := make([]any, 1001)
	for i := range many {
		many[i] = i
	}
	tests := []struct {
		name string
		in   *trigger.ConditionInput
		path string
		msg  string // a substring of the message
	}{
		// Shape of a node.
		{"group and predicate at once", &trigger.ConditionInput{And: []*trigger.ConditionInput{event("a", trigger.OpExists, nil)}, Scope: ptr(trigger.ScopeEvent)},
			"condition", "a condition is either a group (and/or/not) or a predicate (scope, property, operator, value), not both"},
		{"group with only a value", &trigger.ConditionInput{Not: event("a", trigger.OpExists, nil), Value: "x"},
			"condition", "not both"},
		{"and and or at once", &trigger.ConditionInput{And: []*trigger.ConditionInput{event("a", trigger.OpExists, nil)}, Or: []*trigger.ConditionInput{event("a", trigger.OpExists, nil)}},
			"condition", "use exactly one of and, or, not"},
		{"or and not at once", &trigger.ConditionInput{Or: []*trigger.ConditionInput{event("a", trigger.OpExists, nil)}, Not: event("a", trigger.OpExists, nil)},
			"condition", "use exactly one of and, or, not"},
		{"nothing set", &trigger.ConditionInput{}, "condition", "empty condition"},
		{"nothing set in a child", and(event("a", trigger.OpExists, nil), &trigger.ConditionInput{}), "condition.and[1]", "empty condition"},
		{"nothing set under not", not(&trigger.ConditionInput{}), "condition.not", "empty condition"},
		{"empty and", &trigger.ConditionInput{And: []*trigger.ConditionInput{}}, "condition.and", "a group needs at least one condition"},
		{"empty or", &trigger.ConditionInput{Or: []*trigger.ConditionInput{}}, "condition.or", "a group needs at least one condition"},
		{"empty or nested", and(event("a", trigger.OpExists, nil), &trigger.ConditionInput{Or: []*trigger.ConditionInput{}}), "condition.and[1].or", "a group needs at least one condition"},
		{"null child", or(event("a", trigger.OpExists, nil), nil), "condition.or[1]", "must not be null"},

		// Predicate fields.
		{"missing scope", &trigger.ConditionInput{Property: ptr("a"), Operator: ptr(trigger.OpExists)}, "condition.scope", "is required"},
		{"only a value", &trigger.ConditionInput{Value: 5}, "condition.scope", "is required"},
		{"missing property", &trigger.ConditionInput{Scope: ptr(trigger.ScopeUser), Operator: ptr(trigger.OpExists)}, "condition.property", "is required"},
		{"missing operator", &trigger.ConditionInput{Scope: ptr(trigger.ScopeUser), Property: ptr("a")}, "condition.operator", "is required"},
		{"missing property deep", not(and(event("a", trigger.OpExists, nil), event("b", trigger.OpExists, nil), &trigger.ConditionInput{Scope: ptr(trigger.ScopeUser), Operator: ptr(trigger.OpExists)})),
			"condition.not.and[2].property", "is required"},
		{"unknown scope", pred("ACCOUNT", "a", trigger.OpExists, nil), "condition.scope", `unknown scope "ACCOUNT"`},
		{"empty scope", pred("", "a", trigger.OpExists, nil), "condition.scope", `unknown scope ""`},
		{"unknown operator", event("a", "FOO", 1), "condition.operator", `unknown operator "FOO"`},
		{"empty property", event("", trigger.OpExists, nil), "condition.property", "must not be empty"},
		{"blank property", event(" \t ", trigger.OpExists, nil), "condition.property", "must not be empty"},
		{"property too long", event(strings.Repeat("p", 257), trigger.OpExists, nil), "condition.property", "at most 256 bytes"},
		{"property with newline", event("a\nb", trigger.OpExists, nil), "condition.property", "control characters"},
		{"property with NUL", event("a\x00b", trigger.OpExists, nil), "condition.property", "control characters"},
		{"property not UTF-8", event("a\xffb", trigger.OpExists, nil), "condition.property", "valid UTF-8"},

		// Values that EQ, NEQ, CONTAINS, NOT_CONTAINS refuse.
		{"EQ without value", event("a", trigger.OpEQ, nil), "condition.value", "EQ needs a string, number or boolean, not null"},
		{"EQ with a list", event("a", trigger.OpEQ, []any{"x"}), "condition.value", "not a list"},
		{"NEQ with an object", event("a", trigger.OpNEQ, map[string]any{"x": 1}), "condition.value", "not an object"},
		{"CONTAINS with a list", event("a", trigger.OpContains, []any{"x"}), "condition.value", "CONTAINS needs"},
		{"NOT_CONTAINS without value", event("a", trigger.OpNotContains, nil), "condition.value", "NOT_CONTAINS needs"},
		// GT, GTE, LT, LTE.
		{"GT with a boolean", event("a", trigger.OpGT, true), "condition.value", "GT needs a number or a date, not a boolean"},
		{"GTE with a list", event("a", trigger.OpGTE, []any{1}), "condition.value", "GTE needs a number or a date"},
		{"LT without value", event("a", trigger.OpLT, nil), "condition.value", "LT needs"},
		{"LTE with an object", event("a", trigger.OpLTE, map[string]any{}), "condition.value", "LTE needs"},
		// STARTS_WITH, ENDS_WITH, MATCHES.
		{"STARTS_WITH with a number", event("a", trigger.OpStartsWith, 5), "condition.value", "STARTS_WITH needs a string, not a number"},
		{"ENDS_WITH with a boolean", event("a", trigger.OpEndsWith, false), "condition.value", "ENDS_WITH needs a string"},
		{"MATCHES with a bad regexp", event("a", trigger.OpMatches, "a(b"), "condition.value", "error parsing regexp: missing closing )"},
		{"MATCHES with a Perl lookahead", event("a", trigger.OpMatches, "a(?=b)"), "condition.value", "invalid or unsupported Perl syntax"},
		{"MATCHES too long", event("a", trigger.OpMatches, long), "condition.value", "at most 1000 bytes"},
		{"MATCHES with a number", event("a", trigger.OpMatches, 1), "condition.value", "MATCHES needs"},
		// IN, NOT_IN.
		{"IN with an empty list", event("a", trigger.OpIn, []any{}), "condition.value", "IN needs a non-empty list"},
		{"IN with a scalar", event("a", trigger.OpIn, "US"), "condition.value", "IN needs a list of values, not a string"},
		{"IN without value", event("a", trigger.OpIn, nil), "condition.value", "IN needs a list"},
		{"IN with a nested list", event("a", trigger.OpIn, []any{"a", []any{"b"}}), "condition.value", "element 1 is a list"},
		{"NOT_IN with a null element", event("a", trigger.OpNotIn, []any{nil}), "condition.value", "element 0 is null"},
		{"IN with too many values", event("a", trigger.OpIn, many), "condition.value", "at most 1000 values"},
		{"IN with a long string", event("a", trigger.OpIn, []any{"a", long}), "condition.value", "at most 1000 bytes"},
		// BETWEEN.
		{"BETWEEN with one value", or(event("a", trigger.OpExists, nil), event("a", trigger.OpBetween, []any{1})), "condition.or[1].value", "BETWEEN needs a list of two values"},
		{"BETWEEN with three values", event("a", trigger.OpBetween, []any{1, 2, 3}), "condition.value", "BETWEEN needs a list of two values"},
		{"BETWEEN with a string", event("a", trigger.OpBetween, "1..5"), "condition.value", "BETWEEN needs a list of two values"},
		{"BETWEEN mixed", event("a", trigger.OpBetween, []any{1, "5"}), "condition.value", "two numbers or two dates, not a number and a string"},
		{"BETWEEN booleans", event("a", trigger.OpBetween, []any{false, true}), "condition.value", "two numbers or two dates"},
		{"BETWEEN numbers reversed", event("a", trigger.OpBetween, []any{5, 1}), "condition.value", "low <= high"},
		{"BETWEEN dates reversed", event("a", trigger.OpBetween, []any{"2025-12-31", "2025-01-01T00:00:00Z"}), "condition.value", "low <= high"},
		// WITHIN_LAST.
		{"WITHIN_LAST unknown unit", event("a", trigger.OpWithinLast, "7y"), "condition.value", `unknown unit 'y'`},
		{"WITHIN_LAST with a number", event("a", trigger.OpWithinLast, 7), "condition.value", "WITHIN_LAST needs a duration string"},
		{"WITHIN_LAST zero", event("a", trigger.OpWithinLast, "0d"), "condition.value", "more than zero"},
		{"WITHIN_LAST over 100 years", event("a", trigger.OpWithinLast, "36526d"), "condition.value", "longer than 100 years"},
		// Strings and Go values.
		{"EQ with a long string", event("a", trigger.OpEQ, long), "condition.value", "at most 1000 bytes"},
		{"EQ with NaN", event("a", trigger.OpEQ, math.NaN()), "condition.value", "unsupported value"},
		{"EQ with a func", event("a", trigger.OpEQ, func() {}), "condition.value", "unsupported value"},
		{"EQ with a bad json.Number", event("a", trigger.OpEQ, num("12abc")), "condition.value", `invalid number "12abc"`},

		// Size.
		{"11 levels", nest(11, event("a", trigger.OpExists, nil)), "condition" + strings.Repeat(".not", 10), "conditions nest at most 10 levels"},
		{"11 levels through groups", nest(9, and(event("a", trigger.OpExists, nil), or(event("b", trigger.OpExists, nil)))),
			"condition" + strings.Repeat(".not", 8) + ".and[1].or[0]", "conditions nest at most 10 levels"},
		{"201 nodes", wide(200), "condition", "at most 200 conditions"},
		{"201 nodes with a bad one late", or(append(wide(199).Or, &trigger.ConditionInput{})...), "condition", "at most 200 conditions"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			n, err := trigger.Parse(tt.in)
			var e *trigger.Error
			if !errors.As(err, &e) {
				t.Fatalf("Parse error = %v (%T), want *trigger.Error", err, err)
			}
			if n != nil {
				t.Errorf("Parse returned a node with the error")
			}
			if e.Path != tt.path {
				t.Errorf("Path = %q, want %q (message %q)", e.Path, tt.path, e.Message)
			}
			if !strings.Contains(e.Message, tt.msg) {
				t.Errorf("Message = %q, want it to contain %q", e.Message, tt.msg)
			}
			if want := e.Path + ": " + e.Message; err.Error() != want {
				t.Errorf("Error() = %q, want %q", err.Error(), want)
			}
		})
	}
}

func TestErrorText(t *testing.T) {
	t.Parallel()
	_, err := trigger.Parse(or(event("a", trigger.OpExists, nil), event("a", trigger.OpBetween, []any{1})))
	if got, want := err.Error(), "condition.or[1].value: BETWEEN needs a list of two values"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestParseAtUsesTheRootPath(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   *trigger.ConditionInput
		root string
		path string
	}{
		{"field under the root", and(&trigger.ConditionInput{Scope: ptr(trigger.ScopeUser)}), "input.condition", "input.condition.and[0].property"},
		{"too many nodes reported at the root", wide(200), "input.condition", "input.condition"},
		{"empty root", not(&trigger.ConditionInput{}), "", "not"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := trigger.ParseAt(tt.in, tt.root)
			var e *trigger.Error
			if !errors.As(err, &e) {
				t.Fatalf("ParseAt error = %v, want *trigger.Error", err)
			}
			if e.Path != tt.path {
				t.Errorf("Path = %q, want %q", e.Path, tt.path)
			}
		})
	}
}

func TestParseAccepts(t *testing.T) {
	t.Parallel()
	list := make([]any, 1000)
	for i := range list {
		list[i] = i
	}
	tests := []struct {
		name  string
		in    *trigger.ConditionInput
		count int
	}{
		{"seed", seed(), 5},
		{"EQ string", event("a", trigger.OpEQ, "x"), 1},
		{"EQ empty string", event("a", trigger.OpEQ, ""), 1},
		{"NEQ number", event("a", trigger.OpNEQ, 5), 1},
		{"CONTAINS boolean", event("a", trigger.OpContains, true), 1},
		{"NOT_CONTAINS string", event("a", trigger.OpNotContains, "x"), 1},
		{"GT date", event("a", trigger.OpGT, "2025-01-01"), 1},
		{"GTE number", event("a", trigger.OpGTE, num("1.5")), 1},
		{"LT numeric string", event("a", trigger.OpLT, "42"), 1},
		{"LT written date", event("a", trigger.OpLT, "January 1, 2025"), 1},
		{"LTE int64", event("a", trigger.OpLTE, int64(7)), 1},
		{"STARTS_WITH", event("a", trigger.OpStartsWith, "x"), 1},
		{"ENDS_WITH", event("a", trigger.OpEndsWith, "x"), 1},
		{"MATCHES", event("a", trigger.OpMatches, `^\d+$`), 1},
		{"IN mixed scalars", event("a", trigger.OpIn, []any{"a", 1, true}), 1},
		{"IN 1000 values", event("a", trigger.OpIn, list), 1},
		{"NOT_IN []string", event("a", trigger.OpNotIn, []string{"a", "b"}), 1},
		{"BETWEEN equal bounds", event("a", trigger.OpBetween, []any{5, 5}), 1},
		{"BETWEEN written dates", event("a", trigger.OpBetween, []any{"1 Jan 2025", "Dec 31, 2025"}), 1},
		{"BETWEEN dates", event("a", trigger.OpBetween, []any{"2025-01-01", "2025-12-31T23:59:59Z"}), 1},
		{"WITHIN_LAST", event("a", trigger.OpWithinLast, "1h30m"), 1},
		{"WITHIN_LAST 100 years", event("a", trigger.OpWithinLast, "36525d"), 1},
		{"EXISTS without value", event("a", trigger.OpExists, nil), 1},
		{"EXISTS ignores a value", event("a", trigger.OpExists, map[string]any{"anything": []any{1, "x"}}), 1},
		{"NOT_EXISTS ignores a long string", event("a", trigger.OpNotExists, strings.Repeat("x", 5000)), 1},
		{"NOT_EXISTS ignores a value JSON cannot hold", event("a", trigger.OpNotExists, func() {}), 1},
		{"property of 256 bytes", event(strings.Repeat("p", 256), trigger.OpExists, nil), 1},
		{"property with spaces, dots and unicode", user("Adresse.Straße und Nr", trigger.OpExists, nil), 1},
		{"10 levels", nest(10, event("a", trigger.OpExists, nil)), 10},
		{"200 nodes", wide(199), 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			n := mustParse(t, tt.in)
			if got := n.Count(); got != tt.count {
				t.Errorf("Count() = %d, want %d", got, tt.count)
			}
			if _, err := trigger.Compile(n); err != nil {
				t.Errorf("Compile: %v", err)
			}
		})
	}
}

func TestParseNilMeansNoConditions(t *testing.T) {
	t.Parallel()
	n, err := trigger.Parse(nil)
	if n != nil || err != nil {
		t.Fatalf("Parse(nil) = %v, %v; want nil, nil", n, err)
	}
	if n.String() != "" || n.Count() != 0 || n.ToInput() != nil {
		t.Errorf("a nil Node should render empty, count 0 and convert to nil")
	}
}

func TestParseBuildsTheTree(t *testing.T) {
	t.Parallel()
	got := mustParse(t, seed())
	want := &trigger.Node{Kind: trigger.KindAnd, Children: []*trigger.Node{
		{Kind: trigger.KindPredicate, Scope: trigger.ScopeUser, Property: "Sign Up Date", Operator: trigger.OpGT, Value: json.RawMessage(`"2025-01-01"`)},
		{Kind: trigger.KindOr, Children: []*trigger.Node{
			{Kind: trigger.KindPredicate, Scope: trigger.ScopeUser, Property: "Channel", Operator: trigger.OpEQ, Value: json.RawMessage(`"Facebook"`)},
			{Kind: trigger.KindPredicate, Scope: trigger.ScopeEvent, Property: "Reward Amount", Operator: trigger.OpGT, Value: json.RawMessage(`50`)},
		}},
	}}
	if !equalNodes(got, want) {
		t.Errorf("Parse(seed) =\n%s\nwant\n%s", dump(got), dump(want))
	}
}

func TestParseCanonicalValue(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		op    trigger.Operator
		value any
		want  string // "" for no value
	}{
		{"json.Number keeps its text", trigger.OpEQ, num("1.50"), `1.50`},
		{"json.Number with exponent", trigger.OpEQ, num("1e3"), `1e3`},
		{"big json.Number stays exact", trigger.OpEQ, num("12345678901234567890"), `12345678901234567890`},
		{"int", trigger.OpEQ, 5, `5`},
		{"int64", trigger.OpEQ, int64(-9007199254740993), `-9007199254740993`},
		{"uint8", trigger.OpEQ, uint8(7), `7`},
		{"float64", trigger.OpEQ, 1.5, `1.5`},
		{"large float64", trigger.OpEQ, 1e21, `1e+21`},
		{"string with HTML characters", trigger.OpEQ, "<b>&", `"<b>&"`},
		{"string with a quote", trigger.OpEQ, `say "hi"`, `"say \"hi\""`},
		{"invalid UTF-8 replaced", trigger.OpEQ, "a\xffb", "\"a\uFFFDb\""},
		{"boolean", trigger.OpEQ, false, `false`},
		{"time.Time", trigger.OpGT, time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC), `"2025-01-02T03:04:05Z"`},
		{"list", trigger.OpIn, []any{"b", num("2"), true}, `["b",2,true]`},
		{"[]string", trigger.OpIn, []string{"b", "a"}, `["b","a"]`},
		{"object keys sorted", trigger.OpExists, map[string]any{"b": 1, "a": []any{2.5}}, `{"a":[2.5],"b":1}`},
		{"absent", trigger.OpExists, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			n := mustParse(t, event("a", tt.op, tt.value))
			if string(n.Value) != tt.want {
				t.Errorf("Value = %s, want %s", n.Value, tt.want)
			}
			if tt.want == "" && n.Value != nil {
				t.Errorf("Value = %#v, want nil", n.Value)
			}
		})
	}
}
