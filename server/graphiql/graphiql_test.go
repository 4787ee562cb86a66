package graphiql_test

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"regexp"
	"strings"
	"testing"

	"github.com/segmentd/segmentd/server/graphiql"
)

func get(t *testing.T, h http.Handler, target string, header http.Header) *http.Response {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, target, nil)
	for k, v := range header {
		r.Header[k] = v
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Result()
}

func body(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

var (
	scriptSrc = regexp.MustCompile(`<script\b[^>]*\bsrc="([^"]*)"`)
	linkHref  = regexp.MustCompile(`<link\b[^>]*\bhref="([^"]*)"`)
	anyURLRef = regexp.MustCompile(`(?i)\b(?:src|href|action|data|poster|srcset)\s*=\s*"([^"]*)"`)
)

// pageRefs returns the URLs of the scripts and stylesheets (and icon) the page loads.
func pageRefs(t *testing.T, html string) (scripts, links []string) {
	t.Helper()
	for _, m := range scriptSrc.FindAllStringSubmatch(html, -1) {
		scripts = append(scripts, m[1])
	}
	for _, m := range linkHref.FindAllStringSubmatch(html, -1) {
		links = append(links, m[1])
	}
	if strings.Count(html, "<script") != len(scripts) {
		t.Fatalf("page has a <script> without src (inline script): %s", html)
	}
	return scripts, links
}

func TestPageLoadsOnlyAssetsTheHandlerServes(t *testing.T) {
	t.Parallel()
	h := graphiql.Handler("/graphql")

	resp := get(t, h, "/graphiql", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /graphiql = %d, want 200", resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("page Content-Type %q, want text/html; charset=utf-8", ct)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-cache" {
		t.Errorf("page Cache-Control %q, want no-cache", cc)
	}
	html := body(t, resp)
	scripts, links := pageRefs(t, html)
	if len(scripts) != 4 || len(links) != 3 {
		t.Fatalf("page loads scripts %v and links %v, want react, react-dom, graphiql, ours and 2 stylesheets + icon", scripts, links)
	}

	wantType := map[string]string{
		".js":  "text/javascript; charset=utf-8",
		".css": "text/css; charset=utf-8",
		".svg": "image/svg+xml",
	}
	for _, ref := range append(scripts, links...) {
		t.Run(ref, func(t *testing.T) {
			if !strings.HasPrefix(ref, graphiql.AssetPrefix) {
				t.Fatalf("reference %q is not a local asset path under %s", ref, graphiql.AssetPrefix)
			}
			resp := get(t, h, ref, nil)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("GET %s = %d, want 200", ref, resp.StatusCode)
			}
			p, _, _ := strings.Cut(ref, "?")
			if ct := resp.Header.Get("Content-Type"); ct != wantType[path.Ext(p)] {
				t.Errorf("Content-Type %q, want %q", ct, wantType[path.Ext(p)])
			}
			if nosniff := resp.Header.Get("X-Content-Type-Options"); nosniff != "nosniff" {
				t.Errorf("X-Content-Type-Options %q, want nosniff", nosniff)
			}
			if cc := resp.Header.Get("Cache-Control"); cc != "public, max-age=31536000, immutable" {
				t.Errorf("versioned asset Cache-Control %q, want a year, immutable", cc)
			}
			if len(body(t, resp)) == 0 {
				t.Error("empty asset")
			}

			etag := resp.Header.Get("ETag")
			if etag == "" {
				t.Fatal("no ETag")
			}
			if again := get(t, h, ref, http.Header{"If-None-Match": {etag}}); again.StatusCode != http.StatusNotModified {
				t.Errorf("revalidation with If-None-Match = %d, want 304", again.StatusCode)
			}
			// Without the version the URL may point to other content later: no long caching.
			if unversioned := get(t, h, p, nil); unversioned.StatusCode != http.StatusOK || unversioned.Header.Get("Cache-Control") != "no-cache" {
				t.Errorf("GET %s = %d with Cache-Control %q, want 200 and no-cache", p, unversioned.StatusCode, unversioned.Header.Get("Cache-Control"))
			}
		})
	}
}

func TestPageReferencesNoExternalURL(t *testing.T) {
	t.Parallel()
	h := graphiql.Handler("/graphql")
	html := body(t, get(t, h, "/graphiql", nil))

	if strings.Contains(html, "http://") || strings.Contains(html, "https://") {
		t.Errorf("page contains an absolute URL:\n%s", html)
	}
	for _, m := range anyURLRef.FindAllStringSubmatch(html, -1) {
		if ref := m[1]; !strings.HasPrefix(ref, "/") || strings.HasPrefix(ref, "//") {
			t.Errorf("%s: not a path on this site", m[0])
		}
	}

	// Our own script and stylesheet name no URL at all; the vendored
	// stylesheet pulls fonts and images only from data: URIs.
	scripts, links := pageRefs(t, html)
	for _, ref := range append(scripts, links...) {
		p, _, _ := strings.Cut(ref, "?")
		content := body(t, get(t, h, ref, nil))
		switch name := path.Base(p); {
		case strings.HasPrefix(name, "segmentd-"):
			if strings.Contains(content, "http://") || strings.Contains(content, "https://") {
				t.Errorf("%s contains an absolute URL", name)
			}
		case path.Ext(name) == ".css":
			if strings.Contains(content, "@import") {
				t.Errorf("%s imports another stylesheet", name)
			}
			for _, m := range regexp.MustCompile(`url\(\s*["']?([^"')]{0,40})`).FindAllStringSubmatch(content, -1) {
				if !strings.HasPrefix(m[1], "data:") {
					t.Errorf("%s loads url(%s...), want data: URIs only", name, m[1])
				}
			}
		}
	}
}

func TestPageSendsContentSecurityPolicy(t *testing.T) {
	t.Parallel()
	h := graphiql.Handler("/graphql")
	nonces := map[string]bool{}
	for range 2 {
		resp := get(t, h, "/graphiql", nil)
		csp := resp.Header.Get("Content-Security-Policy")
		if csp == "" {
			t.Fatal("no Content-Security-Policy")
		}
		directives := map[string]string{}
		for d := range strings.SplitSeq(csp, ";") {
			name, value, _ := strings.Cut(strings.TrimSpace(d), " ")
			directives[name] = value
		}
		for name, want := range map[string]string{
			"default-src":     "'none'",
			"script-src":      "'self'",
			"img-src":         "'self' data:",
			"font-src":        "'self' data:",
			"connect-src":     "'self'",
			"base-uri":        "'none'",
			"form-action":     "'none'",
			"frame-ancestors": "'none'",
		} {
			if directives[name] != want {
				t.Errorf("%s %q, want %q", name, directives[name], want)
			}
		}

		// Inline styles only with the nonce, which the page hands to its script.
		m := regexp.MustCompile(`^'self' 'nonce-([A-Za-z0-9_-]{22})'$`).FindStringSubmatch(directives["style-src"])
		if m == nil {
			t.Fatalf("style-src %q, want 'self' and a nonce", directives["style-src"])
		}
		nonce := m[1]
		if html := body(t, resp); !strings.Contains(html, `nonce="`+nonce+`"`) {
			t.Errorf("page does not carry the CSP nonce %s", nonce)
		}
		nonces[nonce] = true
	}
	if len(nonces) != 2 {
		t.Error("two page loads got the same nonce")
	}
}

func TestPageTalksToTheGivenEndpoint(t *testing.T) {
	t.Parallel()
	html := body(t, get(t, graphiql.Handler("/api/graphql"), "/graphiql", nil))
	if !strings.Contains(html, `data-endpoint="/api/graphql"`) {
		t.Errorf("page does not name endpoint /api/graphql:\n%s", html)
	}
}

func TestHandlerRefusesEndpointOffSite(t *testing.T) {
	t.Parallel()
	for _, endpoint := range []string{"", "graphql", "https://evil.example/graphql", "//evil.example/graphql", "/graphql?x=1", "/graphql#x"} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Handler(%q) did not panic", endpoint)
				}
			}()
			graphiql.Handler(endpoint)
		}()
	}
}

