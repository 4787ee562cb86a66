// Package console serves segmentd's web console: a front-end app of the
// public GraphQL API (HTTP for queries and mutations, graphql-transport-ws
// websockets for subscriptions) embedded in the binary. It needs no build
// step: the app is plain ES modules (assets/*.js) on top of small vendored
// libraries (assets/vendor: Preact and htm for the views, uPlot for the
// growth chart, the graphql-ws client), so what runs in the browser is what
// is in the repository. The page loads nothing from outside the site, and its
// Content-Security-Policy forbids it to: no inline script, no inline style
// element, connections to the site only.
//
// assets/vendor/README.md says where each vendored file comes from.
package console

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
)

// AssetPrefix is the URL path under which Handler serves the console's files.
const AssetPrefix = "/console/"

// BundleBudget is the most bytes (uncompressed) that the console's embedded
// files may add up to: everything a browser can load from it, vendored
// libraries included. A test holds the embedded files to it.
const BundleBudget = 200 * 1024

// contentSecurityPolicy is sent with the page: scripts and styles from the
// site only (no inline script or <style>; styles set through the DOM, as
// Preact and uPlot do, are not restricted by style-src), requests to the
// site only (in CSP Level 3 browsers that includes ws:/wss: to the same
// host), images from the site or blob:/data: (the export's download link).
const contentSecurityPolicy = "default-src 'none'; " +
	"script-src 'self'; " +
	"style-src 'self'; " +
	"img-src 'self' data: blob:; " +
	"font-src 'self'; " +
	"connect-src 'self'; " +
	"base-uri 'none'; " +
	"form-action 'none'; " +
	"frame-ancestors 'none'"

// ContentSecurityPolicy returns the policy the page is sent with.
func ContentSecurityPolicy() string { return contentSecurityPolicy }

//go:embed assets
var assetFiles embed.FS

type asset struct {
	data        []byte
	contentType string
	etag        string
}

var contentTypes = map[string]string{
	".js":   "text/javascript; charset=utf-8",
	".mjs":  "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
	".html": "text/html; charset=utf-8",
}

var assets = loadAssets()

// loadAssets reads every embedded file that a browser may load: scripts,
// styles and images (licences and READMEs are embedded for the record but
// not served).
func loadAssets() map[string]asset {
	out := map[string]asset{}
	err := fs.WalkDir(assetFiles, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		ct, ok := contentTypes[path.Ext(p)]
		if !ok {
			return nil
		}
		data, err := assetFiles.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(data)
		out[strings.TrimPrefix(p, "assets/")] = asset{data: data, contentType: ct, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
		return nil
	})
	if err != nil {
		panic(fmt.Sprintf("console: embedded assets: %v", err))
	}
	if _, ok := out["index.html"]; !ok {
		panic("console: no embedded index.html")
	}
	return out
}

// BundleSize returns the bytes of every file the console serves.
func BundleSize() int {
	n := 0
	for _, a := range assets {
		n += len(a.data)
	}
	return n
}

// Files returns the names of the files the console serves under
// AssetPrefix (index.html is also the page at "/").
func Files() []string {
	names := make([]string, 0, len(assets))
	for name := range assets {
		names = append(names, name)
	}
	return names
}

// Handler serves the console's page at "/" and its files at
// AssetPrefix+<file>. Mount it at the site root; every other path gets 404,
// and methods other than GET and HEAD get 405. Everything is sent with
// Cache-Control: no-cache and an ETag, so a browser revalidates (a 304 on
// loopback) and never runs files of an older binary; the app's routes are
// in the URL's fragment (#/segments/...), so "/" is its only page.
func Handler() http.Handler { return handler{} }

type handler struct{}

func (handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var name string
	switch rest, isAsset := strings.CutPrefix(r.URL.Path, AssetPrefix); {
	case r.URL.Path == "/":
		name = "index.html"
	case isAsset && rest != "index.html":
		name = rest
	default:
		http.NotFound(w, r)
		return
	}
	a, ok := assets[name]
	if !ok {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, http.StatusText(http.StatusMethodNotAllowed), http.StatusMethodNotAllowed)
		return
	}
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Type", a.contentType)
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", a.etag)
	if name == "index.html" {
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
	}
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(a.data))
}
