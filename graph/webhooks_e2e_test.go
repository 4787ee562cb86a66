package graph_test

// End-to-end tests of webhooks (issue 17) over real HTTP, on both stores,
// against a real HTTP receiver (httptest): each topic and filter, the
// signature, retries with the same webhook-id, Retry-After, 410, a
// timeout, rotation, replay, the SSRF refusals and every bad input.

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/segmentd/segmentd/internal/testenv"
	"github.com/segmentd/segmentd/server"
	"github.com/segmentd/segmentd/webhook"
)

// hookWait bounds every wait for a delivery: on PostgreSQL a change is
// read only once no older transaction of the cluster runs (see MinWait).
const hookWait = testenv.MinWait

type hookReq struct {
	ID, Timestamp, Signature, Auth, ContentType string
	Body                                        []byte
	At                                          time.Time
}

// hookBody is the SEGMENTD body.
type hookBody struct {
	Type      string
	ID        string
	Timestamp time.Time
	Data      struct {
		Segment  *struct{ ID, Name string }
		Campaign *struct{ ID, Name string }
		User     *struct {
			UserID string
			Traits map[string]any
		}
		Source *string
		Reason *string
		Event  *struct{ MessageID, Name string }
	}
}

func (r hookReq) body(t *testing.T) hookBody {
	t.Helper()
	var b hookBody
	if err := json.Unmarshal(r.Body, &b); err != nil {
		t.Fatalf("body %s: %v", r.Body, err)
	}
	return b
}

// receiver is a webhook receiver that records every request and answers
// as respond says (n counts requests from 0).
type receiver struct {
	*httptest.Server
	mu      sync.Mutex
	reqs    []hookReq
	respond func(n int, r hookReq) (status int, header map[string]string, delay time.Duration)
}

func newReceiver(t *testing.T, respond func(n int, r hookReq) (int, map[string]string, time.Duration)) *receiver {
	t.Helper()
	rc := &receiver{respond: respond}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		req := hookReq{ID: r.Header.Get("webhook-id"), Timestamp: r.Header.Get("webhook-timestamp"),
			Signature: r.Header.Get("webhook-signature"), Auth: r.Header.Get("Authorization"),
			ContentType: r.Header.Get("Content-Type"), Body: b, At: time.Now()}
		rc.mu.Lock()
		n := len(rc.reqs)
		rc.reqs = append(rc.reqs, req)
		rc.mu.Unlock()
		status, header, delay := 200, map[string]string(nil), time.Duration(0)
		if rc.respond != nil {
			status, header, delay = rc.respond(n, req)
		}
		if delay > 0 {
			select {
			case <-time.After(delay):
			case <-r.Context().Done():
			}
		}
		for k, v := range header {
			w.Header().Set(k, v)
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) all() []hookReq {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.reqs)
}

