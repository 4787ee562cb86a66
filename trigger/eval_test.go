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

var now = time.Date(2025, 6, 15, 12, 0, 0, 0, time.UTC)

func props(kv ...any) map[string]any {
	m := make(map[string]any, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i].(string)] = kv[i+1]
	}
	return m
}

// withEvent and withUser build an Env at the fixed clock.
func withEvent(kv ...any) trigger.Env { return trigger.Env{Event: props(kv...), Now: now} }
func withUser(kv ...any) trigger.Env  { return trigger.Env{User: props(kv...), Now: now} }

func TestEval(t *testing.T) {
	t.Parallel()
	type evalCase struct {
		name string
		cond *trigger.ConditionInput
		env  trigger.Env
		want bool
	}
	groups := map[string][]evalCase{
		"lookup": {
			{"exact key with spaces", event("Reward Amount", trigger.OpEQ, 5), withEvent("Reward Amount", 5), true},
			{"exact key with a dot wins over nesting", event("a.b", trigger.OpEQ, 1), withEvent("a.b", 1, "a", map[string]any{"b": 2}), true},
			{"nested walk", user("address.city", trigger.OpEQ, "Berlin"), withUser("address", map[string]any{"city": "Berlin"}), true},
			{"nested three deep", user("a.b.c", trigger.OpEQ, 1), withUser("a", map[string]any{"b": map[string]any{"c": 1}}), true},
			{"nested intermediate missing", user("address.city", trigger.OpExists, nil), withUser("city", "Berlin"), false},
			{"nested intermediate not an object", user("address.city", trigger.OpExists, nil), withUser("address", "Berlin"), false},
			{"nil map holds nothing", event("a", trigger.OpExists, nil), trigger.Env{Now: now}, false},
			{"USER reads traits", user("plan", trigger.OpEQ, "pro"), withUser("plan", "pro"), true},
			{"USER does not read the event", user("plan", trigger.OpEQ, "pro"), withEvent("plan", "pro"), false},
			{"EVENT does not read traits", event("plan", trigger.OpEQ, "pro"), withUser("plan", "pro"), false},
		},
		"numbers": {
			{"float64", event("n", trigger.OpGT, 50), withEvent("n", 50.5), true},
			{"json.Number", event("n", trigger.OpEQ, num("50")), withEvent("n", num("50.0")), true},
			{"int", event("n", trigger.OpLT, 50), withEvent("n", 49), true},
			{"int64", event("n", trigger.OpGTE, 50), withEvent("n", int64(50)), true},
			{"uint8", event("n", trigger.OpLTE, 50), withEvent("n", uint8(50)), true},
			{"numeric string", event("n", trigger.OpGT, 50), withEvent("n", " 100 "), true},
			{"numeric string compares as a number, not text", event("n", trigger.OpLT, 50), withEvent("n", "9"), true},
			{"non-numeric string cannot compare", event("n", trigger.OpGT, 50), withEvent("n", "lots"), false},
			{"NaN text is not a number", event("n", trigger.OpNEQ, 50), withEvent("n", "NaN"), false},
			{"boolean cannot compare", event("n", trigger.OpNEQ, 1), withEvent("n", true), false},
			{"NaN cannot compare", event("n", trigger.OpNEQ, 1), withEvent("n", math.NaN()), false},
			{"expected numeric string vs actual number", event("n", trigger.OpEQ, "50"), withEvent("n", 50.0), true},
			{"expected numeric string vs actual number, ordered", event("n", trigger.OpGT, "50"), withEvent("n", 100), true},
			{"expected text vs actual number cannot compare", event("n", trigger.OpNEQ, "fifty"), withEvent("n", 50), false},
		},
		"dates": {
			{"date vs RFC 3339", user("d", trigger.OpGT, "2025-01-01"), withUser("d", "2025-01-01T00:00:01Z"), true},
			{"date vs RFC 3339 nano", user("d", trigger.OpLT, "2025-01-01"), withUser("d", "2024-12-31T23:59:59.999999999Z"), true},
			{"date vs offset compares instants", user("d", trigger.OpLT, "2025-01-01T00:00:00Z"), withUser("d", "2025-01-01T01:00:00+02:00"), true},
			{"date vs time without zone is UTC", user("d", trigger.OpEQ, "2025-01-01"), withUser("d", "2025-01-01T00:00:00"), true},
			{"date vs date", user("d", trigger.OpGTE, "2025-01-01"), withUser("d", "2025-01-01"), true},
			{"date vs time.Time", user("d", trigger.OpGT, "2025-01-01"), withUser("d", time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)), true},
			{"date does not order against text", user("d", trigger.OpGT, "2025-01-01"), withUser("d", "N/A"), false},
			{"date is equal to the same text", user("d", trigger.OpEQ, "2025-13-45"), withUser("d", "2025-13-45"), true},
			{"date is not equal to other text", user("d", trigger.OpNEQ, "2025-01-01"), withUser("d", "soon"), true},
			{"date vs number cannot compare", user("d", trigger.OpGT, "2025-01-01"), withUser("d", 1735689600), false},
		},
		"strings and booleans": {
			{"exact", user("c", trigger.OpEQ, "Facebook"), withUser("c", "Facebook"), true},
			{"case-sensitive", user("c", trigger.OpEQ, "Facebook"), withUser("c", "facebook"), false},
			{"not trimmed", user("c", trigger.OpEQ, "Facebook"), withUser("c", "Facebook "), false},
			{"two numeric strings compare as text", user("c", trigger.OpGT, "10"), withUser("c", "9"), true},
			{"numeric text is not equal to other text", user("c", trigger.OpEQ, "5"), withUser("c", "5.0"), false},
			{"boolean", user("b", trigger.OpEQ, true), withUser("b", true), true},
			{"boolean vs text true", user("b", trigger.OpEQ, true), withUser("b", "true"), true},
			{"boolean vs other text cannot compare", user("b", trigger.OpNEQ, true), withUser("b", "yes"), false},
			{"text true vs boolean", user("b", trigger.OpEQ, "false"), withUser("b", false), true},
			{"text vs list cannot compare", user("b", trigger.OpNEQ, "x"), withUser("b", []any{"y"}), false},
			{"text vs object cannot compare", user("b", trigger.OpEQ, "x"), withUser("b", map[string]any{"x": 1}), false},
		},
		"missing": {
			{"EQ", event("a", trigger.OpEQ, 1), withEvent(), false},
			{"NEQ", event("a", trigger.OpNEQ, 1), withEvent(), false},
			{"GT", event("a", trigger.OpGT, 1), withEvent(), false},
			{"CONTAINS", event("a", trigger.OpContains, "x"), withEvent(), false},
			{"NOT_CONTAINS", event("a", trigger.OpNotContains, "x"), withEvent(), false},
			{"STARTS_WITH", event("a", trigger.OpStartsWith, "x"), withEvent(), false},
			{"MATCHES", event("a", trigger.OpMatches, ".*"), withEvent(), false},
			{"IN", event("a", trigger.OpIn, []any{1}), withEvent(), false},
			{"NOT_IN", event("a", trigger.OpNotIn, []any{1}), withEvent(), false},
			{"BETWEEN", event("a", trigger.OpBetween, []any{1, 2}), withEvent(), false},
			{"WITHIN_LAST", event("a", trigger.OpWithinLast, "7d"), withEvent(), false},
			{"EXISTS", event("a", trigger.OpExists, nil), withEvent(), false},
			{"NOT_EXISTS", event("a", trigger.OpNotExists, nil), withEvent(), true},
			{"NOT (EQ)", not(event("a", trigger.OpEQ, 1)), withEvent(), true},
			{"null is missing: EXISTS", event("a", trigger.OpExists, nil), withEvent("a", nil), false},
			{"null is missing: NOT_EXISTS", event("a", trigger.OpNotExists, nil), withEvent("a", nil), true},
			{"null is missing: NEQ", event("a", trigger.OpNEQ, 1), withEvent("a", nil), false},
		},
		"EXISTS": {
			{"empty string exists", event("a", trigger.OpExists, nil), withEvent("a", ""), true},
			{"false exists", event("a", trigger.OpExists, nil), withEvent("a", false), true},
			{"zero exists", event("a", trigger.OpExists, nil), withEvent("a", 0), true},
			{"NOT_EXISTS when present", event("a", trigger.OpNotExists, nil), withEvent("a", 0), false},
		},
		"CONTAINS": {
			{"substring", event("u", trigger.OpContains, "shop"), withEvent("u", "https://shop.example"), true},
			{"case-sensitive", event("u", trigger.OpContains, "SHOP"), withEvent("u", "https://shop.example"), false},
			{"number as text", event("u", trigger.OpContains, 50), withEvent("u", "order-50-x"), true},
			{"list element", user("tags", trigger.OpContains, "vip"), withUser("tags", []any{"new", "vip"}), true},
			{"list element typed", user("tags", trigger.OpContains, 5), withUser("tags", []any{"x", num("5")}), true},
			{"[]string element", user("tags", trigger.OpContains, "vip"), withUser("tags", []string{"vip"}), true},
			{"list without it", user("tags", trigger.OpContains, "vip"), withUser("tags", []any{"new"}), false},
			{"number actual cannot contain", event("n", trigger.OpContains, "5"), withEvent("n", 1500), false},
			{"NOT_CONTAINS string", event("u", trigger.OpNotContains, "shop"), withEvent("u", "blog"), true},
			{"NOT_CONTAINS string that has it", event("u", trigger.OpNotContains, "shop"), withEvent("u", "shop"), false},
			{"NOT_CONTAINS list", user("tags", trigger.OpNotContains, "vip"), withUser("tags", []any{}), true},
			{"NOT_CONTAINS number actual", event("n", trigger.OpNotContains, "5"), withEvent("n", 1), false},
		},
		"STARTS_WITH ENDS_WITH MATCHES": {
			{"starts with", event("u", trigger.OpStartsWith, "https://"), withEvent("u", "https://x"), true},
			{"does not start with", event("u", trigger.OpStartsWith, "https://"), withEvent("u", "http://x"), false},
			{"ends with", event("e", trigger.OpEndsWith, "@example.com"), withEvent("e", "a@example.com"), true},
			{"number is not a string", event("n", trigger.OpStartsWith, "1"), withEvent("n", 12), false},
			{"json.Number is not a string", event("n", trigger.OpEndsWith, "2"), withEvent("n", num("12")), false},
			{"matches anywhere", event("e", trigger.OpMatches, `@example\.com`), withEvent("e", "a@example.com.evil"), true},
			{"matches anchored", event("e", trigger.OpMatches, `@example\.com$`), withEvent("e", "a@example.com.evil"), false},
			{"matches needs a string", event("n", trigger.OpMatches, `^\d+$`), withEvent("n", 12), false},
		},
		"IN": {
			{"string in list", user("country", trigger.OpIn, []any{"US", "CA"}), withUser("country", "CA"), true},
			{"string not in list", user("country", trigger.OpIn, []any{"US", "CA"}), withUser("country", "FR"), false},
			{"number in list", user("n", trigger.OpIn, []any{1, 5}), withUser("n", 5.0), true},
			{"numeric string in number list", user("n", trigger.OpIn, []any{1, 5}), withUser("n", "5"), true},
			{"NOT_IN", user("country", trigger.OpNotIn, []any{"US", "CA"}), withUser("country", "FR"), true},
			{"NOT_IN when in", user("country", trigger.OpNotIn, []any{"US", "CA"}), withUser("country", "US"), false},
			{"NOT_IN mixed list", user("country", trigger.OpNotIn, []any{"US", 1}), withUser("country", "FR"), true},
			{"NOT_IN cannot compare a list", user("country", trigger.OpNotIn, []any{"US"}), withUser("country", []any{"FR"}), false},
			{"NOT_IN cannot compare a boolean with text", user("country", trigger.OpNotIn, []any{"US"}), withUser("country", true), false},
		},
		"BETWEEN": {
			{"inside", event("n", trigger.OpBetween, []any{1, 5}), withEvent("n", 3), true},
			{"low bound included", event("n", trigger.OpBetween, []any{1, 5}), withEvent("n", 1), true},
			{"high bound included", event("n", trigger.OpBetween, []any{1, 5}), withEvent("n", 5), true},
			{"below", event("n", trigger.OpBetween, []any{1, 5}), withEvent("n", 0.99), false},
			{"above", event("n", trigger.OpBetween, []any{1, 5}), withEvent("n", "6"), false},
			{"dates", event("d", trigger.OpBetween, []any{"2025-01-01", "2025-01-31"}), withEvent("d", "2025-01-31T00:00:00Z"), true},
			{"dates outside", event("d", trigger.OpBetween, []any{"2025-01-01", "2025-01-31"}), withEvent("d", "2025-01-31T00:00:01Z"), false},
			{"cannot compare", event("n", trigger.OpBetween, []any{1, 5}), withEvent("n", "three"), false},
		},
		"WITHIN_LAST": {
			{"inside", user("seen", trigger.OpWithinLast, "7d"), withUser("seen", "2025-06-10T00:00:00Z"), true},
			{"exactly at the edge", user("seen", trigger.OpWithinLast, "7d"), withUser("seen", "2025-06-08T12:00:00Z"), true},
			{"just older", user("seen", trigger.OpWithinLast, "7d"), withUser("seen", "2025-06-08T11:59:59Z"), false},
			{"now", user("seen", trigger.OpWithinLast, "1h"), withUser("seen", now.Format(time.RFC3339)), true},
			{"future does not count", user("seen", trigger.OpWithinLast, "7d"), withUser("seen", "2025-06-15T12:00:01Z"), false},
			{"date only", user("seen", trigger.OpWithinLast, "1d"), withUser("seen", "2025-06-15"), true},
			{"time.Time", user("seen", trigger.OpWithinLast, "30m"), withUser("seen", now.Add(-29*time.Minute)), true},
			{"not a time", user("seen", trigger.OpWithinLast, "7d"), withUser("seen", "yesterday"), false},
			{"a number is not a time", user("seen", trigger.OpWithinLast, "7d"), withUser("seen", 1749945600), false},
			{"zero Now means the wall clock", user("seen", trigger.OpWithinLast, "1d"), trigger.Env{User: props("seen", time.Now().Add(-time.Hour).UTC().Format(time.RFC3339))}, true},
		},
		"groups": {
			{"AND all", and(event("a", trigger.OpExists, nil), event("b", trigger.OpExists, nil)), withEvent("a", 1, "b", 2), true},
			{"AND one fails", and(event("a", trigger.OpExists, nil), event("b", trigger.OpExists, nil)), withEvent("a", 1), false},
			{"OR one holds", or(event("a", trigger.OpExists, nil), event("b", trigger.OpExists, nil)), withEvent("b", 1), true},
			{"OR none", or(event("a", trigger.OpExists, nil), event("b", trigger.OpExists, nil)), withEvent("c", 1), false},
			{"NOT", not(event("a", trigger.OpExists, nil)), withEvent("a", 1), false},
			{"NOT NOT", not(not(event("a", trigger.OpExists, nil))), withEvent("a", 1), true},
		},
	}
	for group, cases := range groups {
		for _, tt := range cases {
			t.Run(group+"/"+tt.name, func(t *testing.T) {
				t.Parallel()
				got := mustCompile(t, tt.cond).Eval(tt.env)
				if got.Matched != tt.want {
					t.Errorf("%s: Matched = %v, want %v (reason %q)", mustParse(t, tt.cond), got.Matched, tt.want, got.Reason)
				}
				if want := strings.HasPrefix(got.Reason, "matched: "); want != got.Matched {
					t.Errorf("Reason %q does not agree with Matched = %v", got.Reason, got.Matched)
				}
			})
		}
	}
}

