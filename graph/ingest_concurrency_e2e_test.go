package graph_test

import (
	"encoding/json"
	"fmt"
	"math/rand"
	"reflect"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/segmentd/segmentd/internal/testenv"
)

// ingConcurrently runs fn(i, client) for i in [0, n) at once, each on a
// client with its own connections, and waits for all of them.
func ingConcurrently(srv *testenv.Server, n int, fn func(i int, c *testenv.Client)) {
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, closeIdle := ingOwnClient(srv, testenv.AdminKey)
			defer closeIdle()
			<-start
			fn(i, c)
		}()
	}
	close(start)
	wg.Wait()
}

// ingConcurrentTracks sends n trackEvent calls at once and returns their
// results, failing the test on any error.
func ingConcurrentTracks(t *testing.T, srv *testenv.Server, n int, in func(i int) map[string]any) []ingTrackResult {
	t.Helper()
	out := make([]ingTrackResult, n)
	ingConcurrently(srv, n, func(i int, c *testenv.Client) {
		r := c.Do(t, ingTrackMutation, map[string]any{"in": in(i)})
		if len(r.Errors) > 0 {
			t.Errorf("trackEvent %d: %+v", i, r.Errors)
			return
		}
		var v struct{ TrackEvent ingTrackResult }
		if err := json.Unmarshal(r.Data, &v); err != nil {
			t.Errorf("trackEvent %d: %v", i, err)
			return
		}
		out[i] = v.TrackEvent
	})
	if t.Failed() {
		t.FailNow()
	}
	return out
}

var ingFacebook = map[string]any{"Sign Up Date": "2025-02-01", "Channel": "Facebook"}

// TestIngestConcurrentSameMessage: 50 clients send the identical event (same
// messageId) at once on their own connections. Exactly one is stored and
// not a duplicate; every answer names that one event; the user enters once
// and activates the campaign once.
func TestIngestConcurrentSameMessage(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL)
		c := srv.Admin()
		segID, campID := ingSeed(t, c, "ACTIVE")

		res := ingConcurrentTracks(t, srv, 50, func(int) map[string]any {
			return map[string]any{"event": "Sign Up", "userId": "same", "messageId": "m-same", "traits": ingFacebook}
		})
		fresh, entered, activated := 0, 0, 0
		for i, r := range res {
			if !r.Duplicate {
				fresh++
			}
			if r.Event.ID != res[0].Event.ID || r.Event.MessageID != "m-same" {
				t.Fatalf("answer %d names event %s (%s), answer 0 %s", i, r.Event.ID, r.Event.MessageID, res[0].Event.ID)
			}
			entered += len(r.EnteredSegments)
			activated += len(r.ActivatedCampaigns)
		}
		if fresh != 1 || entered != 1 || activated != 1 {
			t.Fatalf("50 identical events: %d not duplicates, %d entries, %d activations; want 1 each", fresh, entered, activated)
		}
		if n := ingEventCount(t, c, nil); n != 1 {
			t.Fatalf("events stored: %d, want 1", n)
		}
		if got := ingKeys(ingMembers(t, c, segID)); !reflect.DeepEqual(got, []string{"same"}) {
			t.Fatalf("members %v", got)
		}
		if u := ingGetUser(t, c, "same"); len(u.Memberships) != 1 {
			t.Fatalf("memberships %+v", u.Memberships)
		}
		if n, users := ingActivations(t, c, campID); n != 1 || !reflect.DeepEqual(users, []string{"same"}) {
			t.Fatalf("activations %d %v, want 1", n, users)
		}
	})
}