// waitFor waits until the receiver has had at least n requests.
func (rc *receiver) waitFor(t *testing.T, n int) []hookReq {
	t.Helper()
	deadline := time.Now().Add(hookWait)
	for {
		got := rc.all()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("receiver got %d requests within %s; want %d", len(got), hookWait, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// quiet fails if the receiver gets more than n requests within d.
func (rc *receiver) quiet(t *testing.T, n int, d time.Duration) {
	t.Helper()
	time.Sleep(d)
	if got := rc.all(); len(got) > n {
		t.Fatalf("receiver got %d requests; want %d", len(got), n)
	}
}

// startHooks starts a segmentd that may reach the loopback receiver, with
// a short retry schedule.
func startHooks(t *testing.T, dbURL string, opts ...func(*server.Config)) *testenv.Server {
	t.Helper()
	return testenv.StartServer(t, dbURL, append([]func(*server.Config){func(c *server.Config) {
		c.WebhookAllowPrivate = true
		c.WebhookSchedule = []time.Duration{100 * time.Millisecond, 100 * time.Millisecond, 100 * time.Millisecond}
		c.WebhookTimeout = 2 * time.Second
	}}, opts...)...)
}

type hookEndpoint struct {
	ID             string
	URL            string
	Enabled        bool
	DisabledReason *string
	Topics         []string
	Format         string
}

const hookFields = `id url enabled disabledReason topics format`

func createHook(t *testing.T, c *testenv.Client, in map[string]any) (hookEndpoint, string) {
	t.Helper()
	var out struct {
		CreateWebhookEndpoint struct {
			Endpoint hookEndpoint
			Secret   string
		}
	}
	c.MustDo(t, `mutation($in: CreateWebhookEndpointInput!) { createWebhookEndpoint(input: $in) { secret endpoint { `+hookFields+` } } }`,
		map[string]any{"in": in}, &out)
	if !strings.HasPrefix(out.CreateWebhookEndpoint.Secret, "whsec_") {
		t.Fatalf("secret %q does not start with whsec_", out.CreateWebhookEndpoint.Secret)
	}
	return out.CreateWebhookEndpoint.Endpoint, out.CreateWebhookEndpoint.Secret
}

type hookDelivery struct {
	ID             string
	WebhookID      string
	Topic          string
	Status         string
	Attempts       int
	LastStatusCode *int
	LastError      *string
	NextAttemptAt  *time.Time
	DeliveredAt    *time.Time
	Payload        map[string]any
}

func hookDeliveries(t *testing.T, c *testenv.Client, id string, status string) []hookDelivery {
	t.Helper()
	var out struct {
		Node struct {
			Deliveries struct {
				Edges []struct{ Node hookDelivery }
			}
		}
	}
	vars := map[string]any{"id": id}
	if status != "" {
		vars["status"] = status
	}
	c.MustDo(t, `query($id: ID!, $status: DeliveryStatus) { node(id: $id) { ... on WebhookEndpoint {
		deliveries(first: 100, status: $status) { edges { node { id webhookId topic status attempts lastStatusCode lastError nextAttemptAt deliveredAt payload } } } } } }`,
		vars, &out)
	var ds []hookDelivery
	for _, e := range out.Node.Deliveries.Edges {
		ds = append(ds, e.Node)
	}
	return ds
}

// waitDeliveries polls until cond holds for the endpoint's deliveries.
func waitDeliveries(t *testing.T, c *testenv.Client, id, what string, cond func([]hookDelivery) bool) []hookDelivery {
	t.Helper()
	deadline := time.Now().Add(hookWait)
	for {
		ds := hookDeliveries(t, c, id, "")
		if cond(ds) {
			return ds
		}
		if time.Now().After(deadline) {
			t.Fatalf("deliveries never %s: %+v", what, ds)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// verified checks a request's signature with secret, as a receiver does.
func verified(t *testing.T, r hookReq, secret string) bool {
	t.Helper()
	ts, err := strconv.ParseInt(r.Timestamp, 10, 64)
	if err != nil {
		t.Fatalf("webhook-timestamp %q: %v", r.Timestamp, err)
	}
	if d := time.Since(time.Unix(ts, 0)); d < -time.Minute || d > time.Minute {
		t.Errorf("webhook-timestamp %s is %s away from now", r.Timestamp, d)
	}
	return webhook.Verify(secret, r.ID, time.Unix(ts, 0), r.Body, r.Signature)
}

// byType groups requests' bodies by their type, in arrival order.
func byType(t *testing.T, reqs []hookReq) map[string][]hookBody {
	out := map[string][]hookBody{}
	for _, r := range reqs {
		b := r.body(t)
		out[b.Type] = append(out[b.Type], b)
	}
	return out
}

func TestWebhookTopicsAndFilters(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := startHooks(t, dbURL)
		admin := srv.Admin()
		s1 := ingCreateSegment(t, admin, map[string]any{"name": "Signed up", "kind": "EVENT_TRIGGERED", "triggerEvents": []string{"Sign Up"}})
		s2 := ingCreateSegment(t, admin, map[string]any{"name": "VIP", "kind": "STATIC"})
		k1 := ingCreateCampaign(t, admin, "Welcome", s1, "ACTIVE")
		k2 := ingCreateCampaign(t, admin, "VIP gift", s2, "ACTIVE")

		rAll := newReceiver(t, nil)
		entered, exited, activK2 := newReceiver(t, nil), newReceiver(t, nil), newReceiver(t, nil)
		epAll, secAll := createHook(t, admin, map[string]any{"url": rAll.URL + "/all", "description": "everything",
			"topics": []string{"MEMBERSHIP_ENTERED", "MEMBERSHIP_EXITED", "CAMPAIGN_ACTIVATED"}})
		_, secEntered := createHook(t, admin, map[string]any{"url": entered.URL, "topics": []string{"MEMBERSHIP_ENTERED"}, "segmentIds": []string{s1}})
		_, _ = createHook(t, admin, map[string]any{"url": exited.URL, "topics": []string{"MEMBERSHIP_EXITED"}})
		_, _ = createHook(t, admin, map[string]any{"url": activK2.URL, "topics": []string{"CAMPAIGN_ACTIVATED"}, "campaignIds": []string{k2.ID}})
		if len(epAll.Topics) != 3 || epAll.Format != "SEGMENTD" || !epAll.Enabled {
			t.Fatalf("created endpoint %+v", epAll)
		}

		ingTrack(t, admin, map[string]any{"event": "Sign Up", "userId": "u1", "messageId": "m-1", "traits": map[string]any{"plan": "pro"}})
		addUsers(t, admin, s2, "u2")
		removeUsers(t, admin, s1, "u1")

		// The everything endpoint: 2 entries, 1 exit, 2 activations.
		reqs := rAll.waitFor(t, 5)
		rAll.quiet(t, 5, 300*time.Millisecond)
		got := byType(t, reqs)
		if len(got["membership.entered"]) != 2 || len(got["membership.exited"]) != 1 || len(got["campaign.activated"]) != 2 {
			t.Fatalf("everything endpoint got %v", got)
		}
		for _, r := range reqs {
			if !verified(t, r, secAll) {
				t.Errorf("request %s: signature %q does not verify", r.ID, r.Signature)
			}
			b := r.body(t)
			prefix := "mc_"
			if b.Type == "campaign.activated" {
				prefix = "ca_"
			}
			if r.ID != prefix+b.ID || r.ContentType != "application/json" {
				t.Errorf("webhook-id %q, body id %q, content-type %q", r.ID, b.ID, r.ContentType)
			}
		}
		e := got["membership.entered"][0]
		if e.Data.Segment == nil || e.Data.Segment.ID != s1 || e.Data.Segment.Name != "Signed up" || e.Data.User == nil ||
			e.Data.User.UserID != "u1" || e.Data.User.Traits["plan"] != "pro" || e.Data.Event == nil ||
			e.Data.Event.MessageID != "m-1" || e.Data.Event.Name != "Sign Up" || e.Data.Source == nil || *e.Data.Source != "EVENT" {
			t.Errorf("entry body %+v", e)
		}
		if x := got["membership.exited"][0]; x.Data.Source == nil || *x.Data.Source != "MANUAL" || x.Data.User.UserID != "u1" {
			t.Errorf("exit body %+v", x)
		}
		var camps []string
		for _, a := range got["campaign.activated"] {
			camps = append(camps, a.Data.Campaign.ID)
		}
		slices.Sort(camps)
		want := []string{k1.ID, k2.ID}
		slices.Sort(want)
		if !slices.Equal(camps, want) {
			t.Errorf("activations of %v; want %v", camps, want)
		}
		// Log order: the entry of u1 before its exit.
		var kinds []string
		for _, r := range reqs {
			if b := r.body(t); b.Type != "campaign.activated" && b.Data.User.UserID == "u1" {
				kinds = append(kinds, b.Type)
			}
		}
		if !slices.Equal(kinds, []string{"membership.entered", "membership.exited"}) {
			t.Errorf("u1's changes arrived as %v", kinds)
		}

		// The filtered endpoints.
		er := entered.waitFor(t, 1)
		if b := er[0].body(t); b.Type != "membership.entered" || b.Data.Segment.ID != s1 || !verified(t, er[0], secEntered) {
			t.Errorf("entered endpoint got %+v", b)
		}
		xr := exited.waitFor(t, 1)
		if b := xr[0].body(t); b.Type != "membership.exited" {
			t.Errorf("exited endpoint got %+v", b)
		}
		ar := activK2.waitFor(t, 1)
		if b := ar[0].body(t); b.Type != "campaign.activated" || b.Data.Campaign.ID != k2.ID || b.Data.User.UserID != "u2" {
			t.Errorf("campaign endpoint got %+v", b)
		}
		for _, rc := range []*receiver{entered, exited, activK2} {
			rc.quiet(t, 1, 200*time.Millisecond)
		}

		// The deliveries are listed, newest first, DELIVERED.
		ds := waitDeliveries(t, admin, epAll.ID, "all delivered", func(ds []hookDelivery) bool {
			if len(ds) != 5 {
				return false
			}
			for _, d := range ds {
				if d.Status != "DELIVERED" {
					return false
				}
			}
			return true
		})
		for _, d := range ds {
			if d.Attempts != 1 || d.LastStatusCode == nil || *d.LastStatusCode != 200 || d.DeliveredAt == nil || d.NextAttemptAt != nil {
				t.Errorf("delivery %+v", d)
			}
		}
		if ds[0].WebhookID != reqs[len(reqs)-1].ID && ds[len(ds)-1].WebhookID != reqs[0].ID {
			t.Errorf("deliveries not newest first: %s ... %s", ds[0].WebhookID, ds[len(ds)-1].WebhookID)
		}

		// webhookEndpoints lists them, with their filters.
		var list struct {
			WebhookEndpoints struct {
				TotalCount int
				Edges      []struct {
					Node struct {
						ID        string
						Segments  []struct{ ID string }
						Campaigns []struct{ ID string }
					}
				}
			}
		}
		admin.MustDo(t, `{ webhookEndpoints(first: 10) { totalCount edges { node { id segments { id } campaigns { id } } } } }`, nil, &list)
		if list.WebhookEndpoints.TotalCount != 4 || list.WebhookEndpoints.Edges[1].Node.Segments[0].ID != s1 ||
			list.WebhookEndpoints.Edges[3].Node.Campaigns[0].ID != k2.ID {
			t.Errorf("webhookEndpoints: %+v", list)
		}
	})
}

func TestWebhookRetriesThenDeliversWithTheSameID(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := startHooks(t, dbURL)
		admin := srv.Admin()
		seg := ingCreateSegment(t, admin, map[string]any{"name": "Static", "kind": "STATIC"})
		rc := newReceiver(t, func(n int, _ hookReq) (int, map[string]string, time.Duration) {
			if n < 3 {
				return 500, nil, 0
			}
			return 204, nil, 0
		})
		ep, secret := createHook(t, admin, map[string]any{"url": rc.URL, "topics": []string{"MEMBERSHIP_ENTERED"}})
		addUsers(t, admin, seg, "a")
		addUsers(t, admin, seg, "b")
		reqs := rc.waitFor(t, 5)
		rc.quiet(t, 5, 300*time.Millisecond)
		for i := 1; i < 4; i++ {
			if reqs[i].ID != reqs[0].ID {
				t.Fatalf("attempt %d had webhook-id %q; the first %q", i+1, reqs[i].ID, reqs[0].ID)
			}
			if !verified(t, reqs[i], secret) {
				t.Errorf("attempt %d does not verify", i+1)
			}
			if gap := reqs[i].At.Sub(reqs[i-1].At); gap < 90*time.Millisecond {
				t.Errorf("attempt %d came %s after the one before; the schedule says 100ms", i+1, gap)
			}
		}
		// In order: b's entry only after a's was delivered.
		if reqs[4].ID == reqs[0].ID || reqs[4].body(t).Data.User.UserID != "b" || reqs[0].body(t).Data.User.UserID != "a" {
			t.Errorf("order: %s then %s", reqs[0].body(t).Data.User.UserID, reqs[4].body(t).Data.User.UserID)
		}
		ds := waitDeliveries(t, admin, ep.ID, "delivered", func(ds []hookDelivery) bool {
			return len(ds) == 2 && ds[0].Status == "DELIVERED" && ds[1].Status == "DELIVERED"
		})
		if a := ds[1]; a.Attempts != 4 || a.WebhookID != reqs[0].ID || *a.LastStatusCode != 204 || a.LastError != nil {
			t.Errorf("a's delivery %+v", a)
		}
		// /metrics counts the attempts by how they ended: a's three to be
		// retried, then both delivered.
		fams := scrapeMetrics(t, srv)
		for status, want := range map[string]float64{"PENDING": 3, "DELIVERED": 2, "FAILED": 0} {
			if got := webhookAttempts(fams, status); got != want {
				t.Errorf("segmentd_webhook_deliveries_total{status=%q} = %v, want %v", status, got, want)
			}
		}
	})
}

// scrapeMetrics reads the server's /metrics with the ADMIN key, parsed by
// the Prometheus text parser.
func scrapeMetrics(t *testing.T, srv *testenv.Server) map[string]*dto.MetricFamily {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, srv.URL+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testenv.AdminKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: HTTP %d", resp.StatusCode)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// webhookAttempts is segmentd_webhook_deliveries_total{status}; 0 when
// the series is absent.
func webhookAttempts(fams map[string]*dto.MetricFamily, status string) float64 {
	for _, m := range fams["segmentd_webhook_deliveries_total"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "status" && l.GetValue() == status {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func TestWebhookGivesUpAfterTheScheduleAndGoesOn(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := startHooks(t, dbURL)
		admin := srv.Admin()
		seg := ingCreateSegment(t, admin, map[string]any{"name": "Static", "kind": "STATIC"})
		rc := newReceiver(t, func(_ int, r hookReq) (int, map[string]string, time.Duration) {
			if strings.Contains(string(r.Body), `"userId":"doomed"`) {
				return 500, nil, 0
			}
			return 200, nil, 0
		})
		ep, _ := createHook(t, admin, map[string]any{"url": rc.URL, "topics": []string{"MEMBERSHIP_ENTERED"}})
		addUsers(t, admin, seg, "doomed")
		addUsers(t, admin, seg, "next")
		reqs := rc.waitFor(t, 5) // 1 + 3 retries, then the next one
		if n := len(reqs); reqs[n-1].body(t).Data.User.UserID != "next" {
			t.Fatalf("last request for %s", reqs[n-1].body(t).Data.User.UserID)
		}
		failed := hookDeliveries(t, admin, ep.ID, "FAILED")
		if len(failed) != 1 || failed[0].Attempts != 4 || *failed[0].LastStatusCode != 500 || failed[0].LastError == nil ||
			!strings.Contains(*failed[0].LastError, "500") || failed[0].NextAttemptAt != nil {
			t.Fatalf("FAILED deliveries %+v", failed)
		}
	})
}

func TestWebhookRetryAfterOn429(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		// A schedule of an hour: only Retry-After can bring the retry
		// within seconds.
		srv := startHooks(t, dbURL, func(c *server.Config) { c.WebhookSchedule = []time.Duration{time.Hour, time.Hour} })
		admin := srv.Admin()
		seg := ingCreateSegment(t, admin, map[string]any{"name": "Static", "kind": "STATIC"})
		rc := newReceiver(t, func(n int, _ hookReq) (int, map[string]string, time.Duration) {
			if n == 0 {
				return 429, map[string]string{"Retry-After": "1"}, 0
			}
			if n == 1 {
				return 503, map[string]string{"Retry-After": "1"}, 0
			}
			return 200, nil, 0
		})
		createHook(t, admin, map[string]any{"url": rc.URL, "topics": []string{"MEMBERSHIP_ENTERED"}})
		addUsers(t, admin, seg, "a")
		reqs := rc.waitFor(t, 3)
		for i := 1; i < 3; i++ {
			if gap := reqs[i].At.Sub(reqs[i-1].At); gap < 900*time.Millisecond || gap > 5*time.Second || reqs[i].ID != reqs[0].ID {
				t.Errorf("retry %d after %s with id %s; want about 1s, id %s", i, gap, reqs[i].ID, reqs[0].ID)
			}
		}
	})
}

func TestWebhook410DisablesTheEndpoint(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := startHooks(t, dbURL)
		admin := srv.Admin()
		seg := ingCreateSegment(t, admin, map[string]any{"name": "Static", "kind": "STATIC"})
		var gone sync.Mutex
		isGone := true
		rc := newReceiver(t, func(int, hookReq) (int, map[string]string, time.Duration) {
			gone.Lock()
			defer gone.Unlock()
			if isGone {
				return 410, nil, 0
			}
			return 200, nil, 0
		})
		ep, _ := createHook(t, admin, map[string]any{"url": rc.URL, "topics": []string{"MEMBERSHIP_ENTERED"}})
		addUsers(t, admin, seg, "a")
		rc.waitFor(t, 1)
		var out struct{ Node hookEndpoint }
		deadline := time.Now().Add(hookWait)
		for {
			admin.MustDo(t, `query($id: ID!) { node(id: $id) { ... on WebhookEndpoint { `+hookFields+` } } }`, map[string]any{"id": ep.ID}, &out)
			if !out.Node.Enabled || time.Now().After(deadline) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if out.Node.Enabled || out.Node.DisabledReason == nil || !strings.Contains(*out.Node.DisabledReason, "410") {
			t.Fatalf("after a 410: %+v", out.Node)
		}
		addUsers(t, admin, seg, "b")
		rc.quiet(t, 1, 500*time.Millisecond)

		// Enabled again: what waited is sent, in order.
		gone.Lock()
		isGone = false
		gone.Unlock()
		var upd struct{ UpdateWebhookEndpoint hookEndpoint }
		admin.MustDo(t, `mutation($id: ID!) { updateWebhookEndpoint(id: $id, input: {enabled: true}) { `+hookFields+` } }`, map[string]any{"id": ep.ID}, &upd)
		if !upd.UpdateWebhookEndpoint.Enabled || upd.UpdateWebhookEndpoint.DisabledReason != nil {
			t.Fatalf("re-enabled: %+v", upd.UpdateWebhookEndpoint)
		}
		reqs := rc.waitFor(t, 3)
		if reqs[1].ID != reqs[0].ID || reqs[2].body(t).Data.User.UserID != "b" {
			t.Errorf("after re-enabling: %s, %s", reqs[1].ID, reqs[2].body(t).Data.User.UserID)
		}
	})
}

func TestWebhookTimeout(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := startHooks(t, dbURL, func(c *server.Config) { c.WebhookTimeout = 300 * time.Millisecond })
		admin := srv.Admin()
		seg := ingCreateSegment(t, admin, map[string]any{"name": "Static", "kind": "STATIC"})
		rc := newReceiver(t, func(n int, _ hookReq) (int, map[string]string, time.Duration) {
			if n == 0 {
				return 200, nil, 2 * time.Second // too late
			}
			return 200, nil, 0
		})
		ep, _ := createHook(t, admin, map[string]any{"url": rc.URL, "topics": []string{"MEMBERSHIP_ENTERED"}})
		addUsers(t, admin, seg, "a")
		reqs := rc.waitFor(t, 2)
		if reqs[1].ID != reqs[0].ID {
			t.Fatalf("the retry after a timeout has id %s; first %s", reqs[1].ID, reqs[0].ID)
		}
		if gap := reqs[1].At.Sub(reqs[0].At); gap < 350*time.Millisecond {
			t.Errorf("retry %s after the first attempt; the timeout is 300ms and the schedule 100ms", gap)
		}
		ds := waitDeliveries(t, admin, ep.ID, "delivered", func(ds []hookDelivery) bool { return len(ds) == 1 && ds[0].Status == "DELIVERED" })
		if ds[0].Attempts != 2 {
			t.Errorf("attempts %d; want 2", ds[0].Attempts)
		}
	})
}

