package server

import (
	"bytes"
	"container/list"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"sync"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/segmentd/segmentd"
)

// graphqlHTTP answers the HTTP requests to /graphql that are not GraphQL
// requests the transports take, with BAD_REQUEST and a message saying what
// is wrong, before gqlgen sees them: another method (405), a POST that is
// neither application/json nor multipart/form-data (415), and a JSON body
// that is malformed, a batch (an array), or has a query, operationName,
// variables or extensions of the wrong type (400). gqlgen would report those
// without a code (which the error presenter must take for a server fault)
// and with the body in the message. Refusals are logged at debug, never
// with the body.
//
// It also gives every error of a 4xx answer that gqlgen wrote itself
// (multipart requests that break the spec, a mutation over GET) the code
// BAD_REQUEST, and lets refuseHTTPSubscriptions answer 400. Websocket
// upgrades pass untouched.
func (s *Server) graphqlHTTP(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if isWebsocketUpgrade(r) {
			next.ServeHTTP(w, r)
			return
		}
		refuse := func(status int, format string, args ...any) {
			msg := fmt.Sprintf(format, args...)
			s.log.DebugContext(r.Context(), "refused a GraphQL request", "method", r.Method, "status", status, "reason", msg)
			writeGraphQLError(w, status, segmentd.CodeBadRequest, msg)
		}
		switch r.Method {
		case http.MethodGet, http.MethodHead, http.MethodOptions:
		case http.MethodPost:
			if isMultipart(r) {
				break
			}
			ct := r.Header.Get("Content-Type")
			if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
				if ct == "" {
					ct = "none"
				}
				refuse(http.StatusUnsupportedMediaType,
					"the Content-Type must be application/json (or multipart/form-data for uploads); got %s", ct)
				return
			}
			body, err := io.ReadAll(r.Body)
			if tooLarge := new(http.MaxBytesError); errors.As(err, &tooLarge) {
				writeGraphQLError(w, http.StatusRequestEntityTooLarge, segmentd.CodeInvalid,
					fmt.Sprintf("the request body is over %d bytes, the most allowed", s.cfg.MaxBodyBytes))
				return
			}
			if err != nil {
				refuse(http.StatusBadRequest, "could not read the request body")
				return
			}
			if msg := checkRequestBody(body); msg != "" {
				refuse(http.StatusBadRequest, "%s", msg)
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
		default:
			w.Header().Set("Allow", "GET, POST, OPTIONS")
			refuse(http.StatusMethodNotAllowed, "method %s is not allowed: use POST (or GET for queries)", r.Method)
			return
		}
		op := &httpOperation{}
		cw := &codedResponse{ResponseWriter: w, op: op}
		next.ServeHTTP(cw, r.WithContext(context.WithValue(r.Context(), httpOperationKey{}, op)))
		cw.finish()
	})
}

// checkRequestBody returns what is wrong with a JSON GraphQL request body,
// or "" if nothing is. The query may be absent: a persisted query's hash
// stands for it.
func checkRequestBody(body []byte) string {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return "the request body is empty: send a JSON object with a query"
	}
	if !json.Valid(trimmed) {
		var v any
		err := json.Unmarshal(trimmed, &v)
		if serr := new(json.SyntaxError); errors.As(err, &serr) {
			return fmt.Sprintf("the request body is not valid JSON: %v (at byte %d)", serr, serr.Offset)
		}
		return "the request body is not valid JSON"
	}
	switch trimmed[0] {
	case '[':
		return "batched requests (a JSON array of operations) are not supported: send one operation per request, as a JSON object"
	case '{':
	default:
		return "the request body must be a JSON object with a query; got " + jsonKind(trimmed)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(trimmed, &fields); err != nil {
		return "the request body must be a JSON object with a query"
	}
	for _, f := range []struct{ name, kind string }{
		{"query", "string"}, {"operationName", "string"}, {"variables", "object"}, {"extensions", "object"},
	} {
		v, ok := fields[f.name]
		if !ok {
			continue
		}
		if got := jsonKind(v); got != f.kind && got != "null" {
			return fmt.Sprintf("%s: must be %s %s or null; got %s", f.name, article(f.kind), f.kind, article(got)+" "+got)
		}
	}
	return ""
}

// jsonKind names the kind of a valid JSON value.
func jsonKind(v json.RawMessage) string {
	v = bytes.TrimSpace(v)
	if len(v) == 0 {
		return "nothing"
	}
	switch v[0] {
	case '{':
		return "object"
	case '[':
		return "array"
	case '"':
		return "string"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	default:
		return "number"
	}
}

func article(kind string) string {
	switch kind {
	case "object", "array":
		return "an"
	case "null":
		return ""
	}
	return "a"
}

// httpOperation is what an operation interceptor may tell graphqlHTTP
// about the answer to a plain HTTP request: its status.
type httpOperation struct{ status int }

type httpOperationKey struct{}

// refuseHTTPSubscriptions answers a subscription sent over plain HTTP (POST,
// GET or multipart) with 400 BAD_REQUEST at once: gqlgen would hold the
// request open until the first event and answer that alone.
func refuseHTTPSubscriptions(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
	op, ok := ctx.Value(httpOperationKey{}).(*httpOperation)
	if oc := graphql.GetOperationContext(ctx); ok && oc.Operation != nil && oc.Operation.Operation == ast.Subscription {
		op.status = http.StatusBadRequest
		return errorResponse(ctx, segmentd.CodeBadRequest,
			"a subscription needs a websocket: open one at /graphql (graphql-transport-ws or graphql-ws); plain HTTP serves queries and mutations")
	}
	return next(ctx)
}

