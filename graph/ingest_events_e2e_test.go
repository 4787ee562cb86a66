package graph_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/segmentd/segmentd/internal/testenv"
)

type ingEventPage struct {
	TotalCount int
	PageInfo   struct {
		HasNextPage bool
		EndCursor   *string
	}
	Edges []struct {
		Cursor string
		Node   ingEvent
	}
}

// messageIDs lists the page's events by messageId, in order.
func (p ingEventPage) messageIDs() []string {
	out := []string{}
	for _, e := range p.Edges {
		out = append(out, e.Node.MessageID)
	}
	return out
}

// ingEventsPage queries events with the given arguments (nil ones omitted).
func ingEventsPage(t *testing.T, c *testenv.Client, first int, after *string, where, orderBy map[string]any) ingEventPage {
	t.Helper()
	var out struct{ Events ingEventPage }
	c.MustDo(t, `query($first: Int, $after: Cursor, $where: EventWhereInput, $orderBy: EventOrder) {
		events(first: $first, after: $after, where: $where, orderBy: $orderBy) {
			totalCount pageInfo { hasNextPage endCursor } edges { cursor node { `+ingEventFields+` } } } }`,
		map[string]any{"first": first, "after": after, "where": where, "orderBy": orderBy}, &out)
	return out.Events
}

