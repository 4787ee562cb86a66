// Package auth manages API keys and tells who is calling. A key is a random
// secret ("sgd_" and 43 base64url characters, 256 bits); only its SHA-256 is
// stored. A fast hash is enough because the secret is random and long: there
// is no dictionary to try, and checking a key costs one indexed lookup.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/segmentd/segmentd"
	"github.com/segmentd/segmentd/ent"
	"github.com/segmentd/segmentd/ent/apikey"
	"github.com/segmentd/segmentd/ent/schema/pulid"
)

// Role is what a key may do.
type Role = apikey.Role

// The roles: ADMIN may do everything, WRITE only ingest events, READ only
// query and subscribe.
const (
	RoleAdmin = apikey.RoleADMIN
	RoleWrite = apikey.RoleWRITE
	RoleRead  = apikey.RoleREAD
)

// ParseRole parses a role name, case-insensitively.
func ParseRole(s string) (Role, error) {
	r := Role(strings.ToUpper(strings.TrimSpace(s)))
	if err := apikey.RoleValidator(r); err != nil {
		return "", segmentd.Invalid("role", "unknown role %q: use ADMIN, WRITE or READ", s)
	}
	return r, nil
}

// Principal is the authenticated caller.
type Principal struct {
	KeyID pulid.ID
	Name  string
	Role  Role
}

// CanRead reports whether the caller may query and subscribe.
func (p *Principal) CanRead() bool { return p != nil && (p.Role == RoleAdmin || p.Role == RoleRead) }

// CanIngest reports whether the caller may send events.
func (p *Principal) CanIngest() bool { return p != nil && (p.Role == RoleAdmin || p.Role == RoleWrite) }

// CanAdmin reports whether the caller may change segments and campaigns.
func (p *Principal) CanAdmin() bool { return p != nil && p.Role == RoleAdmin }

type ctxKey struct{}

// WithPrincipal returns a context that carries p.
func WithPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, ctxKey{}, p)
}

// FromContext returns the caller, or nil if the context carries none.
func FromContext(ctx context.Context) *Principal {
	p, _ := ctx.Value(ctxKey{}).(*Principal)
	return p
}

// NewSecret returns a new random key secret.
func NewSecret() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err)) // never fails on supported platforms
	}
	return "sgd_" + base64.RawURLEncoding.EncodeToString(b)
}

