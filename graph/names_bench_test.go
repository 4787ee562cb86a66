package graph_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/segmentd/segmentd/ent"
	"github.com/segmentd/segmentd/ent/event"
	"github.com/segmentd/segmentd/internal/testenv"
)

// BenchmarkBuilderNames times the console's builder queries (eventNames,
// propertyNames, traitNames) over SEGMENTD_BENCH_NAMES_EVENTS stored TRACK
// events (default 200,000; 20 names, 5 properties each), on each store:
//
//	go test ./graph -run '^$' -bench BenchmarkBuilderNames -benchtime 20x
//
// eventNames counts every event of the names (a GROUP BY over the events'
// (type, name) index); the other two read a sample of 1,000 rows.
func BenchmarkBuilderNames(b *testing.B) {
	n := 200_000
	if v := os.Getenv("SEGMENTD_BENCH_NAMES_EVENTS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			b.Fatal(err)
		}
	}
	for _, store := range testenv.Stores {
		b.Run(store, func(b *testing.B) {
			srv := testenv.StartServer(b, testenv.DatabaseURL(b, store))
			ctx := context.Background()
			client := srv.Store().Client
			now := time.Now()
			for done := 0; done < n; {
				batch := make([]*ent.EventCreate, 0, 2000)
				for i := 0; i < 2000 && done < n; i, done = i+1, done+1 {
					name := fmt.Sprintf("Event %02d", done%20)
					batch = append(batch, client.Event.Create().SetMessageID(fmt.Sprintf("bench-%d", done)).
						SetType(event.TypeTRACK).SetName(name).SetUserID(fmt.Sprintf("u%d", done%5000)).
						SetTimestamp(now).SetReceivedAt(now.Add(time.Duration(done)*time.Microsecond)).
						SetProperties(map[string]any{"a": 1, "b": "x", "c": true, "d": map[string]any{"e": 2}, "f": done}))
				}
				if err := client.Event.CreateBulk(batch...).Exec(ctx); err != nil {
					b.Fatal(err)
				}
			}
			admin := srv.Admin()
			for _, q := range []struct{ name, query string }{
				{"eventNames", `{ eventNames(first: 50) { name count lastSeenAt } }`},
				{"propertyNames", `{ propertyNames(event: "Event 07") }`},
				{"traitNames", `{ traitNames }`},
			} {
				b.Run(q.name, func(b *testing.B) {
					for b.Loop() {
						admin.MustDo(b, q.query, nil, nil)
					}
				})
			}
		})
	}
}
