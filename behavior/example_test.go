package behavior_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/segmentd/segmentd/behavior"
)

// The ingest and the deadline sweep for "performed Purchase at least 3
// times within 7d": prune to the server clock less a grace, add the event,
// evaluate at its timestamp (or at the floor, for an event later than the
// grace), store the state and the next deadline; the sweep evaluates at
// the deadline.
func Example() {
	spec := behavior.Spec{Within: 7 * 24 * time.Hour, Op: behavior.GTE, Value: 3}
	const grace = time.Minute
	var row []byte // the stored state
	ingest := func(ts, server time.Time) {
		s, _ := behavior.New(spec)
		if row != nil {
			if err := s.UnmarshalBinary(row); err != nil {
				panic(err)
			}
		}
		s.Prune(server.Add(-grace))
		s.Add(ts, 0, false)
		at := ts
		r, err := s.Eval(at)
		if errors.Is(err, behavior.ErrBeforeFloor) {
			at, _ = s.Floor()
			r, _ = s.Eval(at)
		}
		deadline := "none"
		if next, ok, _ := s.NextChange(server); ok {
			deadline = next.Format("Jan 2 15:04:05.000000000")
		}
		row, _ = s.MarshalBinary()
		fmt.Printf("at %s: %v purchases, matched %v; next change: %s; %d bytes\n",
			at.Format("Jan 2 15:04"), r.Figure, r.Matched, deadline, len(row))
	}
	day := func(d int) time.Time { return time.Date(2026, 12, d, 9, 0, 0, 0, time.UTC) }
	ingest(day(1), day(1).Add(time.Second))
	ingest(day(3), day(3).Add(time.Second))
	ingest(day(2), day(4))   // two days late: counts, but is evaluated at the floor
	ingest(day(20), day(20)) // the old ones have left
	// Output:
	// at Dec 1 09:00: 1 purchases, matched false; next change: none; 9 bytes
	// at Dec 3 09:00: 2 purchases, matched false; next change: none; 14 bytes
	// at Dec 4 08:59: 3 purchases, matched true; next change: Dec 8 09:00:00.000000001; 17 bytes
	// at Dec 20 09:00: 1 purchases, matched false; next change: none; 9 bytes
}
