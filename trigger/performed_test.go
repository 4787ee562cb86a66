package trigger_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/segmentd/segmentd/behavior"
	"github.com/segmentd/segmentd/trigger"
)

// Builders for performed predicates.

func performed(name string, opts ...func(*trigger.PerformedInput)) *trigger.ConditionInput {
	in := &trigger.PerformedInput{Event: name}
	for _, o := range opts {
		o(in)
	}
	return &trigger.ConditionInput{Performed: in}
}

func within(d string) func(*trigger.PerformedInput) {
	return func(in *trigger.PerformedInput) { in.Within = &d }
}

func where(c *trigger.ConditionInput) func(*trigger.PerformedInput) {
	return func(in *trigger.PerformedInput) { in.Where = c }
}

func count(op trigger.Operator, v any) func(*trigger.PerformedInput) {
	return func(in *trigger.PerformedInput) { in.Count = &trigger.ComparisonInput{Operator: op, Value: v} }
}

func aggregate(f trigger.AggregateFunction, property string, op trigger.Operator, v any) func(*trigger.PerformedInput) {
	return func(in *trigger.PerformedInput) {
		in.Aggregate = &trigger.AggregateInput{Function: f, Property: property, Operator: op, Value: v}
	}
}

func TestPerformedRejects(t *testing.T) {
	t.Parallel()
	login := func(opts ...func(*trigger.PerformedInput)) *trigger.ConditionInput {
		return performed("Login", opts...)
	}
	many := func(n int) *trigger.ConditionInput {
		cs := make([]*trigger.ConditionInput, n)
		for i := range cs {
			cs[i] = login()
		}
		return or(cs...)
	}
	tests := []struct {
		name string
		in   *trigger.ConditionInput
		path string
		msg  string
	}{
		{"with predicate fields", &trigger.ConditionInput{Performed: &trigger.PerformedInput{Event: "Login"}, Scope: ptr(trigger.ScopeEvent)},
			"condition", "performed stands alone"},
		{"with a group", &trigger.ConditionInput{Performed: &trigger.PerformedInput{Event: "Login"}, Not: login()},
			"condition", "performed stands alone"},
		{"event missing", performed(""), "condition.performed.event", "is required"},
		{"event blank", performed("  "), "condition.performed.event", "must not be empty"},
		{"event with control characters", and(user("a", trigger.OpExists, nil), performed("a\nb")), "condition.and[1].performed.event", "control characters"},
		{"event too long", performed(strings.Repeat("e", 257)), "condition.performed.event", "at most 256 bytes"},

		// where
		{"where with scope USER", login(where(user("plan", trigger.OpEQ, "pro"))), "condition.performed.where.scope", "only use scope EVENT"},
		{"where with scope USER deep", not(login(where(and(event("a", trigger.OpExists, nil), or(user("b", trigger.OpExists, nil)))))),
			"condition.not.performed.where.and[1].or[0].scope", "only use scope EVENT"},
		{"where with performed", login(where(performed("Purchase"))), "condition.performed.where.performed", "cannot contain another performed"},
		{"where with a bad predicate", login(where(event("total", trigger.OpGT, "lots"))), "condition.performed.where.value", "GT"},
		{"where empty", login(where(&trigger.ConditionInput{})), "condition.performed.where", "empty condition"},

		// count and aggregate
		{"count and aggregate", login(count(trigger.OpGTE, 1), aggregate(trigger.AggSum, "amount", trigger.OpGT, 1)),
			"condition.performed", "use count or aggregate, not both"},
		{"count operator missing", login(count("", 1)), "condition.performed.count.operator", "is required"},
		{"count operator CONTAINS", login(count(trigger.OpContains, 1)), "condition.performed.count.operator", "CONTAINS cannot compare a figure"},
		{"count operator IN", login(count(trigger.OpIn, []any{1})), "condition.performed.count.operator", "IN cannot compare"},
		{"count operator unknown", login(count("FOO", 1)), "condition.performed.count.operator", "FOO cannot compare"},
		{"count value missing", login(count(trigger.OpGTE, nil)), "condition.performed.count.value", "is required"},
		{"count value a string", login(count(trigger.OpGTE, "3")), "condition.performed.count.value", "must be a number, not a string"},
		{"count value a boolean", login(count(trigger.OpEQ, true)), "condition.performed.count.value", "must be a number"},
		{"count value negative", login(count(trigger.OpGTE, -1)), "condition.performed.count.value", "not negative"},
		{"count value fractional", login(count(trigger.OpGTE, 2.5)), "condition.performed.count.value", "whole number"},
		{"count value too large", login(count(trigger.OpLT, 10001)), "condition.performed.count.value", "at most 10000"},
		{"count value out of float range", login(count(trigger.OpEQ, num("1e400"))), "condition.performed.count.value", "unsupported value"},
		{"count BETWEEN not a pair", login(count(trigger.OpBetween, []any{1})), "condition.performed.count.value", "list of two numbers"},
		{"count BETWEEN scalar", login(count(trigger.OpBetween, 1)), "condition.performed.count.value", "list of two numbers"},
		{"count BETWEEN string end", login(count(trigger.OpBetween, []any{1, "5"})), "condition.performed.count.value[1]", "must be a number"},
		{"count BETWEEN negative low", login(count(trigger.OpBetween, []any{-1, 5})), "condition.performed.count.value[0]", "not negative"},
		{"count BETWEEN reversed", login(count(trigger.OpBetween, []any{5, 1})), "condition.performed.count.value", "low <= high"},
		{"aggregate unknown function", login(aggregate("MEDIAN", "amount", trigger.OpGT, 1)), "condition.performed.aggregate.function", `unknown aggregate function "MEDIAN"`},
		{"aggregate COUNT is not a function", login(aggregate("COUNT", "amount", trigger.OpGT, 1)), "condition.performed.aggregate.function", "use SUM, AVG, MIN or MAX"},
		{"aggregate function missing", login(aggregate("", "amount", trigger.OpGT, 1)), "condition.performed.aggregate.function", "is required"},
		{"aggregate property missing", login(aggregate(trigger.AggSum, "", trigger.OpGT, 1)), "condition.performed.aggregate.property", "is required"},
		{"aggregate property blank", login(aggregate(trigger.AggSum, " ", trigger.OpGT, 1)), "condition.performed.aggregate.property", "must not be empty"},
		{"aggregate string value", login(aggregate(trigger.AggSum, "amount", trigger.OpGT, "100")), "condition.performed.aggregate.value", "must be a number, not a string"},
		{"aggregate date value", login(aggregate(trigger.AggMax, "at", trigger.OpGT, "2025-01-01")), "condition.performed.aggregate.value", "must be a number"},
		{"aggregate list value", login(aggregate(trigger.AggMin, "amount", trigger.OpEQ, []any{1})), "condition.performed.aggregate.value", "must be a number"},
		{"aggregate operator MATCHES", login(aggregate(trigger.AggAvg, "amount", trigger.OpMatches, 1)), "condition.performed.aggregate.operator", "MATCHES cannot compare"},
		{"aggregate BETWEEN string", login(aggregate(trigger.AggAvg, "amount", trigger.OpBetween, []any{"1", 2})), "condition.performed.aggregate.value[0]", "must be a number"},

		// within
		{"within empty", login(within("")), "condition.performed.within", "must not be empty"},
		{"within zero", login(within("0s")), "condition.performed.within", "more than zero"},
		{"within not a duration", login(within("7 days")), "condition.performed.within", "invalid duration"},
		{"within a fraction", login(within("0.5s")), "condition.performed.within", "invalid duration"},
		{"within over 10 years", login(within("3654d")), "condition.performed.within", "at most 10 years"},
		{"within 100 years", login(within("36525d")), "condition.performed.within", "at most 10 years"},
		{"within 10 years and a second", login(within("3653d1s")), "condition.performed.within", "at most 10 years"},
		{"within over 100 years", login(within("36526d")), "condition.performed.within", "longer than 100 years"},

		// nesting and number
		{"nested 4 groups deep", and(or(not(and(login())))), "condition.and[0].or[0].not.and[0].performed", "at most 3 groups"},
		{"21 behaviour predicates", many(21), "condition.or[20].performed", "at most 20 behaviour predicates"},
		{"21 behaviour predicates, nested", and(many(15), not(many(6))), "condition.and[1].not.or[5].performed", "at most 20"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			n, err := trigger.Parse(tc.in)
			var e *trigger.Error
			if !errors.As(err, &e) {
				t.Fatalf("Parse = %v, %v; want an error at %s", n, err, tc.path)
			}
			if e.Path != tc.path || !strings.Contains(e.Message, tc.msg) {
				t.Fatalf("Parse error = %q at %q; want %q at %q", e.Message, e.Path, tc.msg, tc.path)
			}
		})
	}
}

