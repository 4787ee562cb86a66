package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/segmentd/segmentd/internal/testenv"
)

// clientsSummary is what interop/clients.mjs prints.
type clientsSummary struct {
	Run     string
	Clients []struct {
		Client, UserID string
		Sent           []string
		Received       []struct{ MessageID, Name, UserID string }
		Mutation       *struct {
			Duplicate bool
			Event     struct{ MessageID, Name, UserID string }
		}
		Query, QueryAgain *struct{ UserID string }
	}
	Requests []clientRequest
	Batch    map[string]struct {
		OK       bool
		Name     string
		Message  string
		Status   *int
		BodyText *string
		Codes    []*string
	}
	Websocket map[string]struct {
		Closes []struct {
			Code   int
			Reason string
		}
		Acked bool
	}
	Errors []string
}

// clientRequest is one HTTP request a client sent, as it saw it.
type clientRequest struct {
	Client, Method           string
	SentQuery, Hashed, Batch bool
	Status                   int
	Body                     string
}

// errorCodes returns the extensions.code of each error in the body.
func (r clientRequest) errorCodes() []string {
	var resp struct {
		Errors []testenv.GQLError `json:"errors"`
	}
	_ = json.Unmarshal([]byte(r.Body), &resp)
	var codes []string
	for _, e := range resp.Errors {
		codes = append(codes, e.Code())
	}
	return codes
}

// TestInteropGraphQLClients runs Apollo Client (PersistedQueryLink with GET
// for hashed queries, GraphQLWsLink), urql (subscriptionExchange over
// graphql-ws, the key on the upgrade request) and graphql-request (with
// graphql-ws) against a running segmentd (interop/clients.mjs): each runs
// a query, a trackEvent mutation and an eventReceived subscription that
// sees the mutation's event, which is in the database. Apollo's persisted
// queries go as a hash first, are answered PERSISTED_QUERY_NOT_FOUND, are
// retried with the query, and the next time run by the hash alone over GET.
// Batches from graphql-request and Apollo's BatchHttpLink get BAD_REQUEST
// saying so; a refused websocket key is closed with 4403, a repeated
// subscription id with 4409. No client ever sees INTERNAL.
func TestInteropGraphQLClients(t *testing.T) {
	dir := interopDir(t)
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL)
		admin := srv.Admin()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "node", "clients.mjs")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "SEGMENTD_URL="+srv.URL, "SEGMENTD_KEY="+testenv.AdminKey,
			"SEGMENTD_RUN_ID=it-"+filepath.Base(t.Name()))
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		start := time.Now()
		err := cmd.Run()
		t.Logf("node clients.mjs ran %v", time.Since(start).Round(time.Millisecond))
		var sum clientsSummary
		if jerr := json.Unmarshal(stdout.Bytes(), &sum); jerr != nil {
			t.Fatalf("node clients.mjs: %v; stdout is not the JSON summary (%v):\n%s\nstderr:\n%s", err, jerr, stdout.String(), stderr.String())
		}
		if err != nil || len(sum.Errors) > 0 {
			t.Fatalf("node clients.mjs failed (%v):\n%s\nstderr:\n%s", err, strings.Join(sum.Errors, "\n"), stderr.String())
		}

		// Each client: the mutation stored its event, the subscription saw
		// one of the events sent, the query read the user.
		var names []string
		for _, c := range sum.Clients {
			names = append(names, c.Client)
			if c.Mutation == nil || len(c.Sent) == 0 || c.Mutation.Event.MessageID != c.Sent[0] || c.Mutation.Duplicate || c.Mutation.Event.UserID != c.UserID {
				t.Errorf("%s: mutation %+v, sent %v", c.Client, c.Mutation, c.Sent)
			}
			for _, id := range c.Sent {
				if ev := eventByMessageID(t, admin, id); deref(ev.UserID) != c.UserID || deref(ev.Name) != "Interop" {
					t.Errorf("%s: event %s stored as %+v", c.Client, id, ev)
				}
			}
			if len(c.Received) == 0 || !slices.Contains(c.Sent, c.Received[0].MessageID) || c.Received[0].UserID != c.UserID || c.Received[0].Name != "Interop" {
				t.Errorf("%s: the subscription received %+v; sent %v", c.Client, c.Received, c.Sent)
			}
			for _, q := range []*struct{ UserID string }{c.Query, c.QueryAgain} {
				if q == nil || q.UserID != c.UserID {
					t.Errorf("%s: query answered %+v, want user %s", c.Client, q, c.UserID)
				}
			}
		}
		if !slices.Equal(names, []string{"apollo", "urql", "graphql-request"}) {
			t.Fatalf("clients run: %v", names)
		}

		// Apollo's automatic persisted queries.
		var apollo []clientRequest
		for _, r := range sum.Requests {
			for _, code := range r.errorCodes() {
				if code == "INTERNAL" || code == "" {
					t.Errorf("%s %s got an error coded %q: %d %s", r.Client, r.Method, code, r.Status, r.Body)
				}
			}
			if r.Client == "apollo" {
				apollo = append(apollo, r)
			}
		}
		notFoundThenQuery := map[string]bool{}
		for i, r := range apollo {
			if !r.Hashed {
				t.Errorf("apollo sent a request without its hash: %+v", r)
			}
			if !r.SentQuery && slices.Equal(r.errorCodes(), []string{"PERSISTED_QUERY_NOT_FOUND"}) {
				if i+1 >= len(apollo) || !apollo[i+1].SentQuery || apollo[i+1].Method != "POST" || apollo[i+1].errorCodes() != nil {
					t.Errorf("apollo did not retry an unknown hash with its query: %+v then %+v", r, apollo[i+1:])
				}
				notFoundThenQuery[r.Method] = true
			}
		}
		if !notFoundThenQuery["GET"] || !notFoundThenQuery["POST"] {
			t.Errorf("apollo's query (GET) and mutation (POST) were not each answered PERSISTED_QUERY_NOT_FOUND once: %+v", apollo)
		}
		if n := len(apollo); n == 0 || apollo[n-1].Method != "GET" || apollo[n-1].SentQuery || apollo[n-1].Status != 200 || apollo[n-1].errorCodes() != nil || !strings.Contains(apollo[n-1].Body, `"userId"`) {
			t.Errorf("apollo's second query did not run by its hash alone over GET: %+v", apollo)
		}

		// Batches are refused with BAD_REQUEST, saying so.
		gr := sum.Batch["graphqlRequest"]
		if gr.OK || len(gr.Codes) != 1 || gr.Codes[0] == nil || *gr.Codes[0] != "BAD_REQUEST" || !strings.Contains(gr.Message, "batched requests") {
			t.Errorf("graphql-request batchRequests: %+v", gr)
		}
		ap := sum.Batch["apollo"]
		if ap.OK || ap.Status == nil || *ap.Status != 400 || ap.BodyText == nil || !strings.Contains(*ap.BodyText, "BAD_REQUEST") || !strings.Contains(*ap.BodyText, "batched requests") {
			t.Errorf("Apollo BatchHttpLink: %+v", ap)
		}

		// Websocket close codes as graphql-ws sees them.
		if ws := sum.Websocket["refused"]; ws.Acked || len(ws.Closes) == 0 || ws.Closes[0].Code != 4403 {
			t.Errorf("a refused key: %+v, want closed with 4403 and no ack", ws)
		}
		if ws := sum.Websocket["duplicate"]; len(ws.Closes) == 0 || ws.Closes[0].Code != 4409 || !strings.Contains(ws.Closes[0].Reason, "same-id") {
			t.Errorf("a repeated subscription id: %+v, want closed with 4409", ws)
		}
	})
}
