package server_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/segmentd/segmentd/auth"
	"github.com/segmentd/segmentd/internal/testenv"
	"github.com/segmentd/segmentd/server"
)

// TestGraphQLBadInput: list sizes, unknown enum values, oversized bodies,
// deep and long queries are refused before anything runs, with a code, and
// nothing is stored.
func TestGraphQLBadInput(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL)
		admin := srv.Admin()
		writer := srv.Client(newKey(t, srv, "sdk", auth.RoleWrite))
		seedSignUp(t, admin)

		for _, tc := range []struct {
			name, query string
			vars        map[string]any
			code, field string
		}{
			{"first over 1000", `{ segments(first: 5000) { totalCount } }`, nil, "BAD_USER_INPUT", "first"},
			{"last over 1000", `{ events(last: 1001) { totalCount } }`, nil, "BAD_USER_INPUT", "last"},
			{"first negative", `{ users(first: -1) { totalCount } }`, nil, "BAD_USER_INPUT", "first"},
			{"first over 1000 in a variable", `query($n: Int) { campaigns(first: $n) { totalCount } }`, map[string]any{"n": 5000}, "BAD_USER_INPUT", "first"},
			{"first over 1000 on a nested list", `{ segments(first: 1) { edges { node { members(first: 2000) { totalCount } } } } }`, nil, "BAD_USER_INPUT", "first"},
			{"unknown enum value", `{ segments(where: {kind: SMART}) { totalCount } }`, nil, "GRAPHQL_VALIDATION_FAILED", ""},
			{"unknown enum value in a variable", `query($k: SegmentKind) { segments(where: {kind: $k}) { totalCount } }`, map[string]any{"k": "SMART"}, "GRAPHQL_VALIDATION_FAILED", ""},
			{"unknown field", `{ segments { nope } }`, nil, "GRAPHQL_VALIDATION_FAILED", ""},
			{"wrong argument type", `{ segments(first: "ten") { totalCount } }`, nil, "GRAPHQL_VALIDATION_FAILED", ""},
			{"syntax error", `{ segments { `, nil, "GRAPHQL_PARSE_FAILED", ""},
			{"too deep", "{ segments { edges { node { " + strings.Repeat("campaigns { segment { ", 7) + "id" + strings.Repeat(" } }", 7) + " } } } }", nil, "BAD_USER_INPUT", ""},
			{"too many tokens", "{ " + strings.Repeat("__typename ", 10001) + "}", nil, "GRAPHQL_PARSE_FAILED", ""},
		} {
			r := admin.Do(t, tc.query, tc.vars)
			if len(r.Errors) == 0 {
				t.Errorf("%s: no error; data %s", tc.name, r.Data)
				continue
			}
			if e := r.Errors[0]; e.Code() != tc.code || e.Field() != tc.field {
				t.Errorf("%s: %s field %q (%s); want %s field %q", tc.name, e.Code(), e.Field(), e.Message, tc.code, tc.field)
			}
			// A nested list's refusal nulls that field only; the others
			// return no data at all.
			if r.Data != nil && string(r.Data) != "null" && !strings.Contains(tc.name, "nested") {
				t.Errorf("%s: refused, yet returned data %s", tc.name, r.Data)
			}
		}

		events, users := counts(t, admin)
		tooMany := make([]map[string]any, 1001)
		for i := range tooMany {
			tooMany[i] = map[string]any{"event": "Sign Up", "userId": fmt.Sprintf("bulk-%d", i), "traits": map[string]any{"Channel": "Facebook"}}
		}
		e := writer.MustFail(t, "BAD_USER_INPUT", `mutation($in: [TrackInput!]!) { trackEvents(inputs: $in) { accepted } }`, map[string]any{"in": tooMany})
		if e.Field() != "inputs" {
			t.Errorf("trackEvents with 1001 inputs: field %q (%s), want inputs", e.Field(), e.Message)
		}
		if ev, u := counts(t, admin); ev != events || u != users {
			t.Errorf("after refused trackEvents: %d events, %d users; want %d, %d", ev, u, events, users)
		}
		// 1000 is allowed.
		var ok struct{ TrackEvents struct{ Accepted int } }
		writer.MustDo(t, `mutation($in: [TrackInput!]!) { trackEvents(inputs: $in) { accepted } }`, map[string]any{"in": tooMany[:1000]}, &ok)
		if ok.TrackEvents.Accepted != 1000 {
			t.Errorf("trackEvents with 1000 inputs accepted %d", ok.TrackEvents.Accepted)
		}

		// A list asked for without first or last is a page of 1,000, not
		// every row.
		writer.MustDo(t, `mutation { trackEvent(input: {event: "One More", userId: "u"}) { duplicate } }`, nil, nil)
		var all struct {
			Events struct {
				TotalCount int
				PageInfo   struct{ HasNextPage bool }
				Edges      []struct{ Node struct{ ID string } }
			}
		}
		admin.MustDo(t, `{ events { totalCount pageInfo { hasNextPage } edges { node { id } } } }`, nil, &all)
		if all.Events.TotalCount <= 1000 || len(all.Events.Edges) != 1000 || !all.Events.PageInfo.HasNextPage {
			t.Errorf("events without first: %d edges, hasNextPage %v, totalCount %d; want 1000, true, over 1000",
				len(all.Events.Edges), all.Events.PageInfo.HasNextPage, all.Events.TotalCount)
		}

		// Oversized bodies: by Content-Length, and chunked.
		big := mustJSON(t, map[string]any{"query": "{ __typename }", "variables": map[string]any{"pad": strings.Repeat("x", 2<<20)}})
		for _, chunked := range []bool{false, true} {
			var body io.Reader = bytes.NewReader(big)
			if chunked {
				body = io.MultiReader(body) // hides the length: sent chunked
			}
			req, _ := http.NewRequest(http.MethodPost, srv.URL+"/graphql", body)
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+testenv.AdminKey)
			resp, err := httpClient.Do(req)
			if err != nil {
				t.Fatalf("oversized body (chunked %v): %v", chunked, err)
			}
			var out testenv.Response
			_ = json.NewDecoder(resp.Body).Decode(&out)
			resp.Body.Close()
			if resp.StatusCode != http.StatusRequestEntityTooLarge || len(out.Errors) != 1 || out.Errors[0].Code() != "BAD_USER_INPUT" {
				t.Errorf("oversized body (chunked %v): %d %+v; want 413 BAD_USER_INPUT", chunked, resp.StatusCode, out.Errors)
			}
		}
		// A body that is not JSON.
		resp, err := httpClient.Post(srv.URL+"/graphql", "application/json", strings.NewReader(`{"query": `))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest && resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("invalid JSON body: %d", resp.StatusCode)
			}
		}
	})
}