func TestPerformedAccepts(t *testing.T) {
	t.Parallel()
	many := make([]*trigger.ConditionInput, 20)
	for i := range many {
		many[i] = performed("Login")
	}
	for name, in := range map[string]*trigger.ConditionInput{
		"20 behaviour predicates":       or(many...),
		"nested in 3 groups":            and(or(not(performed("Login")))),
		"within 1s":                     performed("Login", within("1s")),
		"within 10 years":               performed("Login", within("3653d")),
		"count 0 and 10000":             and(performed("A", count(trigger.OpEQ, 0)), performed("B", count(trigger.OpLT, num("10000")))),
		"count 3.0 is whole":            performed("A", count(trigger.OpGTE, num("3.0"))),
		"aggregate negative value":      performed("A", aggregate(trigger.AggMin, "t", trigger.OpLT, -273.15)),
		"where with WITHIN_LAST":        performed("A", where(event("at", trigger.OpWithinLast, "1h"))),
		"where as deep as MaxDepth":     and(and(and(performed("A", where(nest(6, event("a", trigger.OpExists, nil))))))),
		"a where NOT of an EVENT scope": performed("A", where(not(event("a", trigger.OpExists, nil)))),
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			n := mustParse(t, in)
			if _, err := trigger.Compile(n); err != nil {
				t.Fatalf("Compile: %v", err)
			}
		})
	}
}

