package behavior

import (
	"math"
	"math/big"
)

// xsum is an exact sum of float64 values, kept as a floating-point
// expansion (Shewchuk, "Adaptive Precision Floating-Point Arithmetic",
// 1997): components of increasing magnitude whose sum, in exact
// arithmetic, is the value. Adding or subtracting a float64 is exact, so a
// sum maintained by adding values as they enter a window and subtracting
// them as they leave equals, to the last bit after rounding, the sum
// recomputed from scratch in any order. That is what lets Eval, NextChange
// and a brute-force recomputation agree at a threshold such as SUM > 100
// with values like 0.1. In practice an expansion has one or two
// components (sums of amounts with cents need one until they pass 2^53
// cents).
type xsum []float64

// add returns x + b, exactly, reusing x's storage (Grow-Expansion with
// zero elimination: each step is an exact two-sum, and h is written at an
// index no greater than the one being read).
func (x xsum) add(b float64) xsum {
	h := x[:0]
	q := b
	for _, e := range x {
		s := q + e
		bv := s - q
		av := s - bv
		err := (q - av) + (e - bv)
		q = s
		if err != 0 {
			h = append(h, err)
		}
	}
	if q != 0 {
		h = append(h, q)
	}
	return h
}

// addAll returns x + y for another expansion y.
func (x xsum) addAll(y xsum) xsum {
	for _, c := range y {
		x = x.add(c)
	}
	return x
}

// exactPrec holds any sum of components within ±MaxValue·2^64 down to the
// smallest subnormal without rounding.
const exactPrec = 2200

func (x xsum) big() *big.Float {
	acc := new(big.Float).SetPrec(exactPrec)
	for _, c := range x {
		acc.Add(acc, new(big.Float).SetFloat64(c))
	}
	return acc
}

// finite reports whether every component is finite (big.Float refuses NaN).
func (x xsum) finite() bool {
	for _, c := range x {
		if math.IsNaN(c) || math.IsInf(c, 0) {
			return false
		}
	}
	return true
}

// value is the sum rounded once to the nearest float64: the same number
// whatever the order the values were added in.
func (x xsum) value() float64 {
	switch {
	case len(x) == 0:
		return 0
	case len(x) == 1:
		return x[0]
	case !x.finite():
		var s float64
		for _, c := range x {
			s += c
		}
		return s
	}
	f, _ := x.big().Float64()
	return f
}

// mean is the sum divided by n, rounded once to the nearest float64.
func (x xsum) mean(n uint64) float64 {
	if n == 0 {
		return math.NaN()
	}
	if !x.finite() {
		return x.value() / float64(n)
	}
	q := new(big.Float).SetPrec(53).Quo(x.big(), new(big.Float).SetUint64(n))
	f, _ := q.Float64()
	return f
}
