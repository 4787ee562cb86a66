package server_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/segmentd/segmentd/auth"
	"github.com/segmentd/segmentd/internal/testenv"
)

// newKey creates an API key of role on srv's store and returns its secret.
func newKey(t testing.TB, srv *testenv.Server, name string, role auth.Role) string {
	t.Helper()
	_, secret, err := auth.NewKeys(srv.Store().Client).Create(context.Background(), name, role)
	if err != nil {
		t.Fatalf("create %s key: %v", role, err)
	}
	return secret
}

// basic is the Authorization header Segment's SDKs send: the write key as
// the Basic-auth user name, with an empty password.
func basic(key string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(key+":"))
}

func gzipped(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// mustJSONNoT is mustJSON for values that always encode, in goroutines.
func mustJSONNoT(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// v1Response is a /v1 answer.
type v1Response struct {
	Status  int
	Header  http.Header
	Success bool `json:"success"`
	Error   struct {
		Code    string `json:"code"`
		Field   string `json:"field"`
		Message string `json:"message"`
	} `json:"error"`
	Raw string
}

var httpClient = &http.Client{Timeout: 30 * time.Second}

// postV1 posts body to /v1/<typ> with the given headers (Content-Type is
// application/json unless headers say otherwise).
func postV1(t testing.TB, srv *testenv.Server, typ string, body []byte, headers map[string]string) *v1Response {
	t.Helper()
	r, err := doV1(srv, typ, body, headers)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// doV1 is postV1 for goroutines other than the test's: it returns its error.
func doV1(srv *testenv.Server, typ string, body []byte, headers map[string]string) (*v1Response, error) {
	req, err := http.NewRequest(http.MethodPost, srv.URL+"/v1/"+typ, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("POST /v1/%s: %w", typ, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("POST /v1/%s: read: %w", typ, err)
	}
	r := &v1Response{Status: resp.StatusCode, Header: resp.Header, Raw: string(raw)}
	if err := json.Unmarshal(raw, r); err != nil {
		return nil, fmt.Errorf("POST /v1/%s: %d, body %q is not JSON: %w", typ, resp.StatusCode, raw, err)
	}
	return r, nil
}

// sendV1 posts a message with the write key and fails unless it is accepted.
func sendV1(t testing.TB, srv *testenv.Server, key, typ string, msg any) {
	t.Helper()
	r := postV1(t, srv, typ, mustJSON(t, msg), map[string]string{"Authorization": basic(key)})
	if r.Status != http.StatusOK || !r.Success || r.Raw != `{"success":true}` {
		t.Fatalf("POST /v1/%s: %d %s", typ, r.Status, r.Raw)
	}
}

// seedSignUp creates the EVENT_TRIGGERED segment "Facebook sign-ups" (on
// "Sign Up", user.Channel = "Facebook") and an ACTIVE campaign on it.
func seedSignUp(t testing.TB, c *testenv.Client) (segID, campID string) {
	t.Helper()
	var seg struct{ CreateSegment struct{ ID string } }
	c.MustDo(t, `mutation($in: CreateSegmentInput!) { createSegment(input: $in) { id } }`, map[string]any{"in": map[string]any{
		"name": "Facebook sign-ups", "kind": "EVENT_TRIGGERED", "triggerEvents": []string{"Sign Up"},
		"condition": map[string]any{"scope": "USER", "property": "Channel", "operator": "EQ", "value": "Facebook"},
	}}, &seg)
	var camp struct{ CreateCampaign struct{ ID string } }
	c.MustDo(t, `mutation($in: CreateCampaignInput!) { createCampaign(input: $in) { id } }`, map[string]any{"in": map[string]any{
		"name": "Welcome Facebook users", "segmentId": seg.CreateSegment.ID, "status": "ACTIVE",
	}}, &camp)
	return seg.CreateSegment.ID, camp.CreateCampaign.ID
}

// counts returns how many events and users are stored.
func counts(t testing.TB, c *testenv.Client) (events, users int) {
	t.Helper()
	var out struct {
		Events struct{ TotalCount int }
		Users  struct{ TotalCount int }
	}
	c.MustDo(t, `{ events { totalCount } users { totalCount } }`, nil, &out)
	return out.Events.TotalCount, out.Users.TotalCount
}

// storedEvent is an event read back over GraphQL.
type storedEvent struct {
	MessageID   string
	Type        string
	Name        *string
	UserID      *string
	AnonymousID *string
	Properties  map[string]any
	Traits      map[string]any
	Context     map[string]any
	Timestamp   time.Time
	ReceivedAt  time.Time
}

const eventFields = `messageId type name userId anonymousId properties traits context timestamp receivedAt`

// eventsWhere returns the events matching where, oldest first.
func eventsWhere(t testing.TB, c *testenv.Client, where map[string]any) []storedEvent {
	t.Helper()
	var out struct {
		Events struct {
			Edges []struct{ Node storedEvent }
		}
	}
	c.MustDo(t, `query($w: EventWhereInput) { events(first: 1000, where: $w, orderBy: {field: RECEIVED_AT, direction: ASC}) { edges { node { `+eventFields+` } } } }`,
		map[string]any{"w": where}, &out)
	evs := make([]storedEvent, len(out.Events.Edges))
	for i, e := range out.Events.Edges {
		evs[i] = e.Node
	}
	return evs
}

// eventByMessageID returns the one event with messageID.
func eventByMessageID(t testing.TB, c *testenv.Client, messageID string) storedEvent {
	t.Helper()
	evs := eventsWhere(t, c, map[string]any{"messageID": messageID})
	if len(evs) != 1 {
		t.Fatalf("%d events with messageId %q, want 1", len(evs), messageID)
	}
	return evs[0]
}

// members returns the user IDs in a segment.
func members(t testing.TB, c *testenv.Client, segID string) map[string]bool {
	t.Helper()
	var out struct {
		Node struct {
			Members struct {
				TotalCount int
				Edges      []struct {
					Node struct {
						Source string
						User   struct{ UserID string }
					}
				}
			}
		}
	}
	c.MustDo(t, `query($id: ID!) { node(id: $id) { ... on Segment { members(first: 1000) { totalCount edges { node { source user { userId } } } } } } }`,
		map[string]any{"id": segID}, &out)
	got := map[string]bool{}
	for _, e := range out.Node.Members.Edges {
		got[e.Node.User.UserID] = true
	}
	if len(got) != out.Node.Members.TotalCount {
		t.Fatalf("members: %d distinct users, totalCount %d", len(got), out.Node.Members.TotalCount)
	}
	return got
}

// activationCount returns how many users activated a campaign.
func activationCount(t testing.TB, c *testenv.Client, campID string) int {
	t.Helper()
	var out struct{ Node struct{ ActivationCount int } }
	c.MustDo(t, `query($id: ID!) { node(id: $id) { ... on Campaign { activationCount } } }`, map[string]any{"id": campID}, &out)
	return out.Node.ActivationCount
}

// userTraits returns a user's traits, or nil if there is no such user.
func userTraits(t testing.TB, c *testenv.Client, userID string) map[string]any {
	t.Helper()
	var out struct {
		User *struct{ Traits map[string]any }
	}
	c.MustDo(t, `query($u: String!) { user(userId: $u) { traits } }`, map[string]any{"u": userID}, &out)
	if out.User == nil {
		return nil
	}
	return out.User.Traits
}
