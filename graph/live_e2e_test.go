package graph_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/segmentd/segmentd/internal/testenv"
)

// liveSegment creates a segment entered by any "Sign Up" of a user whose
// Channel trait is Facebook, and an ACTIVE campaign on it.
func liveSegment(t *testing.T, c *testenv.Client) (segID, campID string) {
	t.Helper()
	var out struct {
		CreateSegment struct{ ID string }
	}
	c.MustDo(t, `mutation($in: CreateSegmentInput!) { createSegment(input: $in) { id } }`, map[string]any{"in": map[string]any{
		"name": "Live", "kind": "EVENT_TRIGGERED", "triggerEvents": []string{"Sign Up"},
		"condition": map[string]any{"scope": "USER", "property": "Channel", "operator": "EQ", "value": "Facebook"},
	}}, &out)
	var camp struct {
		CreateCampaign struct{ ID string }
	}
	c.MustDo(t, `mutation($s: ID!) { createCampaign(input: {name: "Live Mission", segmentId: $s, status: ACTIVE}) { id } }`,
		map[string]any{"s": out.CreateSegment.ID}, &camp)
	return out.CreateSegment.ID, camp.CreateCampaign.ID
}

// signUps sends one matching Sign Up per user, users[i], from workers
// concurrent connections, in batches.
func signUps(t *testing.T, c *testenv.Client, users []string, workers int) {
	t.Helper()
	var wg sync.WaitGroup
	jobs := make(chan []string)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for batch := range jobs {
				inputs := make([]map[string]any, len(batch))
				for i, u := range batch {
					inputs[i] = map[string]any{"event": "Sign Up", "userId": u, "messageId": "m-" + u,
						"traits": map[string]any{"Channel": "Facebook"}}
				}
				r := c.Do(t, `mutation($in: [TrackInput!]!) { trackEvents(inputs: $in) { accepted } }`, map[string]any{"in": inputs})
				if len(r.Errors) > 0 {
					t.Errorf("trackEvents: %+v", r.Errors)
				}
			}
		}()
	}
	for i := 0; i < len(users); i += 10 {
		jobs <- users[i:min(i+10, len(users))]
	}
	close(jobs)
	wg.Wait()
}

type liveChange struct {
	MembershipChanged struct {
		Cursor  string
		Kind    string
		Source  string
		User    struct{ UserID string }
		Segment struct{ ID string }
		Event   *struct{ MessageID string }
	}
}

const membershipChangedQuery = `subscription($s: ID, $after: String) {
  membershipChanged(segmentId: $s, after: $after) { cursor kind source user { userId } segment { id } event { messageId } } }`

// TestMembershipChangedGapless: a subscriber sees entries live; after it
// disconnects, 1,000 entries commit from concurrent connections; resuming
// with its last cursor it gets exactly those, in log order, none twice, and
// then live ones.
func TestMembershipChangedGapless(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL)
		admin := srv.Admin()
		segID, _ := liveSegment(t, admin)
		for _, proto := range testenv.Subprotocols {
			t.Run(proto, func(t *testing.T) {
				ws := srv.DialWS(t, testenv.AdminKey, proto)
				ws.Subscribe(t, "1", membershipChangedQuery, map[string]any{"s": segID})
				time.Sleep(100 * time.Millisecond) // graphql-transport-ws has no subscribe ack
				first := proto + "-first"
				signUps(t, admin, []string{first}, 1)
				var ch liveChange
				ws.NextData(t, "1", 5*time.Second, &ch)
				got := ch.MembershipChanged
				if got.Kind != "ENTERED" || got.User.UserID != first || got.Segment.ID != segID || got.Source != "EVENT" ||
					got.Event == nil || got.Event.MessageID != "m-"+first || got.Cursor == "" {
					t.Fatalf("live change: %+v", got)
				}
				cursor := got.Cursor
				ws.Conn.Close()

				missed := make([]string, 1000)
				for i := range missed {
					missed[i] = fmt.Sprintf("%s-missed-%04d", proto, i)
				}
				signUps(t, admin, missed, 8)

				ws2 := srv.DialWS(t, testenv.AdminKey, proto)
				ws2.Subscribe(t, "2", membershipChangedQuery, map[string]any{"s": segID, "after": cursor})
				seen := map[string]bool{}
				prev := cursor
				for range missed {
					var c liveChange
					ws2.NextData(t, "2", 10*time.Second, &c)
					u := c.MembershipChanged.User.UserID
					if seen[u] {
						t.Fatalf("change for %s delivered twice", u)
					}
					seen[u] = true
					if !cursorLess(t, prev, c.MembershipChanged.Cursor) {
						t.Fatalf("cursor %s after %s: out of order", c.MembershipChanged.Cursor, prev)
					}
					prev = c.MembershipChanged.Cursor
				}
				for _, u := range missed {
					if !seen[u] {
						t.Fatalf("missed change of %s", u)
					}
				}
				// Then live, with no repeat at the seam.
				after := proto + "-after"
				signUps(t, admin, []string{after}, 1)
				var c liveChange
				ws2.NextData(t, "2", 5*time.Second, &c)
				if c.MembershipChanged.User.UserID != after {
					t.Fatalf("expected the live change of %s, got %+v", after, c.MembershipChanged)
				}
				ws2.Quiet(t, 300*time.Millisecond)
			})
		}
	})
}

func cursorLess(t *testing.T, a, b string) bool {
	t.Helper()
	var at, as, bt, bs int64
	if _, err := fmt.Sscanf(a, "%d.%d", &at, &as); err != nil {
		t.Fatalf("cursor %q: %v", a, err)
	}
	if _, err := fmt.Sscanf(b, "%d.%d", &bt, &bs); err != nil {
		t.Fatalf("cursor %q: %v", b, err)
	}
	return at < bt || (at == bt && as < bs)
}
