package trigger_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/segmentd/segmentd/trigger"
)

// roundTripInputs covers every operator, value type and group shape.
func roundTripInputs() map[string]*trigger.ConditionInput {
	return map[string]*trigger.ConditionInput{
		"seed":              seed(),
		"EQ string":         user("plan", trigger.OpEQ, "pro <b>&"),
		"NEQ bool":          user("vip", trigger.OpNEQ, false),
		"GT exact number":   event("n", trigger.OpGT, num("1.50")),
		"GTE float":         event("n", trigger.OpGTE, 2.5e-7),
		"LT int":            event("n", trigger.OpLT, 42),
		"LTE time":          event("d", trigger.OpLTE, time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC)),
		"CONTAINS":          event("u", trigger.OpContains, "shop"),
		"NOT_CONTAINS":      event("u", trigger.OpNotContains, 5),
		"STARTS_WITH":       event("u", trigger.OpStartsWith, "https://"),
		"ENDS_WITH":         event("u", trigger.OpEndsWith, ".com"),
		"MATCHES":           event("u", trigger.OpMatches, `^\d{3}-\w+$`),
		"IN":                user("c", trigger.OpIn, []any{"US", num("1e3"), true}),
		"NOT_IN []string":   user("c", trigger.OpNotIn, []string{"US", "CA"}),
		"EXISTS object":     user("c", trigger.OpExists, map[string]any{"b": []any{1.5, nil}, "a": "x"}),
		"NOT_EXISTS":        user("c", trigger.OpNotExists, nil),
		"BETWEEN":           event("n", trigger.OpBetween, []any{-1, num("1.0")}),
		"WITHIN_LAST":       user("seen", trigger.OpWithinLast, "1w2d3h4m5s"),
		"invalid UTF-8":     user("c", trigger.OpEQ, "a"+strings.Repeat("\xff", 300)),
		"unicode property":  user("Straße \"Nr\"", trigger.OpEQ, "\u2028"),
		"deep":              nest(9, and(event("a", trigger.OpExists, nil))),
		"wide":              wide(199),
		"performed count":   performed("Purchase Completed", where(event("total", trigger.OpGT, 10)), count(trigger.OpGTE, 3), within("7d")),
		"performed default": performed("Login", within("1w2d3h4m5s")),
		"performed EQ 0":    not(performed("Login", count(trigger.OpEQ, num("0")), within("14d"))),
		"performed BETWEEN": performed("Login", count(trigger.OpBetween, []any{num("2.0"), 5})),
		"performed SUM":     performed("Purchase Completed", aggregate(trigger.AggSum, "cart.amount", trigger.OpGT, num("100.50")), within("30d")),
		"performed AVG BETWEEN": performed("P <b>", where(or(event("a", trigger.OpIn, []any{"x", 1}), not(event("b", trigger.OpExists, nil)))),
			aggregate(trigger.AggAvg, "Unit Price", trigger.OpBetween, []any{-1.5, 2}), within("36h")),
		"performed nested": and(user("plan", trigger.OpEQ, "pro"), or(not(performed("A", aggregate(trigger.AggMax, "n", trigger.OpLTE, 3))), performed("B"))),
		"mixed": and(
			or(event("a", trigger.OpEQ, 1), not(event("b", trigger.OpIn, []any{"x"}))),
			not(and(user("c", trigger.OpExists, nil), user("d", trigger.OpBetween, []any{"January 1, 2025", "2025-02-01"}))),
		),
	}
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	for name, in := range roundTripInputs() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			n := mustParse(t, in)
			assertRoundTrip(t, n)
		})
	}
}

// assertRoundTrip checks that n survives ToInput, directly and through the
// JSON a client would send back.
func assertRoundTrip(t testing.TB, n *trigger.Node) {
	t.Helper()
	again, err := trigger.Parse(n.ToInput())
	if err != nil {
		t.Fatalf("Parse(ToInput()) failed: %v\n%s", err, dump(n))
	}
	if !equalNodes(again, n) {
		t.Fatalf("Parse(ToInput()) =\n%s\nwant\n%s", dump(again), dump(n))
	}
	b, err := json.Marshal(n.ToInput())
	if err != nil {
		t.Fatalf("json.Marshal(ToInput()): %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var in trigger.ConditionInput
	if err := dec.Decode(&in); err != nil {
		t.Fatalf("decoding %s: %v", b, err)
	}
	viaJSON, err := trigger.Parse(&in)
	if err != nil {
		t.Fatalf("Parse of %s failed: %v", b, err)
	}
	if !equalNodes(viaJSON, n) {
		t.Fatalf("Parse via JSON %s =\n%s\nwant\n%s", b, dump(viaJSON), dump(n))
	}
	if again.String() != n.String() {
		t.Fatalf("text changed: %q, then %q", n.String(), again.String())
	}
}