// TestIngestConcurrentOneUser: 50 different events of one new user at once
// make 50 events, one user, one membership, one ENTERED change in the
// membership log and one activation.
func TestIngestConcurrentOneUser(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL)
		c := srv.Admin()
		segID, campID := ingSeed(t, c, "ACTIVE")

		// Each event also sets a trait of its own: concurrent merges must
		// not lose any.
		res := ingConcurrentTracks(t, srv, 50, func(i int) map[string]any {
			return map[string]any{"event": "Sign Up", "userId": "one", "messageId": fmt.Sprintf("m-one-%02d", i),
				"traits": map[string]any{"Sign Up Date": "2025-02-01", "Channel": "Facebook", fmt.Sprintf("t%02d", i): i}}
		})
		entered, activated := 0, 0
		for i, r := range res {
			if r.Duplicate {
				t.Fatalf("event %d with its own messageId answered as a duplicate", i)
			}
			entered += len(r.EnteredSegments)
			activated += len(r.ActivatedCampaigns)
		}
		if entered != 1 || activated != 1 {
			t.Fatalf("50 events of one user: %d entries, %d activations; want 1 and 1", entered, activated)
		}
		if n := ingEventCount(t, c, map[string]any{"userID": "one"}); n != 50 {
			t.Fatalf("events of user one: %d, want 50", n)
		}
		if n := ingUserCount(t, c); n != 1 {
			t.Fatalf("users: %d, want 1", n)
		}
		u := ingGetUser(t, c, "one")
		if len(u.Memberships) != 1 || u.Memberships[0].Source != "EVENT" {
			t.Fatalf("memberships %+v", u.Memberships)
		}
		for i := 0; i < 50; i++ {
			if v, ok := u.Traits[fmt.Sprintf("t%02d", i)]; !ok || v != float64(i) {
				t.Fatalf("trait t%02d is %v after 50 concurrent merges: lost update (traits %v)", i, v, u.Traits)
			}
		}
		if len(u.Traits) != 52 {
			t.Fatalf("traits %v, want 52", u.Traits)
		}
		if n, _ := ingActivations(t, c, campID); n != 1 {
			t.Fatalf("activationCount %d, want 1", n)
		}
		// Exactly one outcome says "entered"; the other 49 "already a member".
		var evs struct {
			Events struct {
				Edges []struct{ Node ingEvent }
			}
		}
		c.MustDo(t, `{ events(first: 100, where: {userID: "one"}) { edges { node { `+ingEventFields+` } } } }`, nil, &evs)
		enteredOutcomes, already := 0, 0
		for _, e := range evs.Events.Edges {
			for _, o := range e.Node.Outcomes {
				switch {
				case o.Entered:
					enteredOutcomes++
				case o.Reason == "already a member":
					already++
				}
			}
		}
		if enteredOutcomes != 1 || already != 49 {
			t.Fatalf("stored outcomes: %d entered, %d already a member; want 1 and 49", enteredOutcomes, already)
		}

		// The membership log, replayed from its start, holds one ENTERED
		// change for this user.
		ws := srv.DialWS(t, testenv.AdminKey, "graphql-transport-ws")
		ws.Subscribe(t, "1", `subscription($s: ID, $after: String) { membershipChanged(segmentId: $s, after: $after) {
			kind source user { userId } event { messageId } } }`, map[string]any{"s": segID, "after": "0.0"})
		var changes []string
		for {
			var ch struct {
				MembershipChanged struct {
					Kind, Source string
					User         struct{ UserID string }
				}
			}
			select {
			case m, ok := <-ws.Messages:
				if !ok {
					t.Fatalf("websocket closed: %v", <-ws.Closed)
				}
				if m.Type != "next" {
					t.Fatalf("unexpected message %s %s", m.Type, m.Payload)
				}
				var p struct{ Data json.RawMessage }
				if err := json.Unmarshal(m.Payload, &p); err != nil || json.Unmarshal(p.Data, &ch) != nil {
					t.Fatalf("decode %s", m.Payload)
				}
				mc := ch.MembershipChanged
				changes = append(changes, mc.Kind+" "+mc.Source+" "+mc.User.UserID)
				continue
			case <-time.After(extraWait(len(changes))):
			}
			break
		}
		if !reflect.DeepEqual(changes, []string{"ENTERED EVENT one"}) {
			t.Fatalf("membership log: %v, want one ENTERED", changes)
		}
	})
}

// TestIngestConcurrentBatches: in each of 3 rounds, 20 new users x 5 events
// are shuffled into 10 trackEvents batches sent at once, so that concurrent
// batches create and lock overlapping users in different orders (which
// deadlocks on PostgreSQL unless every batch takes its locks in one fixed
// order). No call fails, and each user enters once and activates once.
func TestIngestConcurrentBatches(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL)
		c := srv.Admin()
		segID, campID := ingSeed(t, c, "ACTIVE")

		const rounds, users, perUser, batches = 3, 20, 5, 10
		rng := rand.New(rand.NewSource(7))
		var want []string
		for round := 0; round < rounds; round++ {
			var all []map[string]any
			for u := 0; u < users; u++ {
				id := fmt.Sprintf("r%d-user-%02d", round, u)
				want = append(want, id)
				for k := 0; k < perUser; k++ {
					all = append(all, map[string]any{"event": "Sign Up", "userId": id,
						"messageId": fmt.Sprintf("m-%s-%d", id, k), "traits": ingFacebook})
				}
			}
			rng.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
			size := len(all) / batches

			accepted, duplicates, entered, activated := 0, 0, 0, 0
			var mu sync.Mutex
			ingConcurrently(srv, batches, func(i int, cl *testenv.Client) {
				r := cl.Do(t, ingBatchMutation, map[string]any{"ins": all[i*size : (i+1)*size]})
				if len(r.Errors) > 0 {
					t.Errorf("round %d, batch %d: %+v", round, i, r.Errors)
					return
				}
				var v struct{ TrackEvents ingBatchResult }
				if err := json.Unmarshal(r.Data, &v); err != nil {
					t.Errorf("round %d, batch %d: %v", round, i, err)
					return
				}
				mu.Lock()
				defer mu.Unlock()
				accepted += v.TrackEvents.Accepted
				duplicates += v.TrackEvents.Duplicates
				for _, res := range v.TrackEvents.Results {
					entered += len(res.EnteredSegments)
					activated += len(res.ActivatedCampaigns)
				}
			})
			if t.Failed() {
				t.FailNow()
			}
			if accepted != users*perUser || duplicates != 0 || entered != users || activated != users {
				t.Fatalf("round %d: accepted %d duplicates %d entries %d activations %d; want %d, 0, %d, %d",
					round, accepted, duplicates, entered, activated, users*perUser, users, users)
			}
		}
		if n := ingEventCount(t, c, nil); n != rounds*users*perUser {
			t.Fatalf("events %d, want %d", n, rounds*users*perUser)
		}
		sort.Strings(want)
		if got := ingKeys(ingMembers(t, c, segID)); !reflect.DeepEqual(got, want) {
			t.Fatalf("members %v, want %v", got, want)
		}
		if n, activatedUsers := ingActivations(t, c, campID); n != len(want) || !reflect.DeepEqual(activatedUsers, want) {
			t.Fatalf("activations %d %v, want each user once", n, activatedUsers)
		}
	})
}

// extraWait is how long to wait for another change after got of them: a
// second for one more (there should be none), 30 s for the first (a long
// transaction elsewhere on a shared PostgreSQL cluster holds delivery back).
func extraWait(got int) time.Duration {
	if got == 0 {
		return 30 * time.Second
	}
	return time.Second
}
