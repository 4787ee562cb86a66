package behavior_test

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/segmentd/segmentd/behavior"
)

var t0 = time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)

func randomSpec(r *rand.Rand) behavior.Spec {
	windows := []time.Duration{0, 10 * time.Second, time.Minute, 90*time.Second + 7*time.Millisecond, time.Hour}
	s := behavior.Spec{
		Within: windows[r.IntN(len(windows))],
		Func:   behavior.Func(r.IntN(5)),
		Op:     behavior.Op(r.IntN(7)),
	}
	if s.Func == behavior.Count {
		s.Value = float64(r.IntN(6)) + []float64{0, 0, 0, 0.5}[r.IntN(4)]
		s.High = s.Value + float64(r.IntN(4))
	} else {
		s.Value = randomValue(r)
		s.High = s.Value + float64(r.IntN(20))/10
	}
	if r.IntN(10) == 0 {
		s.Value = -1 // every count agrees: cap 0
	}
	return s
}

// randomValue draws from a small set with exact-sum traps (0.1+0.2 is not
// 0.3 in float64) and repeats, so comparisons hit their operands.
func randomValue(r *rand.Rand) float64 {
	switch r.IntN(4) {
	case 0:
		return float64(r.IntN(21) - 5)
	case 1:
		return float64(r.IntN(11)) / 10
	case 2:
		return []float64{0.1, 0.2, 0.3, 0.6, 1e16, -1e16, 2.5}[r.IntN(7)]
	}
	return float64(r.IntN(1000)) / 100
}

// TestMatchesRecomputation drives states with random event streams (in
// order, late, future-dated, at exact window edges), clock jumps and
// floors, and at every step compares Eval and NextChange at several
// instants with a recomputation from every event, and checks that the
// encoding round-trips (the test carries on with the decoded state).
func TestMatchesRecomputation(t *testing.T) {
	t.Parallel()
	streams, steps := 400, 120
	if testing.Short() {
		streams = 60
	}
	for seed := range streams {
		r := rand.New(rand.NewPCG(uint64(seed), 16))
		spec := randomSpec(r)
		t.Run(fmt.Sprintf("seed%d_%v_%v_%v", seed, spec.Func, spec.Op, spec.Within), func(t *testing.T) {
			runStream(t, r, spec, steps)
		})
	}
}

func runStream(t *testing.T, r *rand.Rand, spec behavior.Spec, steps int) {
	s, err := behavior.New(spec)
	if err != nil {
		t.Fatal(err)
	}
	h := &history{spec: spec}
	w := spec.Within
	if w == 0 {
		w = time.Minute
	}
	clock := t0
	var floor time.Time // zero: never pruned
	var last time.Time
	for step := range steps {
		// The clock moves: mostly a little, sometimes by whole windows.
		switch r.IntN(10) {
		case 0:
			clock = clock.Add(time.Duration(r.Int64N(int64(3 * w))))
		case 1, 2:
			clock = clock.Add(time.Duration(r.IntN(1000)) * time.Millisecond)
		}
		// An event: on time, late, future-dated, or exactly one window
		// after the last one (an edge).
		var ts time.Time
		switch r.IntN(8) {
		case 0:
			ts = clock.Add(-time.Duration(r.Int64N(int64(2 * w))))
		case 1:
			ts = clock.Add(time.Duration(r.Int64N(int64(w / 2))))
		case 2:
			ts = last.Add(w)
		case 3:
			ts = last.Add(-w)
		default:
			ts = clock.Add(-time.Duration(r.IntN(2000)) * time.Millisecond)
		}
		switch r.IntN(3) {
		case 0:
			ts = ts.Truncate(time.Second)
		case 1:
			ts = ts.Truncate(time.Millisecond)
		}
		if last.IsZero() {
			ts = clock
		}
		v, has := randomValue(r), r.IntN(8) != 0
		s.Add(ts, v, has)
		h.add(ts, v, has)
		last = ts
		// The floor follows the clock, less a grace for late events.
		if r.IntN(3) == 0 {
			p := clock.Add(-time.Duration(r.Int64N(int64(w))))
			s.Prune(p)
			if f := p.Truncate(time.Second); f.After(floor) {
				floor = f
			}
		}
		if got, ok := s.Floor(); ok != !floor.IsZero() || (ok && !got.Equal(floor)) {
			t.Fatalf("step %d: floor %v %v, want %v", step, got, ok, floor)
		}
		at := []time.Time{clock, ts, ts.Add(w), ts.Add(w + 1), ts.Add(-1), clock.Add(time.Duration(r.Int64N(int64(3 * w))))}
		if !floor.IsZero() {
			at = append(at, floor)
			if _, err := s.Eval(floor.Add(-1)); !errors.Is(err, behavior.ErrBeforeFloor) {
				t.Fatalf("step %d: Eval before the floor: %v, want ErrBeforeFloor", step, err)
			}
		}
		for i, q := range at {
			if q.Before(floor) {
				continue
			}
			checkEval(t, step, s, h, q)
			if i < 2 || i == len(at)-1 {
				checkNextChange(t, step, s, h, q)
			}
		}
		s = roundTrip(t, step, s)
	}
}

