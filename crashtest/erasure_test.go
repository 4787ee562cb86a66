package crashtest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"testing"
	"time"

	"github.com/segmentd/segmentd/changelog"
	"github.com/segmentd/segmentd/ent/membershipchange"
	"github.com/segmentd/segmentd/internal/testenv"
	"github.com/segmentd/segmentd/service"
	"github.com/segmentd/segmentd/store"
)

// Sizes of the user erased in TestCrashDuringDeleteUser: enough events and
// memberships that the erasure's transaction runs a while.
const (
	erasureEvents   = 4000
	erasureSegments = 30
	erasureKills    = 6
)

// TestCrashDuringDeleteUser kills segmentd (SIGKILL) while deleteUser runs,
// several times a store, and restarts it: each time the user is erased
// wholly (no user, no event, every membership exited with source ERASURE)
// or not at all (every event and membership still there), and verify is
// clean.
func TestCrashDuringDeleteUser(t *testing.T) {
	if testing.Short() {
		t.Skip("kills real processes")
	}
	bin := testenv.BuildSegmentd(t, "..")
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		rnd := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 15))
		proc := testenv.StartProcess(t, bin, dbURL, "SEGMENTD_RATE_LIMIT=-1")
		admin := proc.Server.Admin()
		segs := make([]string, erasureSegments)
		for i := range segs {
			var out struct{ CreateSegment struct{ ID string } }
			admin.MustDo(t, `mutation($n: String!) { createSegment(input: {name: $n, kind: STATIC}) { id } }`,
				map[string]any{"n": fmt.Sprintf("Erasure %d", i)}, &out)
			segs[i] = out.CreateSegment.ID
		}
		round := 0
		fill := func() {
			round++
			for start := 0; start < erasureEvents; start += service.MaxBatch {
				in := make([]map[string]any, 0, service.MaxBatch)
				for i := start; i < min(start+service.MaxBatch, erasureEvents); i++ {
					in = append(in, map[string]any{"event": "Page Read", "userId": "victim",
						"messageId": fmt.Sprintf("victim-%d-%d", round, i), "properties": map[string]any{"n": i}})
				}
				admin.MustDo(t, `mutation($in: [TrackInput!]!) { trackEvents(inputs: $in) { accepted } }`, map[string]any{"in": in}, nil)
			}
			for _, s := range segs {
				admin.MustDo(t, `mutation($s: ID!) { addUsersToSegment(segmentId: $s, userIds: ["victim", "bystander"]) { added } }`,
					map[string]any{"s": s}, nil)
			}
		}
		fill()
		ctx := context.Background()
		erased, kept := 0, 0
		for kill := range erasureKills {
			done := make(chan string, 1)
			go func() {
				body, _ := json.Marshal(map[string]any{"query": `mutation { deleteUser(userId: "victim") { events memberships } }`})
				req, _ := http.NewRequest(http.MethodPost, proc.Server.URL+"/graphql", bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", "Bearer "+testenv.AdminKey)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					done <- "no answer: " + err.Error()
					return
				}
				raw, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				done <- string(raw)
			}()
			// Kills spread from the request's arrival to past its commit.
			time.Sleep(time.Duration(kill*80+rnd.IntN(60)) * time.Millisecond)
			proc.Kill()
			answer := <-done
			proc = testenv.StartProcess(t, bin, dbURL, "SEGMENTD_RATE_LIMIT=-1")
			admin = proc.Server.Admin()

			var after struct {
				User *struct {
					Memberships []struct{ Source string }
				}
				Events struct{ TotalCount int }
			}
			admin.MustDo(t, `{ user(userId: "victim") { memberships { source } } events(where: {userID: "victim"}) { totalCount } }`, nil, &after)
			st, err := store.Open(ctx, dbURL)
			if err != nil {
				t.Fatal(err)
			}
			exits, err := st.Client.MembershipChange.Query().Where(membershipchange.SourceEQ(changelog.SourceErasure)).Count(ctx)
			if err != nil {
				t.Fatal(err)
			}
			svc, err := service.New(st, service.Config{Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err != nil {
				t.Fatal(err)
			}
			rep, err := svc.Verify(ctx)
			st.Close()
			if err != nil {
				t.Fatal(err)
			}
			if !rep.OK() {
				t.Errorf("kill %d: verify: %s", kill, rep)
			}
			switch {
			case after.User == nil:
				erased++
				if after.Events.TotalCount != 0 || exits != erased*erasureSegments {
					t.Fatalf("kill %d: the user is gone, but %d of their events remain and %d ERASURE exits are logged (want 0 and %d); the answer was %s",
						kill, after.Events.TotalCount, exits, erased*erasureSegments, answer)
				}
				fill() // a new victim for the next kill
			default:
				kept++
				if after.Events.TotalCount != erasureEvents || len(after.User.Memberships) != erasureSegments || exits != erased*erasureSegments {
					t.Fatalf("kill %d: the user stays, with %d events, %d memberships, %d ERASURE exits logged; want all (%d, %d) and %d: half an erasure; the answer was %s",
						kill, after.Events.TotalCount, len(after.User.Memberships), exits, erasureEvents, erasureSegments, erased*erasureSegments, answer)
				}
			}
		}
		t.Logf("%d kills: %d erasures committed before the kill, %d rolled back", erasureKills, erased, kept)
	})
}