func TestReasons(t *testing.T) {
	t.Parallel()
	channel := user("Channel", trigger.OpEQ, "Facebook")
	reward := event("Reward Amount", trigger.OpGT, 50)
	tests := []struct {
		name string
		cond *trigger.ConditionInput
		env  trigger.Env
		want string
	}{
		{"matched names the whole tree", seed(),
			trigger.Env{User: props("Sign Up Date", "2025-03-01", "Channel", "Facebook"), Now: now},
			"matched: " + seedText},
		{"predicate with the actual value", reward, withEvent("Reward Amount", 20),
			`condition failed: event."Reward Amount" > 50 (was 20)`},
		{"actual float", reward, withEvent("Reward Amount", 20.5),
			`condition failed: event."Reward Amount" > 50 (was 20.5)`},
		{"actual string", channel, withUser("Channel", "Google"),
			`condition failed: user.Channel = "Facebook" (was "Google")`},
		{"actual list", user("tags", trigger.OpContains, "vip"), withUser("tags", []any{"a", num("1"), true, nil}),
			`condition failed: user.tags contains "vip" (was ["a",1,true,null])`},
		{"actual object with sorted keys", user("address.city", trigger.OpEQ, "Berlin"), withUser("address.city", map[string]any{"z": 1, "a": "b"}),
			`condition failed: user.address.city = "Berlin" (was {"a":"b","z":1})`},
		{"missing", reward, withEvent(),
			`condition failed: event."Reward Amount" > 50 (was missing)`},
		{"null", reward, withEvent("Reward Amount", nil),
			`condition failed: event."Reward Amount" > 50 (was null)`},
		{"AND reports its first failing child", and(channel, reward), trigger.Env{User: props("Channel", "Google"), Event: props("Reward Amount", 10), Now: now},
			`condition failed: user.Channel = "Facebook" (was "Google")`},
		{"AND skips children that held", and(channel, reward), trigger.Env{User: props("Channel", "Facebook"), Event: props("Reward Amount", 10), Now: now},
			`condition failed: event."Reward Amount" > 50 (was 10)`},
		{"OR lists every child", or(channel, reward), trigger.Env{User: props("Channel", "Google"), Event: props("Reward Amount", 20), Now: now},
			`condition failed: none of: user.Channel = "Facebook" (was "Google"); event."Reward Amount" > 50 (was 20)`},
		{"OR inside OR is parenthesized", or(channel, or(reward, event("plan", trigger.OpExists, nil))), trigger.Env{User: props("Channel", "Google"), Now: now},
			`condition failed: none of: user.Channel = "Facebook" (was "Google"); (none of: event."Reward Amount" > 50 (was missing); event.plan exists (was missing))`},
		{"NOT", not(channel), withUser("Channel", "Facebook"),
			`condition failed: NOT (user.Channel = "Facebook") held`},
		{"NOT of a group", not(or(channel, reward)), withUser("Channel", "Facebook"),
			`condition failed: NOT (user.Channel = "Facebook" OR event."Reward Amount" > 50) held`},
		{"seed failing on the date", seed(), trigger.Env{User: props("Sign Up Date", "2024-12-31", "Channel", "Facebook"), Now: now},
			`condition failed: user."Sign Up Date" > "2025-01-01" (was "2024-12-31")`},
		{"long string cut", user("bio", trigger.OpEQ, "x"), withUser("bio", strings.Repeat("é", 500)),
			`condition failed: user.bio = "x" (was "` + strings.Repeat("é", 49) + `…)`},
		{"long list cut", user("n", trigger.OpEQ, 1), withUser("n", make([]any, 1000)),
			`condition failed: user.n = 1 (was [` + strings.Repeat("null,", 19) + `null…)`},
		{"control characters escaped", user("n", trigger.OpEQ, 1), withUser("n", "a\n\"b\x01"),
			`condition failed: user.n = 1 (was "a\n\"b\u0001")`},
		{"time.Time as RFC 3339", user("n", trigger.OpEQ, 1), withUser("n", time.Date(2025, 1, 2, 0, 0, 0, 0, time.UTC)),
			`condition failed: user.n = 1 (was "2025-01-02T00:00:00Z")`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := mustCompile(t, tt.cond).Eval(tt.env)
			if got.Reason != tt.want {
				t.Errorf("Reason =\n%s\nwant\n%s", got.Reason, tt.want)
			}
		})
	}
}

