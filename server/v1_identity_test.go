package server_test

import (
	"testing"

	"github.com/segmentd/segmentd/auth"
	"github.com/segmentd/segmentd/internal/testenv"
)

// TestV1IdentityRule (issue 13, item 11): the Segment-compatible API
// follows the one ID rule (trim, Unicode NFC): a track with an NFD userId
// and messageId and a batch repeating them in NFC with spaces are one user
// and one event, found by the NFC form.
func TestV1IdentityRule(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL)
		admin := srv.Admin()
		key := newKey(t, srv, "sdk", auth.RoleWrite)
		const nfc, nfd = "Zo\u00eb", "Zoe\u0308"
		sendV1(t, srv, key, "track", map[string]any{"userId": nfd, "event": "Sign Up", "messageId": "m-" + nfd})
		sendV1(t, srv, key, "batch", map[string]any{"batch": []any{
			map[string]any{"type": "track", "userId": " " + nfc + " ", "event": "Sign Up", "messageId": " m-" + nfc},
			map[string]any{"type": "identify", "userId": nfd + "\t", "traits": map[string]any{"plan": "pro"}},
		}})
		if events, users := counts(t, admin); events != 2 || users != 1 {
			t.Fatalf("%d events and %d users, want 2 (the track once, the identify) and 1", events, users)
		}
		var out struct {
			User *struct {
				UserID string
				Traits map[string]any
			}
		}
		admin.MustDo(t, `query($u: String!) { user(userId: $u) { userId traits } }`, map[string]any{"u": nfc}, &out)
		if out.User == nil || out.User.UserID != nfc || out.User.Traits["plan"] != "pro" {
			t.Fatalf("user(userId: NFC form): %+v", out.User)
		}
	})
}
