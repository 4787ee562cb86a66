package webhook

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestURLPolicy(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	strict := URLPolicy{}
	for _, u := range []string{"https://127.0.0.1/", "https://localhost/", "https://a.localhost/", "https://[::1]:8443/",
		"https://10.0.0.1/", "https://172.31.255.255/", "https://192.168.1.1/", "https://169.254.169.254/",
		"https://[fe80::1]/", "https://[fc00::1]/", "https://[::ffff:10.0.0.1]/", "https://0.0.0.0/", "https://100.100.1.1/",
		"https://224.0.0.1/", "http://example.com/", "ftp://example.com/", "https:///path", "https://u:p@example.com/", "%%"} {
		if err := strict.Check(ctx, u); err == nil {
			t.Errorf("strict policy took %q", u)
		}
	}
	for _, u := range []string{"https://8.8.8.8/hooks", "https://[2001:4860:4860::8888]/x"} {
		if err := strict.Check(ctx, u); err != nil {
			t.Errorf("strict policy refused %q: %v", u, err)
		}
	}
	if err := (URLPolicy{AllowHTTP: true}).Check(ctx, "http://8.8.8.8/x"); err != nil {
		t.Errorf("allow-http refused a public http URL: %v", err)
	}
	if err := (URLPolicy{AllowHTTP: true}).Check(ctx, "http://127.0.0.1/x"); err == nil {
		t.Error("allow-http took a loopback URL")
	}
	if err := (URLPolicy{AllowPrivate: true}).Check(ctx, "http://127.0.0.1:9/x"); err != nil {
		t.Errorf("allow-private refused loopback http: %v", err)
	}
}

// The sender checks the address it dials, so a public name that resolves
// to a private address later, or a redirect to one, is refused too.
func TestSenderRefusesPrivateAddressesAtDialTime(t *testing.T) {
	t.Parallel()
	var hits atomic.Int32
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer target.Close()
	s := newSender(URLPolicy{AllowHTTP: true}, time.Second)
	a := s.post(context.Background(), target.URL, nil, "", []byte("{}"))
	if a.ok() || !strings.Contains(a.err, "refused") || hits.Load() != 0 {
		t.Fatalf("post to loopback: %+v, %d hits", a, hits.Load())
	}
	// With private addresses allowed, a redirect to one is followed.
	redirect := httptest.NewServer(http.RedirectHandler(target.URL, http.StatusTemporaryRedirect))
	defer redirect.Close()
	open := newSender(URLPolicy{AllowPrivate: true}, time.Second)
	if a := open.post(context.Background(), redirect.URL, nil, "", []byte("{}")); !a.ok() || hits.Load() != 1 {
		t.Fatalf("with private addresses allowed, the redirect is followed: %+v, %d hits", a, hits.Load())
	}
}

// A public receiver that redirects to a private address: the redirect is
// refused when it dials, and the private address gets nothing. The test's
// receivers can only be on loopback, so the redirecting one is dialled as
// if it were public (dialPublic); the target is not.
func TestSenderRefusesARedirectToAPrivateAddress(t *testing.T) {
	t.Parallel()
	var privateHits, publicHits atomic.Int32
	private := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { privateHits.Add(1) }))
	defer private.Close()
	public := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		publicHits.Add(1)
		switch r.URL.Path {
		case "/to-private":
			http.Redirect(w, r, private.URL+"/hooks", http.StatusTemporaryRedirect)
		case "/to-public":
			http.Redirect(w, r, "/landed", http.StatusTemporaryRedirect)
		}
	}))
	defer public.Close()
	addr := netip.MustParseAddrPort(public.Listener.Addr().String())
	s := newSender(URLPolicy{AllowHTTP: true, dialPublic: map[netip.AddrPort]bool{addr: true}}, time.Second)

	// The seam lets the "public" receiver through, redirects included.
	if a := s.post(context.Background(), public.URL+"/to-public", nil, "", []byte("{}")); !a.ok() || publicHits.Load() != 2 {
		t.Fatalf("post to the public receiver, redirected within it: %+v, %d hits", a, publicHits.Load())
	}
	a := s.post(context.Background(), public.URL+"/to-private", nil, "", []byte("{}"))
	if a.ok() || !strings.Contains(a.err, "refused") || !strings.Contains(a.err, "private") {
		t.Fatalf("redirect to a private address: %+v; want refused", a)
	}
	if publicHits.Load() != 3 || privateHits.Load() != 0 {
		t.Fatalf("public receiver %d requests (want 3), private %d (want 0)", publicHits.Load(), privateHits.Load())
	}
}

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	for v, want := range map[string]time.Duration{
		"": 0, "0": 0, "-3": 0, "7": 7 * time.Second, "x": 0, "999999999": 24 * time.Hour,
		now.Add(90 * time.Second).Format(http.TimeFormat): 90 * time.Second,
		now.Add(-time.Minute).Format(http.TimeFormat):     0,
	} {
		if got := parseRetryAfter(v, now); got != want {
			t.Errorf("Retry-After %q = %s; want %s", v, got, want)
		}
	}
}

// readmeVerify is the receiver's example in README.md, verbatim but for
// the name.
func TestReadmeVerifierAgreesWithSign(t *testing.T) {
	t.Parallel()
	secret := "whsec_" + base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	now := time.Now()
	body := []byte(`{"type":"membership.entered"}`)
	sig, err := Signatures([]string{secret, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}, "mc_0.1", now, body)
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest("POST", "/", nil)
	r.Header.Set("webhook-id", "mc_0.1")
	r.Header.Set("webhook-timestamp", strings.TrimSpace(strconvItoa(now.Unix())))
	r.Header.Set("webhook-signature", sig)
	if !readmeVerify(secret, r, body) {
		t.Fatal("the README's verifier refused a signed request")
	}
	if readmeVerify(secret, r, append(body, ' ')) {
		t.Fatal("the README's verifier took a changed body")
	}
}
