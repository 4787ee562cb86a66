package graph_test

// The plain HTTP surface: health checks, the GraphiQL page and its assets,
// and the request limits (query depth, body size).

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/segmentd/segmentd/internal/testenv"
)

// TestHealthAndGraphiQL: /healthz and /readyz answer 200 with JSON and need
// no key; GET / is the web console and GET /graphiql the GraphiQL page,
// each with a CSP, whose scripts and styles are all served by segmentd itself.
func TestHealthAndGraphiQL(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL)
		for path, want := range map[string]string{"/healthz": "ok", "/readyz": "ready"} {
			h := rawHTTP(t, http.MethodGet, srv.URL+path, nil, nil)
			if mt, _, _ := mime.ParseMediaType(h.Header.Get("Content-Type")); h.Status != http.StatusOK || mt != "application/json" {
				t.Fatalf("GET %s: HTTP %d %q %s", path, h.Status, h.Header.Get("Content-Type"), h.Body)
			}
			var body struct{ Status string }
			if err := json.Unmarshal(h.Body, &body); err != nil || body.Status != want {
				t.Fatalf("GET %s: body %s (%v), want status %q", path, h.Body, err, want)
			}
		}

		for path, want := range map[string]string{"/": "segmentd console", "/graphiql": "graphiql"} {
			h := rawHTTP(t, http.MethodGet, srv.URL+path, nil, nil)
			if mt, _, _ := mime.ParseMediaType(h.Header.Get("Content-Type")); h.Status != http.StatusOK || mt != "text/html" {
				t.Fatalf("GET %s: HTTP %d %q", path, h.Status, h.Header.Get("Content-Type"))
			}
			if csp := h.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "connect-src 'self'") {
				t.Errorf("GET %s: Content-Security-Policy %q", path, csp)
			}
			page := string(h.Body)
			if !strings.Contains(strings.ToLower(page), "<html") || !strings.Contains(strings.ToLower(page), want) {
				t.Fatalf("GET %s is not the %s page: %.300s", path, want, page)
			}
			refs := regexp.MustCompile(`(?:src|href)="([^"]+)"`).FindAllStringSubmatch(page, -1)
			assets := 0
			for _, m := range refs {
				ref := m[1]
				if strings.Contains(ref, "://") || strings.HasPrefix(ref, "//") {
					t.Errorf("%s loads %s from outside segmentd", path, ref)
					continue
				}
				if !strings.HasPrefix(ref, "/") || ref == "/graphiql" {
					continue
				}
				a := rawHTTP(t, http.MethodGet, srv.URL+ref, nil, nil)
				if a.Status != http.StatusOK || len(a.Body) == 0 {
					t.Errorf("asset %s of %s: HTTP %d, %d bytes", ref, path, a.Status, len(a.Body))
				}
				assets++
			}
			if assets == 0 {
				t.Fatalf("%s references no local scripts or styles: %.500s", path, page)
			}
		}
	})
}

// deepQuery selects segments down through `levels` levels of condition
// children: the query nests levels+5 deep.
func deepQuery(levels int) string {
	return `{ segments(first: 10) { edges { node { condition { ` + strings.Repeat("children { ", levels) + `id` +
		strings.Repeat(" }", levels) + ` } } } } }`
}

// TestRequestLimits: a query one level deeper than the limit (15) is refused
// with BAD_USER_INPUT before it runs, one at the limit runs; a body over
// 1 MiB is refused with 413 and a GraphQL error (with or without a
// Content-Length), one under it is served; the server keeps serving.
func TestRequestLimits(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL)
		c := srv.Admin()
		createSegment(t, c, eventTriggered(nestedNots(9)))

		// Depth.
		var ok struct {
			Segments struct{ Edges []json.RawMessage }
		}
		c.MustDo(t, deepQuery(10), nil, &ok)
		if len(ok.Segments.Edges) != 1 {
			t.Fatalf("query at the depth limit: %+v", ok)
		}
		r := c.Do(t, deepQuery(11), nil)
		if len(r.Errors) != 1 || r.Errors[0].Code() != "BAD_USER_INPUT" || r.Errors[0].Contains("16", "15") != nil {
			t.Fatalf("query 16 levels deep: HTTP %d %+v; want BAD_USER_INPUT naming 16 and 15", r.Status, r.Errors)
		}
		noData(t, "too deep", r)
		// Fragments count too.
		r = c.Do(t, `{ segments { edges { node { condition { ...F } } } } }
fragment F on Condition { `+strings.Repeat("children { ", 11)+`id`+strings.Repeat(" }", 11)+` }`, nil)
		if len(r.Errors) != 1 || r.Errors[0].Code() != "BAD_USER_INPUT" {
			t.Fatalf("too deep through a fragment: %+v", r.Errors)
		}

		// Body size: padding in an unused variable, so that only the size
		// matters.
		body := func(size int) []byte {
			b, _ := json.Marshal(map[string]any{"query": `{ segments { totalCount } }`, "variables": map[string]any{"pad": ""}})
			pad := strings.Repeat("x", size-len(b))
			b, _ = json.Marshal(map[string]any{"query": `{ segments { totalCount } }`, "variables": map[string]any{"pad": pad}})
			if len(b) != size {
				panic(fmt.Sprintf("body of %d bytes, want %d", len(b), size))
			}
			return b
		}
		headers := http.Header{"Content-Type": {"application/json"}, "Authorization": {"Bearer " + testenv.AdminKey}}
		const limit = 1 << 20

		h := rawHTTP(t, http.MethodPost, srv.URL+"/graphql", headers, bytes.NewReader(body(limit)))
		if got := h.gql(t); h.Status != http.StatusOK || len(got.Errors) != 0 {
			t.Fatalf("a body of exactly 1 MiB: HTTP %d %s", h.Status, h.Body)
		}
		for name, reader := range map[string]func() io.Reader{
			"with Content-Length": func() io.Reader { return bytes.NewReader(body(limit + 1)) },
			// A reader of unknown length makes the client send it chunked.
			"chunked":        func() io.Reader { return io.MultiReader(bytes.NewReader(body(limit + 1))) },
			"chunked, 3 MiB": func() io.Reader { return io.MultiReader(bytes.NewReader(body(3 * limit))) },
			"declared 4 MiB": func() io.Reader { return bytes.NewReader(body(4 * limit)) },
		} {
			h := rawHTTP(t, http.MethodPost, srv.URL+"/graphql", headers, reader())
			if h.Status != http.StatusRequestEntityTooLarge {
				t.Errorf("%s: HTTP %d %.300s; want 413", name, h.Status, h.Body)
				continue
			}
			got := h.gql(t)
			if len(got.Errors) != 1 || got.Errors[0].Code() != "BAD_USER_INPUT" || !strings.Contains(got.Errors[0].Message, fmt.Sprint(limit)) {
				t.Errorf("%s: errors %+v; want one BAD_USER_INPUT naming the limit", name, got.Errors)
			}
			noData(t, name, &got)
		}

		// Still serving.
		if n := segmentCount(t, c); n != 1 {
			t.Fatalf("segments %d after the limits, want 1", n)
		}
	})
}
