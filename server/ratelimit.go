package server

import (
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/segmentd/segmentd"
	"github.com/segmentd/segmentd/auth"
	"github.com/segmentd/segmentd/ent/schema/pulid"
)

// limiters holds one token bucket per API key. golang.org/x/time/rate is
// the Go team's token bucket: exact refill and Reserve-based Retry-After,
// which a hand-written counter would only approximate.
type limiters struct {
	rate  rate.Limit
	burst int
	now   func() time.Time // the buckets' clock: time.Now, or a test's
	mu    sync.Mutex
	keys  map[pulid.ID]*rate.Limiter
}

func newLimiters(perSecond float64, burst int, now func() time.Time) *limiters {
	if perSecond <= 0 {
		return nil
	}
	if burst <= 0 {
		burst = int(math.Max(1, perSecond*2))
	}
	if now == nil {
		now = time.Now
	}
	return &limiters{rate: rate.Limit(perSecond), burst: burst, now: now, keys: map[pulid.ID]*rate.Limiter{}}
}

// wait returns 0 if the key may make a request now, or how long it must
// wait for one.
func (l *limiters) wait(key pulid.ID) time.Duration {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	lim := l.keys[key]
	if lim == nil {
		lim = rate.NewLimiter(l.rate, l.burst)
		l.keys[key] = lim
	}
	l.mu.Unlock()
	// AllowN decides at one instant, under the limiter's lock. (Reserve
	// then Delay measured the delay later: a goroutine descheduled between
	// the two, as under load, was let through on a token of the future.)
	now := l.now()
	if lim.AllowN(now, 1) {
		return 0
	}
	missing := 1 - lim.TokensAt(now)
	return max(time.Millisecond, time.Duration(missing/float64(l.rate)*float64(time.Second)))
}

// allow answers 429 with Retry-After when the caller's key is over its rate:
// with a GraphQL error body on the GraphQL endpoint (graphQL), so that
// GraphQL clients can read it, and with /v1's error body on /v1.
func (s *Server) allow(w http.ResponseWriter, p *auth.Principal, graphQL bool) bool {
	d := s.limits.wait(p.KeyID)
	if d == 0 {
		return true
	}
	w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(d.Seconds()))))
	msg := "too many requests for this API key; retry after " + d.Round(time.Millisecond).String()
	if graphQL {
		writeGraphQLError(w, http.StatusTooManyRequests, segmentd.CodeRateLimited, msg)
	} else {
		writeV1Error(w, http.StatusTooManyRequests, segmentd.CodeRateLimited, "", msg)
	}
	return false
}
