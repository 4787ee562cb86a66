package webhook

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"strings"
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
	hits := 0
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits++ }))
	defer target.Close()
	s := newSender(URLPolicy{AllowHTTP: true}, time.Second)
	a := s.post(context.Background(), target.URL, nil, "", []byte("{}"))
	if a.ok() || !strings.Contains(a.err, "refused") || hits != 0 {
		t.Fatalf("post to loopback: %+v, %d hits", a, hits)
	}
	// A redirect to a private address: refused when the redirect dials.
	redirect := httptest.NewServer(http.RedirectHandler(target.URL, http.StatusTemporaryRedirect))
	defer redirect.Close()
	open := newSender(URLPolicy{AllowPrivate: true}, time.Second)
	if a := open.post(context.Background(), redirect.URL, nil, "", []byte("{}")); !a.ok() || hits != 1 {
		t.Fatalf("with private addresses allowed, the redirect is followed: %+v, %d hits", a, hits)
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
