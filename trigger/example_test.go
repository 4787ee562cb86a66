package trigger_test

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/segmentd/segmentd/behavior"
	"github.com/segmentd/segmentd/trigger"
)

// A segment of users who signed up in 2025 and came from Facebook or earned
// a reward above 50, evaluated for one event.
func Example() {
	scope, op := trigger.ScopeUser, trigger.OpGT
	signUp, channel, reward := "Sign Up Date", "Channel", "Reward Amount"
	eq, gt, ev := trigger.OpEQ, trigger.OpGT, trigger.ScopeEvent
	in := &trigger.ConditionInput{And: []*trigger.ConditionInput{
		{Scope: &scope, Property: &signUp, Operator: &op, Value: "2025-01-01"},
		{Or: []*trigger.ConditionInput{
			{Scope: &scope, Property: &channel, Operator: &eq, Value: "Facebook"},
			{Scope: &ev, Property: &reward, Operator: &gt, Value: json.Number("50")},
		}},
	}}
	n, err := trigger.Parse(in)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(n)

	p, err := trigger.Compile(n)
	if err != nil {
		fmt.Println(err)
		return
	}
	r := p.Eval(trigger.Env{
		User:  map[string]any{"Sign Up Date": "2025-03-01T09:30:00Z", "Channel": "Google"},
		Event: map[string]any{"Reward Amount": 20},
		Now:   time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC),
	})
	fmt.Println(r.Matched)
	fmt.Println(r.Reason)
	// Output:
	// user."Sign Up Date" > "2025-01-01" AND (user.Channel = "Facebook" OR event."Reward Amount" > 50)
	// false
	// condition failed: none of: user.Channel = "Facebook" (was "Google"); event."Reward Amount" > 50 (was 20)
}

func ExampleParse_error() {
	scope, op, property := trigger.ScopeEvent, trigger.OpBetween, "amount"
	_, err := trigger.Parse(&trigger.ConditionInput{Scope: &scope, Property: &property, Operator: &op, Value: []any{5}})
	fmt.Println(err)
	// Output: condition.value: BETWEEN needs a list of two values
}

// Three purchases over 10 within 7 days: the caller keeps the state (here
// in memory) and passes its answer in Env.Behaviors.
func ExampleProgram_Behaviors() {
	gt, gte, within := trigger.OpGT, trigger.OpGTE, "7d"
	ev, total := trigger.ScopeEvent, "total"
	n, err := trigger.Parse(&trigger.ConditionInput{Performed: &trigger.PerformedInput{
		Event:  "Purchase Completed",
		Where:  &trigger.ConditionInput{Scope: &ev, Property: &total, Operator: &gt, Value: 10},
		Within: &within,
		Count:  &trigger.ComparisonInput{Operator: gte, Value: 3},
	}})
	if err != nil {
		fmt.Println(err)
		return
	}
	p, _ := trigger.Compile(n)
	b := p.Behaviors()[0]
	state, _ := behavior.New(b.Spec)
	t0 := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	for i, amount := range []int{20, 5, 30} {
		at := t0.Add(time.Duration(i) * time.Hour)
		if b.Counts("Purchase Completed", map[string]any{"total": amount}, at) {
			state.Add(at, 0, false)
		}
	}
	now := t0.Add(3 * time.Hour)
	res, _ := state.Eval(now)
	fmt.Println(p.Eval(trigger.Env{Now: now, Behaviors: []behavior.Result{res}}).Reason)
	// Output:
	// condition failed: performed "Purchase Completed" where event.total > 10 at least 3 times within 7d (was 2 of 3 within 7d)
}
