package behavior

import (
	"math"
	"math/big"
	"math/rand/v2"
	"testing"
)

func bigRound(vals []float64, n uint64) float64 {
	acc := new(big.Float).SetPrec(exactPrec)
	for _, v := range vals {
		acc.Add(acc, new(big.Float).SetFloat64(v))
	}
	if n > 0 {
		acc = new(big.Float).SetPrec(53).Quo(acc, new(big.Float).SetUint64(n))
	}
	f, _ := acc.Float64()
	return f
}

// The fast paths of value and mean must give the correctly rounded
// result, also where summing the components in float64 does not: 1 +
// 2^-53 + 2^-160 is nearer 1+2^-52 than 1, yet 2^-160 + 2^-53 + 1 rounds
// to 1.
func TestXsumRoundsOnce(t *testing.T) {
	t.Parallel()
	x := xsum{0x1p-160, 0x1p-53, 1}
	if got, want := x.value(), 1+0x1p-52; got != want {
		t.Errorf("value of 1 + 2^-53 + 2^-160 = %v, want %v", got, want)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 20000 {
		var vals []float64
		var x xsum
		for range 1 + r.IntN(12) {
			v := []float64{0.1, 0.2, 0.3, 1e16, -1e16, 1, 0x1p-53, 3, 1e-3}[r.IntN(9)] * float64(1+r.IntN(7))
			if r.IntN(2) == 0 {
				v = -v
			}
			vals = append(vals, v)
			x = x.add(v)
			if r.IntN(3) == 0 {
				x = x.compress()
			}
		}
		if got, want := x.value(), bigRound(vals, 0); got != want {
			t.Fatalf("case %d: value of %v = %v, want %v", i, vals, got, want)
		}
		n := uint64(len(vals))
		if got, want := x.mean(n), bigRound(vals, n); got != want && !(math.IsNaN(got) && math.IsNaN(want)) {
			t.Fatalf("case %d: mean of %v = %v, want %v", i, vals, got, want)
		}
	}
}