func TestPerformedDefaultCount(t *testing.T) {
	t.Parallel()
	n := mustParse(t, performed("Login", within("14d")))
	c := n.Performed.Count
	if c == nil || c.Operator != trigger.OpGTE || string(c.Value) != "1" || n.Performed.Aggregate != nil {
		t.Fatalf("default count = %+v, want GTE 1", c)
	}
	if got, want := n.String(), `performed "Login" at least 1 time within 14d`; got != want {
		t.Fatalf("String() = %q, want %q", got, want)
	}
	// A hand-built node without count or aggregate means the same.
	p, err := trigger.Compile(&trigger.Node{Kind: trigger.KindPerformed, Performed: &trigger.PerformedNode{Event: "Login", Within: "14d"}})
	if err != nil {
		t.Fatal(err)
	}
	b := p.Behaviors()[0]
	if b.Spec != (behavior.Spec{Within: 14 * 24 * time.Hour, Func: behavior.Count, Op: behavior.GTE, Value: 1}) {
		t.Fatalf("Spec = %+v", b.Spec)
	}
	if b.Key() != mustCompile(t, performed("Login", within("14d"))).Behaviors()[0].Key() {
		t.Fatalf("the default and the explicit GTE 1 have different keys")
	}
}

func TestPerformedString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   *trigger.ConditionInput
		want string
	}{
		{performed("Purchase Completed", where(event("total", trigger.OpGT, 10)), count(trigger.OpGTE, 3), within("7d")),
			`performed "Purchase Completed" where event.total > 10 at least 3 times within 7d`},
		{performed("Login", count(trigger.OpEQ, 0), within("14d")), `performed "Login" 0 times within 14d`},
		{performed("Login", count(trigger.OpEQ, 2)), `performed "Login" exactly 2 times`},
		{performed("Login", count(trigger.OpEQ, 1)), `performed "Login" exactly 1 time`},
		{performed("Login", count(trigger.OpNEQ, 2)), `performed "Login" not exactly 2 times`},
		{performed("Login", count(trigger.OpGT, 5), within("1h30m")), `performed "Login" more than 5 times within 1h30m`},
		{performed("Login", count(trigger.OpLT, 3)), `performed "Login" fewer than 3 times`},
		{performed("Login", count(trigger.OpLTE, 1)), `performed "Login" at most 1 time`},
		{performed("Login", count(trigger.OpBetween, []any{2, 5}), within("1w")), `performed "Login" between 2 and 5 times within 1w`},
		{performed("Purchase Completed", aggregate(trigger.AggSum, "amount", trigger.OpGT, 100), within("30d")),
			`performed "Purchase Completed" SUM of amount > 100 within 30d`},
		{performed("Purchase", aggregate(trigger.AggAvg, "cart.total", trigger.OpGTE, num("20.50"))), `performed "Purchase" AVG of cart.total >= 20.50`},
		{performed("Purchase", aggregate(trigger.AggMin, "Unit Price", trigger.OpLT, 1)), `performed "Purchase" MIN of "Unit Price" < 1`},
		{performed("Purchase", aggregate(trigger.AggMax, "n", trigger.OpBetween, []any{1, 2})), `performed "Purchase" MAX of n between 1 and 2`},
		{performed("Purchase", aggregate(trigger.AggSum, "n", trigger.OpEQ, 0)), `performed "Purchase" SUM of n = 0`},
		{performed("Purchase", aggregate(trigger.AggSum, "n", trigger.OpNEQ, 0)), `performed "Purchase" SUM of n != 0`},
		{performed(`Say "hi"`), `performed "Say \"hi\"" at least 1 time`},
		{performed("View", where(and(event("a", trigger.OpEQ, 1), event("b", trigger.OpExists, nil))), within("24h")),
			`performed "View" where (event.a = 1 AND event.b exists) at least 1 time within 24h`},
		{and(user("plan", trigger.OpEQ, "pro"), not(performed("Login", within("14d")))),
			`user.plan = "pro" AND NOT (performed "Login" at least 1 time within 14d)`},
		{or(performed("A"), and(performed("B"), performed("C"))),
			`performed "A" at least 1 time OR (performed "B" at least 1 time AND performed "C" at least 1 time)`},
	}
	for _, tc := range tests {
		t.Run(tc.want, func(t *testing.T) {
			t.Parallel()
			n := mustParse(t, tc.in)
			if got := n.String(); got != tc.want {
				t.Fatalf("String() = %q\nwant %q", got, tc.want)
			}
			assertRoundTrip(t, n)
		})
	}
}

func TestPerformedRoundTripThroughInputJSON(t *testing.T) {
	t.Parallel()
	// What a client sends, as gqlgen's JSON would decode it.
	const in = `{"and":[{"performed":{"event":"Purchase Completed","where":{"scope":"EVENT","property":"total","operator":"GT","value":10},` +
		`"within":"7d","count":{"operator":"GTE","value":3}}},{"not":{"performed":{"event":"Refund","aggregate":{"function":"SUM","property":"amount","operator":"BETWEEN","value":[1.50,2]}}}}]}`
	var ci trigger.ConditionInput
	if err := json.Unmarshal([]byte(in), &ci); err != nil {
		t.Fatal(err)
	}
	n := mustParse(t, &ci)
	want := `performed "Purchase Completed" where event.total > 10 at least 3 times within 7d AND NOT (performed "Refund" SUM of amount between 1.5 and 2)`
	if n.String() != want {
		t.Fatalf("String() = %q\nwant %q", n.String(), want)
	}
	assertRoundTrip(t, n)
}

