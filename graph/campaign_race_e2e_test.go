package graph_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentd/segmentd/internal/testenv"
	"github.com/segmentd/segmentd/server"
)

// TestCampaignFlipsDuringIngestion (issue 13, item 2): campaigns flipped
// PAUSED→ACTIVE while clients ingest entries into their segment left, on
// PostgreSQL, members who never activated an ACTIVE campaign: an entry
// committed while the campaign's backfill ran was neither seen by the
// backfill (not committed yet) nor activated by the entry (the campaign was
// not ACTIVE yet when the entry read it). Every member of an ACTIVE
// campaign's segment activates it exactly once, whatever runs meanwhile.
func TestCampaignFlipsDuringIngestion(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL, func(c *server.Config) { c.RateLimit = -1 })
		c := srv.Admin()
		segID := ingCreateSegment(t, c, map[string]any{
			"name": "Race", "kind": "EVENT_TRIGGERED", "triggerEvents": []string{"Race Sign Up"},
			"condition": map[string]any{"scope": "EVENT", "property": "Reward Amount", "operator": "GT", "value": 0},
		})
		const campaigns, clients = 6, 8
		camps := make([]string, campaigns)
		for i := range camps {
			camps[i] = ingCreateCampaign(t, c, fmt.Sprintf("Race %d", i), segID, "PAUSED").ID
		}

		stop := make(chan struct{})
		var (
			wg      sync.WaitGroup
			entered atomic.Int64
		)
		for w := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for n := 0; ; n++ {
					select {
					case <-stop:
						return
					default:
					}
					ins := make([]map[string]any, 5)
					for i := range ins {
						ins[i] = map[string]any{"event": "Race Sign Up", "userId": fmt.Sprintf("w%d-%d-%d", w, n, i),
							"properties": map[string]any{"Reward Amount": 10}}
					}
					r := c.Do(t, ingBatchMutation, map[string]any{"ins": ins})
					if len(r.Errors) > 0 {
						t.Errorf("trackEvents: %+v", r.Errors)
						return
					}
					entered.Add(int64(len(ins)))
					time.Sleep(5 * time.Millisecond)
				}
			}()
		}
		// Each campaign goes ACTIVE, PAUSED and ACTIVE again, all while
		// entries commit.
		time.Sleep(100 * time.Millisecond)
		for _, status := range []string{"ACTIVE", "PAUSED", "ACTIVE"} {
			for _, id := range camps {
				ingUpdateCampaign(t, c, id, map[string]any{"status": status})
				time.Sleep(20 * time.Millisecond)
			}
		}
		time.Sleep(100 * time.Millisecond)
		close(stop)
		wg.Wait()
		if t.Failed() {
			return
		}
		members := entered.Load()
		t.Logf("%d entries while %d campaigns flipped", members, campaigns)

		for i, id := range camps {
			if n, _ := ingActivations(t, c, id); int64(n) != members {
				t.Errorf("campaign %d (ACTIVE): %d activations, want one per member: %d", i, n, members)
			}
		}
		st := srv.Store()
		rep, err := newService(t, st).Verify(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if !rep.OK() {
			t.Errorf("verify: %s", rep)
		}
	})
}
