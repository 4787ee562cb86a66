package console_test

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/segmentd/segmentd/server/console"
)

func get(t *testing.T, h http.Handler, method, path string) *http.Response {
	t.Helper()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(method, path, nil))
	return w.Result()
}

// The whole console, vendored libraries included, stays within its budget.
func TestBundleBudget(t *testing.T) {
	t.Parallel()
	n := console.BundleSize()
	t.Logf("console bundle: %d bytes in %d files (budget %d)", n, len(console.Files()), console.BundleBudget)
	if n > console.BundleBudget {
		t.Errorf("the console's files add up to %d bytes, over the budget of %d", n, console.BundleBudget)
	}
}

// The page has no inline script or style, refers only to files the handler
// serves, and is sent with the strict CSP.
func TestPageLoadsOnlyServedFiles(t *testing.T) {
	t.Parallel()
	h := console.Handler()
	resp := get(t, h, http.MethodGet, "/")
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Security-Policy") != console.ContentSecurityPolicy() {
		t.Fatalf("GET / = %d, CSP %q", resp.StatusCode, resp.Header.Get("Content-Security-Policy"))
	}
	for _, want := range []string{"default-src 'none'", "script-src 'self';", "style-src 'self';", "connect-src 'self'"} {
		if !strings.Contains(console.ContentSecurityPolicy(), want) {
			t.Errorf("CSP lacks %q", want)
		}
	}
	page := string(body)
	if regexp.MustCompile(`<script(?:\s[^>]*)?>\s*[^<\s]`).MatchString(page) || strings.Contains(page, "<style") || strings.Contains(page, " style=") {
		t.Errorf("page has inline script or style:\n%s", page)
	}
	refs := regexp.MustCompile(`(?:src|href)="([^"]+)"`).FindAllStringSubmatch(page, -1)
	for _, m := range refs {
		if m[1] == "/graphiql" {
			continue
		}
		if !strings.HasPrefix(m[1], console.AssetPrefix) {
			t.Errorf("page refers to %s, outside %s", m[1], console.AssetPrefix)
			continue
		}
		if r := get(t, h, http.MethodGet, m[1]); r.StatusCode != 200 || r.Header.Get("ETag") == "" || r.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET %s = %d, ETag %q", m[1], r.StatusCode, r.Header.Get("ETag"))
		}
	}
	// Every module import is relative, to a file served.
	imp := regexp.MustCompile(`(?:from\s*|import\s*)["']([^"']+)["']`)
	for _, name := range console.Files() {
		// ES modules: the app's own files and the .mjs libraries (the
		// vendor/*.js files are classic scripts).
		if !strings.HasSuffix(name, ".mjs") && (!strings.HasSuffix(name, ".js") || strings.HasPrefix(name, "vendor/")) {
			continue
		}
		r := get(t, h, http.MethodGet, console.AssetPrefix+name)
		src, _ := io.ReadAll(r.Body)
		for _, m := range imp.FindAllStringSubmatch(string(src), -1) {
			if !strings.HasPrefix(m[1], "./") {
				t.Errorf("%s imports %q: not a relative module", name, m[1])
			}
		}
	}
}

func TestUnknownPathsAndMethods(t *testing.T) {
	t.Parallel()
	h := console.Handler()
	for _, p := range []string{"/index.html", "/console/", "/console/index.html", "/console/nope.js", "/console/vendor/README.md",
		"/console/vendor/LICENSE.preact", "/console/../console.go", "/segments"} {
		if r := get(t, h, http.MethodGet, p); r.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s = %d, want 404", p, r.StatusCode)
		}
	}
	if r := get(t, h, http.MethodPost, "/"); r.StatusCode != http.StatusMethodNotAllowed || r.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST / = %d, want 405", r.StatusCode)
	}
	r := get(t, h, http.MethodGet, "/console/app.js")
	etag := r.Header.Get("ETag")
	w := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/console/app.js", nil)
	req.Header.Set("If-None-Match", etag)
	h.ServeHTTP(w, req)
	if w.Code != http.StatusNotModified || r.Header.Get("Cache-Control") != "no-cache" {
		t.Errorf("revalidation: %d, Cache-Control %q", w.Code, r.Header.Get("Cache-Control"))
	}
}

// assets/vendor/README.md records the sha256 of each vendored file as
// published; the embedded files are those (hooks.mjs with its one import
// made relative, which is undone here before hashing).
func TestVendoredFilesMatchTheirREADME(t *testing.T) {
	t.Parallel()
	f, err := os.Open("assets/vendor/README.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	row := regexp.MustCompile("^\\| `([^`]+)` \\|.*\\| `([0-9a-f]{64})` \\|$")
	checked := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		m := row.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		data, err := os.ReadFile("assets/vendor/" + m[1])
		if err != nil {
			t.Errorf("%s: %v", m[1], err)
			continue
		}
		if m[1] == "hooks.mjs" {
			s := string(data)
			if strings.Count(s, `from"./preact.mjs"`) != 1 {
				t.Errorf("hooks.mjs: the one relative import of preact.mjs is not there")
			}
			data = []byte(strings.Replace(s, `from"./preact.mjs"`, `from"preact"`, 1))
		}
		sum := sha256.Sum256(data)
		if got := hex.EncodeToString(sum[:]); got != m[2] {
			t.Errorf("%s: sha256 %s, README says %s", m[1], got, m[2])
		}
		checked++
	}
	if checked != 6 {
		t.Errorf("checked %d vendored files, want 6", checked)
	}
}

// Every module the app imports is preloaded by the page, so that the
// browser fetches them at once instead of one import level at a time.
func TestPagePreloadsEveryModule(t *testing.T) {
	t.Parallel()
	page, err := os.ReadFile("assets/index.html")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range console.Files() {
		if strings.HasSuffix(name, ".mjs") || (strings.HasSuffix(name, ".js") && !strings.HasPrefix(name, "vendor/")) {
			if !strings.Contains(string(page), `<link rel="modulepreload" href="`+console.AssetPrefix+name+`">`) {
				t.Errorf("index.html does not preload %s", name)
			}
		}
	}
}

// The README's screenshots of the console exist (the browser test writes
// them with SEGMENTD_CONSOLE_SCREENSHOTS=docs/console).
func TestREADMEScreenshotsExist(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	refs := regexp.MustCompile(`\]\((docs/console/[^)]+\.png)\)`).FindAllStringSubmatch(string(readme), -1)
	if len(refs) < 10 {
		t.Fatalf("the README shows %d console screenshots, want every screen", len(refs))
	}
	for _, m := range refs {
		if _, err := os.Stat("../../" + m[1]); err != nil {
			t.Errorf("README shows %s: %v", m[1], err)
		}
	}
}