func TestWebhookRotationSignsWithBothSecrets(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := startHooks(t, dbURL)
		admin := srv.Admin()
		seg := ingCreateSegment(t, admin, map[string]any{"name": "Static", "kind": "STATIC"})
		rc := newReceiver(t, nil)
		ep, old := createHook(t, admin, map[string]any{"url": rc.URL, "topics": []string{"MEMBERSHIP_ENTERED"}})
		addUsers(t, admin, seg, "a")
		before := rc.waitFor(t, 1)[0]
		if strings.Contains(before.Signature, " ") || !verified(t, before, old) {
			t.Fatalf("before rotation: signature %q", before.Signature)
		}
		var rot struct {
			RotateWebhookSecret struct {
				Secret   string
				Endpoint struct{ ID string }
			}
		}
		admin.MustDo(t, `mutation($id: ID!) { rotateWebhookSecret(id: $id) { secret endpoint { id } } }`, map[string]any{"id": ep.ID}, &rot)
		fresh := rot.RotateWebhookSecret.Secret
		if fresh == old || !strings.HasPrefix(fresh, "whsec_") || rot.RotateWebhookSecret.Endpoint.ID != ep.ID {
			t.Fatalf("rotation: %+v", rot)
		}
		addUsers(t, admin, seg, "b")
		after := rc.waitFor(t, 2)[1]
		if len(strings.Fields(after.Signature)) != 2 || !verified(t, after, fresh) || !verified(t, after, old) {
			t.Fatalf("after rotation: signature %q must verify with both secrets", after.Signature)
		}
	})
}

