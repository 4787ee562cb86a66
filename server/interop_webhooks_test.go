package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/segmentd/segmentd/internal/testenv"
	"github.com/segmentd/segmentd/server"
)

type recordedHook struct{ ID, Timestamp, Signature, Body string }

// TestInteropStandardWebhooks: the requests segmentd sent to a real
// receiver, in both formats and during a rotation, are verified by the
// standardwebhooks npm package (interop/webhooks.mjs), with each secret of a
// rotation on its own; a changed body, a changed id or another secret is
// refused by it.
func TestInteropStandardWebhooks(t *testing.T) {
	dir := interopDir(t)
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL, func(c *server.Config) { c.WebhookAllowPrivate = true })
		admin := srv.Admin()
		var mu sync.Mutex
		got := map[string][]recordedHook{}
		rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			mu.Lock()
			got[r.URL.Path] = append(got[r.URL.Path], recordedHook{r.Header.Get("webhook-id"), r.Header.Get("webhook-timestamp"), r.Header.Get("webhook-signature"), string(b)})
			mu.Unlock()
		}))
		defer rc.Close()
		wait := func(path string, n int) []recordedHook {
			t.Helper()
			deadline := time.Now().Add(testenv.MinWait)
			for {
				mu.Lock()
				hs := slices.Clone(got[path])
				mu.Unlock()
				if len(hs) >= n {
					return hs
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s: %d requests; want %d", path, len(hs), n)
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
		var seg struct{ CreateSegment struct{ ID string } }
		admin.MustDo(t, `mutation { createSegment(input: {name: "VIP", kind: STATIC}) { id } }`, nil, &seg)
		admin.MustDo(t, `mutation($s: ID!) { createCampaign(input: {name: "Gift", segmentId: $s, status: ACTIVE}) { id } }`, map[string]any{"s": seg.CreateSegment.ID}, nil)
		create := func(path, format string) (string, string) {
			var out struct {
				CreateWebhookEndpoint struct {
					Secret   string
					Endpoint struct{ ID string }
				}
			}
			admin.MustDo(t, `mutation($u: String!, $f: WebhookFormat) { createWebhookEndpoint(input: {url: $u, format: $f,
				topics: [MEMBERSHIP_ENTERED, MEMBERSHIP_EXITED, CAMPAIGN_ACTIVATED]}) { secret endpoint { id } } }`,
				map[string]any{"u": rc.URL + path, "f": format}, &out)
			return out.CreateWebhookEndpoint.Endpoint.ID, out.CreateWebhookEndpoint.Secret
		}
		jsonID, jsonSecret := create("/segmentd", "SEGMENTD")
		_, segSecret := create("/segment", "SEGMENT")
		add := func(u string) {
			admin.MustDo(t, `mutation($s: ID!, $u: [String!]!) { addUsersToSegment(segmentId: $s, userIds: $u) { __typename } }`,
				map[string]any{"s": seg.CreateSegment.ID, "u": []string{u}}, nil)
		}
		add("alice")
		before := wait("/segmentd", 2)
		segment := wait("/segment", 2)
		var rot struct{ RotateWebhookSecret struct{ Secret string } }
		admin.MustDo(t, `mutation($id: ID!) { rotateWebhookSecret(id: $id) { secret } }`, map[string]any{"id": jsonID}, &rot)
		add("bob")
		after := wait("/segmentd", 4)[2:]

		type hookCase struct {
			Name      string `json:"name"`
			Secret    string `json:"secret"`
			ID        string `json:"id"`
			Timestamp string `json:"timestamp"`
			Signature string `json:"signature"`
			Body      string `json:"body"`
		}
		var cases []hookCase
		valid := map[string]bool{}
		addCase := func(name, secret string, h recordedHook, ok bool) {
			cases = append(cases, hookCase{name, secret, h.ID, h.Timestamp, h.Signature, h.Body})
			valid[name] = ok
		}
		for i, h := range before {
			addCase("segmentd "+h.ID, jsonSecret, h, true)
			if i == 0 {
				tampered := h
				tampered.Body = h.Body[:len(h.Body)-1] + " }"
				addCase("changed body", jsonSecret, tampered, false)
				other := h
				other.ID = h.ID + "0"
				addCase("changed id", jsonSecret, other, false)
				addCase("another secret", segSecret, h, false)
			}
		}
		for _, h := range segment {
			addCase("SEGMENT "+h.ID, segSecret, h, true)
		}
		for _, h := range after {
			addCase("rotated, new secret "+h.ID, rot.RotateWebhookSecret.Secret, h, true)
			addCase("rotated, old secret "+h.ID, jsonSecret, h, true)
		}
		b, _ := json.Marshal(cases)
		file := filepath.Join(t.TempDir(), "cases.json")
		if err := os.WriteFile(file, b, 0o600); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "node", "webhooks.mjs")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "SEGMENTD_WEBHOOK_CASES="+file)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("node webhooks.mjs: %v\n%s", err, stderr.String())
		}
		var sum struct {
			Verified []struct{ Name, Type string }
			Refused  []struct{ Name, Error string }
		}
		if err := json.Unmarshal(stdout.Bytes(), &sum); err != nil {
			t.Fatalf("summary %s: %v", stdout.String(), err)
		}
		for _, v := range sum.Verified {
			if !valid[v.Name] {
				t.Errorf("standardwebhooks verified %q", v.Name)
			}
		}
		for _, r := range sum.Refused {
			if valid[r.Name] {
				t.Errorf("standardwebhooks refused %q: %s", r.Name, r.Error)
			}
		}
		if len(sum.Verified)+len(sum.Refused) != len(cases) || len(sum.Refused) != 3 {
			t.Errorf("%d verified, %d refused of %d cases", len(sum.Verified), len(sum.Refused), len(cases))
		}
		t.Logf("standardwebhooks verified %d requests and refused the %d altered ones", len(sum.Verified), len(sum.Refused))
	})
}
