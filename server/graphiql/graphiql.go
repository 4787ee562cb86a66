// Package graphiql serves the GraphiQL IDE for segmentd's GraphQL endpoint
// from assets embedded in the binary (GraphiQL 4.1.2, React 18.2.0), so the
// IDE works without internet access: the page loads nothing from outside the
// site, and its Content-Security-Policy forbids it to.
//
// The page has an "API key" box above the IDE. Its value is kept in the
// browser's localStorage and sent as "Authorization: Bearer <key>" on every
// HTTP request, and as {"Authorization": "Bearer <key>"} in the
// connection_init payload of subscriptions, which run over a websocket at the
// endpoint's path with the graphql-transport-ws protocol.
//
// assets/README.md says where each asset comes from and how to refresh it.
package graphiql

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"
)

// PagePath is the IDE page's URL path (the web console has "/").
const PagePath = "/graphiql"

// AssetPrefix is the URL path under which Handler serves the IDE's assets.
const AssetPrefix = "/graphiql/assets/"

// contentSecurityPolicy is sent with the page. Scripts, styles, fonts and
// images come from the site itself only (fonts and a few images are data:
// URIs inside GraphiQL's CSS); requests go to the site only, which in CSP
// Level 3 browsers includes ws:/wss: to the same host. No inline script is
// allowed. The one inline style, the <style> element GraphiQL's dialogs add
// to lock page scrolling (react-remove-scroll), carries the page's nonce;
// GraphiQL and React otherwise set styles through the DOM (el.style), which
// style-src does not restrict.
func contentSecurityPolicy(nonce string) string {
	return "default-src 'none'; " +
		"script-src 'self'; " +
		"style-src 'self' 'nonce-" + nonce + "'; " +
		"img-src 'self' data:; " +
		"font-src 'self' data:; " +
		"connect-src 'self'; " +
		"base-uri 'none'; " +
		"form-action 'none'; " +
		"frame-ancestors 'none'"
}

// newNonce returns a fresh CSP nonce: 128 random bits, URL-safe base64
// (no characters that HTML would escape).
func newNonce() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}

//go:embed assets/react.production.min.js assets/react-dom.production.min.js
//go:embed assets/graphiql.min.js assets/graphiql.min.css
//go:embed assets/segmentd-graphiql.js assets/segmentd-graphiql.css assets/favicon.svg
var assetFiles embed.FS

type asset struct {
	data        []byte
	contentType string
	version     string // a prefix of the content's sha256; changes with the content
}

// url is the asset's path with its version, which the page links to and
// which may be cached forever.
func (a asset) url(name string) string {
	return AssetPrefix + name + "?v=" + a.version
}

var contentTypes = map[string]string{
	".js":  "text/javascript; charset=utf-8",
	".css": "text/css; charset=utf-8",
	".svg": "image/svg+xml",
}

var assets = loadAssets()

func loadAssets() map[string]asset {
	entries, err := assetFiles.ReadDir("assets")
	if err != nil {
		panic(fmt.Sprintf("graphiql: embedded assets: %v", err))
	}
	out := make(map[string]asset, len(entries))
	for _, e := range entries {
		data, err := assetFiles.ReadFile("assets/" + e.Name())
		if err != nil {
			panic(fmt.Sprintf("graphiql: embedded asset %s: %v", e.Name(), err))
		}
		sum := sha256.Sum256(data)
		out[e.Name()] = asset{
			data:        data,
			contentType: contentTypes[path.Ext(e.Name())],
			version:     hex.EncodeToString(sum[:8]),
		}
	}
	return out
}

