package graph_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/segmentd/segmentd/internal/testenv"
)

// TestMembershipChangedCursorBeyondEnd: a membershipChanged cursor beyond
// the end of the change log (one no change ever had) is BAD_USER_INPUT on
// "after", on both stores and both subprotocols, instead of a subscription
// that silently delivers nothing until the log passes it; the cursor of
// the last change is accepted and the next change arrives, alone.
//
// On PostgreSQL, live delivery waits for every older transaction on the
// cluster to end (see package live): the deliveries get a minute, for
// clusters shared with other work.
func TestMembershipChangedCursorBeyondEnd(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL)
		admin := srv.Admin()
		segID, _ := liveSegment(t, admin)
		for _, proto := range testenv.Subprotocols {
			t.Run(proto, func(t *testing.T) {
				ws := srv.DialWS(t, testenv.AdminKey, proto)
				ws.Subscribe(t, "1", membershipChangedQuery, map[string]any{"s": segID})
				time.Sleep(100 * time.Millisecond) // graphql-transport-ws has no subscribe ack
				signUps(t, admin, []string{proto + "-first"}, 1)
				var ch liveChange
				ws.NextData(t, "1", time.Minute, &ch)
				last := ch.MembershipChanged.Cursor
				var tx, seq uint64
				if _, err := fmt.Sscanf(last, "%d.%d", &tx, &seq); err != nil {
					t.Fatalf("cursor %q: %v", last, err)
				}
				for i, beyond := range []string{
					fmt.Sprintf("%d.%d", tx, seq+1000),
					fmt.Sprintf("%d.%d", tx+1_000_000, seq),
					"0.9223372036854775807",
				} {
					id := fmt.Sprintf("beyond-%d", i)
					ws.Subscribe(t, id, membershipChangedQuery, map[string]any{"s": segID, "after": beyond})
					errs := ws.NextError(t, id, 5*time.Second)
					if errs[0].Code() != "BAD_USER_INPUT" || errs[0].Field() != "after" {
						t.Errorf("after %q (the last change is %s): %+v, want BAD_USER_INPUT on after", beyond, last, errs)
					}
					// The operation ends: complete may follow, and nothing else.
					select {
					case m := <-ws.Messages:
						if m.Type != "complete" || m.ID != id {
							t.Fatalf("%s: after the error: %s %s %s", id, m.Type, m.ID, m.Payload)
						}
					case <-time.After(300 * time.Millisecond):
					}
				}
				ws.Conn.Close()

				ws2 := srv.DialWS(t, testenv.AdminKey, proto)
				ws2.Subscribe(t, "2", membershipChangedQuery, map[string]any{"s": segID, "after": last})
				time.Sleep(100 * time.Millisecond)
				next := proto + "-next"
				signUps(t, admin, []string{next}, 1)
				var c liveChange
				ws2.NextData(t, "2", time.Minute, &c)
				if c.MembershipChanged.User.UserID != next {
					t.Fatalf("resuming from the last cursor: got %+v, want the change of %s", c.MembershipChanged, next)
				}
				ws2.Quiet(t, 300*time.Millisecond)
			})
		}
	})
}