func TestPerformedBehaviors(t *testing.T) {
	t.Parallel()
	p := mustCompile(t, and(
		user("plan", trigger.OpEQ, "pro"),
		performed("Purchase Completed", where(event("total", trigger.OpGT, 10)), count(trigger.OpGTE, 3), within("7d")),
		or(performed("Purchase Completed", aggregate(trigger.AggSum, "cart.amount", trigger.OpBetween, []any{100, 200}), within("30d")),
			not(performed("Login", count(trigger.OpEQ, 0), within("14d")))),
		performed("Purchase Completed", where(event("total", trigger.OpGT, 10)), count(trigger.OpGTE, 3), within("1w")),
	))
	bs := p.Behaviors()
	if len(bs) != 4 {
		t.Fatalf("Behaviors() has %d entries, want 4", len(bs))
	}
	wantSpecs := []behavior.Spec{
		{Within: 7 * 24 * time.Hour, Func: behavior.Count, Op: behavior.GTE, Value: 3},
		{Within: 30 * 24 * time.Hour, Func: behavior.Sum, Op: behavior.Between, Value: 100, High: 200},
		{Within: 14 * 24 * time.Hour, Func: behavior.Count, Op: behavior.EQ, Value: 0},
		{Within: 7 * 24 * time.Hour, Func: behavior.Count, Op: behavior.GTE, Value: 3},
	}
	for i, b := range bs {
		if b.Spec != wantSpecs[i] {
			t.Errorf("Behaviors()[%d].Spec = %+v, want %+v", i, b.Spec, wantSpecs[i])
		}
		if err := b.Spec.Validate(); err != nil {
			t.Errorf("Behaviors()[%d].Spec: %v", i, err)
		}
		if len(b.Key()) != 32 {
			t.Errorf("Key() = %q", b.Key())
		}
	}
	if bs[0].Event != "Purchase Completed" || bs[2].Event != "Login" || bs[1].Property != "cart.amount" || bs[0].Property != "" {
		t.Errorf("events or properties wrong: %+v", bs)
	}
	if bs[1].Text != `performed "Purchase Completed" SUM of cart.amount between 100 and 200 within 30d` {
		t.Errorf("Text = %q", bs[1].Text)
	}
	// 7d and 1w measure the same thing: one state serves both.
	if bs[0].Key() != bs[3].Key() {
		t.Errorf("7d and 1w have different keys")
	}
	keys := map[string]bool{}
	for _, b := range bs[:3] {
		keys[b.Key()] = true
	}
	if len(keys) != 3 {
		t.Errorf("different predicates share a key")
	}
	// Keys are stable across compilations and change with any part.
	if again := mustCompile(t, performed("Purchase Completed", where(event("total", trigger.OpGT, 10)), count(trigger.OpGTE, 3), within("7d"))); again.Behaviors()[0].Key() != bs[0].Key() {
		t.Errorf("Key changed between compilations")
	}
	for name, other := range map[string]*trigger.ConditionInput{
		"event":    performed("Purchase", where(event("total", trigger.OpGT, 10)), count(trigger.OpGTE, 3), within("7d")),
		"where":    performed("Purchase Completed", where(event("total", trigger.OpGT, 11)), count(trigger.OpGTE, 3), within("7d")),
		"no where": performed("Purchase Completed", count(trigger.OpGTE, 3), within("7d")),
		"within":   performed("Purchase Completed", where(event("total", trigger.OpGT, 10)), count(trigger.OpGTE, 3), within("8d")),
		"all time": performed("Purchase Completed", where(event("total", trigger.OpGT, 10)), count(trigger.OpGTE, 3)),
		"operator": performed("Purchase Completed", where(event("total", trigger.OpGT, 10)), count(trigger.OpGT, 3), within("7d")),
		"value":    performed("Purchase Completed", where(event("total", trigger.OpGT, 10)), count(trigger.OpGTE, 4), within("7d")),
		"function": performed("Purchase Completed", where(event("total", trigger.OpGT, 10)), aggregate(trigger.AggSum, "x", trigger.OpGTE, 3), within("7d")),
	} {
		if mustCompile(t, other).Behaviors()[0].Key() == bs[0].Key() {
			t.Errorf("changing the %s keeps the key", name)
		}
	}
	sum := mustCompile(t, performed("P", aggregate(trigger.AggSum, "x", trigger.OpGTE, 3))).Behaviors()[0]
	if mustCompile(t, performed("P", aggregate(trigger.AggSum, "y", trigger.OpGTE, 3))).Behaviors()[0].Key() == sum.Key() {
		t.Errorf("changing the property keeps the key")
	}
	if mustCompile(t, performed("P", aggregate(trigger.AggSum, "x", trigger.OpBetween, []any{3, 4}))).Behaviors()[0].Key() ==
		mustCompile(t, performed("P", aggregate(trigger.AggSum, "x", trigger.OpBetween, []any{3, 5}))).Behaviors()[0].Key() {
		t.Errorf("changing BETWEEN's high end keeps the key")
	}
	// The where condition reads the counted event, not the outer program's.
	if p.ReadsEvent() {
		t.Errorf("ReadsEvent() = true, but only a where condition reads events")
	}
	if !bs[0].Where.ReadsEvent() || bs[2].Where != nil {
		t.Errorf("Where programs wrong")
	}
	// A copy: changing it changes nothing.
	bs[0].Event = "x"
	if p.Behaviors()[0].Event != "Purchase Completed" {
		t.Errorf("Behaviors() shares its slice")
	}
}