// TestIngestEventsView: the data-ingestion view lists stored events newest
// first by default, filters by name, user, type, arrival and event time,
// orders by timestamp on request, and pages with first/after without gaps or
// repeats; each event shows its outcomes.
func TestIngestEventsView(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL)
		c := srv.Admin()
		ingSeed(t, c, "ACTIVE")
		base := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
		at := func(h int) string { return base.Add(time.Duration(h) * time.Hour).Format(time.RFC3339) }

		// Sent in this order (so received in this order); the timestamps
		// say they happened in another order.
		sent := []struct {
			messageID, kind, name, user string
			hour                        int
		}{
			{"e1", "TRACK", "Sign Up", "alice", 5},
			{"e2", "TRACK", "Purchase Completed", "alice", 1},
			{"e3", "IDENTIFY", "", "bob", 3},
			{"e4", "TRACK", "Sign Up", "bob", 2},
			{"e5", "TRACK", "Sign Up", "carol", 4},
			{"e6", "TRACK", "Purchase Completed", "bob", 0},
		}
		received := map[string]time.Time{}
		for _, s := range sent {
			var ev ingEvent
			if s.kind == "IDENTIFY" {
				ingIdentify(t, c, map[string]any{"userId": s.user, "messageId": s.messageID, "timestamp": at(s.hour), "traits": ingFacebook})
				ev = ingEventByMessage(t, c, s.messageID)
			} else {
				ev = ingTrack(t, c, map[string]any{"event": s.name, "userId": s.user, "messageId": s.messageID,
					"timestamp": at(s.hour), "traits": ingFacebook}).Event
			}
			if ev.Type != s.kind || ev.UserID == nil || *ev.UserID != s.user || !ev.Timestamp.Equal(base.Add(time.Duration(s.hour)*time.Hour)) {
				t.Fatalf("%s stored as %+v", s.messageID, ev)
			}
			received[s.messageID] = ev.ReceivedAt
		}
		list := func(where, orderBy map[string]any) []string {
			t.Helper()
			p := ingEventsPage(t, c, 100, nil, where, orderBy)
			if p.TotalCount != len(p.Edges) {
				t.Fatalf("where %v: totalCount %d, %d edges", where, p.TotalCount, len(p.Edges))
			}
			return p.messageIDs()
		}
		for _, tc := range []struct {
			label   string
			where   map[string]any
			orderBy map[string]any
			want    []string
		}{
			{"default: newest received first", nil, nil, []string{"e6", "e5", "e4", "e3", "e2", "e1"}},
			{"by name", map[string]any{"name": "Sign Up"}, nil, []string{"e5", "e4", "e1"}},
			{"by user", map[string]any{"userID": "bob"}, nil, []string{"e6", "e4", "e3"}},
			{"by type", map[string]any{"type": "IDENTIFY"}, nil, []string{"e3"}},
			{"TRACK only", map[string]any{"type": "TRACK"}, nil, []string{"e6", "e5", "e4", "e2", "e1"}},
			{"name and user", map[string]any{"name": "Sign Up", "userID": "bob"}, nil, []string{"e4"}},
			{"names", map[string]any{"nameIn": []string{"Purchase Completed"}, "userIDNEQ": "alice"}, nil, []string{"e6"}},
			{"received since e4", map[string]any{"receivedAtGTE": received["e4"].Format(time.RFC3339Nano)}, nil, []string{"e6", "e5", "e4"}},
			{"happened since hour 3", map[string]any{"timestampGTE": at(3)}, nil, []string{"e5", "e3", "e1"}},
			{"happened before hour 2", map[string]any{"timestampLT": at(2)}, nil, []string{"e6", "e2"}},
			{"by time of the event", nil, map[string]any{"field": "TIMESTAMP", "direction": "ASC"}, []string{"e6", "e2", "e4", "e3", "e5", "e1"}},
			{"by time of the event, newest first", map[string]any{"type": "TRACK"}, map[string]any{"field": "TIMESTAMP", "direction": "DESC"}, []string{"e1", "e5", "e4", "e2", "e6"}},
			{"oldest received first", nil, map[string]any{"field": "RECEIVED_AT", "direction": "ASC"}, []string{"e1", "e2", "e3", "e4", "e5", "e6"}},
			{"nobody", map[string]any{"userID": "nobody"}, nil, []string{}},
		} {
			if got := list(tc.where, tc.orderBy); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("%s: %v, want %v", tc.label, got, tc.want)
			}
		}

		// Outcomes: the Sign Up events of the seed segment say what happened.
		for _, e := range ingEventsPage(t, c, 10, nil, map[string]any{"name": "Sign Up"}, nil).Edges {
			if len(e.Node.Outcomes) != 1 || e.Node.Outcomes[0].Segment.Name != ingSeedName || e.Node.Outcomes[0].Reason == "" {
				t.Fatalf("%s outcomes: %+v", e.Node.MessageID, e.Node.Outcomes)
			}
		}
		if e3 := ingEventByMessage(t, c, "e3"); len(e3.Outcomes) != 0 || e3.Name != nil {
			t.Fatalf("identify event: %+v", e3)
		}

		// Pages of two, newest first, then the rest: no gap, no repeat.
		var got []string
		var after *string
		for page := 0; ; page++ {
			p := ingEventsPage(t, c, 2, after, nil, nil)
			if p.TotalCount != 6 {
				t.Fatalf("page %d: totalCount %d, want 6", page, p.TotalCount)
			}
			got = append(got, p.messageIDs()...)
			if !p.PageInfo.HasNextPage {
				break
			}
			if page > 3 || p.PageInfo.EndCursor == nil || len(p.Edges) != 2 {
				t.Fatalf("page %d: %+v", page, p.PageInfo)
			}
			after = p.PageInfo.EndCursor
		}
		if want := []string{"e6", "e5", "e4", "e3", "e2", "e1"}; !reflect.DeepEqual(got, want) {
			t.Fatalf("paged: %v, want %v", got, want)
		}
		// Filtered pages.
		p := ingEventsPage(t, c, 1, nil, map[string]any{"userID": "bob"}, nil)
		if p.TotalCount != 3 || !p.PageInfo.HasNextPage || !reflect.DeepEqual(p.messageIDs(), []string{"e6"}) {
			t.Fatalf("bob, first page: %+v", p)
		}
		p = ingEventsPage(t, c, 5, p.PageInfo.EndCursor, map[string]any{"userID": "bob"}, nil)
		if p.PageInfo.HasNextPage || !reflect.DeepEqual(p.messageIDs(), []string{"e4", "e3"}) {
			t.Fatalf("bob, second page: %+v", p)
		}
	})
}
