package trigger

import (
	"fmt"
	"io"
	"strconv"
)

// Kind says what a [Node] is: a group (AND, OR, NOT) or a predicate.
type Kind string

// The kinds of condition nodes.
const (
	KindAnd       Kind = "AND"
	KindOr        Kind = "OR"
	KindNot       Kind = "NOT"
	KindPredicate Kind = "PREDICATE"
	// KindPerformed is a behaviour-over-time predicate: see [PerformedNode].
	KindPerformed Kind = "PERFORMED"
)

// Values lists every valid Kind; ent uses it for the enum column.
func (Kind) Values() []string { return []string{"AND", "OR", "NOT", "PREDICATE", "PERFORMED"} }

// IsValid reports whether k is one of the declared kinds.
func (k Kind) IsValid() bool {
	switch k {
	case KindAnd, KindOr, KindNot, KindPredicate, KindPerformed:
		return true
	}
	return false
}

// MarshalGQL writes k as a quoted GraphQL enum value.
func (k Kind) MarshalGQL(w io.Writer) { _, _ = io.WriteString(w, strconv.Quote(string(k))) }

// UnmarshalGQL accepts a string naming a valid Kind and rejects anything else.
func (k *Kind) UnmarshalGQL(v any) error { return unmarshalEnum(k, "kind", v) }

// Scope says where a predicate looks its property up: in the triggering
// event's properties (EVENT) or in the user's traits (USER).
type Scope string

// The scopes of a predicate.
const (
	ScopeEvent Scope = "EVENT"
	ScopeUser  Scope = "USER"
)

// Values lists every valid Scope; ent uses it for the enum column.
func (Scope) Values() []string { return []string{"EVENT", "USER"} }

// IsValid reports whether s is one of the declared scopes.
func (s Scope) IsValid() bool { return s == ScopeEvent || s == ScopeUser }

// MarshalGQL writes s as a quoted GraphQL enum value.
func (s Scope) MarshalGQL(w io.Writer) { _, _ = io.WriteString(w, strconv.Quote(string(s))) }

// UnmarshalGQL accepts a string naming a valid Scope and rejects anything else.
func (s *Scope) UnmarshalGQL(v any) error { return unmarshalEnum(s, "scope", v) }

// Operator is how a predicate compares a property with its value. The
// package documentation says what each one means.
type Operator string

// The operators of a predicate.
const (
	OpEQ          Operator = "EQ"
	OpNEQ         Operator = "NEQ"
	OpGT          Operator = "GT"
	OpGTE         Operator = "GTE"
	OpLT          Operator = "LT"
	OpLTE         Operator = "LTE"
	OpContains    Operator = "CONTAINS"
	OpNotContains Operator = "NOT_CONTAINS"
	OpStartsWith  Operator = "STARTS_WITH"
	OpEndsWith    Operator = "ENDS_WITH"
	OpMatches     Operator = "MATCHES"
	OpIn          Operator = "IN"
	OpNotIn       Operator = "NOT_IN"
	OpExists      Operator = "EXISTS"
	OpNotExists   Operator = "NOT_EXISTS"
	OpBetween     Operator = "BETWEEN"
	OpWithinLast  Operator = "WITHIN_LAST"
)

// Values lists every valid Operator; ent uses it for the enum column.
func (Operator) Values() []string {
	return []string{
		"EQ", "NEQ", "GT", "GTE", "LT", "LTE",
		"CONTAINS", "NOT_CONTAINS", "STARTS_WITH", "ENDS_WITH", "MATCHES",
		"IN", "NOT_IN", "EXISTS", "NOT_EXISTS", "BETWEEN", "WITHIN_LAST",
	}
}

// IsValid reports whether o is one of the declared operators.
func (o Operator) IsValid() bool {
	switch o {
	case OpEQ, OpNEQ, OpGT, OpGTE, OpLT, OpLTE,
		OpContains, OpNotContains, OpStartsWith, OpEndsWith, OpMatches,
		OpIn, OpNotIn, OpExists, OpNotExists, OpBetween, OpWithinLast:
		return true
	}
	return false
}

// MarshalGQL writes o as a quoted GraphQL enum value.
func (o Operator) MarshalGQL(w io.Writer) { _, _ = io.WriteString(w, strconv.Quote(string(o))) }

// UnmarshalGQL accepts a string naming a valid Operator and rejects anything
// else.
func (o *Operator) UnmarshalGQL(v any) error { return unmarshalEnum(o, "operator", v) }

// AggregateFunction is what a performed predicate's aggregate computes over
// the values of a numeric property of the counted events.
type AggregateFunction string

// The aggregate functions.
const (
	AggSum AggregateFunction = "SUM"
	AggAvg AggregateFunction = "AVG"
	AggMin AggregateFunction = "MIN"
	AggMax AggregateFunction = "MAX"
)

// Values lists every valid AggregateFunction.
func (AggregateFunction) Values() []string { return []string{"SUM", "AVG", "MIN", "MAX"} }

// IsValid reports whether f is one of the declared functions.
func (f AggregateFunction) IsValid() bool {
	switch f {
	case AggSum, AggAvg, AggMin, AggMax:
		return true
	}
	return false
}

// MarshalGQL writes f as a quoted GraphQL enum value.
func (f AggregateFunction) MarshalGQL(w io.Writer) {
	_, _ = io.WriteString(w, strconv.Quote(string(f)))
}

// UnmarshalGQL accepts a string naming a valid AggregateFunction and rejects
// anything else.
func (f *AggregateFunction) UnmarshalGQL(v any) error {
	return unmarshalEnum(f, "aggregate function", v)
}

// unmarshalEnum is the shared body of the UnmarshalGQL methods: gqlgen hands
// enum values over as strings.
func unmarshalEnum[T interface {
	~string
	IsValid() bool
}](dst *T, what string, v any) error {
	s, ok := v.(string)
	if !ok {
		return fmt.Errorf("%s must be a string, got %T", what, v)
	}
	if !T(s).IsValid() {
		return fmt.Errorf("unknown %s %q", what, s)
	}
	*dst = T(s)
	return nil
}
