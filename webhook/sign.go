package webhook

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"time"
)

// SecretPrefix starts every signing secret shown to users.
const SecretPrefix = "whsec_"

// secretBytes is the length of a new secret's key (Standard Webhooks asks
// for 24 to 64 bytes).
const secretBytes = 32

// newSecret returns a new key, base64 (what is stored, after whsec_).
func newSecret() (string, error) {
	b := make([]byte, secretBytes)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(b), nil
}

// Sign returns the Standard Webhooks signature of one message: "v1," and
// the base64 HMAC-SHA256 of "{id}.{timestamp}.{body}", keyed with the
// secret's base64-decoded part (with or without its whsec_ prefix).
func Sign(secret, id string, timestamp time.Time, body []byte) (string, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, SecretPrefix))
	if err != nil {
		return "", errors.New("webhook.Sign: the secret is not base64")
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id))
	mac.Write([]byte{'.'})
	mac.Write([]byte(strconv.FormatInt(timestamp.Unix(), 10)))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil)), nil
}

// Signatures is the webhook-signature header: one signature per secret,
// space-separated (during a rotation, the new secret's and the old one's).
func Signatures(secrets []string, id string, timestamp time.Time, body []byte) (string, error) {
	sigs := make([]string, 0, len(secrets))
	for _, s := range secrets {
		sig, err := Sign(s, id, timestamp, body)
		if err != nil {
			return "", err
		}
		sigs = append(sigs, sig)
	}
	return strings.Join(sigs, " "), nil
}

// Verify checks a webhook-signature header against a secret, as a receiver
// does: true if any of its v1 signatures is the message's (compared in
// constant time). It does not check the timestamp's age.
func Verify(secret, id string, timestamp time.Time, body []byte, header string) bool {
	want, err := Sign(secret, id, timestamp, body)
	if err != nil {
		return false
	}
	for _, sig := range strings.Fields(header) {
		if hmac.Equal([]byte(sig), []byte(want)) {
			return true
		}
	}
	return false
}