// Hash returns the stored form of a secret.
func Hash(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// Keys creates, lists, revokes and checks API keys.
type Keys struct {
	Client *ent.Client
	Now    func() time.Time

	mu       sync.Mutex
	lastSeen map[pulid.ID]time.Time // when last_used_at was last written, per key
}

// NewKeys returns a Keys on client.
func NewKeys(client *ent.Client) *Keys {
	return &Keys{Client: client, Now: time.Now, lastSeen: map[pulid.ID]time.Time{}}
}

// Create makes a key with a new random secret; the secret is returned once
// and never stored.
func (k *Keys) Create(ctx context.Context, name string, role Role) (*ent.APIKey, string, error) {
	secret := NewSecret()
	key, err := k.CreateWithSecret(ctx, name, role, secret)
	return key, secret, err
}

// CreateWithSecret makes a key with a secret chosen by the operator (such as
// SEGMENTD_ADMIN_KEY). It must be at least 16 characters.
func (k *Keys) CreateWithSecret(ctx context.Context, name string, role Role, secret string) (*ent.APIKey, error) {
	if len(secret) < 16 {
		return nil, segmentd.Invalid("key", "an API key must be at least 16 characters")
	}
	if strings.TrimSpace(name) == "" {
		return nil, segmentd.Invalid("name", "a key needs a name")
	}
	if err := apikey.RoleValidator(role); err != nil {
		return nil, segmentd.Invalid("role", "unknown role %q: use ADMIN, WRITE or READ", role)
	}
	key, err := k.Client.APIKey.Create().
		SetName(name).
		SetRole(role).
		SetHash(Hash(secret)).
		SetHint(hint(secret)).
		SetCreatedAt(k.Now()).
		Save(ctx)
	if ent.IsConstraintError(err) {
		return nil, segmentd.Errorf(segmentd.CodeConflict, "this key already exists")
	}
	if err != nil {
		return nil, fmt.Errorf("auth.CreateWithSecret: %w", err)
	}
	return key, nil
}

func hint(secret string) string {
	if len(secret) <= 8 {
		return ""
	}
	return secret[:8] + "…"
}

// List returns every key, newest first, revoked ones included.
func (k *Keys) List(ctx context.Context) ([]*ent.APIKey, error) {
	keys, err := k.Client.APIKey.Query().Order(ent.Desc(apikey.FieldCreatedAt)).All(ctx)
	if err != nil {
		return nil, fmt.Errorf("auth.List: %w", err)
	}
	return keys, nil
}

// Revoke revokes a key at once; requests with it fail from then on.
func (k *Keys) Revoke(ctx context.Context, id pulid.ID) error {
	n, err := k.Client.APIKey.Update().
		Where(apikey.ID(id), apikey.RevokedAtIsNil()).
		SetRevokedAt(k.Now()).
		Save(ctx)
	if err != nil {
		return fmt.Errorf("auth.Revoke: %w", err)
	}
	if n == 0 {
		exists, err := k.Client.APIKey.Query().Where(apikey.ID(id)).Exist(ctx)
		if err != nil {
			return fmt.Errorf("auth.Revoke: %w", err)
		}
		if !exists {
			return segmentd.Errorf(segmentd.CodeNotFound, "no API key with id %q", id)
		}
	}
	return nil
}

// KeysTopic is the pubsub topic signalled when a key is revoked or its
// role changes, so that servers end what the key may no longer do.
const KeysTopic = "api_keys"

// SetRole changes a key's role; requests with it get the new role from
// then on, and its open websockets are closed.
func (k *Keys) SetRole(ctx context.Context, id pulid.ID, role Role) error {
	if err := apikey.RoleValidator(role); err != nil {
		return segmentd.Invalid("role", "unknown role %q: use ADMIN, WRITE or READ", role)
	}
	n, err := k.Client.APIKey.Update().Where(apikey.ID(id)).SetRole(role).Save(ctx)
	if err != nil {
		return fmt.Errorf("auth.SetRole: %w", err)
	}
	if n == 0 {
		return segmentd.Errorf(segmentd.CodeNotFound, "no API key with id %q", id)
	}
	return nil
}

// Current returns the caller that the key id stands for now: an
// UNAUTHENTICATED error if it was revoked (or deleted) since.
func (k *Keys) Current(ctx context.Context, id pulid.ID) (*Principal, error) {
	key, err := k.Client.APIKey.Query().Where(apikey.ID(id)).Only(ctx)
	if ent.IsNotFound(err) || (err == nil && key.RevokedAt != nil) {
		return nil, segmentd.Errorf(segmentd.CodeUnauthenticated, "the API key was revoked")
	}
	if err != nil {
		return nil, fmt.Errorf("auth.Current: %w", err)
	}
	return &Principal{KeyID: key.ID, Name: key.Name, Role: key.Role}, nil
}

// EnsureAdmin creates the first ADMIN key when there is no key at all: with
// the given secret if it is not empty, else a random one. It returns the
// secret it created, or "" if keys already existed.
func (k *Keys) EnsureAdmin(ctx context.Context, secret string) (string, error) {
	n, err := k.Client.APIKey.Query().Count(ctx)
	if err != nil {
		return "", fmt.Errorf("auth.EnsureAdmin: %w", err)
	}
	if n > 0 {
		return "", nil
	}
	if secret == "" {
		secret = NewSecret()
	}
	if _, err := k.CreateWithSecret(ctx, "admin (first start)", RoleAdmin, secret); err != nil {
		if segmentd.ErrorCode(err) == segmentd.CodeConflict {
			return "", nil // another replica created it first
		}
		return "", err
	}
	return secret, nil
}

// Authenticate returns the caller that secret belongs to. A missing, unknown
// or revoked key is UNAUTHENTICATED; the error never says which.
func (k *Keys) Authenticate(ctx context.Context, secret string) (*Principal, error) {
	if secret == "" {
		return nil, segmentd.Errorf(segmentd.CodeUnauthenticated, "an API key is required: send Authorization: Bearer <key>")
	}
	key, err := k.Client.APIKey.Query().Where(apikey.Hash(Hash(secret))).Only(ctx)
	if ent.IsNotFound(err) || (err == nil && key.RevokedAt != nil) {
		return nil, segmentd.Errorf(segmentd.CodeUnauthenticated, "invalid or revoked API key")
	}
	if err != nil {
		return nil, fmt.Errorf("auth.Authenticate: %w", err)
	}
	k.touch(ctx, key.ID)
	return &Principal{KeyID: key.ID, Name: key.Name, Role: key.Role}, nil
}

// touch records when a key was last used, at most once a minute per key, so
// that reads do not each cost a write.
func (k *Keys) touch(ctx context.Context, id pulid.ID) {
	now := k.Now()
	k.mu.Lock()
	if k.lastSeen == nil {
		k.lastSeen = map[pulid.ID]time.Time{}
	}
	if last, ok := k.lastSeen[id]; ok && now.Sub(last) < time.Minute {
		k.mu.Unlock()
		return
	}
	k.lastSeen[id] = now
	k.mu.Unlock()
	// Best effort: a failed bookkeeping write must not fail the request.
	_ = k.Client.APIKey.UpdateOneID(id).SetLastUsedAt(now).Exec(context.WithoutCancel(ctx))
}

// BearerToken extracts the key from an Authorization header value: "Bearer
// <key>", or Basic auth with the key as user name (Segment's write key).
func BearerToken(header string) string {
	scheme, rest, ok := strings.Cut(strings.TrimSpace(header), " ")
	if !ok {
		return ""
	}
	switch strings.ToLower(scheme) {
	case "bearer":
		return strings.TrimSpace(rest)
	case "basic":
		raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(rest))
		if err != nil {
			return ""
		}
		user, _, _ := strings.Cut(string(raw), ":")
		return user
	}
	return ""
}