func checkEval(t *testing.T, step int, s *behavior.State, h *history, q time.Time) {
	t.Helper()
	got, err := s.Eval(q)
	if err != nil {
		t.Fatalf("step %d: Eval(%v): %v", step, q, err)
	}
	want := h.answer(q)
	if got.AtLeast {
		if got.Figure > want.Figure || got.Matched != want.Matched {
			t.Fatalf("step %d: Eval(%v) = %+v, want %+v (a lower bound)", step, q.Sub(t0), got, want)
		}
		return
	}
	if got != want {
		t.Fatalf("step %d: Eval(%v) = %+v, want %+v", step, q.Sub(t0), got, want)
	}
}

func checkNextChange(t *testing.T, step int, s *behavior.State, h *history, q time.Time) {
	t.Helper()
	at, ok, err := s.NextChange(q)
	if err != nil {
		t.Fatalf("step %d: NextChange(%v): %v", step, q, err)
	}
	was := h.answer(q).Matched
	for _, c := range h.changes(q.UnixNano()) {
		ct := time.Unix(0, c)
		if ok && !ct.Before(at) {
			break
		}
		if h.answer(ct).Matched != was {
			t.Fatalf("step %d: NextChange(%v) = %v %v, but the answer changes at %v", step, q.Sub(t0), at.Sub(t0), ok, ct.Sub(t0))
		}
	}
	if !ok {
		return
	}
	if !at.After(q) {
		t.Fatalf("step %d: NextChange(%v) = %v, not after", step, q.Sub(t0), at.Sub(t0))
	}
	if h.answer(at).Matched == was {
		t.Fatalf("step %d: NextChange(%v) = %v, but the answer is still %v there", step, q.Sub(t0), at.Sub(t0), was)
	}
	if h.answer(at.Add(-1)).Matched != was {
		t.Fatalf("step %d: NextChange(%v) = %v, but the answer changed a nanosecond before", step, q.Sub(t0), at.Sub(t0))
	}
	if got, _ := s.Eval(at); got.Matched == was {
		t.Fatalf("step %d: Eval at NextChange %v still %v", step, at.Sub(t0), was)
	}
}

func roundTrip(t *testing.T, step int, s *behavior.State) *behavior.State {
	t.Helper()
	b, err := s.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	d, _ := behavior.New(s.Spec())
	if err := d.UnmarshalBinary(b); err != nil {
		t.Fatalf("step %d: UnmarshalBinary(MarshalBinary()): %v (%x)", step, err, b)
	}
	b2, _ := d.MarshalBinary()
	if !bytes.Equal(b, b2) {
		t.Fatalf("step %d: re-encoding differs:\n%x\n%x", step, b, b2)
	}
	return d
}