func TestNoConditions(t *testing.T) {
	t.Parallel()
	p, err := trigger.Compile(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []*trigger.Program{p, nil} {
		if got := p.Eval(trigger.Env{}); got != (trigger.Result{Matched: true, Reason: "no conditions"}) {
			t.Errorf("Eval = %+v, want a match with reason \"no conditions\"", got)
		}
	}
}

// The seed segment: users who signed up in 2025 and either came from
// Facebook or earned a reward above 50 with this event.
func TestSeedSegment(t *testing.T) {
	t.Parallel()
	p := mustCompile(t, seed())
	tests := []struct {
		name   string
		traits map[string]any
		props  map[string]any
		want   bool
	}{
		{"new Facebook user", props("Sign Up Date", "2025-02-03", "Channel", "Facebook"), nil, true},
		{"new user with a big reward", props("Sign Up Date", "2025-02-03T10:00:00Z", "Channel", "Google"), props("Reward Amount", 75), true},
		{"reward sent as text", props("Sign Up Date", "2025-02-03", "Channel", "Email"), props("Reward Amount", "50.01"), true},
		{"reward of exactly 50 is not above 50", props("Sign Up Date", "2025-02-03", "Channel", "Email"), props("Reward Amount", 50), false},
		{"signed up on New Year's midnight is not after it", props("Sign Up Date", "2025-01-01T00:00:00Z", "Channel", "Facebook"), nil, false},
		{"signed up in 2024", props("Sign Up Date", "2024-12-31T23:59:59Z", "Channel", "Facebook"), props("Reward Amount", 500), false},
		{"no sign-up date", props("Channel", "Facebook"), props("Reward Amount", 500), false},
		{"channel spelled differently", props("Sign Up Date", "2025-05-05", "Channel", "facebook"), props("Reward Amount", 5), false},
		{"reward on the user, not the event", props("Sign Up Date", "2025-05-05", "Reward Amount", 100), nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := p.Eval(trigger.Env{User: tt.traits, Event: tt.props, Now: now})
			if got.Matched != tt.want {
				t.Errorf("Matched = %v, want %v (%s)", got.Matched, tt.want, got.Reason)
			}
		})
	}
}