var page = template.Must(template.New("page").Funcs(template.FuncMap{
	"asset": func(name string) (string, error) {
		a, ok := assets[name]
		if !ok {
			return "", fmt.Errorf("no embedded asset %q", name)
		}
		return a.url(name), nil
	},
}).Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>segmentd GraphiQL</title>
<link rel="icon" type="image/svg+xml" href="{{asset "favicon.svg"}}">
<link rel="stylesheet" href="{{asset "graphiql.min.css"}}">
<link rel="stylesheet" href="{{asset "segmentd-graphiql.css"}}">
</head>
<body>
<form id="segmentd-keybar" class="segmentd-keybar" autocomplete="off">
<label for="segmentd-api-key">API key</label>
<input id="segmentd-api-key" name="api-key" type="password" autocomplete="off" spellcheck="false" placeholder="sent as Authorization: Bearer &lt;key&gt;">
<span class="segmentd-hint">kept in this browser's local storage</span>
</form>
<div id="graphiql" data-endpoint="{{.Endpoint}}"><div class="segmentd-loading">Loading…</div></div>
<noscript>GraphiQL needs JavaScript.</noscript>
<script src="{{asset "react.production.min.js"}}"></script>
<script src="{{asset "react-dom.production.min.js"}}"></script>
<script src="{{asset "graphiql.min.js"}}"></script>
<script src="{{asset "segmentd-graphiql.js"}}" nonce="{{.Nonce}}"></script>
</body>
</html>
`))

// Handler serves the IDE page at PagePath and its assets at AssetPrefix+<file>,
// for a GraphQL endpoint at the path endpoint on the same site ("/graphql").
// Mount it at PagePath and under "/graphiql/"; every other path gets 404, and methods other
// than GET and HEAD get 405.
//
// The page is sent with Cache-Control: no-cache and a Content-Security-Policy
// that lets it load from its own site only, with a fresh nonce each time.
// Assets are sent with an ETag, and requested with their version in the
// query (as the page does) they may be cached for a year.
//
// Handler panics if endpoint is not an absolute path without host, query or
// fragment: the page talks to its own site only.
func Handler(endpoint string) http.Handler {
	u, err := url.Parse(endpoint)
	if err != nil || u.Scheme != "" || u.Host != "" || !strings.HasPrefix(endpoint, "/") ||
		strings.HasPrefix(endpoint, "//") || u.RawQuery != "" || u.Fragment != "" {
		panic(fmt.Sprintf("graphiql.Handler: endpoint %q is not a path on this site like /graphql", endpoint))
	}
	h := &handler{endpoint: endpoint}
	if _, err := h.render("test"); err != nil {
		panic(fmt.Sprintf("graphiql.Handler: render page: %v", err))
	}
	return h
}

type handler struct {
	endpoint string
}

type pageData struct {
	Endpoint, Nonce string
}

func (h *handler) render(nonce string) ([]byte, error) {
	var buf bytes.Buffer
	err := page.Execute(&buf, pageData{Endpoint: h.endpoint, Nonce: nonce})
	return buf.Bytes(), err
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var serve func(http.ResponseWriter, *http.Request)
	switch name, isAsset := strings.CutPrefix(r.URL.Path, AssetPrefix); {
	case r.URL.Path == PagePath:
		serve = h.servePage
	case isAsset:
		a, ok := assets[name]
		if !ok {
			http.NotFound(w, r)
			return
		}
		serve = func(w http.ResponseWriter, r *http.Request) { serveAsset(w, r, name, a) }
	default:
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, http.StatusText(http.StatusMethodNotAllowed), http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("X-Content-Type-Options", "nosniff")
	serve(w, r)
}

func (h *handler) servePage(w http.ResponseWriter, r *http.Request) {
	nonce := newNonce()
	body, err := h.render(nonce)
	if err != nil { // cannot happen: Handler rendered it once already
		http.Error(w, http.StatusText(http.StatusInternalServerError), http.StatusInternalServerError)
		return
	}
	header := w.Header()
	header.Set("Content-Type", "text/html; charset=utf-8")
	header.Set("Cache-Control", "no-cache")
	header.Set("Content-Security-Policy", contentSecurityPolicy(nonce))
	header.Set("Referrer-Policy", "no-referrer")
	http.ServeContent(w, r, "index.html", time.Time{}, bytes.NewReader(body))
}

func serveAsset(w http.ResponseWriter, r *http.Request, name string, a asset) {
	header := w.Header()
	header.Set("Content-Type", a.contentType)
	header.Set("ETag", `"`+a.version+`"`)
	if r.URL.Query().Get("v") == a.version {
		header.Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		header.Set("Cache-Control", "no-cache")
	}
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(a.data))
}