func TestUnknownPathsAreNotFound(t *testing.T) {
	t.Parallel()
	h := graphiql.Handler("/graphql")
	for _, p := range []string{
		"/", "/favicon.ico", "/index.html", "/graphql", "/graphiql/", "/graphiql/index.html",
		"/graphiql/assets/", "/graphiql/assets/nope.js", "/graphiql/assets/README.md",
		"/graphiql/assets/LICENSE.react", "/graphiql/assets/../graphiql.go", "/graphiql/assets/sub/graphiql.min.js",
	} {
		if resp := get(t, h, p, nil); resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s = %d, want 404", p, resp.StatusCode)
		}
	}

	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/graphiql", nil))
	if w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != "GET, HEAD" {
		t.Errorf("POST /graphiql = %d, Allow %q, want 405 and GET, HEAD", w.Code, w.Header().Get("Allow"))
	}
}

// assets/README.md records each vendored file's sha256; the embedded files
// must be those.
func TestAssetsMatchTheirREADME(t *testing.T) {
	t.Parallel()
	f, err := os.Open("assets/README.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	row := regexp.MustCompile("^\\| `([^`]+)` \\|.*\\| `([0-9a-f]{64})` \\|$")
	h := graphiql.Handler("/graphql")
	checked := 0
	for sc := bufio.NewScanner(f); sc.Scan(); {
		m := row.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		file, want := m[1], m[2]
		disk, err := os.ReadFile("assets/" + file)
		if err != nil {
			t.Errorf("README lists %s: %v", file, err)
			continue
		}
		sum := sha256.Sum256(disk)
		if got := hex.EncodeToString(sum[:]); got != want {
			t.Errorf("%s: sha256 %s, README says %s", file, got, want)
		}
		if served := body(t, get(t, h, graphiql.AssetPrefix+file, nil)); served != string(disk) {
			t.Errorf("%s: served bytes differ from assets/%s", file, file)
		}
		checked++
	}
	if checked != 4 {
		t.Errorf("README lists %d vendored files with a sha256, want 4", checked)
	}
}