// Compile takes trees that the store rebuilt, so it validates them again.
func TestCompileChecksNodes(t *testing.T) {
	t.Parallel()
	leaf := func(op trigger.Operator, value string) *trigger.Node {
		n := &trigger.Node{Kind: trigger.KindPredicate, Scope: trigger.ScopeEvent, Property: "a", Operator: op}
		if value != "" {
			n.Value = json.RawMessage(value)
		}
		return n
	}
	cyclic := &trigger.Node{Kind: trigger.KindNot}
	cyclic.Children = []*trigger.Node{cyclic}
	deep := leaf(trigger.OpExists, "")
	for range 10 {
		deep = &trigger.Node{Kind: trigger.KindNot, Children: []*trigger.Node{deep}}
	}
	tests := []struct {
		name string
		n    *trigger.Node
		path string // "" when Compile must succeed
	}{
		{"unknown kind", &trigger.Node{Kind: "XOR"}, "condition"},
		{"empty AND", &trigger.Node{Kind: trigger.KindAnd}, "condition.and"},
		{"nil child", &trigger.Node{Kind: trigger.KindOr, Children: []*trigger.Node{leaf(trigger.OpExists, ""), nil}}, "condition.or[1]"},
		{"NOT with two children", &trigger.Node{Kind: trigger.KindNot, Children: []*trigger.Node{leaf(trigger.OpExists, ""), leaf(trigger.OpExists, "")}}, "condition.not"},
		{"predicate with children", &trigger.Node{Kind: trigger.KindPredicate, Scope: trigger.ScopeUser, Property: "a", Operator: trigger.OpExists, Children: []*trigger.Node{leaf(trigger.OpExists, "")}}, "condition"},
		{"missing scope", &trigger.Node{Kind: trigger.KindPredicate, Property: "a", Operator: trigger.OpExists}, "condition.scope"},
		{"blank property", &trigger.Node{Kind: trigger.KindPredicate, Scope: trigger.ScopeUser, Operator: trigger.OpExists}, "condition.property"},
		{"unknown operator", leaf("LIKE", `"x"`), "condition.operator"},
		{"stored value not JSON", leaf(trigger.OpEQ, `{`), "condition.value"},
		{"stored regexp no longer compiles", leaf(trigger.OpMatches, `"("`), "condition.value"},
		{"stored value missing", leaf(trigger.OpEQ, ""), "condition.value"},
		{"stored JSON null", leaf(trigger.OpEQ, "null"), "condition.value"},
		{"cyclic tree stops at the depth limit", cyclic, "condition" + strings.Repeat(".not", 10)},
		{"11 levels", deep, "condition" + strings.Repeat(".not", 10)},
		{"jsonb spacing is fine", leaf(trigger.OpIn, `[1, "a" ]`), ""},
		{"EXISTS with no stored value", leaf(trigger.OpExists, ""), ""},
		{"EXISTS with stored garbage", leaf(trigger.OpExists, "{"), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, err := trigger.Compile(tt.n)
			if tt.path == "" {
				if err != nil || p == nil {
					t.Fatalf("Compile = %v, %v; want a program", p, err)
				}
				return
			}
			var e *trigger.Error
			if !errors.As(err, &e) {
				t.Fatalf("Compile error = %v (%T), want *trigger.Error", err, err)
			}
			if e.Path != tt.path {
				t.Errorf("Path = %q, want %q (%s)", e.Path, tt.path, e.Message)
			}
		})
	}
}

