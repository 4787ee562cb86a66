package trigger_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/segmentd/segmentd/trigger"
)

// The seed's own condition, written as the product document writes it:
// `Sign Up Date > January 1, 2025`. It used to be compared byte by byte, so
// "March 1, 2024" entered ("M" > "J") and "2025-03-01" did not.
func TestSeedDateConditionComparesDates(t *testing.T) {
	t.Parallel()
	cond := user("Sign Up Date", trigger.OpGT, "January 1, 2025")
	p := mustCompile(t, cond)
	for _, tt := range []struct {
		trait any
		want  bool
	}{
		{"March 1, 2024", false},
		{"2025-03-01", true},
		{"2025-01-01", false}, // the same day: not after it
		{"2025-01-01T00:00:01Z", true},
		{"2024-12-31T23:59:59Z", false},
		{"Jan 15, 2025", true},
		{"jan 15 2025", true},
		{"Dec. 31, 2024", false},
		{"1 February 2025", true},
		{"31 Dec 2024", false},
		{"Sept 1, 2025", true},
		{"2025-03-01 08:00:00", true},
		{"2025-01-01T01:00:00+02:00", false}, // 2024-12-31T23:00Z
		{"soon", false},
		{"February 30, 2025", false}, // no such day: not a date
	} {
		got := p.Eval(withUser("Sign Up Date", tt.trait))
		if got.Matched != tt.want {
			t.Errorf(`"Sign Up Date" = %q: matched = %v (%s), want %v`, tt.trait, got.Matched, got.Reason, tt.want)
		}
	}
}

func TestWrittenDatesInEveryDateOperator(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		cond *trigger.ConditionInput
		env  trigger.Env
		want bool
	}{
		{"GTE same day other form", user("d", trigger.OpGTE, "1 January 2025"), withUser("d", "2025-01-01"), true},
		{"LT", user("d", trigger.OpLT, "Jan 1, 2025"), withUser("d", "December 31, 2024"), true},
		{"LTE ISO vs written", user("d", trigger.OpLTE, "2025-01-01"), withUser("d", "Jan 2, 2025"), false},
		{"EQ across forms", user("d", trigger.OpEQ, "January 1, 2025"), withUser("d", "2025-01-01T00:00:00Z"), true},
		{"IN across forms", user("d", trigger.OpIn, []any{"1 Jan 2025"}), withUser("d", "Jan 1, 2025"), true},
		{"BETWEEN written bounds", user("d", trigger.OpBetween, []any{"Jan 1, 2025", "March 31, 2025"}), withUser("d", "2025-02-14"), true},
		{"BETWEEN outside", user("d", trigger.OpBetween, []any{"Jan 1, 2025", "March 31, 2025"}), withUser("d", "April 1, 2025"), false},
		{"WITHIN_LAST a written trait", user("seen", trigger.OpWithinLast, "7d"), withUser("seen", "June 10, 2025"), true},
		{"WITHIN_LAST a written trait too old", user("seen", trigger.OpWithinLast, "7d"), withUser("seen", "1 June 2025"), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := mustCompile(t, tt.cond).Eval(tt.env); got.Matched != tt.want {
				t.Errorf("matched = %v (%s), want %v", got.Matched, got.Reason, tt.want)
			}
		})
	}
}

// An ordering condition on text that is neither a number nor a date is
// refused, naming the field and the date forms accepted.
func TestOrderingRefusesText(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		in   *trigger.ConditionInput
		path string
	}{
		{"GT", user("Sign Up Date", trigger.OpGT, "soon"), "condition.value"},
		{"GTE", and(user("a", trigger.OpExists, nil), user("Sign Up Date", trigger.OpGTE, "next Monday")), "condition.and[1].value"},
		{"LT", user("plan", trigger.OpLT, "b"), "condition.value"},
		{"LTE", user("d", trigger.OpLTE, "2025-13-45"), "condition.value"},
		{"LTE February 30", user("d", trigger.OpLTE, "February 30, 2025"), "condition.value"},
		{"BETWEEN text", user("d", trigger.OpBetween, []any{"a", "m"}), "condition.value"},
		{"BETWEEN one bound text", user("d", trigger.OpBetween, []any{"2025-01-01", "later"}), "condition.value"},
		{"BETWEEN a date and a number", user("d", trigger.OpBetween, []any{"2025-01-01", "2026"}), "condition.value"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := trigger.Parse(tt.in)
			var e *trigger.Error
			if !errors.As(err, &e) {
				t.Fatalf("Parse accepted it (err %v)", err)
			}
			if e.Path != tt.path {
				t.Errorf("Path = %q, want %q", e.Path, tt.path)
			}
			for _, form := range []string{`"January 1, 2025"`, `"Jan 1, 2025"`, `"1 January 2025"`, `"2025-01-01"`, `"2025-01-01T09:30:00Z"`} {
				if !strings.Contains(e.Message, form) {
					t.Errorf("Message %q does not name the form %s", e.Message, form)
				}
			}
		})
	}
	// Numbers, numeric strings and dates stay accepted.
	for _, v := range []any{50, num("1.5"), "42", "January 1, 2025", "2025-01-01T09:30:00Z"} {
		if _, err := trigger.Parse(user("d", trigger.OpGT, v)); err != nil {
			t.Errorf("GT %v: %v", v, err)
		}
	}
}

// A tree stored before ordering was restricted to numbers and dates still
// compiles (ingestion must not fail on it) and orders its text as it did.
func TestStoredTextOrderingStillCompiles(t *testing.T) {
	t.Parallel()
	stored := &trigger.Node{Kind: trigger.KindPredicate, Scope: trigger.ScopeUser, Property: "c",
		Operator: trigger.OpLT, Value: json.RawMessage(`"b"`)}
	p, err := trigger.Compile(stored)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	if !p.Eval(withUser("c", "a")).Matched || p.Eval(withUser("c", "c")).Matched {
		t.Error("stored text ordering changed")
	}
	between := &trigger.Node{Kind: trigger.KindPredicate, Scope: trigger.ScopeEvent, Property: "s",
		Operator: trigger.OpBetween, Value: json.RawMessage(`["a","m"]`)}
	if p, err := trigger.Compile(between); err != nil || !p.Eval(withEvent("s", "gamma")).Matched {
		t.Errorf("stored text BETWEEN: %v", err)
	}
}
