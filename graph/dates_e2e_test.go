package graph_test

// Issue 13, item 7: the seed's own condition, `Sign Up Date > January 1,
// 2025` as the product document writes it, compares dates as dates, over
// real HTTP on both stores; ordering conditions on other text are refused.

import (
	"testing"

	"github.com/segmentd/segmentd/internal/testenv"
)

func TestSeedConditionWrittenDateComparesDates(t *testing.T) {
	t.Parallel()
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL)
		c := srv.Admin()
		segID := ingCreateSegment(t, c, map[string]any{
			"name": ingSeedName, "kind": "EVENT_TRIGGERED", "triggerEvents": []string{"Sign Up"},
			"condition": map[string]any{"and": []any{
				map[string]any{"scope": "USER", "property": "Sign Up Date", "operator": "GT", "value": "January 1, 2025"},
				map[string]any{"or": []any{
					map[string]any{"scope": "USER", "property": "Channel", "operator": "EQ", "value": "Facebook"},
					map[string]any{"scope": "EVENT", "property": "Reward Amount", "operator": "GT", "value": 50},
				}},
			}},
		})
		campID := ingCreateCampaign(t, c, "Welcome Mission", segID, "ACTIVE").ID
		want := map[string]bool{
			"u-march-2024": false, // "March 1, 2024": before 2025, whatever the bytes say
			"u-iso-2025":   true,  // "2025-03-01"
			"u-jan-15":     true,  // "Jan 15, 2025"
			"u-1-feb":      true,  // "1 February 2025"
			"u-new-year":   false, // "2025-01-01": not after it
			"u-rfc3339":    true,  // "2025-01-01T00:00:01Z"
		}
		dates := map[string]string{
			"u-march-2024": "March 1, 2024", "u-iso-2025": "2025-03-01", "u-jan-15": "Jan 15, 2025",
			"u-1-feb": "1 February 2025", "u-new-year": "2025-01-01", "u-rfc3339": "2025-01-01T00:00:01Z",
		}
		for u, d := range dates {
			res := ingTrack(t, c, map[string]any{"event": "Sign Up", "userId": u, "messageId": "m-" + u,
				"traits": map[string]any{"Sign Up Date": d, "Channel": "Google"}, "properties": map[string]any{"Reward Amount": 72}})
			if entered := len(res.EnteredSegments) == 1; entered != want[u] {
				t.Errorf("%s with Sign Up Date %q: entered = %v, want %v (outcomes %+v)", u, d, entered, want[u], res.Event.Outcomes)
			}
			if activated := len(res.ActivatedCampaigns) == 1; activated != want[u] {
				t.Errorf("%s: activated = %v, want %v", u, activated, want[u])
			}
		}
		members := ingMembers(t, c, segID)
		for u, in := range want {
			if _, ok := members[u]; ok != in {
				t.Errorf("%s member = %v, want %v", u, ok, in)
			}
		}
		if n, _ := ingActivations(t, c, campID); n != 4 {
			t.Errorf("activations = %d, want 4", n)
		}

		// Text that is neither a number nor a date cannot be ordered.
		e := c.MustFail(t, "BAD_USER_INPUT", `mutation($in: CreateSegmentInput!) { createSegment(input: $in) { id } }`,
			map[string]any{"in": map[string]any{"name": "Soon", "kind": "EVENT_TRIGGERED", "triggerEvents": []string{"Sign Up"},
				"condition": map[string]any{"and": []any{
					map[string]any{"scope": "USER", "property": "Channel", "operator": "EXISTS"},
					map[string]any{"scope": "USER", "property": "Sign Up Date", "operator": "GT", "value": "soon"},
				}}}})
		if e.Field() != "input.condition.and[1].value" {
			t.Errorf("field = %q, want input.condition.and[1].value", e.Field())
		}
		if err := e.Contains(`"soon"`, `"January 1, 2025"`, `"Jan 1, 2025"`, `"1 January 2025"`, `"2025-01-01"`, `"2025-01-01T09:30:00Z"`); err != nil {
			t.Error(err)
		}
		if n := segmentCount(t, c); n != 1 {
			t.Errorf("segments = %d after the refused one, want 1", n)
		}
	})
}
