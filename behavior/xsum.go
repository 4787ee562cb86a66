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

// compress returns x with as few components as it can cheaply have
// (Shewchuk's Compress, in place), so that a sum that has seen many adds
// and subtracts stays at one or two components. It uses the exact
// two-sum throughout, so the value is kept exactly whatever the input.
func (x xsum) compress() xsum {
	if len(x) < 2 {
		return x
	}
	bottom := len(x) - 1
	q := x[bottom]
	for i := len(x) - 2; i >= 0; i-- {
		s, err := twoSum(q, x[i])
		if err != 0 {
			x[bottom] = s
			bottom--
			q = err
		} else {
			q = s
		}
	}
	top := 0
	for i := bottom + 1; i < len(x); i++ {
		s, err := twoSum(x[i], q)
		if err != 0 {
			x[top] = err
			top++
		}
		q = s
	}
	if q != 0 || top == 0 {
		x[top] = q
		top++
	}
	if top == 1 && x[0] == 0 {
		return x[:0]
	}
	return x[:top]
}

func twoSum(a, b float64) (s, err float64) {
	s = a + b
	bv := s - a
	av := s - bv
	return s, (a - av) + (b - bv)
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
// whatever the order the values were added in. The fast path sums the
// components in float64 and proves the result is the nearest by bounding
// the exact residual; only when the residual is too close to half a unit
// in the last place does it round with big.Float.
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
	var a float64
	for _, c := range x {
		a += c
	}
	var buf [8]float64
	r := append(xsum(buf[:0]), x...).add(-a)
	if nearest(a, r, 1) {
		return a
	}
	f, _ := x.big().Float64()
	return f
}

// nearest reports whether a is certainly the float64 nearest to a+r/n,
// for an exact residual expansion r: |r/n| is below half the gap to a's
// neighbours, with a margin for the rounding of the bound itself.
func nearest(a float64, r xsum, n float64) bool {
	var bound float64
	for _, c := range r {
		bound += math.Abs(c)
	}
	if bound == 0 {
		return true
	}
	if a == 0 || math.IsInf(a, 0) {
		return false
	}
	gap := math.Min(math.Abs(a-math.Nextafter(a, math.Inf(-1))), math.Abs(math.Nextafter(a, math.Inf(1))-a))
	return bound*(1+1e-10) < n*gap/2*(1-1e-10)
}

// mean is the sum divided by n, rounded once to the nearest float64. The
// fast path divides the rounded sum and checks, with an exact product
// (FMA) and residual, that the quotient is the nearest to the exact mean.
func (x xsum) mean(n uint64) float64 {
	if n == 0 {
		return math.NaN()
	}
	if !x.finite() {
		return x.value() / float64(n)
	}
	if n < 1<<53 {
		fn := float64(n)
		m := x.value() / fn
		p := m * fn
		e := math.FMA(m, fn, -p) // m*n == p+e exactly
		var buf [8]float64
		r := append(xsum(buf[:0]), x...).add(-p).add(-e) // S - m*n, exactly
		if !math.IsInf(p, 0) && nearest(m, r, fn) {
			return m
		}
	}
	q := new(big.Float).SetPrec(53).Quo(x.big(), new(big.Float).SetUint64(n))
	f, _ := q.Float64()
	return f
}
