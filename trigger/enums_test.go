package trigger_test

import (
	"bytes"
	"slices"
	"strconv"
	"testing"

	"github.com/segmentd/segmentd/trigger"
)

// enum is what gqlgen and ent need from each of the three string enums.
type enum interface {
	Values() []string
	IsValid() bool
}

func TestEnums(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		values []string
		valid  func(string) bool
		marsh  func(string) string
		unmars func(any) (string, error)
		want   []string
	}{
		{
			name:   "Kind",
			values: trigger.Kind("").Values(),
			valid:  func(s string) bool { return trigger.Kind(s).IsValid() },
			marsh:  func(s string) string { var b bytes.Buffer; trigger.Kind(s).MarshalGQL(&b); return b.String() },
			unmars: func(v any) (string, error) { var k trigger.Kind; err := k.UnmarshalGQL(v); return string(k), err },
			want:   []string{"AND", "OR", "NOT", "PREDICATE", "PERFORMED"},
		},
		{
			name:   "AggregateFunction",
			values: trigger.AggregateFunction("").Values(),
			valid:  func(s string) bool { return trigger.AggregateFunction(s).IsValid() },
			marsh: func(s string) string {
				var b bytes.Buffer
				trigger.AggregateFunction(s).MarshalGQL(&b)
				return b.String()
			},
			unmars: func(v any) (string, error) {
				var k trigger.AggregateFunction
				err := k.UnmarshalGQL(v)
				return string(k), err
			},
			want: []string{"SUM", "AVG", "MIN", "MAX"},
		},
		{
			name:   "Scope",
			values: trigger.Scope("").Values(),
			valid:  func(s string) bool { return trigger.Scope(s).IsValid() },
			marsh:  func(s string) string { var b bytes.Buffer; trigger.Scope(s).MarshalGQL(&b); return b.String() },
			unmars: func(v any) (string, error) { var k trigger.Scope; err := k.UnmarshalGQL(v); return string(k), err },
			want:   []string{"EVENT", "USER"},
		},
		{
			name:   "Operator",
			values: trigger.Operator("").Values(),
			valid:  func(s string) bool { return trigger.Operator(s).IsValid() },
			marsh:  func(s string) string { var b bytes.Buffer; trigger.Operator(s).MarshalGQL(&b); return b.String() },
			unmars: func(v any) (string, error) { var k trigger.Operator; err := k.UnmarshalGQL(v); return string(k), err },
			want: []string{"EQ", "NEQ", "GT", "GTE", "LT", "LTE", "CONTAINS", "NOT_CONTAINS", "STARTS_WITH",
				"ENDS_WITH", "MATCHES", "IN", "NOT_IN", "EXISTS", "NOT_EXISTS", "BETWEEN", "WITHIN_LAST"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if !slices.Equal(tt.values, tt.want) {
				t.Errorf("Values() = %v, want %v", tt.values, tt.want)
			}
			for _, v := range tt.values {
				if !tt.valid(v) {
					t.Errorf("IsValid(%q) = false", v)
				}
				if got := tt.marsh(v); got != strconv.Quote(v) {
					t.Errorf("MarshalGQL(%q) wrote %s", v, got)
				}
				if got, err := tt.unmars(v); err != nil || got != v {
					t.Errorf("UnmarshalGQL(%q) = %q, %v", v, got, err)
				}
			}
			for _, bad := range []string{"", "FOO", "eq", "and"} {
				if tt.valid(bad) {
					t.Errorf("IsValid(%q) = true", bad)
				}
			}
			if _, err := tt.unmars("FOO"); err == nil {
				t.Errorf("UnmarshalGQL(\"FOO\") accepted it")
			}
			if _, err := tt.unmars(3); err == nil {
				t.Errorf("UnmarshalGQL(3) accepted it")
			}
		})
	}
}

func TestUnmarshalGQLErrorText(t *testing.T) {
	t.Parallel()
	var op trigger.Operator
	if err := op.UnmarshalGQL("FOO"); err == nil || err.Error() != `unknown operator "FOO"` {
		t.Errorf("error = %v, want unknown operator \"FOO\"", err)
	}
	var s trigger.Scope
	if err := s.UnmarshalGQL(nil); err == nil || err.Error() != "scope must be a string, got <nil>" {
		t.Errorf("error = %v", err)
	}
}

// The three types must satisfy ent's enum interface.
var _ = []enum{trigger.Kind(""), trigger.Scope(""), trigger.Operator(""), trigger.AggregateFunction("")}