// TestRateLimit: with RateLimit 0.5 and RateBurst 5, a key's 6th request in a
// burst is answered 429 with Retry-After, on /v1 and on GraphQL, and is not
// stored; other keys are not affected; once the Retry-After has passed, each
// limited key works again, and not before. The limiter runs on an injected
// clock that moves only when the test says: the buckets do not refill while
// a slow machine sends the burst, and each key is checked after its own
// Retry-After (a wall-clock version waited for the /v1 key's Retry-After and
// then checked the GraphQL key, limited later, and failed under load).
func TestRateLimit(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		var (
			clockMu sync.Mutex
			now     = time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
		)
		clock := func() time.Time { clockMu.Lock(); defer clockMu.Unlock(); return now }
		advance := func(d time.Duration) { clockMu.Lock(); defer clockMu.Unlock(); now = now.Add(d) }
		srv := testenv.StartServer(t, dbURL, func(c *server.Config) { c.RateLimit, c.RateBurst, c.RateClock = 0.5, 5, clock })
		track := func(key, user string) *v1Response {
			return postV1(t, srv, "track", mustJSON(t, map[string]any{"userId": user, "event": "Ping"}), map[string]string{"Authorization": basic(key)})
		}
		// burst sends 5 requests at once with a new key, then a 6th, and
		// returns the statuses.
		burst := func(key string, send func(key string, i int) (int, http.Header, string)) (statuses []int, last http.Header, lastBody string) {
			statuses = make([]int, 6)
			var wg sync.WaitGroup
			for i := range 5 {
				wg.Add(1)
				go func() { defer wg.Done(); statuses[i], _, _ = send(key, i) }()
			}
			wg.Wait()
			statuses[5], last, lastBody = send(key, 5)
			return
		}
		n := 0
		newWriter := func() string { n++; return newKey(t, srv, fmt.Sprintf("writer-%d", n), auth.RoleWrite) }
		var refusedUser string // the user of the 6th track: the refused one
		w1 := newWriter()
		statuses, h, body := burst(w1, func(key string, i int) (int, http.Header, string) {
			user := fmt.Sprintf("burst-%s-%d", key[len(key)-6:], i)
			if i == 5 {
				refusedUser = user
			}
			r, err := doV1(srv, "track", mustJSONNoT(map[string]any{"userId": user, "event": "Ping"}), map[string]string{"Authorization": basic(key)})
			if err != nil {
				return 0, nil, err.Error() // called from goroutines: no t.Fatal
			}
			return r.Status, r.Header, r.Raw
		})
		if fmt.Sprint(statuses) != "[200 200 200 200 200 429]" {
			t.Fatalf("/v1: statuses %v, want five 200 then 429 (%s)", statuses, body)
		}
		// One token refills in 2 s at 0.5/s, and the clock has not moved.
		if got := h.Get("Retry-After"); got != "2" {
			t.Errorf("/v1: Retry-After %q, want 2 seconds", got)
		}
		var v1Err v1Response
		_ = json.Unmarshal([]byte(body), &v1Err)
		if v1Err.Success || v1Err.Error.Code != "RATE_LIMITED" {
			t.Errorf("/v1 429 body: %s", body)
		}
		// Another key is not affected.
		if r := track(newWriter(), "other-key"); r.Status != http.StatusOK {
			t.Errorf("another key after the burst: %d %s", r.Status, r.Raw)
		}

		// The GraphQL key is limited 1.5 s later than the /v1 key.
		advance(1500 * time.Millisecond)
		newReader := func() string { n++; return newKey(t, srv, fmt.Sprintf("reader-%d", n), auth.RoleRead) }
		r1 := newReader()
		statuses, h, body = burst(r1, func(key string, _ int) (int, http.Header, string) {
			req, _ := http.NewRequest(http.MethodPost, srv.URL+"/graphql", strings.NewReader(`{"query":"{ __typename }"}`))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+key)
			resp, err := httpClient.Do(req)
			if err != nil {
				return 0, nil, err.Error() // called from goroutines: no t.Fatal
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, resp.Header, string(b)
		})
		if fmt.Sprint(statuses) != "[200 200 200 200 200 429]" {
			t.Fatalf("GraphQL: statuses %v, want five 200 then 429 (%s)", statuses, body)
		}
		// A GraphQL client gets a GraphQL error it can read.
		var gqlErr testenv.Response
		_ = json.Unmarshal([]byte(body), &gqlErr)
		if h.Get("Retry-After") != "2" || len(gqlErr.Errors) != 1 || gqlErr.Errors[0].Code() != "RATE_LIMITED" {
			t.Errorf("GraphQL 429: Retry-After %q, body %s; want 2 and a GraphQL error with code RATE_LIMITED", h.Get("Retry-After"), body)
		}
		if r := srv.Client(newReader()).Do(t, `{ __typename }`, nil); r.Status != http.StatusOK || len(r.Errors) > 0 {
			t.Errorf("another READ key after the burst: %d %+v", r.Status, r.Errors)
		}

		// 0.5 s later (2 s after its burst) the /v1 key works again; the
		// GraphQL key, limited later, does not yet.
		advance(500 * time.Millisecond)
		if r := track(w1, "after-wait"); r.Status != http.StatusOK {
			t.Errorf("/v1 after Retry-After: %d %s", r.Status, r.Raw)
		}
		if r := srv.Client(r1).Do(t, `{ __typename }`, nil); r.Status != http.StatusTooManyRequests {
			t.Errorf("GraphQL 0.5 s after its 429 (Retry-After 2): %d, want 429", r.Status)
		}
		// After its own Retry-After, the GraphQL key works again.
		advance(1500 * time.Millisecond)
		if r := srv.Client(r1).Do(t, `{ __typename }`, nil); r.Status != http.StatusOK {
			t.Errorf("GraphQL after Retry-After: %d %+v", r.Status, r.Errors)
		}
		// The refused track was not stored.
		evs := eventsWhere(t, srv.Admin(), map[string]any{"userID": refusedUser})
		if len(evs) != 0 {
			t.Errorf("the refused 6th track was stored: %+v", evs)
		}
	})
}

