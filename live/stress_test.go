package live_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/segmentd/segmentd/changelog"
	"github.com/segmentd/segmentd/internal/testenv"
	"github.com/segmentd/segmentd/live"
)

// stressDuration is how long TestStreamStress writes per store:
// SEGMENTD_TEST_STRESS_SECONDS, default 3 (1 with -short).
func stressDuration(t *testing.T) time.Duration {
	if s := os.Getenv("SEGMENTD_TEST_STRESS_SECONDS"); s != "" {
		n, err := strconv.ParseFloat(s, 64)
		if err != nil || n <= 0 {
			t.Fatalf("SEGMENTD_TEST_STRESS_SECONDS=%q: want a positive number of seconds", s)
		}
		return time.Duration(n * float64(time.Second))
	}
	if testing.Short() {
		return time.Second
	}
	return 3 * time.Second
}

// streamed is what one subscriber received, across its reconnections.
type streamed struct {
	key    string
	mu     sync.Mutex
	curs   []changelog.Cursor
	ids    []string
	resume int // how many times it reconnected from its stored cursor
}

func (s *streamed) last() (changelog.Cursor, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.curs) == 0 {
		return changelog.Cursor{}, 0
	}
	return s.curs[len(s.curs)-1], len(s.curs)
}

// TestStreamStress: while writers commit rows in transactions short and long
// (some rolled back) and other connections run unrelated transactions, every
// subscriber (fast ones, slow ones that the fan-out drops and that catch up
// from the table, and ones that disconnect and resume from the cursor they
// stored) receives every row of its key exactly once, in strictly increasing
// cursor order, with no gap against the table.
func TestStreamStress(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, databaseURL string) {
		st, tl, broker, ctx := setup(t, databaseURL)
		pg := st.Dialect == "postgres"
		ph := func(n int) string {
			if pg {
				return "$" + strconv.Itoa(n)
			}
			return "?"
		}
		if _, err := st.DB.ExecContext(ctx, `CREATE TABLE other (id BIGINT PRIMARY KEY, v INTEGER)`); err != nil {
			t.Fatal(err)
		}
		keys := []string{"a", "b", "c"}
		writeCtx, stopWriting := context.WithTimeout(ctx, stressDuration(t))
		defer stopWriting()
		var writers sync.WaitGroup
		var writeErr error
		var errOnce sync.Once
		fail := func(err error) {
			if writeCtx.Err() == nil {
				errOnce.Do(func() { writeErr = err })
			}
		}
		writer := func(seed uint64, long bool) {
			defer writers.Done()
			rng := rand.New(rand.NewPCG(seed, 1))
			for writeCtx.Err() == nil {
				tx, err := st.DB.BeginTx(writeCtx, nil)
				if err != nil {
					fail(err)
					return
				}
				for n := 1 + rng.IntN(4); n > 0; n-- {
					if _, err := tx.ExecContext(writeCtx, `INSERT INTO log (k) VALUES (`+ph(1)+`)`, keys[rng.IntN(len(keys))]); err != nil {
						_ = tx.Rollback()
						fail(err)
						return
					}
				}
				if long {
					time.Sleep(time.Duration(rng.IntN(40)) * time.Millisecond)
				}
				if rng.IntN(8) == 0 {
					_ = tx.Rollback() // its rows never exist: no subscriber may see them
				} else if err := tx.Commit(); err != nil {
					fail(err)
					return
				}
				broker.Notify("log")
			}
		}
		for i := 0; i < 4; i++ {
			writers.Add(1)
			go writer(uint64(i), i == 0 && pg)
		}
		if pg {
			// Other connections' transactions, short and long, hold the
			// oldest running transaction back while rows commit around them.
			for i := 0; i < 3; i++ {
				writers.Add(1)
				go func(seed uint64) {
					defer writers.Done()
					rng := rand.New(rand.NewPCG(seed, 2))
					for writeCtx.Err() == nil {
						tx, err := st.DB.BeginTx(writeCtx, nil)
						if err != nil {
							return
						}
						_, _ = tx.ExecContext(writeCtx, `INSERT INTO other (id, v) VALUES ($1, 1) ON CONFLICT DO NOTHING`, rng.Int64())
						time.Sleep(time.Duration(rng.IntN(80)) * time.Millisecond)
						_ = tx.Commit()
					}
				}(uint64(10 + i))
			}
		}

		// Subscribers: the key ("" = every row), how slow, whether it
		// disconnects and resumes from its stored cursor.
		type kind struct {
			key    string
			slow   bool
			resume bool
			delay  time.Duration // starts this late, while rows are written
		}
		kinds := []kind{
			{key: ""}, {key: "a"},
			{key: "", slow: true}, {key: "b", slow: true},
			{key: "", resume: true}, {key: "c", resume: true, slow: true},
			{key: "a", delay: stressDuration(t) / 3}, {key: "", delay: stressDuration(t) / 2, slow: true},
		}
		subs := make([]*streamed, len(kinds))
		var running sync.WaitGroup
		subCtx, stopSubs := context.WithCancel(ctx)
		defer stopSubs()
		for i, k := range kinds {
			s := &streamed{key: k.key}
			subs[i] = s
			running.Add(1)
			go func(i int, k kind) {
				defer running.Done()
				rng := rand.New(rand.NewPCG(uint64(i), 3))
				time.Sleep(k.delay)
				for subCtx.Err() == nil {
					after, _ := s.last()
					connCtx, disconnect := context.WithCancel(subCtx)
					budget := -1
					if k.resume {
						budget = 1 + rng.IntN(40)
					}
					_ = tl.Stream(connCtx, &after, k.key, func(r live.Row) bool {
						if k.slow && rng.IntN(50) == 0 {
							time.Sleep(time.Duration(5+rng.IntN(30)) * time.Millisecond)
						}
						s.mu.Lock()
						s.curs = append(s.curs, r.Cursor)
						s.ids = append(s.ids, r.ID)
						s.mu.Unlock()
						budget--
						return budget != 0
					})
					disconnect()
					s.mu.Lock()
					s.resume++
					s.mu.Unlock()
				}
			}(i, k)
		}

		writers.Wait()
		if writeErr != nil {
			t.Fatalf("writer: %v", writeErr)
		}
		broker.Notify("log")

		// The table in log order: the truth every subscriber must match.
		order := `SELECT '0', rowid, CAST(id AS TEXT), k FROM log ORDER BY rowid`
		if pg {
			order = `SELECT log.log_txid::text AS tx_text, log.id, log.id::text, log.k FROM log ORDER BY log.log_txid, log.id`
		}
		table := map[string][]live.Row{}
		rows, err := st.DB.QueryContext(ctx, order)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var r live.Row
			var tx string
			if err := rows.Scan(&tx, &r.Cursor.Seq, &r.ID, &r.Key); err != nil {
				t.Fatal(err)
			}
			r.Cursor.Tx, _ = strconv.ParseUint(tx, 10, 64)
			table[""] = append(table[""], r)
			table[r.Key] = append(table[r.Key], r)
		}
		if err := rows.Close(); err != nil {
			t.Fatal(err)
		}
		if len(table[""]) < 100 {
			t.Fatalf("only %d rows written: the stress did not stress", len(table[""]))
		}

		deadline := time.Now().Add(60 * time.Second)
		for i, s := range subs {
			want := table[s.key]
			for {
				_, n := s.last()
				if n >= len(want) || time.Now().After(deadline) {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
			time.Sleep(20 * time.Millisecond) // anything extra would arrive now
			s.mu.Lock()
			got := append([]changelog.Cursor(nil), s.curs...)
			gotIDs := append([]string(nil), s.ids...)
			resumes := s.resume
			s.mu.Unlock()
			for j := 1; j < len(got); j++ {
				if !got[j-1].Less(got[j]) {
					t.Fatalf("subscriber %d (key %q, %+v): rows %d and %d out of order or repeated: %v then %v",
						i, s.key, kinds[i], j-1, j, got[j-1], got[j])
				}
			}
			for j := range want {
				if j >= len(got) {
					t.Fatalf("subscriber %d (key %q, %+v): got %d of %d rows; first missing %v",
						i, s.key, kinds[i], len(got), len(want), want[j].Cursor)
				}
				if got[j] != want[j].Cursor || gotIDs[j] != want[j].ID {
					t.Fatalf("subscriber %d (key %q, %+v): row %d is %v (id %s), the table has %v (id %s): a gap",
						i, s.key, kinds[i], j, got[j], gotIDs[j], want[j].Cursor, want[j].ID)
				}
			}
			if len(got) != len(want) {
				t.Fatalf("subscriber %d (key %q): got %d rows, the table has %d", i, s.key, len(got), len(want))
			}
			if kinds[i].resume && len(want) > 80 && resumes < 2 { // at most 40 rows a connection
				t.Errorf("subscriber %d never resumed from a stored cursor (%d connections)", i, resumes)
			}
		}
		stopSubs()
		running.Wait()
		t.Logf("%d rows (%s); subscribers checked: %d", len(table[""]), fmt.Sprint(st.Dialect), len(subs))
	})
}
