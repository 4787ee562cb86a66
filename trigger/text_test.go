package trigger_test

import (
	"encoding/json"
	"testing"

	"github.com/segmentd/segmentd/trigger"
)

func TestString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   *trigger.ConditionInput
		want string
	}{
		{"seed", seed(), seedText},
		{"bare identifier", user("plan", trigger.OpEQ, "pro"), `user.plan = "pro"`},
		{"bare dotted path", user("address.city", trigger.OpEQ, "Berlin"), `user.address.city = "Berlin"`},
		{"quoted: spaces", event("Reward Amount", trigger.OpEQ, 1), `event."Reward Amount" = 1`},
		{"quoted: leading digit", event("1st", trigger.OpEQ, 1), `event."1st" = 1`},
		{"quoted: trailing dot", event("a.", trigger.OpEQ, 1), `event."a." = 1`},
		{"quoted: hyphen", event("utm-source", trigger.OpEQ, 1), `event."utm-source" = 1`},
		{"quoted: quote inside", event(`say "hi"`, trigger.OpEQ, 1), `event."say \"hi\"" = 1`},
		{"NEQ", event("a", trigger.OpNEQ, true), `event.a != true`},
		{"GT", event("a", trigger.OpGT, num("1.50")), `event.a > 1.50`},
		{"GTE", event("a", trigger.OpGTE, 2), `event.a >= 2`},
		{"LT", event("a", trigger.OpLT, 3.25), `event.a < 3.25`},
		{"LTE", event("a", trigger.OpLTE, "Jan 1, 2025"), `event.a <= "Jan 1, 2025"`},
		{"CONTAINS", event("a", trigger.OpContains, "x"), `event.a contains "x"`},
		{"NOT_CONTAINS", event("a", trigger.OpNotContains, "x"), `event.a not contains "x"`},
		{"STARTS_WITH", event("a", trigger.OpStartsWith, "x"), `event.a starts with "x"`},
		{"ENDS_WITH", event("a", trigger.OpEndsWith, "x"), `event.a ends with "x"`},
		{"MATCHES", event("a", trigger.OpMatches, `^\d+<$`), `event.a matches "^\\d+<$"`},
		{"IN", event("a", trigger.OpIn, []any{"US", 1}), `event.a in ["US",1]`},
		{"NOT_IN", event("a", trigger.OpNotIn, []any{"US"}), `event.a not in ["US"]`},
		{"EXISTS", event("a", trigger.OpExists, "ignored"), `event.a exists`},
		{"NOT_EXISTS", event("a", trigger.OpNotExists, nil), `event.a not exists`},
		{"BETWEEN", event("a", trigger.OpBetween, []any{1, 5}), `event.a between 1 and 5`},
		{"BETWEEN dates", event("a", trigger.OpBetween, []any{"2025-01-01", "2025-02-01"}), `event.a between "2025-01-01" and "2025-02-01"`},
		{"WITHIN_LAST", event("a", trigger.OpWithinLast, "7d"), `event.a within last "7d"`},
		{"NOT of a predicate", not(event("a", trigger.OpEQ, 1)), `NOT (event.a = 1)`},
		{"NOT of a group", not(or(event("a", trigger.OpEQ, 1), event("b", trigger.OpEQ, 2))), `NOT (event.a = 1 OR event.b = 2)`},
		{"NOT inside AND needs no extra parentheses", and(event("a", trigger.OpExists, nil), not(event("b", trigger.OpExists, nil))), `event.a exists AND NOT (event.b exists)`},
		{"same kind nested reads flat", and(event("a", trigger.OpExists, nil), and(event("b", trigger.OpExists, nil), event("c", trigger.OpExists, nil))), `event.a exists AND event.b exists AND event.c exists`},
		{"AND inside OR", or(and(event("a", trigger.OpExists, nil), event("b", trigger.OpExists, nil)), event("c", trigger.OpExists, nil)), `(event.a exists AND event.b exists) OR event.c exists`},
		{"single child group", and(event("a", trigger.OpExists, nil)), `event.a exists`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := mustParse(t, tt.in).String(); got != tt.want {
				t.Errorf("String() =\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

// A tree read back from PostgreSQL jsonb has spaces in its values; the text
// must not change.
func TestStringCompactsStoredValues(t *testing.T) {
	t.Parallel()
	n := &trigger.Node{Kind: trigger.KindPredicate, Scope: trigger.ScopeEvent, Property: "a", Operator: trigger.OpIn, Value: json.RawMessage(`["x", 1]`)}
	if got, want := n.String(), `event.a in ["x",1]`; got != want {
		t.Errorf("String() = %s, want %s", got, want)
	}
	n = &trigger.Node{Kind: trigger.KindPredicate, Scope: trigger.ScopeEvent, Property: "a", Operator: trigger.OpBetween, Value: json.RawMessage(`[1, 5]`)}
	if got, want := n.String(), `event.a between 1 and 5`; got != want {
		t.Errorf("String() = %s, want %s", got, want)
	}
}
