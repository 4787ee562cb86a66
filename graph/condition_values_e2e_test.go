package graph_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/segmentd/segmentd/internal/testenv"
)

// TestConditionUnstorableValues (issue 13, items 1 and 5): a condition's
// value is JSON that comes in too. A number outside float64 or a NUL
// character in it is refused with BAD_USER_INPUT on its value, the same on
// both stores (PostgreSQL answered INTERNAL for 1e200000 and for a NUL,
// SQLite stored them), and no segment is created.
func TestConditionUnstorableValues(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL)
		c := srv.Admin()
		for _, tc := range []struct {
			name, op string
			value    any
			why      string
		}{
			{"1e400", "GT", json.Number("1e400"), "64-bit"},
			{"1e200000", "LT", json.Number("-1e200000"), "64-bit"},
			{"1e400 in a list", "IN", []any{1, json.Number("1e400")}, "64-bit"},
			{"NUL in a string", "EQ", "a\u0000b", "NUL"},
			{"NUL in a list", "IN", []any{"ok", "\u0000"}, "NUL"},
		} {
			e := c.MustFail(t, "BAD_USER_INPUT", `mutation($in: CreateSegmentInput!) { createSegment(input: $in) { id } }`,
				map[string]any{"in": map[string]any{"name": "Bad value", "kind": "EVENT_TRIGGERED", "triggerEvents": []string{"E"},
					"condition": map[string]any{"and": []any{
						map[string]any{"scope": "EVENT", "property": "ok", "operator": "EXISTS"},
						map[string]any{"scope": "EVENT", "property": "p", "operator": tc.op, "value": tc.value}}}}})
			if e.Field() != "input.condition.and[1].value" || !strings.Contains(e.Message, tc.why) {
				t.Errorf("%s: field %q (%s), want input.condition.and[1].value and %q", tc.name, e.Field(), e.Message, tc.why)
			}
		}
		var segs struct{ Segments struct{ TotalCount int } }
		c.MustDo(t, `{ segments { totalCount } }`, nil, &segs)
		if segs.Segments.TotalCount != 0 {
			t.Fatalf("%d segments created by refused calls", segs.Segments.TotalCount)
		}
	})
}
