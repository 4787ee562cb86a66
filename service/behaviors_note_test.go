package service

import (
	"testing"
	"time"

	"github.com/segmentd/segmentd/ent/schema/pulid"
	"github.com/segmentd/segmentd/trigger"
)

// TestTimeNote: the note a TIME change's reason carries says which
// figure the clock moved, from what, how and at which instant.
func TestTimeNote(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	str := func(s string) *string { return &s }
	perf := func(in trigger.PerformedInput) *trigger.ConditionInput {
		return &trigger.ConditionInput{Performed: &in}
	}
	type ev struct {
		at    time.Time
		total float64
	}
	tests := []struct {
		name   string
		cond   *trigger.ConditionInput
		events []ev
		at     time.Time // the deadline
		want   string
	}{
		{"the last login leaves", perf(trigger.PerformedInput{Event: "Login", Within: str("14d")}),
			[]ev{{t0, 0}}, t0.Add(14*day + time.Microsecond),
			"; it was 1 until the last one fell out of the window at 2026-12-04T09:00:00Z"},
		{"one of three purchases leaves", perf(trigger.PerformedInput{Event: "Login", Within: str("7d"),
			Count: &trigger.ComparisonInput{Operator: trigger.OpGTE, Value: 3}}),
			[]ev{{t0, 0}, {t0.Add(day), 0}, {t0.Add(2 * day), 0}}, t0.Add(7*day + time.Microsecond),
			"; it was 3 until one fell out of the window at 2026-11-27T09:00:00Z"},
		{"a sum drops", perf(trigger.PerformedInput{Event: "Login", Within: str("30d"),
			Aggregate: &trigger.AggregateInput{Function: trigger.AggSum, Property: "total", Operator: trigger.OpGT, Value: 100}}),
			[]ev{{t0, 60}, {t0.Add(day), 90}}, t0.Add(30*day + time.Microsecond),
			"; it was 150 until one fell out of the window at 2026-12-20T09:00:00Z"},
		{"a future-dated event comes in", perf(trigger.PerformedInput{Event: "Login", Within: str("1h")}),
			[]ev{{t0.Add(time.Hour), 0}}, t0.Add(time.Hour),
			"; it was 0 until one came into the window at 2026-11-20T10:00:00Z"},
		{"nothing moved at that instant", perf(trigger.PerformedInput{Event: "Login", Within: str("14d")}),
			[]ev{{t0, 0}}, t0.Add(time.Hour), ""},
		{"two measurements are named", &trigger.ConditionInput{Or: []*trigger.ConditionInput{
			perf(trigger.PerformedInput{Event: "Login", Within: str("14d")}),
			perf(trigger.PerformedInput{Event: "Login", Within: str("7d")}),
		}}, []ev{{t0, 0}}, t0.Add(7*day + time.Microsecond),
			`; performed "Login" at least 1 time within 7d was 1 until the last one fell out of the window at 2026-11-27T09:00:00Z`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root, err := trigger.ParseAt(tt.cond, "condition")
			if err != nil {
				t.Fatal(err)
			}
			prog, err := trigger.Compile(root)
			if err != nil {
				t.Fatal(err)
			}
			bs := newBehaviorStates(time.Time{})
			bs.floor = time.Time{} // answers for any instant, as a replay's
			user := pulid.ID("usr_1")
			for _, e := range tt.events {
				for _, b := range prog.Behaviors() {
					bs.add(user, &b, "Login", map[string]any{"total": e.total}, e.at)
				}
			}
			if got := bs.timeNote(user, prog, tt.at); got != tt.want {
				t.Fatalf("note\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}