// TestCORS: browsers on AllowedOrigins may call /graphql and /v1 and open
// websockets; other origins get no CORS headers and no websocket; with no
// AllowedOrigins only the same origin may.
func TestCORS(t *testing.T) {
	t.Parallel()
	const app, evil = "https://app.example.com", "https://evil.example.net"
	open := testenv.StartServer(t, testenv.DatabaseURL(t, "sqlite"), func(c *server.Config) { c.AllowedOrigins = []string{app} })
	closed := testenv.StartServer(t, testenv.DatabaseURL(t, "sqlite"))

	do := func(srv *testenv.Server, method, path, origin string, headers map[string]string) *http.Response {
		t.Helper()
		var body io.Reader
		if method == http.MethodPost {
			body = strings.NewReader(`{"query":"{ __typename }"}`)
			if strings.HasPrefix(path, "/v1/") {
				body = strings.NewReader(`{"userId":"cors","event":"E"}`)
			}
		}
		req, _ := http.NewRequest(method, srv.URL+path, body)
		req.Header.Set("Content-Type", "application/json")
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		for k, v := range headers {
			req.Header.Set(k, v)
		}
		resp, err := httpClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	auth := map[string]string{"Authorization": "Bearer " + testenv.AdminKey}
	preflight := map[string]string{"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization,content-type,content-encoding"}

	for _, path := range []string{"/graphql", "/v1/track"} {
		// Allowed origin: headers on the answer, preflight 204.
		resp := do(open, http.MethodPost, path, app, auth)
		if resp.StatusCode != 200 || resp.Header.Get("Access-Control-Allow-Origin") != app || !strings.Contains(resp.Header.Get("Vary"), "Origin") {
			t.Errorf("POST %s from an allowed origin: %d, Allow-Origin %q, Vary %q", path, resp.StatusCode,
				resp.Header.Get("Access-Control-Allow-Origin"), resp.Header.Get("Vary"))
		}
		resp = do(open, http.MethodOptions, path, app, preflight)
		h := resp.Header
		if resp.StatusCode != http.StatusNoContent || h.Get("Access-Control-Allow-Origin") != app ||
			!strings.Contains(h.Get("Access-Control-Allow-Headers"), "Authorization") ||
			!strings.Contains(h.Get("Access-Control-Allow-Headers"), "Content-Encoding") ||
			!strings.Contains(h.Get("Access-Control-Allow-Methods"), "POST") {
			t.Errorf("preflight %s from an allowed origin: %d %v", path, resp.StatusCode, h)
		}
		// Disallowed origin, and any origin on a server with none allowed:
		// no CORS headers, so the browser refuses the answer.
		for _, c := range []struct {
			name   string
			srv    *testenv.Server
			origin string
		}{{"disallowed origin", open, evil}, {"no origins configured", closed, app}} {
			for _, method := range []string{http.MethodPost, http.MethodOptions} {
				h := auth
				if method == http.MethodOptions {
					h = preflight
				}
				resp := do(c.srv, method, path, c.origin, h)
				if v := resp.Header.Get("Access-Control-Allow-Origin"); v != "" {
					t.Errorf("%s %s, %s: Access-Control-Allow-Origin %q", method, path, c.name, v)
				}
				if method == http.MethodOptions && resp.StatusCode == http.StatusNoContent {
					t.Errorf("%s %s, %s: preflight answered 204", method, path, c.name)
				}
			}
		}
	}

	// Websockets: the same rule by Origin; clients without one are not
	// browsers and pass.
	dial := func(srv *testenv.Server, origin string) int {
		h := http.Header{}
		if origin != "" {
			h.Set("Origin", origin)
		}
		d := websocket.Dialer{Subprotocols: []string{testenv.TransportWS}, HandshakeTimeout: 5 * time.Second}
		conn, resp, err := d.Dial("ws"+strings.TrimPrefix(srv.URL, "http")+"/graphql", h)
		if conn != nil {
			conn.Close()
		}
		if resp == nil {
			t.Fatalf("dial: %v", err)
		}
		return resp.StatusCode
	}
	for _, c := range []struct {
		name   string
		srv    *testenv.Server
		origin string
		want   int
	}{
		{"allowed origin", open, app, http.StatusSwitchingProtocols},
		{"disallowed origin", open, evil, http.StatusForbidden},
		{"no origins configured", closed, app, http.StatusForbidden},
		{"same origin", closed, closed.URL, http.StatusSwitchingProtocols},
		{"no Origin", closed, "", http.StatusSwitchingProtocols},
	} {
		if got := dial(c.srv, c.origin); got != c.want {
			t.Errorf("websocket, %s: %d, want %d", c.name, got, c.want)
		}
	}
}
