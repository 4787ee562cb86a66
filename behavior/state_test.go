package behavior_test

import (
	"errors"
	"math"
	"testing"
	"time"

	"github.com/segmentd/segmentd/behavior"
)

const day = 24 * time.Hour

func newState(t *testing.T, spec behavior.Spec) *behavior.State {
	t.Helper()
	s, err := behavior.New(spec)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func eval(t *testing.T, s *behavior.State, at time.Time) behavior.Result {
	t.Helper()
	r, err := s.Eval(at)
	if err != nil {
		t.Fatalf("Eval(%v): %v", at, err)
	}
	return r
}

func next(t *testing.T, s *behavior.State, at time.Time) (time.Time, bool) {
	t.Helper()
	n, ok, err := s.NextChange(at)
	if err != nil {
		t.Fatalf("NextChange(%v): %v", at, err)
	}
	return n, ok
}

func TestCountComparisons(t *testing.T) {
	t.Parallel()
	// Two events in the window, one before it.
	tests := []struct {
		op          behavior.Op
		value, high float64
		want        bool
	}{
		{behavior.EQ, 2, 0, true},
		{behavior.EQ, 3, 0, false},
		{behavior.NEQ, 2, 0, false},
		{behavior.NEQ, 0, 0, true},
		{behavior.GT, 1, 0, true},
		{behavior.GT, 2, 0, false},
		{behavior.GTE, 2, 0, true},
		{behavior.GTE, 3, 0, false},
		{behavior.GTE, 1.5, 0, true},
		{behavior.LT, 3, 0, true},
		{behavior.LT, 2, 0, false},
		{behavior.LTE, 2, 0, true},
		{behavior.LTE, 1, 0, false},
		{behavior.Between, 2, 3, true},
		{behavior.Between, 0, 1, false},
		{behavior.Between, 3, 9, false},
	}
	for _, tt := range tests {
		t.Run(tt.op.String(), func(t *testing.T) {
			t.Parallel()
			s := newState(t, behavior.Spec{Within: 7 * day, Op: tt.op, Value: tt.value, High: tt.high})
			s.Add(t0.Add(-8*day), 0, false)
			s.Add(t0.Add(-3*day), 0, false)
			s.Add(t0, 0, false)
			s.Prune(t0)
			// The figure is 2, or a lower bound when the comparison needs less.
			if r := eval(t, s, t0); r.Matched != tt.want || !(r.Figure == 2 || r.AtLeast && r.Figure < 2) {
				t.Errorf("count %v %v (%v) with 2 events: %+v, want matched %v", tt.op, tt.value, tt.high, r, tt.want)
			}
		})
	}
}

func TestAggregates(t *testing.T) {
	t.Parallel()
	tests := []struct {
		fn   behavior.Func
		op   behavior.Op
		v    float64
		want float64
	}{
		{behavior.Sum, behavior.GT, 100, 139.5},
		{behavior.Avg, behavior.EQ, 46.5, 46.5},
		{behavior.Min, behavior.LT, 5, 4},
		{behavior.Max, behavior.GTE, 110, 110},
	}
	for _, tt := range tests {
		t.Run(tt.fn.String(), func(t *testing.T) {
			t.Parallel()
			s := newState(t, behavior.Spec{Within: 30 * day, Func: tt.fn, Op: tt.op, Value: tt.v})
			if r := eval(t, s, t0); r.Defined || r.Matched {
				t.Errorf("%v over no values: %+v, want undefined and false", tt.fn, r)
			}
			s.Add(t0.Add(-40*day), 1000, true) // before the window
			s.Add(t0.Add(-20*day), 25.5, true)
			s.Add(t0.Add(-10*day), 0, false) // no amount: not counted, not even by AVG
			s.Add(t0.Add(-10*day), math.NaN(), true)
			s.Add(t0.Add(-5*day), 4, true)
			s.Add(t0, 110, true)
			r := eval(t, s, t0)
			if !r.Defined || r.Figure != tt.want || !r.Matched {
				t.Errorf("%v: %+v, want figure %v, matched", tt.fn, r, tt.want)
			}
		})
	}
}

// An empty set makes an aggregate false whatever the comparison: SUM EQ 0
// and MAX LT 1 do not hold for a user who bought nothing.
func TestAggregateOfNothingIsFalse(t *testing.T) {
	t.Parallel()
	for _, fn := range []behavior.Func{behavior.Sum, behavior.Avg, behavior.Min, behavior.Max} {
		s := newState(t, behavior.Spec{Within: day, Func: fn, Op: behavior.LTE, Value: 0})
		s.Add(t0.Add(-2*day), -5, true)
		if r := eval(t, s, t0); r.Matched || r.Defined {
			t.Errorf("%v LTE 0 with its only value out of the window: %+v, want false", fn, r)
		}
	}
}

// The window holds both its ends, like WITHIN_LAST: an event exactly 7d
// old still counts, and leaves a nanosecond later.
func TestWindowEdges(t *testing.T) {
	t.Parallel()
	s := newState(t, behavior.Spec{Within: 7 * day, Op: behavior.GTE, Value: 3})
	s.Add(t0, 0, false)
	// An event at the instant evaluated counts in its own window.
	if r := eval(t, s, t0); r.Figure != 1 {
		t.Errorf("at the event's own instant: %+v, want 1", r)
	}
	for i := 1; i < 3; i++ {
		s.Add(t0.Add(time.Duration(i)*day), 0, false)
	}
	s.Prune(t0.Add(2 * day))
	if r := eval(t, s, t0.Add(2*day)); !r.Matched || r.Figure != 3 {
		t.Fatalf("3 purchases in 3 days: %+v, want matched", r)
	}
	if r := eval(t, s, t0.Add(7*day)); !r.Matched {
		t.Errorf("the first purchase exactly 7d old: %+v, want still matched", r)
	}
	if r := eval(t, s, t0.Add(7*day+1)); r.Matched || r.Figure != 2 {
		t.Errorf("a nanosecond later: %+v, want 2, not matched", r)
	}
	if at, ok := next(t, s, t0.Add(2*day)); !ok || !at.Equal(t0.Add(7*day+1)) {
		t.Errorf("NextChange = %v %v, want %v", at, ok, t0.Add(7*day+1))
	}
}

// "No login in 14 days": COUNT EQ 0 turns true when the last login falls
// out, at the nanosecond.
func TestWinBack(t *testing.T) {
	t.Parallel()
	s := newState(t, behavior.Spec{Within: 14 * day, Op: behavior.EQ, Value: 0})
	if r := eval(t, s, t0); !r.Matched {
		t.Fatalf("never logged in: %+v, want matched", r)
	}
	s.Add(t0, 0, false)
	s.Add(t0.Add(-3*day), 0, false)
	s.Prune(t0)
	if r := eval(t, s, t0); r.Matched {
		t.Fatalf("logged in now: %+v, want not matched", r)
	}
	at, ok := next(t, s, t0)
	if want := t0.Add(14*day + 1); !ok || !at.Equal(want) {
		t.Fatalf("NextChange = %v %v, want %v (the later login falls out)", at, ok, want)
	}
	if r := eval(t, s, at); !r.Matched {
		t.Errorf("at %v: %+v, want matched", at, r)
	}
	if _, ok := next(t, s, at); ok {
		t.Errorf("nothing left to fall out, yet a NextChange")
	}
}

// A late event counts by its timestamp; one older than the window at the
// floor changes nothing; evaluating before the floor is refused.
func TestLateEvents(t *testing.T) {
	t.Parallel()
	s := newState(t, behavior.Spec{Within: 7 * day, Op: behavior.GTE, Value: 3})
	s.Add(t0.Add(-1*day), 0, false)
	s.Add(t0.Add(-2*day), 0, false)
	s.Prune(t0)
	if r := eval(t, s, t0); r.Matched {
		t.Fatalf("2 purchases: %+v", r)
	}
	before, _ := s.MarshalBinary()
	s.Add(t0.Add(-7*day-time.Second), 0, false) // older than the window at the floor
	if after, _ := s.MarshalBinary(); string(after) != string(before) {
		t.Errorf("an event older than the window changed the state")
	}
	s.Add(t0.Add(-6*day), 0, false) // late, but in the window
	if r := eval(t, s, t0); !r.Matched || r.Figure != 3 {
		t.Errorf("a late purchase 6 days ago: %+v, want 3, matched", r)
	}
	if at, ok := next(t, s, t0); !ok || !at.Equal(t0.Add(day+1)) {
		t.Errorf("NextChange = %v, want the late one's exit %v", at, t0.Add(day+1))
	}
	if _, err := s.Eval(t0.Add(-time.Nanosecond)); !errors.Is(err, behavior.ErrBeforeFloor) {
		t.Errorf("Eval before the floor: %v, want ErrBeforeFloor", err)
	}
	if _, _, err := s.NextChange(t0.Add(-time.Hour)); !errors.Is(err, behavior.ErrBeforeFloor) {
		t.Errorf("NextChange before the floor: %v, want ErrBeforeFloor", err)
	}
}

// Truncation: past the floor, a windowed count keeps only as many of the
// newest events as its comparison needs, and says the figure is a lower
// bound; a late event older than the kept ones still gets the right
// answer.
func TestCountKeepsOnlyWhatItNeeds(t *testing.T) {
	t.Parallel()
	tests := []struct {
		op   behavior.Op
		v, h float64
		keep int
	}{
		{behavior.GTE, 3, 0, 3},
		{behavior.GT, 3, 0, 4},
		{behavior.EQ, 3, 0, 4},
		{behavior.NEQ, 3, 0, 4},
		{behavior.LT, 3, 0, 3},
		{behavior.LTE, 3, 0, 4},
		{behavior.Between, 1, 5, 6},
		{behavior.GTE, 0, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.op.String(), func(t *testing.T) {
			t.Parallel()
			s := newState(t, behavior.Spec{Within: 7 * day, Op: tt.op, Value: tt.v, High: tt.h})
			for i := range 100 {
				s.Add(t0.Add(-time.Duration(i)*time.Hour), 0, false)
			}
			s.Prune(t0)
			if s.Len() != tt.keep {
				t.Errorf("kept %d entries, want %d", s.Len(), tt.keep)
			}
			if r := eval(t, s, t0); !r.AtLeast || int(r.Figure) != tt.keep {
				t.Errorf("%+v, want figure %d at least", r, tt.keep)
			}
		})
	}
	// GTE 2, events every 12h back to t0-4.5d: the floor keeps t0 and
	// t0-12h. A late event at t0-2d, older than both, is dropped too, and
	// the answer stays exact: wherever it is in a window, the two kept
	// ones (newer, at or before the floor) are as well.
	s := newState(t, behavior.Spec{Within: 7 * day, Op: behavior.GTE, Value: 2})
	for i := range 10 {
		s.Add(t0.Add(-time.Duration(i)*day/2), 0, false)
	}
	s.Prune(t0)
	s.Add(t0.Add(-2*day), 0, false)
	if s.Len() != 2 {
		t.Errorf("GTE 2 kept %d, want 2", s.Len())
	}
	at := t0.Add(5*day - 1)
	if r := eval(t, s, at); !r.Matched {
		t.Errorf("late event under truncation: %+v", r)
	}
}

// Sums are exact: after 1e16 leaves the window, what is left is 1, not
// the 0 a running float64 sum would hold.
func TestExactSums(t *testing.T) {
	t.Parallel()
	s := newState(t, behavior.Spec{Within: 10 * time.Second, Func: behavior.Sum, Op: behavior.EQ, Value: 1})
	s.Add(t0, 1e16, true)
	s.Add(t0.Add(time.Second), 1, true)
	s.Add(t0.Add(2*time.Second), -1e16, true)
	if r := eval(t, s, t0.Add(2*time.Second)); r.Figure != 1 || !r.Matched {
		t.Errorf("1e16 + 1 - 1e16: %+v, want 1", r)
	}
	if at, ok := next(t, s, t0.Add(2*time.Second)); !ok || !at.Equal(t0.Add(10*time.Second+1)) {
		t.Errorf("NextChange = %v %v, want 1e16 leaving at %v", at, ok, t0.Add(10*time.Second+1))
	}
	if r := eval(t, s, t0.Add(10*time.Second+1)); r.Figure != -1e16+1 {
		t.Errorf("after 1e16 left: %v, want %v", r.Figure, -1e16+1)
	}
	avg := newState(t, behavior.Spec{Func: behavior.Avg, Op: behavior.EQ, Value: 0.2})
	for _, v := range []float64{0.1, 0.2, 0.3} {
		avg.Add(t0, v, true)
	}
	if r := eval(t, avg, t0); !r.Matched {
		t.Errorf("AVG(0.1, 0.2, 0.3) = %v, want 0.2", r.Figure)
	}
}

// A future-dated event (clock skew) enters the window at its timestamp.
func TestFutureEventEntersAtItsTimestamp(t *testing.T) {
	t.Parallel()
	s := newState(t, behavior.Spec{Within: time.Hour, Op: behavior.GTE, Value: 1})
	s.Add(t0.Add(time.Minute), 0, false)
	s.Prune(t0)
	if r := eval(t, s, t0); r.Matched {
		t.Fatalf("before the event's timestamp: %+v", r)
	}
	if at, ok := next(t, s, t0); !ok || !at.Equal(t0.Add(time.Minute)) {
		t.Errorf("NextChange = %v %v, want %v", at, ok, t0.Add(time.Minute))
	}
}

// All-time windows fold what is at or before the floor: O(1) however long
// the history, and exact.
func TestAllTimeIsConstantSize(t *testing.T) {
	t.Parallel()
	for _, fn := range []behavior.Func{behavior.Count, behavior.Sum, behavior.Avg, behavior.Min, behavior.Max} {
		s := newState(t, behavior.Spec{Func: fn, Op: behavior.GT, Value: 0})
		for i := range 1000 {
			s.Add(t0.Add(-time.Duration(i)*time.Hour), float64(i%97)+0.25, true)
			if i%10 == 0 {
				s.Prune(t0)
			}
		}
		s.Prune(t0)
		b, _ := s.MarshalBinary()
		if s.Len() != 0 || len(b) > 32 {
			t.Errorf("%v all time after 1000 events: %d entries, %d bytes", fn, s.Len(), len(b))
		}
		r := eval(t, s, t0)
		want := map[behavior.Func]float64{behavior.Count: 1000, behavior.Min: 0.25, behavior.Max: 96.25}
		if w, ok := want[fn]; ok && r.Figure != w {
			t.Errorf("%v all time = %v, want %v", fn, r.Figure, w)
		}
		if _, ok := next(t, s, t0); ok {
			t.Errorf("%v all time: a NextChange with nothing in the future", fn)
		}
	}
}

// MIN and MAX keep a monotonic deque: an older value no better than a newer
// one is gone.
func TestMinMaxDeque(t *testing.T) {
	t.Parallel()
	s := newState(t, behavior.Spec{Within: 30 * day, Func: behavior.Min, Op: behavior.LT, Value: 10})
	for i, v := range []float64{5, 9, 3, 7, 8, 8, 12} { // oldest first
		s.Add(t0.Add(time.Duration(i-7)*day), v, true)
	}
	s.Prune(t0)
	// Kept: 3 (day -5), 7 (day -4), 8 (day -2), 12 (day -1).
	if s.Len() != 4 {
		t.Errorf("kept %d, want 4", s.Len())
	}
	if r := eval(t, s, t0.Add(25*day)); r.Figure != 3 {
		t.Errorf("MIN at +25d = %v, want 3", r.Figure)
	}
	if r := eval(t, s, t0.Add(25*day+1)); r.Figure != 7 || !r.Matched {
		t.Errorf("MIN after the 3 left = %+v, want 7", r)
	}
	at, ok := next(t, s, t0)
	if want := t0.Add(-2*day + 30*day + 1); !ok || !at.Equal(want) {
		t.Errorf("NextChange = %v, want %v (the last value under 10 leaves)", at, want)
	}
}

func TestSpecValidate(t *testing.T) {
	t.Parallel()
	bad := []behavior.Spec{
		{Within: -1},
		{Func: 9},
		{Op: 9},
		{Value: math.NaN()},
		{Value: math.Inf(1)},
		{Op: behavior.Between, Value: 3, High: 2},
		{Op: behavior.Between, High: math.NaN()},
	}
	for _, spec := range bad {
		if _, err := behavior.New(spec); err == nil {
			t.Errorf("New(%+v) accepted", spec)
		}
	}
}
