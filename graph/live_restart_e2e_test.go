package graph_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/segmentd/segmentd/internal/testenv"
)

// TestLiveResumeAcrossRestart: a subscriber gets a cursor and disconnects;
// 300 entries commit from concurrent connections; the server stops and a new
// one starts on the same database; resuming with the cursor (on the other
// subprotocol) gets exactly the missed changes, in order, none twice, then
// live ones.
func TestLiveResumeAcrossRestart(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv, stop := testenv.StartStoppableServer(t, dbURL)
		admin := srv.Admin()
		const event = "Restart Sign Up"
		segID, _ := liveSegmentOn(t, admin, event)

		ws := srv.DialWS(t, testenv.AdminKey, testenv.TransportWS)
		ws.Subscribe(t, "1", membershipChangedQuery, map[string]any{"s": segID})
		time.Sleep(100 * time.Millisecond)
		liveEnter(t, admin, event, []string{"first"}, 1, 1, nil)
		users, cursor := liveReceiveChanges(t, ws, "1", 1, "")
		if users[0] != "first" {
			t.Fatalf("live change of %s, want first", users[0])
		}
		ws.Conn.Close()

		missed := liveUsers("missed", 300)
		liveEnter(t, admin, event, missed, 6, 10, nil)
		stop()

		srv2 := testenv.StartServer(t, dbURL)
		ws2 := srv2.DialWS(t, testenv.AdminKey, testenv.LegacyWS)
		ws2.Subscribe(t, "2", membershipChangedQuery, map[string]any{"s": segID, "after": cursor})
		got, last := liveReceiveChanges(t, ws2, "2", len(missed), cursor)
		liveSameSet(t, "replayed after the restart", got, missed)
		ws2.Quiet(t, 300*time.Millisecond)

		liveEnter(t, srv2.Admin(), event, []string{"after"}, 1, 1, nil)
		got, _ = liveReceiveChanges(t, ws2, "2", 1, last)
		if got[0] != "after" {
			t.Fatalf("live change of %s, want after", got[0])
		}
		ws2.Quiet(t, 300*time.Millisecond)
	})
}

// TestLiveReplicas runs two segmentd processes on one PostgreSQL: a
// subscriber on replica B gets every change of events sent to replica A
// (500 entries from concurrent connections) exactly once, in cursor order;
// B is killed while more entries arrive, and the subscriber resumes on A
// with the last cursor B delivered: nothing missed, nothing repeated.
func TestLiveReplicas(t *testing.T) {
	dbURL := testenv.DatabaseURL(t, "postgres")
	bin := testenv.BuildSegmentd(t, "..")
	a := testenv.StartProcess(t, bin, dbURL) // migrates first
	b := testenv.StartProcess(t, bin, dbURL)
	adminA := a.Admin()
	const event = "Replica Sign Up"
	segID, _ := liveSegmentOn(t, adminA, event)

	wsB := b.DialWS(t, testenv.AdminKey, testenv.TransportWS)
	wsB.Subscribe(t, "b", membershipChangedQuery, map[string]any{"s": segID})
	time.Sleep(200 * time.Millisecond)
	start := time.Now()
	liveEnter(t, adminA, event, []string{"first"}, 1, 1, nil)
	users, cursor := liveReceiveChanges(t, wsB, "b", 1, "")
	if users[0] != "first" {
		t.Fatalf("B delivered the change of %s, want first", users[0])
	}
	t.Logf("an entry on A reached B's subscriber in %s", time.Since(start).Round(time.Millisecond))

	burst := liveUsers("burst", 500)
	liveEnter(t, adminA, event, burst, 10, 10, nil)
	got, cursor := liveReceiveChanges(t, wsB, "b", len(burst), cursor)
	liveSameSet(t, "B's subscriber", got, burst)

	// More entries on A; B dies after delivering some of them.
	more := liveUsers("more", 300)
	done := make(chan struct{})
	go func() {
		defer close(done)
		liveEnter(t, adminA, event, more, 4, 10, nil)
	}()
	delivered, cursor := liveReceiveChanges(t, wsB, "b", 50, cursor)
	b.Kill()
	seen := map[string]bool{}
	for _, u := range delivered {
		seen[u] = true
	}
	// What reached the client before B died counts as delivered.
	for m := range wsB.Messages {
		if m.Type != "next" {
			t.Fatalf("B sent %s %s", m.Type, m.Payload)
		}
		u, c := liveDecodeChange(t, m)
		if seen[u] || !cursorLess(t, cursor, c) {
			t.Fatalf("B delivered %s (cursor %s after %s) twice or out of order", u, c, cursor)
		}
		seen[u], cursor = true, c
		delivered = append(delivered, u)
	}
	<-done
	t.Logf("B delivered %d of %d entries before it was killed", len(delivered), len(more))

	wsA := a.DialWS(t, testenv.AdminKey, testenv.LegacyWS)
	wsA.Subscribe(t, "a", membershipChangedQuery, map[string]any{"s": segID, "after": cursor})
	var rest []string
	for _, u := range more {
		if !seen[u] {
			rest = append(rest, u)
		}
	}
	got, cursor = liveReceiveChanges(t, wsA, "a", len(rest), cursor)
	liveSameSet(t, "resumed on A", got, rest)
	wsA.Quiet(t, 300*time.Millisecond)

	liveEnter(t, adminA, event, []string{"after"}, 1, 1, nil)
	got, _ = liveReceiveChanges(t, wsA, "a", 1, cursor)
	if got[0] != "after" {
		t.Fatalf("live change of %s, want after", got[0])
	}
}

// liveDecodeChange decodes a membershipChanged result message.
func liveDecodeChange(t *testing.T, m testenv.WSMessage) (user, cursor string) {
	t.Helper()
	var p struct {
		Data liveChange
	}
	if err := json.Unmarshal(m.Payload, &p); err != nil {
		t.Fatalf("decode %s: %v", m.Payload, err)
	}
	return p.Data.MembershipChanged.User.UserID, p.Data.MembershipChanged.Cursor
}
