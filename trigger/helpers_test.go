package trigger_test

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/segmentd/segmentd/trigger"
)

// Builders that keep the tables readable.

func ptr[T any](v T) *T { return &v }

func pred(scope trigger.Scope, property string, op trigger.Operator, value any) *trigger.ConditionInput {
	return &trigger.ConditionInput{Scope: &scope, Property: &property, Operator: &op, Value: value}
}

func event(property string, op trigger.Operator, value any) *trigger.ConditionInput {
	return pred(trigger.ScopeEvent, property, op, value)
}

func user(property string, op trigger.Operator, value any) *trigger.ConditionInput {
	return pred(trigger.ScopeUser, property, op, value)
}

func and(cs ...*trigger.ConditionInput) *trigger.ConditionInput {
	return &trigger.ConditionInput{And: cs}
}

func or(cs ...*trigger.ConditionInput) *trigger.ConditionInput {
	return &trigger.ConditionInput{Or: cs}
}

func not(c *trigger.ConditionInput) *trigger.ConditionInput {
	return &trigger.ConditionInput{Not: c}
}

func num(s string) json.Number { return json.Number(s) }

// seed is the example segment from the product brief:
// signed up in 2025 and came from Facebook or earned a big reward.
func seed() *trigger.ConditionInput {
	return and(
		user("Sign Up Date", trigger.OpGT, "2025-01-01"),
		or(
			user("Channel", trigger.OpEQ, "Facebook"),
			event("Reward Amount", trigger.OpGT, num("50")),
		),
	)
}

const seedText = `user."Sign Up Date" > "2025-01-01" AND (user.Channel = "Facebook" OR event."Reward Amount" > 50)`

func mustParse(t testing.TB, in *trigger.ConditionInput) *trigger.Node {
	t.Helper()
	n, err := trigger.Parse(in)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return n
}

func mustCompile(t testing.TB, in *trigger.ConditionInput) *trigger.Program {
	t.Helper()
	p, err := trigger.Compile(mustParse(t, in))
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return p
}

// nest wraps c in depth-1 NOTs, giving a tree depth levels deep.
func nest(depth int, c *trigger.ConditionInput) *trigger.ConditionInput {
	for range depth - 1 {
		c = not(c)
	}
	return c
}

// wide is an OR of n predicates: n+1 nodes.
func wide(n int) *trigger.ConditionInput {
	cs := make([]*trigger.ConditionInput, n)
	for i := range cs {
		cs[i] = event("plan", trigger.OpEQ, "pro")
	}
	return or(cs...)
}

func equalNodes(a, b *trigger.Node) bool { return reflect.DeepEqual(a, b) }

// dump shows a Node's fields for failure messages.
func dump(n *trigger.Node) string {
	b, _ := json.MarshalIndent(n, "", "  ")
	return string(b)
}