func TestWebhookReplay(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := startHooks(t, dbURL)
		admin := srv.Admin()
		seg := ingCreateSegment(t, admin, map[string]any{"name": "Static", "kind": "STATIC"})
		ingCreateCampaign(t, admin, "Gift", seg, "ACTIVE")
		rc := newReceiver(t, nil)
		ep, _ := createHook(t, admin, map[string]any{"url": rc.URL, "topics": []string{"MEMBERSHIP_ENTERED", "CAMPAIGN_ACTIVATED"}})
		start := time.Now()
		addUsers(t, admin, seg, "a")
		addUsers(t, admin, seg, "b")
		addUsers(t, admin, seg, "c")
		first := rc.waitFor(t, 6)
		rc.quiet(t, 6, 200*time.Millisecond)
		var entries []hookReq
		for _, r := range first {
			if strings.HasPrefix(r.ID, "mc_") {
				entries = append(entries, r)
			}
		}
		replay := func(vars map[string]any) int {
			t.Helper()
			vars["id"] = ep.ID
			var out struct{ ReplayWebhookDeliveries int }
			admin.MustDo(t, `mutation($id: ID!, $after: String, $since: Time) { replayWebhookDeliveries(endpointId: $id, after: $after, since: $since) }`, vars, &out)
			return out.ReplayWebhookDeliveries
		}
		// After a's entry (its body id): b's and c's entries again, same ids.
		// (A bare cursor is a position in both logs: on PostgreSQL, where
		// it orders transactions, later activations come too.)
		n1 := replay(map[string]any{"after": entries[0].body(t).ID})
		if n1 < 2 {
			t.Fatalf("replay after a cursor queued %d", n1)
		}
		got := rc.waitFor(t, 6+n1)
		rc.quiet(t, 6+n1, 200*time.Millisecond)
		var replayed []string
		for _, r := range got[6:] {
			if strings.HasPrefix(r.ID, "mc_") {
				replayed = append(replayed, r.ID)
			}
		}
		if !slices.Equal(replayed, []string{entries[1].ID, entries[2].ID}) {
			t.Errorf("replayed entries %v; want %s, %s", replayed, entries[1].ID, entries[2].ID)
		}
		// Since before everything: all six again.
		n := replay(map[string]any{"since": start.Add(-time.Second).UTC().Format(time.RFC3339Nano)})
		if n != 6 {
			t.Errorf("replay since the start queued %d; want 6", n)
		}
		all := rc.waitFor(t, len(got)+n)
		ids := map[string]int{}
		for _, r := range all[len(got):] {
			ids[r.ID]++
		}
		for _, r := range first {
			if ids[r.ID] != 1 {
				t.Errorf("%s replayed %d times", r.ID, ids[r.ID])
			}
		}
		// By webhook id: the log it names after it (no entry after c's),
		// and the other log from that row's instant (c's activation).
		if n := replay(map[string]any{"after": entries[2].ID}); n != 1 {
			t.Errorf("replay after the last entry's webhook id queued %d; want 1 (c's activation)", n)
		}
		last := rc.waitFor(t, len(all)+1)[len(all)]
		if b := last.body(t); b.Type != "campaign.activated" || b.Data.User.UserID != "c" {
			t.Errorf("replayed after c's entry: %s for %s", b.Type, b.Data.User.UserID)
		}
	})
}

