package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/segmentd/segmentd/auth"
	"github.com/segmentd/segmentd/ent/apikey"
	"github.com/segmentd/segmentd/ent/schema/pulid"
	"github.com/segmentd/segmentd/internal/testenv"
	"github.com/segmentd/segmentd/pubsub"
	"github.com/segmentd/segmentd/server"
)

// keyID returns the ID of the key with secret.
func keyID(t *testing.T, srv *testenv.Server, secret string) pulid.ID {
	t.Helper()
	k, err := srv.Store().Client.APIKey.Query().Where(apikey.Hash(auth.Hash(secret))).Only(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return k.ID
}

// announce does what `segmentd keys revoke` does after the change: on
// PostgreSQL, one NOTIFY for every replica.
func announce(t *testing.T, srv *testenv.Server) {
	t.Helper()
	if srv.Store().Dialect == "postgres" {
		if err := pubsub.NotifyPostgres(context.Background(), srv.Store().DB, auth.KeysTopic); err != nil {
			t.Fatal(err)
		}
	}
}

// closedWith waits up to within for c to be closed and returns the close
// code (0 if it stayed open).
func closedWith(c *testenv.WSClient, within time.Duration) int {
	deadline := time.After(within)
	for {
		select {
		case _, ok := <-c.Messages:
			if ok {
				continue
			}
			var ce *websocket.CloseError
			if err := <-c.Closed; errors.As(err, &ce) {
				return ce.Code
			}
			return -1
		case <-deadline:
			return 0
		}
	}
}

// wsResult waits for the answer to operation id: its data and errors.
func wsResult(t *testing.T, c *testenv.WSClient, id string) (json.RawMessage, []testenv.GQLError) {
	t.Helper()
	for {
		m := c.Next(t, 10*time.Second)
		if m.ID != id {
			continue
		}
		switch m.Type {
		case "next", "data":
			var p struct {
				Data   json.RawMessage    `json:"data"`
				Errors []testenv.GQLError `json:"errors"`
			}
			if err := json.Unmarshal(m.Payload, &p); err != nil {
				t.Fatal(err)
			}
			return p.Data, p.Errors
		case "error":
			var errs []testenv.GQLError
			if err := json.Unmarshal(m.Payload, &errs); err != nil {
				var one testenv.GQLError
				if err := json.Unmarshal(m.Payload, &one); err != nil {
					t.Fatalf("error payload %s: %v", m.Payload, err)
				}
				errs = []testenv.GQLError{one}
			}
			return nil, errs
		case "complete":
			t.Fatalf("operation %s completed without a result", id)
		}
	}
}

// Revoking a key closes its open websockets with 4403 within 5 s, on every
// replica (two servers on one PostgreSQL database; one server serves a
// SQLite file, so there both sockets are on it), and leaves other keys'
// sockets open.
func TestRevokedKeyClosesItsSocketsOnEveryReplica(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		one := startAttackServer(t, dbURL)
		two := one.Server
		if storeOf(dbURL) == "postgres" {
			two = testenv.StartServer(t, dbURL)
		}
		key := one.secret(newKey(t, one.Server, "dashboard", auth.RoleRead))
		other := newKey(t, one.Server, "other dashboard", auth.RoleRead)
		sub := `subscription { membershipChanged { cursor } }`
		a := one.DialWS(t, key, testenv.TransportWS)
		a.Subscribe(t, "1", sub, nil)
		b := two.DialWS(t, key, testenv.LegacyWS)
		b.Subscribe(t, "1", sub, nil)
		keep := two.DialWS(t, other, testenv.TransportWS)
		keep.Subscribe(t, "1", sub, nil)
		time.Sleep(100 * time.Millisecond) // the subscriptions are running

		start := time.Now()
		if err := auth.NewKeys(one.Store().Client).Revoke(context.Background(), keyID(t, one.Server, key)); err != nil {
			t.Fatal(err)
		}
		announce(t, one.Server)
		for name, c := range map[string]*testenv.WSClient{"replica one": a, "replica two": b} {
			if code := closedWith(c, 5*time.Second-time.Since(start)); code != 4403 {
				t.Errorf("%s: socket of the revoked key: close code %d within 5 s, want 4403", name, code)
			}
		}
		if !t.Failed() {
			t.Logf("both sockets closed %v after the revocation", time.Since(start).Round(time.Millisecond))
		}
		keep.Subscribe(t, "2", `{ __typename }`, nil)
		if data, errs := wsResult(t, keep, "2"); len(errs) > 0 || string(data) != `{"__typename":"Query"}` {
			t.Errorf("another key's socket: %s %+v", data, errs)
		}
	})
}

