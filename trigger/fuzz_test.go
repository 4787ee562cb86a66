package trigger_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentd/segmentd/behavior"
	"github.com/segmentd/segmentd/trigger"
)

// fuzzEnv has a bit of everything for fuzzed trees to look at.
var fuzzEnv = trigger.Env{
	Event: map[string]any{
		"a": "x", "n": json.Number("5"), "Reward Amount": 20.0, "list": []any{"x", json.Number("1"), true, nil},
		"nested": map[string]any{"k": "v"}, "null": nil, "when": "2025-06-01T00:00:00Z",
	},
	User: map[string]any{"Channel": "Facebook", "Sign Up Date": "2025-02-01", "b": true, "tags": []string{"vip"}},
	Now:  now,
}

func FuzzParse(f *testing.F) {
	for _, in := range roundTripInputs() {
		b, err := json.Marshal(in)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		`null`, `{}`, `{"and":[]}`, `{"or":[null]}`, `{"not":{}}`,
		`{"and":[{"scope":"EVENT"}],"scope":"USER"}`,
		`{"scope":"EVENT","property":"a","operator":"EQ"}`,
		`{"scope":"EVENT","property":"a","operator":"BETWEEN","value":[5,1]}`,
		`{"scope":"USER","property":"d","operator":"WITHIN_LAST","value":"1h30m"}`,
		`{"scope":"USER","property":"d","operator":"MATCHES","value":"(a"}`,
		`{"scope":"USER","property":"d","operator":"EXISTS","value":{"x":[1,{"y":null}]}}`,
		`{"scope":"EVENT","property":"n","operator":"IN","value":[1,"1",true,1.0e0]}`,
		`{"SCOPE":"EVENT","Property":"a.b","operator":"NOT_IN","value":["\u0000"]}`,
		`{"performed":{"event":"Login"}}`,
		`{"performed":{"event":"Login","within":"14d","count":{"operator":"EQ","value":0}}}`,
		`{"performed":{"event":"P","within":"0s","count":{"operator":"BETWEEN","value":[3,1]}}}`,
		`{"performed":{"event":"P","where":{"scope":"USER","property":"a","operator":"EXISTS"}}}`,
		`{"performed":{"event":"P","where":{"performed":{"event":"Q"}}}}`,
		`{"performed":{"event":"P","aggregate":{"function":"SUM","property":"amount","operator":"GT","value":"100"}}}`,
		`{"performed":{"event":"P","aggregate":{"function":"MEDIAN","property":"amount","operator":"GT","value":1}}}`,
		`{"performed":{"event":"P","count":{"operator":"GTE","value":1},"aggregate":{"function":"MIN","property":"a","operator":"LT","value":-1e308}}}`,
		`{"not":{"not":{"not":{"not":{"performed":{"event":"P","within":"3654d"}}}}}}`,
		`{"performed":{"event":"P"},"scope":"EVENT"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		var in trigger.ConditionInput
		if dec.Decode(&in) != nil {
			return
		}
		n, err := trigger.Parse(&in)
		if err != nil {
			var e *trigger.Error
			if !errors.As(err, &e) || e.Path == "" || e.Message == "" {
				t.Fatalf("Parse error %v (%T) is not a *trigger.Error with a path", err, err)
			}
			if !strings.HasPrefix(e.Path, "condition") {
				t.Fatalf("path %q does not start at condition", e.Path)
			}
			return
		}
		if n.String() == "" {
			t.Fatalf("empty text for %s", data)
		}
		if c := n.Count(); c < 1 || c > trigger.MaxNodes {
			t.Fatalf("Count() = %d", c)
		}
		assertRoundTrip(t, n)
		p, err := trigger.Compile(n)
		if err != nil {
			t.Fatalf("Compile of a parsed tree failed: %v", err)
		}
		checkBehaviors(t, n, p)
		for _, env := range []trigger.Env{fuzzEnv, {}, {Now: now}} {
			r := p.Eval(env)
			if r.Matched != strings.HasPrefix(r.Reason, "matched: ") {
				t.Fatalf("Matched = %v but reason %q", r.Matched, r.Reason)
			}
			if !r.Matched && !strings.HasPrefix(r.Reason, "condition failed: ") {
				t.Fatalf("failure reason %q", r.Reason)
			}
		}
	})
}

// checkBehaviors checks a parsed tree's behaviour predicates: within the
// limits, each a valid Spec with a key, and evaluated from the results
// given by index.
func checkBehaviors(t *testing.T, n *trigger.Node, p *trigger.Program) {
	t.Helper()
	bs := p.Behaviors()
	if len(bs) > trigger.MaxPerformed {
		t.Fatalf("%d behaviours", len(bs))
	}
	if got := strings.Count(n.String(), "performed \""); got < len(bs) {
		t.Fatalf("text %q names %d performed, Behaviors() has %d", n.String(), got, len(bs))
	}
	for i, b := range bs {
		if _, err := behavior.New(b.Spec); err != nil {
			t.Fatalf("Behaviors()[%d].Spec %+v: %v", i, b.Spec, err)
		}
		if b.Spec.Within != 0 && (b.Spec.Within < trigger.MinWithin || b.Spec.Within > trigger.MaxWithin) {
			t.Fatalf("window %v out of bounds", b.Spec.Within)
		}
		if len(b.Key()) != 32 || b.Event == "" || !strings.HasPrefix(b.Text, "performed ") {
			t.Fatalf("Behaviors()[%d] = %+v", i, b)
		}
		if b.Where != nil && len(b.Where.Behaviors()) != 0 {
			t.Fatalf("a where condition has behaviours")
		}
	}
	if len(bs) == 0 {
		return
	}
	// Every result known: the text of a failure shows figures, not "not
	// evaluated"; a behaviour's next change is the program's when it is the
	// only clock.
	results := make([]behavior.Result, len(bs))
	next := make([]time.Time, len(bs))
	for i := range results {
		results[i] = behavior.Result{Matched: i%2 == 0, Figure: float64(i), Defined: true}
		next[i] = now.Add(time.Duration(i+1) * time.Second)
	}
	r := p.Eval(trigger.Env{Now: now, Behaviors: results})
	if strings.Contains(r.Reason, "(not evaluated)") {
		t.Fatalf("reason %q with every result given", r.Reason)
	}
	if at, ok := p.NextChange(trigger.Env{Now: now, BehaviorNext: next}); !ok || at.After(now.Add(time.Second)) {
		t.Fatalf("NextChange = %v, %v; want at most %v", at, ok, now.Add(time.Second))
	}
}

func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{"7d", "24h", "30m", "1h30m", "1w2d3h4m5s", "0d", "", "7", "d", "1.5h", "36525d", "36526d", "99999999999999999999s", "7日"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := trigger.ParseDuration(s)
		if err != nil {
			if d != 0 {
				t.Fatalf("ParseDuration(%q) = %v with error %v", s, d, err)
			}
			return
		}
		if d <= 0 || d > 36525*24*time.Hour {
			t.Fatalf("ParseDuration(%q) = %v, out of range", s, d)
		}
		if d%time.Second != 0 {
			t.Fatalf("ParseDuration(%q) = %v, not whole seconds", s, d)
		}
		// The same length written in seconds parses to the same value.
		secs, err := trigger.ParseDuration(formatSeconds(d))
		if err != nil || secs != d {
			t.Fatalf("ParseDuration(%q) = %v, %v; want %v", formatSeconds(d), secs, err, d)
		}
	})
}

func formatSeconds(d time.Duration) string {
	return strconv.FormatInt(int64(d/time.Second), 10) + "s"
}

// FuzzEval puts a random property value against random expected values for
// every operator and checks that the operators agree with each other.
func FuzzEval(f *testing.F) {
	for _, s := range [][2]string{
		{`5`, `5`}, {`"5"`, `5`}, {`5.0`, `"5"`}, {`"abc"`, `"b"`}, {`"2025-01-02"`, `"2025-01-01"`},
		{`"2025-01-01T00:00:00+01:00"`, `"2025-01-01"`}, {`true`, `"true"`}, {`["a",1]`, `1`},
		{`{"k":1}`, `"k"`}, {`null`, `1`}, {`"N/A"`, `"2025-01-01"`}, {`"1e400"`, `1e400`},
		{`"2025-06-14T00:00:00Z"`, `"2d"`}, {`" 7 "`, `7`}, {`"x"`, `"^x$"`}, {`"-0"`, `0`},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, actualJSON, expectedJSON string) {
		actual, ok := decodeJSON(actualJSON)
		if !ok {
			actual = actualJSON // a raw string is a fine property value too
		}
		expected, ok := decodeJSON(expectedJSON)
		if !ok {
			expected = expectedJSON
		}
		present := trigger.Env{Event: map[string]any{"p": actual}, User: map[string]any{"p": map[string]any{"q": actual}}, Now: now}
		absent := trigger.Env{Event: map[string]any{"other": actual}, Now: now}

		results := map[trigger.Operator]bool{}
		values := map[trigger.Operator]any{
			trigger.OpIn: []any{expected}, trigger.OpNotIn: []any{expected}, trigger.OpBetween: []any{expected, expected},
		}
		for _, name := range trigger.Operator("").Values() {
			op := trigger.Operator(name)
			value, ok := values[op]
			if !ok {
				value = expected
			}
			n, err := trigger.Parse(event("p", op, value))
			if err != nil {
				continue
			}
			p, err := trigger.Compile(n)
			if err != nil {
				t.Fatalf("Compile(%s): %v", n, err)
			}
			got := p.Eval(present)
			results[op] = got.Matched

			// Nested lookup sees the same value.
			nested, _ := trigger.Compile(mustParse(t, user("p.q", op, value)))
			if nested.Eval(present).Matched != got.Matched {
				t.Fatalf("%s: nested lookup disagrees", n)
			}
			// NOT is the exact opposite.
			negated, _ := trigger.Compile(mustParse(t, not(event("p", op, value))))
			if negated.Eval(present).Matched == got.Matched {
				t.Fatalf("%s: NOT agrees with the predicate", n)
			}
			// A missing property, or JSON null, only satisfies NOT_EXISTS.
			if m := p.Eval(absent).Matched; m != (op == trigger.OpNotExists) {
				t.Fatalf("%s on a missing property = %v", n, m)
			}
			if actual == nil && got.Matched != (op == trigger.OpNotExists) {
				t.Fatalf("%s on null = %v", n, got.Matched)
			}
		}
		implies := func(a, b trigger.Operator, wantB bool) {
			ra, okA := results[a]
			rb, okB := results[b]
			if okA && okB && ra && rb != wantB {
				t.Fatalf("actual %#v, expected %#v: %s holds but %s = %v", actual, expected, a, b, rb)
			}
		}
		implies(trigger.OpEQ, trigger.OpNEQ, false)
		implies(trigger.OpNEQ, trigger.OpEQ, false)
		implies(trigger.OpGT, trigger.OpGTE, true)
		implies(trigger.OpGT, trigger.OpLTE, false)
		implies(trigger.OpGT, trigger.OpLT, false)
		implies(trigger.OpGT, trigger.OpEQ, false)
		implies(trigger.OpLT, trigger.OpLTE, true)
		implies(trigger.OpLT, trigger.OpGTE, false)
		implies(trigger.OpLT, trigger.OpEQ, false)
		implies(trigger.OpContains, trigger.OpNotContains, false)
		implies(trigger.OpExists, trigger.OpNotExists, false)
		same := func(a, b trigger.Operator) {
			ra, okA := results[a]
			rb, okB := results[b]
			if okA && okB && ra != rb {
				t.Fatalf("actual %#v, expected %#v: %s = %v but %s = %v", actual, expected, a, ra, b, rb)
			}
		}
		same(trigger.OpIn, trigger.OpEQ)
		same(trigger.OpNotIn, trigger.OpNEQ)
		if gte, lte := results[trigger.OpGTE], results[trigger.OpLTE]; gte && lte {
			if eq, ok := results[trigger.OpEQ]; ok && !eq {
				t.Fatalf("actual %#v, expected %#v: GTE and LTE hold but EQ does not", actual, expected)
			}
			if between, ok := results[trigger.OpBetween]; ok && !between {
				t.Fatalf("actual %#v, expected %#v: GTE and LTE hold but BETWEEN does not", actual, expected)
			}
		}
		if between, ok := results[trigger.OpBetween]; ok && between && !(results[trigger.OpGTE] && results[trigger.OpLTE]) {
			t.Fatalf("actual %#v, expected %#v: BETWEEN holds but not GTE and LTE", actual, expected)
		}
		if actual != nil && !results[trigger.OpExists] {
			t.Fatalf("actual %#v: EXISTS is false for a present value", actual)
		}
	})
}

func decodeJSON(s string) (any, bool) {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var v any
	if dec.Decode(&v) != nil || dec.More() {
		return nil, false
	}
	return v, true
}
