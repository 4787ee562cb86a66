package webhook_test

import (
	"testing"
	"time"

	"github.com/segmentd/segmentd/webhook"
)

// The Standard Webhooks / Svix example: a signature we did not compute.
func TestSignMatchesTheSpecificationExample(t *testing.T) {
	t.Parallel()
	const (
		secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
		id     = "msg_p5jXN8AQM9LWM0D4loKWxJek"
		body   = `{"test": 2432232314}`
		want   = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
	)
	ts := time.Unix(1614265330, 0)
	got, err := webhook.Sign(secret, id, ts, []byte(body))
	if err != nil || got != want {
		t.Fatalf("Sign = %q, %v; want %q", got, err, want)
	}
	if !webhook.Verify(secret, id, ts, []byte(body), "v1,bogus "+want) {
		t.Error("Verify refused a header that holds the signature among others")
	}
	if webhook.Verify(secret, id, ts, []byte(body+" "), want) {
		t.Error("Verify accepted a changed body")
	}
	if webhook.Verify(secret, id, ts.Add(time.Second), []byte(body), want) {
		t.Error("Verify accepted another timestamp")
	}
	if _, err := webhook.Sign("whsec_not base64!", id, ts, nil); err == nil {
		t.Error("Sign took a secret that is not base64")
	}
}

func TestSignaturesDuringRotationCarryBoth(t *testing.T) {
	t.Parallel()
	ts := time.Unix(1700000000, 0)
	a, b := "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_c2Vjb25kLXNlY3JldC1vZi0yNC1ieXRlcyE="
	h, err := webhook.Signatures([]string{a, b}, "mc_0.1", ts, []byte("{}"))
	if err != nil {
		t.Fatal(err)
	}
	if !webhook.Verify(a, "mc_0.1", ts, []byte("{}"), h) || !webhook.Verify(b, "mc_0.1", ts, []byte("{}"), h) {
		t.Fatalf("header %q does not verify with both secrets", h)
	}
}
