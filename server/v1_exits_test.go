package server_test

// Exits and DYNAMIC segments through the Segment-compatible API: /v1/identify
// and traits on /v1/track move users out (and, for DYNAMIC, in), /v1/track
// exit events move them out, and /v1/batch applies them in order.

import (
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/segmentd/segmentd/auth"
	"github.com/segmentd/segmentd/internal/testenv"
)

func memberList(t *testing.T, c *testenv.Client, segID string) string {
	t.Helper()
	var ids []string
	for id := range members(t, c, segID) {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return strings.Join(ids, ",")
}

func createSegmentV1(t *testing.T, c *testenv.Client, in map[string]any) string {
	t.Helper()
	var seg struct{ CreateSegment struct{ ID string } }
	c.MustDo(t, `mutation($in: CreateSegmentInput!) { createSegment(input: $in) { id } }`, map[string]any{"in": in}, &seg)
	return seg.CreateSegment.ID
}

func TestV1Exits(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL)
		c := srv.Admin()
		key := newKey(t, srv, "v1 exits", auth.RoleWrite)
		fb := map[string]any{"scope": "USER", "property": "Channel", "operator": "EQ", "value": "Facebook"}
		condSeg := createSegmentV1(t, c, map[string]any{"name": "Facebook sign-ups", "kind": "EVENT_TRIGGERED", "triggerEvents": []string{"Sign Up"},
			"condition": fb, "exitRules": map[string]any{"whenConditionFails": true}})
		newsSeg := createSegmentV1(t, c, map[string]any{"name": "Newsletter", "kind": "EVENT_TRIGGERED", "triggerEvents": []string{"Subscribed"},
			"exitRules": map[string]any{"onEvents": []string{"Unsubscribed"}}})
		dynSeg := createSegmentV1(t, c, map[string]any{"name": "Facebook users", "kind": "DYNAMIC", "condition": fb})

		for _, u := range []string{"v1-a", "v1-b", "v1-c"} {
			sendV1(t, srv, key, "track", map[string]any{"userId": u, "event": "Sign Up", "context": map[string]any{"traits": map[string]any{"Channel": "Facebook"}}})
			sendV1(t, srv, key, "track", map[string]any{"userId": u, "event": "Subscribed"})
		}
		if got := memberList(t, c, condSeg); got != "v1-a,v1-b,v1-c" {
			t.Fatalf("after sign-ups: %s", got)
		}
		if got := memberList(t, c, dynSeg); got != "v1-a,v1-b,v1-c" {
			t.Fatalf("DYNAMIC after sign-ups: %s", got)
		}
		// /v1/identify changes a's channel: a leaves both.
		sendV1(t, srv, key, "identify", map[string]any{"userId": "v1-a", "traits": map[string]any{"Channel": "Google"}})
		// traits on a track call change b's.
		sendV1(t, srv, key, "track", map[string]any{"userId": "v1-b", "event": "Page Viewed", "context": map[string]any{"traits": map[string]any{"Channel": "Email"}}})
		if got := memberList(t, c, condSeg); got != "v1-c" {
			t.Fatalf("whenConditionFails after /v1 trait changes: %s", got)
		}
		if got := memberList(t, c, dynSeg); got != "v1-c" {
			t.Fatalf("DYNAMIC after /v1 trait changes: %s", got)
		}
		// An exit event in a batch, after a DYNAMIC re-entry by identify.
		body := mustJSON(t, map[string]any{"batch": []any{
			map[string]any{"type": "track", "userId": "v1-c", "event": "Unsubscribed"},
			map[string]any{"type": "identify", "userId": "v1-a", "traits": map[string]any{"Channel": "Facebook"}},
		}})
		if r := postV1(t, srv, "batch", body, map[string]string{"Authorization": basic(key)}); r.Status != 200 || !r.Success {
			t.Fatalf("batch: %d %s", r.Status, r.Raw)
		}
		if got := memberList(t, c, newsSeg); got != "v1-a,v1-b" {
			t.Fatalf("newsletter after Unsubscribed: %s", got)
		}
		if got := memberList(t, c, dynSeg); got != "v1-a,v1-c" {
			t.Fatalf("DYNAMIC after identify back: %s", got)
		}
		// whenConditionFails does not re-enter by traits: a needs a Sign Up.
		if got := memberList(t, c, condSeg); got != "v1-c" {
			t.Fatalf("whenConditionFails after identify back: %s", got)
		}
	})
}

// TestV1DynamicByTheClock: a DYNAMIC segment on "seen within 2s", fed by
// /v1/identify and context.traits on /v1/track, loses its member when the
// window passes with no call at all, and takes them back on their next
// visit.
func TestV1DynamicByTheClock(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL)
		c := srv.Admin()
		key := newKey(t, srv, "v1 clock", auth.RoleWrite)
		seg := createSegmentV1(t, c, map[string]any{"name": "Seen just now", "kind": "DYNAMIC",
			"condition": map[string]any{"scope": "USER", "property": "lastSeen", "operator": "WITHIN_LAST", "value": "2s"}})
		seen := time.Now().UTC().Truncate(time.Second)
		sendV1(t, srv, key, "identify", map[string]any{"userId": "v1-clock", "traits": map[string]any{"lastSeen": seen.Format(time.RFC3339)}})
		if got := memberList(t, c, seg); got != "v1-clock" {
			t.Fatalf("after /v1/identify: %q, want v1-clock", got)
		}
		// Polled on the edges alone: members() also checks totalCount,
		// read by another statement, which the sweep may change between
		// the two.
		due := seen.Add(2 * time.Second)
		for stillMember(t, c, seg) && time.Since(due) < 10*time.Second {
			time.Sleep(20 * time.Millisecond)
		}
		if late := time.Since(due); late > time.Second {
			t.Errorf("the member left %v after the window passed, want within 1 s", late)
		}
		sendV1(t, srv, key, "track", map[string]any{"userId": "v1-clock", "event": "Page Viewed",
			"context": map[string]any{"traits": map[string]any{"lastSeen": time.Now().UTC().Format(time.RFC3339)}}})
		if got := memberList(t, c, seg); got != "v1-clock" {
			t.Fatalf("after the next visit: %q, want v1-clock", got)
		}
	})
}

// stillMember reports whether the segment lists any member.
func stillMember(t *testing.T, c *testenv.Client, segID string) bool {
	t.Helper()
	var out struct {
		Node struct{ Members struct{ Edges []struct{} } }
	}
	c.MustDo(t, `query($id: ID!) { node(id: $id) { ... on Segment { members(first: 10) { edges { cursor } } } } }`,
		map[string]any{"id": segID}, &out)
	return len(out.Node.Members.Edges) > 0
}