func TestBehaviorCountsAndValue(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	b := mustCompile(t, performed("Purchase", where(and(event("total", trigger.OpGT, 10), event("at", trigger.OpWithinLast, "1h"))),
		aggregate(trigger.AggSum, "cart.amount", trigger.OpGT, 100))).Behaviors()[0]
	props := func(total any) map[string]any {
		return map[string]any{"total": total, "at": now.Add(-time.Minute).Format(time.RFC3339)}
	}
	for _, tc := range []struct {
		name  string
		event string
		props map[string]any
		at    time.Time
		want  bool
	}{
		{"matching", "Purchase", props(11), now, true},
		{"other event", "Refund", props(11), now, false},
		{"event names are exact", "purchase", props(11), now, false},
		{"where fails", "Purchase", props(10), now, false},
		{"where measured at the event's time", "Purchase", props(11), now.Add(2 * time.Hour), false},
		{"no properties", "Purchase", nil, now, false},
	} {
		if got := b.Counts(tc.event, tc.props, tc.at); got != tc.want {
			t.Errorf("%s: Counts = %v, want %v", tc.name, got, tc.want)
		}
	}
	all := mustCompile(t, performed("Login")).Behaviors()[0]
	if !all.Counts("Login", nil, time.Time{}) || all.Counts("Logout", nil, time.Time{}) {
		t.Errorf("without where, only the name decides")
	}
	for _, tc := range []struct {
		props map[string]any
		v     float64
		ok    bool
	}{
		{map[string]any{"cart": map[string]any{"amount": 12.5}}, 12.5, true},
		{map[string]any{"cart.amount": json.Number("7")}, 7, true},
		{map[string]any{"cart": map[string]any{"amount": " 3.5 "}}, 3.5, true},
		{map[string]any{"cart": map[string]any{"amount": "lots"}}, 0, false},
		{map[string]any{"cart": map[string]any{"amount": nil}}, 0, false},
		{map[string]any{"cart": map[string]any{"amount": true}}, 0, false},
		{map[string]any{"cart": "x"}, 0, false},
		{nil, 0, false},
	} {
		v, ok := b.Value(tc.props)
		if v != tc.v || ok != tc.ok {
			t.Errorf("Value(%v) = %v, %v; want %v, %v", tc.props, v, ok, tc.v, tc.ok)
		}
	}
	if _, ok := all.Value(map[string]any{"x": 1}); ok {
		t.Errorf("a count has no value")
	}
}

