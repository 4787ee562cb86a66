package behavior

import (
	"fmt"
	"math"
	"testing"
)

// TestCountCap checks, by brute force over counts, that the cap is
// sufficient (the answer is the same for every count from the cap on) and,
// for integer operands, the least such count: a count keeps no event more
// than its comparison needs.
func TestCountCap(t *testing.T) {
	t.Parallel()
	for op := EQ; op < numOps; op++ {
		for v := -2.0; v <= 6; v += 0.5 {
			for _, h := range []float64{v, v + 0.5, v + 2} {
				s := Spec{Within: 1, Op: op, Value: v, High: h}
				c := s.countCap()
				name := fmt.Sprintf("%v %v %v: cap %d", op, v, h, c)
				for n := c; n < c+20; n++ {
					if s.compare(float64(n)) != s.compare(float64(c)) {
						t.Errorf("%s, but the answer at %d differs from the answer at the cap", name, n)
					}
				}
				integral := v == math.Trunc(v) && h == math.Trunc(h)
				if c > 0 && integral && s.compare(float64(c-1)) == s.compare(float64(c)) {
					t.Errorf("%s, but %d already answers like every count after it", name, c-1)
				}
			}
		}
	}
	if c := (&Spec{Op: GTE, Value: 1e300}).countCap(); c != noCap {
		t.Errorf("GTE 1e300: cap %d, want none", c)
	}
}