func TestWebhookURLRefusals(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL) // neither flag
		admin := srv.Admin()
		const q = `mutation($in: CreateWebhookEndpointInput!) { createWebhookEndpoint(input: $in) { secret } }`
		for url, msg := range map[string]string{
			"http://example.com/hooks":       "https is required",
			"https://127.0.0.1/hooks":        "loopback, private or link-local",
			"https://localhost:8080/hooks":   "loopback, private or link-local",
			"https://[::1]/hooks":            "loopback, private or link-local",
			"https://10.1.2.3/hooks":         "loopback, private or link-local",
			"https://192.168.0.10/hooks":     "loopback, private or link-local",
			"https://172.16.5.4/hooks":       "loopback, private or link-local",
			"https://169.254.169.254/latest": "loopback, private or link-local",
			"https://[fe80::1]/x":            "loopback, private or link-local",
			"https://[::ffff:127.0.0.1]/x":   "loopback, private or link-local",
			"https://0.0.0.0/x":              "loopback, private or link-local",
			"https://100.64.1.1/x":           "loopback, private or link-local",
			"ftp://example.com/x":            "scheme",
			"not a url":                      "absolute URL",
			"https://user:pw@example.com/x":  "credentials",
			"https://nonexistent.invalid/x":  "does not resolve",
		} {
			e := admin.MustFail(t, "BAD_USER_INPUT", q, map[string]any{"in": map[string]any{"url": url, "topics": []string{"MEMBERSHIP_ENTERED"}}})
			if e.Field() != "input.url" || !strings.Contains(e.Message, msg) {
				t.Errorf("%s: %s %q; want input.url, %q", url, e.Field(), e.Message, msg)
			}
		}
		// --webhook-allow-http alone: http, but still no private address.
		srv2 := testenv.StartServer(t, testenv.DatabaseURL(t, storeOf(dbURL)), func(c *server.Config) { c.WebhookAllowHTTP = true })
		e := srv2.Admin().MustFail(t, "BAD_USER_INPUT", q, map[string]any{"in": map[string]any{"url": "http://127.0.0.1:9/x", "topics": []string{"MEMBERSHIP_ENTERED"}}})
		if e.Field() != "input.url" || !strings.Contains(e.Message, "private") {
			t.Errorf("allow-http, loopback: %s %q", e.Field(), e.Message)
		}
		var n struct{ WebhookEndpoints struct{ TotalCount int } }
		admin.MustDo(t, `{ webhookEndpoints { totalCount } }`, nil, &n)
		if n.WebhookEndpoints.TotalCount != 0 {
			t.Errorf("refused URLs created %d endpoints", n.WebhookEndpoints.TotalCount)
		}
		// Updating to a refused URL is refused too.
		srv3 := startHooks(t, testenv.DatabaseURL(t, storeOf(dbURL)))
		ep, _ := createHook(t, srv3.Admin(), map[string]any{"url": "http://127.0.0.1:9/x", "topics": []string{"MEMBERSHIP_ENTERED"}})
		e = srv3.Admin().MustFail(t, "BAD_USER_INPUT", `mutation($id: ID!) { updateWebhookEndpoint(id: $id, input: {url: "gopher://x"}) { id } }`, map[string]any{"id": ep.ID})
		if e.Field() != "input.url" {
			t.Errorf("update to a bad URL: %s %q", e.Field(), e.Message)
		}
	})
}

