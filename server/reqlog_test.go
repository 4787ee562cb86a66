package server_test

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentd/segmentd/auth"
	"github.com/segmentd/segmentd/internal/testenv"
	"github.com/segmentd/segmentd/server"
)

// logLine is one line of slog's text format, as key=value pairs.
type logLine map[string]string

// parseLogLine reads a slog text line: key=value pairs, a value quoted
// when it holds spaces or quotes.
func parseLogLine(s string) logLine {
	out := logLine{}
	for s = strings.TrimSpace(s); s != ""; s = strings.TrimSpace(s) {
		eq := strings.IndexByte(s, '=')
		if eq < 0 {
			break
		}
		key := s[:eq]
		s = s[eq+1:]
		var val string
		if strings.HasPrefix(s, `"`) {
			q, err := strconv.QuotedPrefix(s)
			if err != nil {
				break
			}
			val, _ = strconv.Unquote(q)
			s = s[len(q):]
		} else {
			end := strings.IndexByte(s, ' ')
			if end < 0 {
				end = len(s)
			}
			val, s = s[:end], s[end:]
		}
		out[key] = val
	}
	return out
}

// logLines returns the parsed lines of logs whose msg is msg and that have
// every key=value of match.
func logLines(logs *testenv.LogBuffer, msg string, match map[string]string) []logLine {
	var out []logLine
	for _, raw := range strings.Split(logs.String(), "\n") {
		ln := parseLogLine(raw)
		if ln["msg"] != msg {
			continue
		}
		ok := true
		for k, v := range match {
			if ln[k] != v {
				ok = false
			}
		}
		if ok {
			out = append(out, ln)
		}
	}
	return out
}

// waitLogLine polls the log for a line (see logLines) until timeout.
func waitLogLine(t *testing.T, logs *testenv.LogBuffer, msg string, match map[string]string) logLine {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if ls := logLines(logs, msg, match); len(ls) > 0 {
			return ls[len(ls)-1]
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q line with %v in the log:\n%s", msg, match, logs.String())
		}
	}
}

// createKey creates a key and returns its ID and secret.
func createKey(t *testing.T, srv *testenv.Server, role auth.Role) (id, secret string) {
	t.Helper()
	k, secret, err := auth.NewKeys(srv.Store().Client).Create(context.Background(), "logged "+string(role), role)
	if err != nil {
		t.Fatal(err)
	}
	return string(k.ID), secret
}

