package behavior_test

import (
	"math"
	"math/big"
	"slices"
	"time"

	"github.com/segmentd/segmentd/behavior"
)

// history is every event a state was given, kept sorted, so that answers
// can be recomputed from scratch: the brute-force oracle the state must
// agree with.
type history struct {
	spec behavior.Spec
	evs  []event // sorted by ts
}

type event struct {
	ts  int64
	v   float64
	has bool
}

func (h *history) add(ts time.Time, v float64, has bool) {
	if h.spec.Func != behavior.Count && (!has || !(math.Abs(v) <= behavior.MaxValue)) {
		return // not counted: the oracle never sees it
	}
	e := event{ts: ts.UnixNano(), v: v, has: has}
	i, _ := slices.BinarySearchFunc(h.evs, e.ts, func(a event, t int64) int {
		if a.ts <= t {
			return -1
		}
		return 1
	})
	h.evs = slices.Insert(h.evs, i, e)
}

// in returns the events in the window at t: [t-Within, t], or all up to t.
func (h *history) in(t int64) []event {
	hi, _ := slices.BinarySearchFunc(h.evs, t, func(a event, t int64) int {
		if a.ts <= t {
			return -1
		}
		return 1
	})
	lo := 0
	if h.spec.Within > 0 {
		lb := t - int64(h.spec.Within)
		lo, _ = slices.BinarySearchFunc(h.evs[:hi], lb, func(a event, t int64) int {
			if a.ts < t {
				return -1
			}
			return 1
		})
	}
	return h.evs[lo:hi]
}

// compare is the comparison, written out again so the test does not trust
// the package's own.
func compare(s behavior.Spec, x float64) bool {
	switch s.Op {
	case behavior.EQ:
		return x == s.Value
	case behavior.NEQ:
		return x != s.Value
	case behavior.GT:
		return x > s.Value
	case behavior.GTE:
		return x >= s.Value
	case behavior.LT:
		return x < s.Value
	case behavior.LTE:
		return x <= s.Value
	case behavior.Between:
		return s.Value <= x && x <= s.High
	}
	panic("unknown op")
}

// answer recomputes the result at t from every event: the count, or the
// aggregate with an exact sum rounded once.
func (h *history) answer(t time.Time) behavior.Result {
	evs := h.in(t.UnixNano())
	var r behavior.Result
	if h.spec.Func == behavior.Count {
		r.Defined, r.Figure = true, float64(len(evs))
	} else if len(evs) > 0 {
		r.Defined = true
		switch h.spec.Func {
		case behavior.Sum, behavior.Avg:
			acc := new(big.Float).SetPrec(2200)
			for _, e := range evs {
				acc.Add(acc, new(big.Float).SetFloat64(e.v))
			}
			if h.spec.Func == behavior.Avg {
				acc = new(big.Float).SetPrec(53).Quo(acc, new(big.Float).SetInt64(int64(len(evs))))
			}
			r.Figure, _ = acc.Float64()
		case behavior.Min:
			r.Figure = math.Inf(1)
			for _, e := range evs {
				r.Figure = math.Min(r.Figure, e.v)
			}
		case behavior.Max:
			r.Figure = math.Inf(-1)
			for _, e := range evs {
				r.Figure = math.Max(r.Figure, e.v)
			}
		}
	}
	r.Matched = r.Defined && compare(h.spec, r.Figure)
	return r
}

// changes lists, sorted, every instant after t at which the answer could
// change with no new event: an event entering (its timestamp) or leaving
// (a nanosecond after timestamp+Within).
func (h *history) changes(t int64) []int64 {
	var out []int64
	for _, e := range h.evs {
		if e.ts > t {
			out = append(out, e.ts)
		}
		if h.spec.Within > 0 {
			if x := e.ts + int64(h.spec.Within) + 1; x > t {
				out = append(out, x)
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}