// Hand-built trees can be cyclic; walking them must end.
func TestNodeMethodsEndOnCycles(t *testing.T) {
	t.Parallel()
	n := &trigger.Node{Kind: trigger.KindAnd}
	n.Children = []*trigger.Node{n, n}
	if c := n.Count(); c <= 0 {
		t.Errorf("Count = %d", c)
	}
	if s := n.String(); !strings.Contains(s, "…") {
		t.Errorf("String of a cyclic tree should be cut short, got %d bytes", len(s))
	}
	if _, err := trigger.Parse(n.ToInput()); err == nil {
		t.Errorf("Parse(ToInput()) of a cyclic tree should fail")
	}
}

func BenchmarkEvalSeed(b *testing.B) {
	p := mustCompile(b, seed())
	envs := map[string]trigger.Env{
		"matched": {
			User:  map[string]any{"Sign Up Date": "2025-02-03T10:00:00Z", "Channel": "Google", "email": "a@example.com"},
			Event: map[string]any{"Reward Amount": 75.0, "currency": "EUR"},
			Now:   now,
		},
		"failed": {
			User:  map[string]any{"Sign Up Date": "2025-02-03T10:00:00Z", "Channel": "Google"},
			Event: map[string]any{"Reward Amount": 20.0},
			Now:   now,
		},
	}
	for name, env := range envs {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				p.Eval(env)
			}
		})
	}
}

// TestReadsEvent: a Program reads the event's properties exactly when some
// predicate, however deep, has scope EVENT.
func TestReadsEvent(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		in   *trigger.ConditionInput
		want bool
	}{
		{"a user predicate", user("plan", trigger.OpEQ, "pro"), false},
		{"an event predicate", event("total", trigger.OpGT, 100), true},
		{"an event predicate deep in groups", and(user("plan", trigger.OpEQ, "pro"), not(or(user("a", trigger.OpExists, nil), event("total", trigger.OpGT, 1)))), true},
		{"users only, in groups", or(user("plan", trigger.OpEQ, "pro"), not(user("a", trigger.OpExists, nil))), false},
	}
	for _, c := range cases {
		n, err := trigger.Parse(c.in)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		p, err := trigger.Compile(n)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if p.ReadsEvent() != c.want {
			t.Errorf("%s: ReadsEvent %v, want %v", c.name, p.ReadsEvent(), c.want)
		}
	}
	if p, _ := trigger.Compile(nil); p.ReadsEvent() {
		t.Errorf("no conditions: ReadsEvent true")
	}
}
