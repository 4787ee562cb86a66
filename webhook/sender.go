package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"syscall"
	"time"
)

// sender makes the HTTP requests: the one part of the package that knows
// HTTP. Unless private addresses are allowed, every connection it opens,
// including those of redirects, is checked against the address it dials
// (after DNS), so a name that resolves to a private address later, or a
// redirect to one, is refused.
type sender struct {
	client  *http.Client
	timeout time.Duration
}

// attempt is what one request came to.
type attempt struct {
	status     int           // 0 when there was no answer
	retryAfter time.Duration // from Retry-After, 0 if none
	err        string        // why it failed; "" on 2xx
}

func (a attempt) ok() bool { return a.err == "" }

func newSender(p URLPolicy, timeout time.Duration) *sender {
	dialer := &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}
	if !p.AllowPrivate {
		dialer.Control = func(_, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil || (blockedIP(ap.Addr()) && !p.dialPublic[ap]) {
				return errBlocked
			}
			return nil
		}
	}
	tr := &http.Transport{
		DialContext:           dialer.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   8,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: timeout,
	}
	client := &http.Client{
		Transport: tr,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 3 {
				return errors.New("more than 3 redirects")
			}
			if req.URL.Scheme != "https" && !(req.URL.Scheme == "http" && (p.AllowHTTP || p.AllowPrivate)) {
				return errors.New("redirect to a URL that is not https")
			}
			return nil
		},
	}
	return &sender{client: client, timeout: timeout}
}

// post sends one message. headers are set as given; writeKey, if not
// empty, is the Basic-auth user name (Segment's HTTP API).
func (s *sender) post(ctx context.Context, target string, headers map[string]string, writeKey string, body []byte) attempt {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return attempt{err: "bad URL"}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "segmentd-webhooks/1")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	if writeKey != "" {
		req.SetBasicAuth(writeKey, "")
	}
	resp, err := s.client.Do(req)
	if err != nil {
		switch {
		case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
			return attempt{err: fmt.Sprintf("no answer within %s", s.timeout)}
		case errors.Is(err, errBlocked):
			return attempt{err: "refused: the URL " + errBlocked.Error()}
		}
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err // without the URL, which may carry a token
		}
		return attempt{err: "request failed: " + err.Error()}
	}
	// The answer is read (so the connection is reused) and dropped: never
	// stored or logged.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	a := attempt{status: resp.StatusCode}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return a
	}
	a.err = fmt.Sprintf("HTTP %d", resp.StatusCode)
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
		a.retryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	}
	return a
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// parseRetryAfter reads Retry-After: seconds, or an HTTP date; 0 if
// neither (or in the past). It is capped at a day.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	var d time.Duration
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		d = time.Duration(min(n, 86400)) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	if d <= 0 {
		return 0
	}
	return min(d, 24*time.Hour)
}