// codedResponse holds back an answer of status 400 or more and gives each
// of its GraphQL errors that has no extensions.code the code BAD_REQUEST:
// gqlgen's transports write such answers for requests they cannot take.
type codedResponse struct {
	http.ResponseWriter
	op     *httpOperation
	status int           // 0 until the header is written
	held   *bytes.Buffer // the body of a held-back answer
}

func (c *codedResponse) WriteHeader(code int) {
	if c.status != 0 {
		return
	}
	if c.op.status != 0 {
		code = c.op.status
	}
	c.status = code
	if code >= 400 {
		c.held = &bytes.Buffer{}
		return
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *codedResponse) Write(p []byte) (int, error) {
	if c.status == 0 {
		c.WriteHeader(http.StatusOK)
	}
	if c.held != nil {
		return c.held.Write(p)
	}
	return c.ResponseWriter.Write(p)
}

// finish writes a held-back answer.
func (c *codedResponse) finish() {
	if c.held == nil {
		return
	}
	body := withBadRequestCodes(c.held.Bytes())
	c.ResponseWriter.Header().Del("Content-Length")
	c.ResponseWriter.WriteHeader(c.status)
	_, _ = c.ResponseWriter.Write(body)
}

// withBadRequestCodes returns a GraphQL response body whose uncoded errors
// have the code BAD_REQUEST; a body that is not a GraphQL response with
// errors is returned as it is.
func withBadRequestCodes(body []byte) []byte {
	var resp map[string]json.RawMessage
	if json.Unmarshal(body, &resp) != nil || resp["errors"] == nil {
		return body
	}
	dec := json.NewDecoder(bytes.NewReader(resp["errors"]))
	dec.UseNumber()
	var errs []map[string]any
	if dec.Decode(&errs) != nil {
		return body
	}
	changed := false
	for _, e := range errs {
		ext, _ := e["extensions"].(map[string]any)
		if ext == nil {
			ext = map[string]any{}
			e["extensions"] = ext
		}
		if ext["code"] == nil {
			ext["code"] = string(segmentd.CodeBadRequest)
			changed = true
		}
	}
	if !changed {
		return body
	}
	b, err := json.Marshal(errs)
	if err != nil {
		return body
	}
	resp["errors"] = b
	if out, err := json.Marshal(resp); err == nil {
		return out
	}
	return body
}

// persistedQueryCacheBytes bounds the memory automatic persisted queries
// take: the least recently used are dropped beyond it.
const persistedQueryCacheBytes = 16 << 20

// persistedQueries is gqlgen's automatic persisted queries (Apollo's
// PersistedQueryLink): a hash alone runs the query stored for it, an unknown
// hash is answered PERSISTED_QUERY_NOT_FOUND (and the client retries with
// the query), a query with its hash is checked and stored. Its other errors
// (a hash that does not match its query, an unknown version) get the code
// BAD_REQUEST.
type persistedQueries struct {
	extension.AutomaticPersistedQuery
}

func newPersistedQueries(maxBytes int) persistedQueries {
	return persistedQueries{extension.AutomaticPersistedQuery{Cache: newQueryCache(maxBytes)}}
}

func (p persistedQueries) MutateOperationParameters(ctx context.Context, raw *graphql.RawParams) *gqlerror.Error {
	err := p.AutomaticPersistedQuery.MutateOperationParameters(ctx, raw)
	if err != nil && (err.Extensions == nil || err.Extensions["code"] == nil) {
		err.Message = "extensions.persistedQuery: " + err.Message
		if err.Extensions == nil {
			err.Extensions = map[string]any{}
		}
		err.Extensions["code"] = string(segmentd.CodeBadRequest)
	}
	return err
}

// queryCache is an LRU cache of query texts by hash, bounded by their
// total size in bytes rather than by their number: a client may register
// queries up to the request body limit.
type queryCache struct {
	mu     sync.Mutex
	max    int
	size   int
	order  *list.List // of *queryEntry, most recently used first
	byHash map[string]*list.Element
}

type queryEntry struct{ hash, query string }

// entryOverhead approximates the bookkeeping bytes of an entry.
const entryOverhead = 100

func (e *queryEntry) bytes() int { return len(e.hash) + len(e.query) + entryOverhead }

var _ graphql.Cache[string] = (*queryCache)(nil)

func newQueryCache(maxBytes int) *queryCache {
	return &queryCache{max: maxBytes, order: list.New(), byHash: map[string]*list.Element{}}
}

// Get returns the query stored for hash.
func (c *queryCache) Get(_ context.Context, hash string) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.byHash[hash]
	if !ok {
		return "", false
	}
	c.order.MoveToFront(el)
	return el.Value.(*queryEntry).query, true
}

// Add stores query for hash, dropping the least recently used queries
// until the cache fits its bound. A query larger than the whole bound is
// not stored.
func (c *queryCache) Add(_ context.Context, hash, query string) {
	e := &queryEntry{hash: hash, query: query}
	if e.bytes() > c.max {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.byHash[hash]; ok {
		c.size -= el.Value.(*queryEntry).bytes()
		el.Value = e
		c.size += e.bytes()
		c.order.MoveToFront(el)
	} else {
		c.byHash[hash] = c.order.PushFront(e)
		c.size += e.bytes()
	}
	for c.size > c.max {
		oldest := c.order.Back()
		old := oldest.Value.(*queryEntry)
		c.order.Remove(oldest)
		delete(c.byHash, old.hash)
		c.size -= old.bytes()
	}
}
