package graph_test

import (
	"testing"
	"time"

	"github.com/segmentd/segmentd/internal/testenv"
)

// TestExitRuleAfterExpiresOnTheRealClock: members of a segment with
// exitRules.after "2s" leave 2 s after entry with no event (source TIME,
// "left: expired 2s after entry"), streamed like any change, within 1 s of
// their instant; the segment's figures follow and verify is clean.
func TestExitRuleAfterExpiresOnTheRealClock(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL)
		c := srv.Admin()
		segID := ingCreateSegment(t, c, map[string]any{"name": "Two-second trial", "kind": "STATIC", "exitRules": map[string]any{"after": "2s"}})
		var seg struct {
			Node struct{ ExitRules struct{ After string } }
		}
		c.MustDo(t, `query($s: ID!) { node(id: $s) { ... on Segment { exitRules { after } } } }`, map[string]any{"s": segID}, &seg)
		if seg.Node.ExitRules.After != "2s" {
			t.Fatalf("exitRules.after %q, want \"2s\"", seg.Node.ExitRules.After)
		}
		next := exitStream(t, srv, segID)
		added := time.Now()
		c.MustDo(t, `mutation($s: ID!) { addUsersToSegment(segmentId: $s, userIds: ["trial-a", "trial-b"]) { added } }`, map[string]any{"s": segID}, nil)
		entered := map[string]bool{}
		for range 2 {
			ch := next()
			expectChange(t, ch, "ENTERED", "MANUAL", ch.MembershipChanged.User.UserID, "")
			entered[ch.MembershipChanged.User.UserID] = true
		}
		left := map[string]bool{}
		for range 2 {
			ch := next()
			expectChange(t, ch, "EXITED", "TIME", ch.MembershipChanged.User.UserID, "left: expired 2s after entry")
			left[ch.MembershipChanged.User.UserID] = true
		}
		// The mutation's answer came after entry: 2 s from its start, plus
		// 1 s for the sweep, plus the stream's delivery.
		if took := time.Since(added); took > 3500*time.Millisecond {
			t.Errorf("the exits arrived %v after the add, want within 2 s + 1 s (+ delivery)", took)
		}
		if len(entered) != 2 || len(left) != 2 {
			t.Errorf("entered %v, left %v; want both trial users each", entered, left)
		}
		var after struct {
			Node struct {
				TotalUsers int
				Stats      struct{ TotalUsers int }
			}
		}
		c.MustDo(t, `query($s: ID!) { node(id: $s) { ... on Segment { totalUsers stats { totalUsers } } } }`, map[string]any{"s": segID}, &after)
		if after.Node.TotalUsers != 0 || after.Node.Stats.TotalUsers != 0 {
			t.Errorf("figures after the expiry: %+v, want 0 members", after.Node)
		}
		verifyClean(t, srv)
	})
}