func TestPerformedEval(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	matched := behavior.Result{Matched: true, Figure: 3, Defined: true}
	zero := behavior.Result{Figure: 0, Defined: true}
	tests := []struct {
		name    string
		in      *trigger.ConditionInput
		results []behavior.Result
		want    bool
		reason  string
	}{
		{"count holds", performed("Purchase Completed", count(trigger.OpGTE, 3), within("7d")), []behavior.Result{matched}, true,
			`matched: performed "Purchase Completed" at least 3 times within 7d`},
		{"count fails with its figure", performed("Login", within("14d")), []behavior.Result{zero}, false,
			`condition failed: performed "Login" at least 1 time within 14d (was 0 of 1 within 14d)`},
		{"a lower bound", performed("Login", count(trigger.OpLT, 3), within("14d")), []behavior.Result{{Figure: 3, Defined: true, AtLeast: true}}, false,
			`condition failed: performed "Login" fewer than 3 times within 14d (was at least 3 within 14d)`},
		{"count EQ 0 holds", performed("Login", count(trigger.OpEQ, 0), within("14d")), []behavior.Result{{Matched: true, Defined: true}}, true,
			`matched: performed "Login" 0 times within 14d`},
		{"count EQ 0 fails", performed("Login", count(trigger.OpEQ, 0), within("14d")), []behavior.Result{{Figure: 1, Defined: true}}, false,
			`condition failed: performed "Login" 0 times within 14d (was 1 within 14d)`},
		{"NOT performed holds", not(performed("Login", within("14d"))), []behavior.Result{zero}, true,
			`matched: NOT (performed "Login" at least 1 time within 14d)`},
		{"NOT performed fails with the figure", not(performed("Login", within("14d"))), []behavior.Result{{Matched: true, Figure: 2, Defined: true}}, false,
			`condition failed: NOT (performed "Login" at least 1 time within 14d) held (was 2 within 14d)`},
		{"an aggregate over nothing", performed("Purchase", aggregate(trigger.AggSum, "amount", trigger.OpLT, 100), within("30d")), []behavior.Result{{}}, false,
			`condition failed: performed "Purchase" SUM of amount < 100 within 30d (was no values within 30d)`},
		{"an aggregate's figure", performed("Purchase", aggregate(trigger.AggAvg, "amount", trigger.OpGT, 100)), []behavior.Result{{Figure: 12.25, Defined: true}}, false,
			`condition failed: performed "Purchase" AVG of amount > 100 (was 12.25)`},
		{"no results: not matched", performed("Login"), nil, false,
			`condition failed: performed "Login" at least 1 time (not evaluated)`},
		{"NOT of no result holds", not(performed("Login")), nil, true, `matched: NOT (performed "Login" at least 1 time)`},
		{"results by index", and(performed("A"), or(user("plan", trigger.OpEQ, "pro"), performed("B")), not(performed("C"))),
			[]behavior.Result{matched, zero, zero}, false,
			`condition failed: none of: user.plan = "pro" (was "free"); performed "B" at least 1 time (was 0 of 1)`},
		{"results by index, all hold", and(performed("A"), or(user("plan", trigger.OpEQ, "pro"), performed("B")), not(performed("C"))),
			[]behavior.Result{matched, matched, zero}, true, ""},
		{"a short slice", and(performed("A"), performed("B")), []behavior.Result{matched}, false,
			`condition failed: performed "B" at least 1 time (not evaluated)`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := mustCompile(t, tc.in)
			r := p.Eval(trigger.Env{User: map[string]any{"plan": "free"}, Now: now, Behaviors: tc.results})
			if r.Matched != tc.want || (tc.reason != "" && r.Reason != tc.reason) {
				t.Fatalf("Eval = %v, %q\nwant %v, %q", r.Matched, r.Reason, tc.want, tc.reason)
			}
		})
	}
}

// TestPerformedWithStates drives a program from real behavior states, the
// way the service does: "3 purchases over 10 within 7d and no refund in
// 14d".
func TestPerformedWithStates(t *testing.T) {
	t.Parallel()
	p := mustCompile(t, and(
		performed("Purchase", where(event("total", trigger.OpGT, 10)), count(trigger.OpGTE, 3), within("7d")),
		not(performed("Refund", within("14d"))),
	))
	bs := p.Behaviors()
	states := make([]*behavior.State, len(bs))
	for i, b := range bs {
		s, err := behavior.New(b.Spec)
		if err != nil {
			t.Fatal(err)
		}
		states[i] = s
	}
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	ingest := func(name string, props map[string]any, at time.Time) {
		for i, b := range bs {
			if b.Counts(name, props, at) {
				v, ok := b.Value(props)
				states[i].Add(at, v, ok)
			}
		}
	}
	eval := func(at time.Time) (trigger.Result, time.Time) {
		env := trigger.Env{Now: at, Behaviors: make([]behavior.Result, len(bs)), BehaviorNext: make([]time.Time, len(bs))}
		for i, s := range states {
			r, err := s.Eval(at)
			if err != nil {
				t.Fatal(err)
			}
			env.Behaviors[i] = r
			if next, ok, err := s.NextChange(at); err == nil && ok {
				env.BehaviorNext[i] = next
			}
		}
		next, _ := p.NextChange(env)
		return p.Eval(env), next
	}
	day := 24 * time.Hour
	ingest("Purchase", map[string]any{"total": 20}, t0)
	ingest("Purchase", map[string]any{"total": 5}, t0.Add(day)) // does not pass where
	ingest("Purchase", map[string]any{"total": 30}, t0.Add(2*day))
	if r, _ := eval(t0.Add(2 * day)); r.Matched || r.Reason != `condition failed: performed "Purchase" where event.total > 10 at least 3 times within 7d (was 2 of 3 within 7d)` {
		t.Fatalf("after 2 purchases: %v %q", r.Matched, r.Reason)
	}
	ingest("Purchase", map[string]any{"total": 11}, t0.Add(3*day))
	r, next := eval(t0.Add(3 * day))
	if !r.Matched {
		t.Fatalf("after 3 purchases: %q", r.Reason)
	}
	// The first purchase leaves the window one nanosecond after 7 days.
	if want := t0.Add(7*day + time.Nanosecond); !next.Equal(want) {
		t.Fatalf("NextChange = %v, want %v", next, want)
	}
	if r, _ := eval(t0.Add(7 * day)); !r.Matched {
		t.Fatalf("at the window's edge: %q", r.Reason)
	}
	if r, _ := eval(next); r.Matched || !strings.Contains(r.Reason, "(was 2 of 3 within 7d)") {
		t.Fatalf("after the first purchase left: %v %q", r.Matched, r.Reason)
	}
	// A refund makes the NOT fail.
	ingest("Purchase", map[string]any{"total": 99}, t0.Add(4*day))
	ingest("Refund", nil, t0.Add(4*day))
	if r, _ := eval(t0.Add(4 * day)); r.Matched || r.Reason != `condition failed: NOT (performed "Refund" at least 1 time within 14d) held (was 1 within 14d)` {
		t.Fatalf("after a refund: %v %q", r.Matched, r.Reason)
	}
}