// Every request is logged once, when it ends: method, route template,
// status, duration and key ID, and for GraphQL the operation's name, type
// and estimated cost; a websocket when it closes, and each subscription
// it starts. No line holds a key, a trait, a property, a body or an ID
// from the path, even when the request carries a password-like property.
func TestRequestLog(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		logs := &testenv.LogBuffer{}
		srv := testenv.StartServerLogging(t, dbURL, logs)
		writeID, writeKey := createKey(t, srv, auth.RoleWrite)
		readID, readKey := createKey(t, srv, auth.RoleRead)
		secrets := []string{writeKey, readKey, testenv.AdminKey, "SecretChannel-7f3a", "hunter2-pass-9c1e", "p4ssw0rd-b6d2", "mail-5e8d@example.com"}

		c := srv.Client(writeKey)
		c.MustDo(t, `mutation Track($in: TrackInput!) { trackEvent(input: $in) { duplicate } }`, map[string]any{"in": map[string]any{
			"event": "Sign Up", "userId": "mail-5e8d@example.com", "messageId": "log-1",
			"traits":     map[string]any{"Channel": "SecretChannel-7f3a", "password": "hunter2-pass-9c1e"},
			"properties": map[string]any{"password": "p4ssw0rd-b6d2"},
		}}, nil)
		ln := waitLogLine(t, logs, "request", map[string]string{"route": "/graphql", "operation": "Track"})
		for k, want := range map[string]string{"level": "INFO", "method": "POST", "status": "200", "key_id": writeID, "operation_type": "mutation"} {
			if ln[k] != want {
				t.Errorf("request line %s=%q, want %q: %v", k, ln[k], want, ln)
			}
		}
		if d, err := time.ParseDuration(ln["duration"]); err != nil || d <= 0 {
			t.Errorf("request line duration %q: %v", ln["duration"], err)
		}
		if n, err := strconv.Atoi(ln["cost"]); err != nil || n <= 0 {
			t.Errorf("request line cost %q: %v", ln["cost"], err)
		}

		// /v1 with the key as the Basic-auth user name, traits and a
		// password-like property.
		sendV1(t, srv, writeKey, "track", map[string]any{"event": "Logged In", "userId": "mail-5e8d@example.com",
			"properties": map[string]any{"password": "p4ssw0rd-b6d2"}, "context": map[string]any{"traits": map[string]any{"Channel": "SecretChannel-7f3a"}}})
		ln = waitLogLine(t, logs, "request", map[string]string{"route": "/v1/{type}"})
		if ln["key_id"] != writeID || ln["status"] != "200" || ln["method"] != "POST" {
			t.Errorf("/v1 request line: %v", ln)
		}

		// A refused request: 401, no key ID.
		if r := postV1(t, srv, "track", []byte(`{"event":"x","userId":"y"}`), map[string]string{"Authorization": "Bearer sgd_not_a_key_p4ssw0rd-b6d2"}); r.Status != http.StatusUnauthorized {
			t.Fatalf("bad key: %d", r.Status)
		}
		ln = waitLogLine(t, logs, "request", map[string]string{"route": "/v1/{type}", "status": "401"})
		if _, ok := ln["key_id"]; ok {
			t.Errorf("a refused request names a key: %v", ln)
		}

		// A route with an ID in its path is logged by its template.
		var seg struct{ CreateSegment struct{ ID string } }
		srv.Admin().MustDo(t, `mutation { createSegment(input: {name: "Logged", kind: STATIC}) { id } }`, nil, &seg)
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/segments/"+seg.CreateSegment.ID+"/members.csv", nil)
		req.Header.Set("Authorization", "Bearer "+readKey)
		resp, err := httpClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		ln = waitLogLine(t, logs, "request", map[string]string{"route": "/segments/{id}/members.csv"})
		if ln["key_id"] != readID || ln["status"] != "200" {
			t.Errorf("members.csv request line: %v", ln)
		}

		// A websocket: a line per subscription it starts, one when it
		// closes.
		ws := srv.DialWS(t, readKey, testenv.TransportWS)
		ws.Subscribe(t, "1", `subscription Follow($s: ID) { membershipChanged(segmentId: $s) { kind } }`, map[string]any{"s": seg.CreateSegment.ID})
		ln = waitLogLine(t, logs, "subscription started", map[string]string{"operation": "Follow"})
		if ln["subscription"] != "membershipChanged" || ln["key_id"] != readID {
			t.Errorf("subscription line: %v", ln)
		}
		ws.Conn.Close()
		ln = waitLogLine(t, logs, "websocket closed", map[string]string{"route": "/graphql"})
		if ln["status"] != "101" || ln["key_id"] != readID || ln["subscriptions"] != "1" || ln["method"] != "GET" {
			t.Errorf("websocket line: %v", ln)
		}
		if d, err := time.ParseDuration(ln["duration"]); err != nil || d <= 0 {
			t.Errorf("websocket line duration %q: %v", ln["duration"], err)
		}

		// Probes are logged at DEBUG.
		resp, err = httpClient.Get(srv.URL + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if ln = waitLogLine(t, logs, "request", map[string]string{"route": "/healthz"}); ln["level"] != "DEBUG" {
			t.Errorf("health check line: %v", ln)
		}

		all := logs.String()
		for _, s := range append(secrets, seg.CreateSegment.ID+"/") {
			if strings.Contains(all, s) {
				t.Errorf("the log holds %q", s)
			}
		}
		if strings.Contains(all, "level=WARN") || strings.Contains(all, "level=ERROR") {
			t.Errorf("warnings in the log of quick requests:\n%s", all)
		}
	})
}

// A request slower than --slow-request is logged at WARN as "slow
// request", with the same fields.
func TestSlowRequestLog(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		logs := &testenv.LogBuffer{}
		srv := testenv.StartServerLogging(t, dbURL, logs, func(c *server.Config) { c.SlowRequest = time.Nanosecond })
		srv.Admin().MustDo(t, `query Slow { segments(first: 1) { totalCount } }`, nil, nil)
		ln := waitLogLine(t, logs, "slow request", map[string]string{"operation": "Slow"})
		if ln["level"] != "WARN" || ln["route"] != "/graphql" || ln["operation_type"] != "query" || ln["status"] != "200" || ln["key_id"] == "" {
			t.Errorf("slow request line: %v", ln)
		}
		if ls := logLines(logs, "request", map[string]string{"operation": "Slow"}); len(ls) != 0 {
			t.Errorf("a slow request was logged twice: %v", ls)
		}
	})
}
