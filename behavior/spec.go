package behavior

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// Func is what a predicate measures over the events in its window.
type Func uint8

// The zero Func is Count, so a Spec with only Op and Value set counts.
const (
	Count Func = iota // how many events
	Sum               // the sum of their values
	Avg               // the mean of their values
	Min               // the least value
	Max               // the greatest value
	numFuncs
)

var funcNames = [...]string{"COUNT", "SUM", "AVG", "MIN", "MAX"}

func (f Func) String() string {
	if f < numFuncs {
		return funcNames[f]
	}
	return fmt.Sprintf("Func(%d)", uint8(f))
}

// Op compares the measured figure with the Spec's operand(s).
type Op uint8

const (
	EQ Op = iota
	NEQ
	GT
	GTE
	LT
	LTE
	Between // Value <= figure <= High, both ends inclusive
	numOps
)

var opNames = [...]string{"EQ", "NEQ", "GT", "GTE", "LT", "LTE", "BETWEEN"}

func (o Op) String() string {
	if o < numOps {
		return opNames[o]
	}
	return fmt.Sprintf("Op(%d)", uint8(o))
}

// MaxValue bounds the magnitude of an aggregated value. A value beyond it
// is treated like a non-numeric one (not counted): the bound keeps every
// exact sum of up to 10^18 values finite, so sums never overflow to
// infinity and comparisons stay exact.
const MaxValue = 1e280

// Spec is one predicate's measurement: what to measure over which window,
// and the comparison that turns the figure into an answer. The event name,
// the where filter and the extraction of the property are the caller's:
// a State only sees events that already passed them.
type Spec struct {
	// Within is the window's length; the window at instant t is
	// [t-Within, t], both ends inclusive, like WITHIN_LAST. Zero means all
	// time: every event at or before t.
	Within time.Duration
	Func   Func
	Op     Op
	// Value is the operand; for Between, the low end, and High the high.
	Value, High float64
}

// Validate reports a Spec that cannot be evaluated: an unknown Func or Op,
// a negative window, a non-finite operand, or Between with Value > High.
func (s Spec) Validate() error {
	switch {
	case s.Func >= numFuncs:
		return fmt.Errorf("behavior: unknown function %d", s.Func)
	case s.Op >= numOps:
		return fmt.Errorf("behavior: unknown operator %d", s.Op)
	case s.Within < 0:
		return errors.New("behavior: negative window")
	case math.IsNaN(s.Value) || math.IsInf(s.Value, 0):
		return errors.New("behavior: operand is not a finite number")
	}
	if s.Op == Between {
		if math.IsNaN(s.High) || math.IsInf(s.High, 0) {
			return errors.New("behavior: BETWEEN high end is not a finite number")
		}
		if s.Value > s.High {
			return errors.New("behavior: BETWEEN low end above high end")
		}
	}
	return nil
}

// compare applies the comparison to a figure.
func (s *Spec) compare(x float64) bool {
	switch s.Op {
	case EQ:
		return x == s.Value
	case NEQ:
		return x != s.Value
	case GT:
		return x > s.Value
	case GTE:
		return x >= s.Value
	case LT:
		return x < s.Value
	case LTE:
		return x <= s.Value
	case Between:
		return s.Value <= x && x <= s.High
	}
	return false
}

// noCap means a count comparison's answer keeps depending on the count for
// every count we could hold (an operand of 2^53 or more).
const noCap = math.MaxUint64

// countCap is the least count c such that the comparison gives the same
// answer for every count n >= c: knowing min(n, c) is then enough to
// answer, so a windowed count keeps at most c of the events at or before
// its floor (see State). Per operator, with operand k:
//
//	GTE k, LT k:               ceil(k)   (n >= ceil(k) all agree: true for GTE, false for LT)
//	GT k, LTE k, EQ k, NEQ k:  floor(k)+1 (n > k all agree)
//	BETWEEN [a, b]:            floor(b)+1
//
// and 0 when the operand is negative enough that every count agrees. The
// result need not be the least for non-integer operands (EQ 2.5 is never
// true, yet gives 3); it is always sufficient, which is what exactness
// needs. TestCountCap checks both by brute force.
func (s *Spec) countCap() uint64 {
	ceilPos := func(x float64) uint64 {
		if x <= 0 {
			return 0
		}
		if x >= 1<<53 {
			return noCap
		}
		return uint64(math.Ceil(x))
	}
	floorPlus1 := func(x float64) uint64 {
		if x < 0 {
			return 0
		}
		if x >= 1<<53 {
			return noCap
		}
		return uint64(math.Floor(x)) + 1
	}
	switch s.Op {
	case GTE, LT:
		return ceilPos(s.Value)
	case GT, LTE, EQ, NEQ:
		return floorPlus1(s.Value)
	case Between:
		return floorPlus1(s.High)
	}
	return noCap
}