func TestPerformedNextChange(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	in := and(
		user("seen", trigger.OpWithinLast, "1h"),
		or(performed("A", within("1d")), not(performed("B", count(trigger.OpEQ, 0), within("2d")))),
	)
	p := mustCompile(t, in)
	seen := map[string]any{"seen": now.Add(-30 * time.Minute).Format(time.RFC3339)}
	withinEnd := now.Add(30*time.Minute + time.Nanosecond)
	for _, tc := range []struct {
		name string
		next []time.Time
		user map[string]any
		want time.Time
	}{
		{"only WITHIN_LAST", nil, seen, withinEnd},
		{"a behaviour sooner", []time.Time{now.Add(10 * time.Minute), {}}, seen, now.Add(10 * time.Minute)},
		{"under NOT too", []time.Time{{}, now.Add(time.Second)}, seen, now.Add(time.Second)},
		{"a behaviour later", []time.Time{now.Add(2 * time.Hour), now.Add(3 * time.Hour)}, seen, withinEnd},
		{"past instants ignored", []time.Time{now, now.Add(-time.Hour)}, seen, withinEnd},
		{"behaviours alone", []time.Time{now.Add(3 * time.Hour), now.Add(2 * time.Hour)}, nil, now.Add(2 * time.Hour)},
		{"nothing", []time.Time{{}, {}}, nil, time.Time{}},
		{"a short slice", []time.Time{now.Add(time.Hour)}, nil, now.Add(time.Hour)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := p.NextChange(trigger.Env{User: tc.user, Now: now, BehaviorNext: tc.next})
			if ok != !tc.want.IsZero() || !got.Equal(tc.want) {
				t.Fatalf("NextChange = %v, %v; want %v", got, ok, tc.want)
			}
		})
	}
}

func TestCompileChecksPerformedNodes(t *testing.T) {
	t.Parallel()
	perf := func(pn *trigger.PerformedNode) *trigger.Node {
		return &trigger.Node{Kind: trigger.KindPerformed, Performed: pn}
	}
	raw := func(s string) json.RawMessage { return json.RawMessage(s) }
	userPred := &trigger.Node{Kind: trigger.KindPredicate, Scope: trigger.ScopeUser, Property: "a", Operator: trigger.OpExists}
	tests := []struct {
		name string
		node *trigger.Node
		path string
		msg  string
	}{
		{"no performed", &trigger.Node{Kind: trigger.KindPerformed}, "condition.performed", "is required"},
		{"with children", &trigger.Node{Kind: trigger.KindPerformed, Performed: &trigger.PerformedNode{Event: "A"}, Children: []*trigger.Node{userPred}}, "condition", "no child"},
		{"no event", perf(&trigger.PerformedNode{}), "condition.performed.event", "is required"},
		{"where with USER", perf(&trigger.PerformedNode{Event: "A", Where: userPred}), "condition.performed.where.scope", "only use scope EVENT"},
		{"where with performed", perf(&trigger.PerformedNode{Event: "A", Where: perf(&trigger.PerformedNode{Event: "B"})}), "condition.performed.where.performed", "another performed"},
		{"bad within", perf(&trigger.PerformedNode{Event: "A", Within: "7 days"}), "condition.performed.within", "invalid duration"},
		{"both", perf(&trigger.PerformedNode{Event: "A", Count: &trigger.Comparison{Operator: trigger.OpGTE, Value: raw("1")},
			Aggregate: &trigger.Aggregate{Function: trigger.AggSum, Property: "x", Operator: trigger.OpGT, Value: raw("1")}}), "condition.performed", "not both"},
		{"stored value not JSON", perf(&trigger.PerformedNode{Event: "A", Count: &trigger.Comparison{Operator: trigger.OpGTE, Value: raw("{")}}), "condition.performed.count.value", "not valid JSON"},
		{"unknown function", perf(&trigger.PerformedNode{Event: "A", Aggregate: &trigger.Aggregate{Function: "MEDIAN", Property: "x", Operator: trigger.OpGT, Value: raw("1")}}),
			"condition.performed.aggregate.function", "unknown"},
		{"too deep", &trigger.Node{Kind: trigger.KindNot, Children: []*trigger.Node{{Kind: trigger.KindNot, Children: []*trigger.Node{{Kind: trigger.KindNot, Children: []*trigger.Node{
			{Kind: trigger.KindNot, Children: []*trigger.Node{perf(&trigger.PerformedNode{Event: "A"})}}}}}}}}, "condition.not.not.not.not.performed", "at most 3 groups"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := trigger.Compile(tc.node)
			var e *trigger.Error
			if !errors.As(err, &e) || e.Path != tc.path || !strings.Contains(e.Message, tc.msg) {
				t.Fatalf("Compile = %v; want %q at %s", err, tc.msg, tc.path)
			}
		})
	}
	// Lenient like predicates: a stored value reformatted by the store.
	p, err := trigger.Compile(perf(&trigger.PerformedNode{Event: "A", Within: "7d",
		Aggregate: &trigger.Aggregate{Function: trigger.AggSum, Property: "x", Operator: trigger.OpBetween, Value: raw(" [ 1 , 2.50 ] ")}}))
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Behaviors()[0].Text; got != `performed "A" SUM of x between 1 and 2.50 within 7d` {
		t.Fatalf("Text = %q", got)
	}
}