// A revoked ADMIN key runs no mutation on the socket it opened before the
// revocation, even before the socket is closed; a key whose role changed
// neither.
func TestRevokedAdminKeyRunsNoMutationOnItsSocket(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := startAttackServer(t, dbURL)
		keys := auth.NewKeys(srv.Store().Client)
		for _, change := range []string{"revoke", "set-role"} {
			key := srv.secret(newKey(t, srv.Server, "ops "+change, auth.RoleAdmin))
			c := srv.DialWS(t, key, testenv.TransportWS)
			c.Subscribe(t, "warm", `{ __typename }`, nil)
			wsResult(t, c, "warm")
			id := keyID(t, srv.Server, key)
			var err error
			if change == "revoke" {
				err = keys.Revoke(context.Background(), id)
			} else {
				err = keys.SetRole(context.Background(), id, auth.RoleRead)
			}
			if err != nil {
				t.Fatal(err)
			}
			// No announcement: the mutation is sent at once, before any
			// check of open sockets.
			c.Subscribe(t, "m", `mutation { createSegment(input: {name: "by a revoked key", kind: STATIC}) { id } }`, nil)
			// The answer is an error, unless the socket's periodic key check
			// closed it first (then there is no answer, only the close).
			select {
			case m, ok := <-c.Messages:
				if ok && m.ID == "m" && !bytes.Contains(m.Payload, []byte(`"UNAUTHENTICATED"`)) && !bytes.Contains(m.Payload, []byte(`"FORBIDDEN"`)) {
					t.Errorf("%s: a mutation on the socket: %s %s, want UNAUTHENTICATED or FORBIDDEN", change, m.Type, m.Payload)
				}
			case <-time.After(10 * time.Second):
				t.Errorf("%s: no answer to the mutation", change)
			}
			if code := closedWith(c, 5*time.Second); code != 4403 {
				t.Errorf("%s: close code %d, want 4403", change, code)
			}
		}
		var segs struct{ Segments struct{ TotalCount int } }
		srv.Admin().MustDo(t, `{ segments { totalCount } }`, nil, &segs)
		if segs.Segments.TotalCount != 0 {
			t.Errorf("%d segments created by revoked keys", segs.Segments.TotalCount)
		}
	})
}

// Websocket operations count against their key's rate limit, as HTTP
// requests do: 300 queries sent at once on a socket, with a limit of 10 a
// second (burst 20), mostly get RATE_LIMITED.
func TestWebsocketOperationsAreRateLimited(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := startAttackServer(t, dbURL, func(c *server.Config) { c.RateLimit = 10; c.RateBurst = 20 })
		key := srv.secret(newKey(t, srv.Server, "dashboard", auth.RoleRead))
		c := srv.DialWS(t, key, testenv.TransportWS)
		start := time.Now()
		const n = 300
		for i := range n {
			c.Subscribe(t, fmt.Sprint(i), `{ __typename }`, nil)
		}
		passed, limited := 0, 0
		for passed+limited < n {
			m := c.Next(t, 10*time.Second)
			if m.Type != "next" {
				continue
			}
			var p struct{ Errors []testenv.GQLError }
			if err := json.Unmarshal(m.Payload, &p); err != nil {
				t.Fatal(err)
			}
			switch {
			case len(p.Errors) == 0:
				passed++
			case p.Errors[0].Code() == "RATE_LIMITED":
				limited++
			default:
				t.Fatalf("operation %s: %+v", m.ID, p.Errors)
			}
		}
		elapsed := time.Since(start)
		allowed := 20 + int(10*elapsed.Seconds()) + 1
		t.Logf("%d of %d passed in %v (%d allowed), %d RATE_LIMITED", passed, n, elapsed.Round(time.Millisecond), allowed, limited)
		if passed > allowed || limited == 0 {
			t.Errorf("%d of %d websocket operations passed in %v; the limit allows %d", passed, n, elapsed, allowed)
		}
	})
}
