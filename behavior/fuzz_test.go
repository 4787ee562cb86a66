package behavior_test

import (
	"bytes"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/segmentd/segmentd/behavior"
)

func fuzzSpec(fn uint8, windowed bool) behavior.Spec {
	s := behavior.Spec{Func: behavior.Func(fn % 5), Op: behavior.GTE, Value: 2}
	if windowed {
		s.Within = time.Hour
	}
	return s
}

// FuzzUnmarshalBinary: any bytes either decode or fail with an error,
// never a panic; a failed decode leaves the state as it was; what decodes
// re-encodes to bytes that decode to the same state and answers.
func FuzzUnmarshalBinary(f *testing.F) {
	for seed := range 40 {
		r := rand.New(rand.NewPCG(uint64(seed), 1))
		fn, windowed := uint8(seed%5), seed%2 == 0
		s, _ := behavior.New(fuzzSpec(fn, windowed))
		clock := t0
		for range r.IntN(30) {
			clock = clock.Add(time.Duration(r.IntN(600)) * time.Second)
			s.Add(clock.Add(-time.Duration(r.Int64N(int64(2*time.Hour)))), randomValue(r), true)
			if r.IntN(3) == 0 {
				s.Prune(clock.Add(-time.Minute))
			}
		}
		b, _ := s.MarshalBinary()
		f.Add(fn, windowed, b)
	}
	f.Add(uint8(0), false, []byte{})
	f.Add(uint8(1), false, []byte{0x11, 0x20, 0x00, 0x01, 0x07})
	f.Fuzz(func(t *testing.T, fn uint8, windowed bool, data []byte) {
		spec := fuzzSpec(fn, windowed)
		s, _ := behavior.New(spec)
		s.Add(t0, 1, true)
		before, _ := s.MarshalBinary()
		if err := s.UnmarshalBinary(data); err != nil {
			if after, _ := s.MarshalBinary(); !bytes.Equal(before, after) {
				t.Fatalf("a failed decode (%v) changed the state", err)
			}
			return
		}
		b2, _ := s.MarshalBinary()
		s2, _ := behavior.New(spec)
		if err := s2.UnmarshalBinary(b2); err != nil {
			t.Fatalf("re-encoding %x does not decode: %v", b2, err)
		}
		if b3, _ := s2.MarshalBinary(); !bytes.Equal(b2, b3) {
			t.Fatalf("re-encoding is not stable:\n%x\n%x", b2, b3)
		}
		at := t0
		if f, ok := s.Floor(); ok && f.After(at) {
			at = f
		}
		r1, err1 := s.Eval(at)
		r2, err2 := s2.Eval(at)
		if r1 != r2 || (err1 == nil) != (err2 == nil) {
			t.Fatalf("decoded states differ at %v: %+v %v, %+v %v", at, r1, err1, r2, err2)
		}
		n1, ok1, _ := s.NextChange(at)
		n2, ok2, _ := s2.NextChange(at)
		if ok1 != ok2 || !n1.Equal(n2) {
			t.Fatalf("decoded states' NextChange differ: %v %v, %v %v", n1, ok1, n2, ok2)
		}
		s.Add(at, 3, true)
		s.Prune(at.Add(time.Hour))
	})
}