func storeOf(dbURL string) string {
	if strings.HasPrefix(dbURL, "postgres") {
		return "postgres"
	}
	return "sqlite"
}

func TestWebhookBadInputs(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := startHooks(t, dbURL)
		admin := srv.Admin()
		seg := ingCreateSegment(t, admin, map[string]any{"name": "Static", "kind": "STATIC"})
		const q = `mutation($in: CreateWebhookEndpointInput!) { createWebhookEndpoint(input: $in) { secret } }`
		ok := map[string]any{"url": "http://127.0.0.1:9/x", "topics": []string{"MEMBERSHIP_ENTERED"}}
		with := func(k string, v any) map[string]any {
			m := map[string]any{}
			for a, b := range ok {
				m[a] = b
			}
			m[k] = v
			return m
		}
		for _, c := range []struct {
			in    map[string]any
			field string
		}{
			{with("topics", []string{}), "input.topics"},
			{with("segmentIds", []string{seg, "seg_01NOPE"}), "input.segmentIds[1]"},
			{with("campaignIds", []string{"cmp_01NOPE"}), "input.campaignIds[0]"},
			{with("url", ""), "input.url"},
			{with("description", strings.Repeat("x", 2001)), "input.description"},
		} {
			e := admin.MustFail(t, "BAD_USER_INPUT", q, map[string]any{"in": c.in})
			if e.Field() != c.field {
				t.Errorf("%v: field %q (%s); want %q", c.in, e.Field(), e.Message, c.field)
			}
		}
		// An unknown topic or format is not a value of the schema's enum:
		// GraphQL validation refuses it before any resolver runs
		// (GRAPHQL_VALIDATION_FAILED, as for every enum of the API, see
		// server/edges_test.go), naming the value and the enum, with the
		// input field's path as the error's path.
		for _, c := range []struct {
			in   map[string]any
			msg  string
			path string
		}{
			{with("topics", []any{"MEMBERSHIP_ENTERED", "MEMBERSHIP_GONE"}), "MEMBERSHIP_GONE is not a valid WebhookTopic", "[variable in topics 1]"},
			{with("format", "XML"), "XML is not a valid WebhookFormat", "[variable in format]"},
		} {
			e := admin.MustFail(t, "GRAPHQL_VALIDATION_FAILED", q, map[string]any{"in": c.in})
			if !strings.Contains(e.Message, c.msg) || fmt.Sprint(e.Path) != c.path {
				t.Errorf("%v: %q at %v; want %q at %s", c.in, e.Message, e.Path, c.msg, c.path)
			}
		}
		e := admin.MustFail(t, "GRAPHQL_VALIDATION_FAILED", `mutation { createWebhookEndpoint(input: {url: "http://127.0.0.1:9/x", topics: [MEMBERSHIP_GONE]}) { secret } }`, nil)
		if !strings.Contains(e.Message, `"MEMBERSHIP_GONE"`) || !strings.Contains(e.Message, "WebhookTopic") {
			t.Errorf("unknown topic in the query: %q", e.Message)
		}
		ep, _ := createHook(t, admin, ok)
		for _, c := range []struct {
			q     string
			vars  map[string]any
			code  string
			field string
		}{
			{`mutation($id: ID!) { updateWebhookEndpoint(id: $id, input: {topics: []}) { id } }`, map[string]any{"id": ep.ID}, "BAD_USER_INPUT", "input.topics"},
			{`mutation($id: ID!) { updateWebhookEndpoint(id: $id, input: {segmentIds: ["seg_01X"]}) { id } }`, map[string]any{"id": ep.ID}, "BAD_USER_INPUT", "input.segmentIds[0]"},
			{`mutation { updateWebhookEndpoint(id: "whe_01NOPE", input: {enabled: false}) { id } }`, nil, "NOT_FOUND", "id"},
			{`mutation { deleteWebhookEndpoint(id: "whe_01NOPE") }`, nil, "NOT_FOUND", "id"},
			{`mutation { rotateWebhookSecret(id: "whe_01NOPE") { secret } }`, nil, "NOT_FOUND", "id"},
			{`mutation { replayWebhookDeliveries(endpointId: "whe_01NOPE", after: "0.1") }`, nil, "NOT_FOUND", "endpointId"},
			{`mutation($id: ID!) { replayWebhookDeliveries(endpointId: $id) }`, map[string]any{"id": ep.ID}, "BAD_USER_INPUT", "after"},
			{`mutation($id: ID!) { replayWebhookDeliveries(endpointId: $id, after: "0.1", since: "2026-01-01T00:00:00Z") }`, map[string]any{"id": ep.ID}, "BAD_USER_INPUT", "after"},
			{`mutation($id: ID!) { replayWebhookDeliveries(endpointId: $id, after: "yesterday") }`, map[string]any{"id": ep.ID}, "BAD_USER_INPUT", "after"},
			{`mutation($id: ID!) { replayWebhookDeliveries(endpointId: $id, after: "mc_0.99999999") }`, map[string]any{"id": ep.ID}, "BAD_USER_INPUT", "after"},
		} {
			e := admin.MustFail(t, c.code, c.q, c.vars)
			if e.Field() != c.field {
				t.Errorf("%s: field %q (%s); want %q", c.q, e.Field(), e.Message, c.field)
			}
		}
		// Delete: gone, deliveries too.
		var del struct{ DeleteWebhookEndpoint string }
		admin.MustDo(t, `mutation($id: ID!) { deleteWebhookEndpoint(id: $id) }`, map[string]any{"id": ep.ID}, &del)
		if del.DeleteWebhookEndpoint != ep.ID {
			t.Errorf("delete answered %q", del.DeleteWebhookEndpoint)
		}
	})
}