func TestPerformedCyclesEnd(t *testing.T) {
	t.Parallel()
	n := &trigger.Node{Kind: trigger.KindPerformed, Performed: &trigger.PerformedNode{Event: "A"}}
	n.Performed.Where = &trigger.Node{Kind: trigger.KindAnd, Children: []*trigger.Node{n}}
	if c := n.Count(); c <= 0 {
		t.Errorf("Count = %d", c)
	}
	if s := n.String(); !strings.Contains(s, "…") {
		t.Errorf("String of a cyclic tree should be cut short, got %d bytes", len(s))
	}
	if _, err := trigger.Parse(n.ToInput()); err == nil {
		t.Errorf("Parse(ToInput()) of a cyclic tree should fail")
	}
	if _, err := trigger.Compile(n); err == nil {
		t.Errorf("Compile of a cyclic tree should fail")
	}
}

// TestPerformedSemantics runs each comparison and each aggregate over one
// stream through real states: the Spec that Compile derives says what the
// predicate's text says, at the window's edges and with late events.
func TestPerformedSemantics(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	type ev struct {
		at     time.Duration // after t0
		amount any
	}
	// Arrival order, not time order: the 3rd one is late.
	stream := []ev{{0, 10}, {2 * day, 20}, {day, 5}, {3 * day, "x"}, {4 * day, nil}}
	tests := []struct {
		in   *trigger.ConditionInput
		at   time.Duration
		want bool
	}{
		{performed("P", count(trigger.OpEQ, 5)), 4 * day, true},
		{performed("P", count(trigger.OpEQ, 5), within("4d")), 4 * day, true}, // t0 is at the window's start: inside
		{performed("P", count(trigger.OpEQ, 5), within("4d")), 4*day + time.Nanosecond, false},
		{performed("P", count(trigger.OpNEQ, 4), within("1d")), 4 * day, true},
		{performed("P", count(trigger.OpGT, 1), within("1d")), 4 * day, true}, // 3d and 4d
		{performed("P", count(trigger.OpGTE, 3), within("2d")), 3 * day, true},
		{performed("P", count(trigger.OpLT, 3), within("2d")), 3 * day, false},
		{performed("P", count(trigger.OpLTE, 2), within("1d")), 3 * day, true},
		{performed("P", count(trigger.OpBetween, []any{2, 3}), within("36h")), 3 * day, true},
		{performed("P", count(trigger.OpEQ, 0), within("1d")), 6 * day, true},
		{performed("P", count(trigger.OpEQ, 0), within("1d")), 5 * day, false}, // the 4d one at the edge
		{performed("P", aggregate(trigger.AggSum, "amount", trigger.OpEQ, 35)), 4 * day, true},
		{performed("P", aggregate(trigger.AggSum, "amount", trigger.OpEQ, 25), within("2d")), 3 * day, true}, // the late 5 counts
		{performed("P", aggregate(trigger.AggAvg, "amount", trigger.OpGT, 11)), 4 * day, true},               // 35/3
		{performed("P", aggregate(trigger.AggMin, "amount", trigger.OpEQ, 5)), 4 * day, true},
		{performed("P", aggregate(trigger.AggMin, "amount", trigger.OpEQ, 20), within("1d")), 3 * day, true},
		{performed("P", aggregate(trigger.AggMax, "amount", trigger.OpBetween, []any{20, 20})), 4 * day, true},
		{performed("P", aggregate(trigger.AggMax, "amount", trigger.OpGTE, 0), within("1d")), 4 * day, false}, // no numeric values: false
		{not(performed("P", aggregate(trigger.AggMax, "amount", trigger.OpGTE, 0), within("1d"))), 4 * day, true},
	}
	for _, tc := range tests {
		n := mustParse(t, tc.in)
		t.Run(n.String()+" at "+tc.at.String(), func(t *testing.T) {
			t.Parallel()
			p := mustCompile(t, tc.in)
			b := p.Behaviors()[0]
			s, err := behavior.New(b.Spec)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range stream {
				props := map[string]any{"amount": e.amount}
				if b.Counts("P", props, t0.Add(e.at)) {
					v, ok := b.Value(props)
					s.Add(t0.Add(e.at), v, ok)
				}
			}
			r, err := s.Eval(t0.Add(tc.at))
			if err != nil {
				t.Fatal(err)
			}
			got := p.Eval(trigger.Env{Now: t0.Add(tc.at), Behaviors: []behavior.Result{r}})
			if got.Matched != tc.want {
				t.Fatalf("Matched = %v, want %v (%s)", got.Matched, tc.want, got.Reason)
			}
		})
	}
}