// TestWebhookErasureScrubsDeliveries: after deleteUser, no stored delivery
// names the user (their entry's payload says user null, as the ERASURE
// exit's does), and a delivery still to send goes out without them.
func TestWebhookErasureScrubsDeliveries(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := startHooks(t, dbURL)
		admin := srv.Admin()
		seg := ingCreateSegment(t, admin, map[string]any{"name": "Static", "kind": "STATIC"})
		ingIdentify(t, admin, map[string]any{"userId": "ann", "traits": map[string]any{"email": "ann@example.com"}})
		rc := newReceiver(t, func(int, hookReq) (int, map[string]string, time.Duration) { return 204, nil, 0 })
		ep, _ := createHook(t, admin, map[string]any{"url": rc.URL, "topics": []string{"MEMBERSHIP_ENTERED", "MEMBERSHIP_EXITED"}})
		addUsers(t, admin, seg, "ann")
		waitDeliveries(t, admin, ep.ID, "ann's entry delivered", func(ds []hookDelivery) bool {
			return len(ds) == 1 && ds[0].Status == "DELIVERED"
		})
		admin.MustDo(t, `mutation { deleteUser(userId: "ann") { memberships } }`, nil, nil)
		ds := waitDeliveries(t, admin, ep.ID, "the erasure's exit delivered", func(ds []hookDelivery) bool {
			return len(ds) == 2 && ds[0].Status == "DELIVERED" && ds[1].Status == "DELIVERED"
		})
		for _, d := range ds {
			raw, err := json.Marshal(d.Payload)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(raw), "ann") {
				t.Errorf("delivery %s still names the erased user: %s", d.WebhookID, raw)
			}
			if data, _ := d.Payload["data"].(map[string]any); data == nil || data["user"] != nil {
				t.Errorf("delivery %s: data.user %v, want null", d.WebhookID, data["user"])
			}
		}
		reqs := rc.waitFor(t, 2)
		if strings.Contains(string(reqs[1].Body), "ann") {
			t.Errorf("the exit sent after the erasure names the user: %s", reqs[1].Body)
		}
	})
}
