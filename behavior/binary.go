package behavior

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// The encoding (all integers varints, as encoding/binary writes them):
//
//	byte    version<<4 | Func          version 1
//	byte    flags                      bits 0-1 floor unit, bit 2 floor set,
//	                                   bits 3-4 entry unit, bit 5 base present,
//	                                   bit 6 every entry's n is 1 (Count)
//	varint  floor / floor unit         if set
//	uvarint number of entries
//	per entry:
//	  first: varint ts/unit - floorDiv(floor, unit) (floor 0 if unset);
//	  others: uvarint (ts - previous ts)/unit
//	  Count: uvarint n (unless bit 6); others: value
//	base, if present: uvarint n; Sum, Avg: uvarint k, k values; Min, Max: value
//
// A unit is the coarsest of 1s, 1ms, 1µs and 1ns that divides every
// timestamp it scales: timestamps usually come with millisecond precision,
// so deltas cost 5 bytes instead of 8. A value is uvarint(zigzag(m)<<3 | k)
// when it is exactly m/10^k for k < 7 and |m| < 2^53 (12.34 is 3 bytes),
// else the byte 7 and the 8 bytes of the float64, little-endian.
//
// The Spec is not encoded, only its Func (checked on decoding): a state is
// valid only for the Spec it was built with, and the caller stores that.
const encVersion = 1

const (
	flagFloorSet = 1 << 2
	flagBase     = 1 << 5
	flagAllOne   = 1 << 6
)

var units = [4]int64{1e9, 1e6, 1e3, 1}

var pow10 = [7]float64{1, 10, 100, 1e3, 1e4, 1e5, 1e6}

// maxComponents bounds a decoded expansion: a real one has at most about
// 40 components (2098 bits of exponent range in 53-bit pieces).
const maxComponents = 48

// maxSum bounds a component of an encoded all-time sum: MaxValue times
// more values than any state will see.
const maxSum = 1e300

// unitFor returns the index in units of the coarsest unit dividing every x.
func unitFor(xs ...int64) int {
	u := 0
	for _, x := range xs {
		for x%units[u] != 0 {
			u++
		}
	}
	return u
}

func floorDiv(a, m int64) int64 { return (a - mod(a, m)) / m }

// MarshalBinary encodes the state compactly for storage in a row; it never
// fails.
func (s *State) MarshalBinary() ([]byte, error) {
	return s.AppendBinary(make([]byte, 0, 16+6*len(s.ents)))
}

// AppendBinary appends the encoding of MarshalBinary to b.
func (s *State) AppendBinary(b []byte) ([]byte, error) {
	var flags byte
	var fu int
	if s.floor != noFloor {
		flags |= flagFloorSet
		fu = unitFor(s.floor)
	}
	eu := 0
	allOne := true
	for _, e := range s.ents {
		for e.ts%units[eu] != 0 {
			eu++
		}
		allOne = allOne && e.n == 1
	}
	flags |= byte(fu) | byte(eu)<<3
	if s.base.n > 0 {
		flags |= flagBase
	}
	if s.spec.Func == Count && allOne {
		flags |= flagAllOne
	}
	b = append(b, encVersion<<4|byte(s.spec.Func), flags)
	if s.floor != noFloor {
		b = binary.AppendVarint(b, s.floor/units[fu])
	}
	b = binary.AppendUvarint(b, uint64(len(s.ents)))
	u := units[eu]
	var prev int64
	for i, e := range s.ents {
		if i == 0 {
			var f int64
			if s.floor != noFloor {
				f = floorDiv(s.floor, u)
			}
			b = binary.AppendVarint(b, e.ts/u-f)
		} else {
			b = binary.AppendUvarint(b, uint64(e.ts/u-prev/u))
		}
		prev = e.ts
		if s.spec.Func == Count {
			if !allOne {
				b = binary.AppendUvarint(b, e.n)
			}
		} else {
			b = appendValue(b, e.v)
		}
	}
	if s.base.n > 0 {
		b = binary.AppendUvarint(b, s.base.n)
		switch s.spec.Func {
		case Sum, Avg:
			b = binary.AppendUvarint(b, uint64(len(s.base.sum)))
			for _, c := range s.base.sum {
				b = appendValue(b, c)
			}
		case Min, Max:
			b = appendValue(b, s.base.v)
		}
	}
	return b, nil
}

func appendValue(b []byte, v float64) []byte {
	for k, p := range pow10 {
		m := math.Round(v * p)
		if math.Abs(m) < 1<<53 && math.Float64bits(m/p) == math.Float64bits(v) {
			z := uint64(int64(m)<<1) ^ uint64(int64(m)>>63)
			return binary.AppendUvarint(b, z<<3|uint64(k))
		}
	}
	b = append(b, 7)
	return binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("behavior: bad state encoding: %s", what)
	}
}

func (d *decoder) uvarint(what string) uint64 {
	if d.err != nil {
		return 0
	}
	x, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail(what)
		return 0
	}
	d.b = d.b[n:]
	return x
}

func (d *decoder) varint(what string) int64 {
	if d.err != nil {
		return 0
	}
	x, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail(what)
		return 0
	}
	d.b = d.b[n:]
	return x
}

func (d *decoder) value(what string, limit float64) float64 {
	x := d.uvarint(what)
	if d.err != nil {
		return 0
	}
	var v float64
	switch k := x & 7; {
	case k < 7:
		z := x >> 3
		m := int64(z>>1) ^ -int64(z&1)
		if m >= 1<<53 || m <= -(1<<53) {
			d.fail(what)
			return 0
		}
		v = float64(m) / pow10[k]
	case x == 7:
		if len(d.b) < 8 {
			d.fail(what)
			return 0
		}
		v = math.Float64frombits(binary.LittleEndian.Uint64(d.b))
		d.b = d.b[8:]
	default:
		d.fail(what)
		return 0
	}
	if !(math.Abs(v) <= limit) {
		d.fail(what + " out of range")
	}
	return v
}

// scale returns (base+x)*unit, false if that leaves the years unixNano
// accepts. The sum wraps on overflow on purpose: the encoder's
// differences wrap the same way, so a difference too large for an int64
// (an entry in 1700 under a floor in 2250) still decodes to its timestamp.
func scale(base, x, unit int64) (int64, bool) {
	lim := int64(9_000_000_000) * (1e9 / unit)
	q := base + x
	if q <= -lim || q >= lim {
		return 0, false
	}
	return q * unit, true
}

// UnmarshalBinary replaces the state with the one encoded in data. s must
// come from New with the Spec the encoding was made under: the encoding
// holds only the Func, and a mismatch is an error. Bad input is an error,
// never a panic; on error s is unchanged.
func (s *State) UnmarshalBinary(data []byte) error {
	if len(data) < 2 {
		return errors.New("behavior: bad state encoding: too short")
	}
	if data[0]>>4 != encVersion {
		return fmt.Errorf("behavior: bad state encoding: version %d", data[0]>>4)
	}
	if f := Func(data[0] & 15); f != s.spec.Func {
		return fmt.Errorf("behavior: state encoded for %v, decoding for %v", f, s.spec.Func)
	}
	flags := data[1]
	if flags&0x80 != 0 || (flags&flagAllOne != 0 && s.spec.Func != Count) {
		return errors.New("behavior: bad state encoding: flags")
	}
	d := &decoder{b: data[2:]}
	floor := int64(noFloor)
	if flags&flagFloorSet != 0 {
		fu := units[flags&3]
		f, ok := scale(0, d.varint("floor"), fu)
		if !ok && d.err == nil {
			d.fail("floor out of range")
		}
		floor = f
	}
	count := d.uvarint("entry count")
	if count > uint64(len(d.b)) {
		d.fail("entry count")
	}
	if d.err != nil {
		return d.err
	}
	u := units[(flags>>3)&3]
	ents := make([]entry, 0, count)
	var prev int64
	for i := uint64(0); i < count && d.err == nil; i++ {
		var ts int64
		var ok bool
		if i == 0 {
			var f int64
			if floor != noFloor {
				f = floorDiv(floor, u)
			}
			ts, ok = scale(f, d.varint("timestamp"), u)
		} else {
			delta := d.uvarint("timestamp delta")
			ts, ok = scale(prev/u, int64(delta), u)
			if ok && ts < prev {
				d.fail("timestamps out of order")
			}
			if ok && ts == prev && s.spec.Func != Sum && s.spec.Func != Avg {
				d.fail("repeated timestamp")
			}
		}
		if !ok {
			d.fail("timestamp out of range")
		}
		e := entry{ts: ts, n: 1}
		if s.spec.Func == Count {
			if flags&flagAllOne == 0 {
				e.n = d.uvarint("count")
				if e.n == 0 {
					d.fail("zero count")
				}
			}
		} else {
			e.v = d.value("value", MaxValue)
		}
		ents = append(ents, e)
		prev = ts
	}
	var b base
	if flags&flagBase != 0 && s.spec.Within != 0 {
		d.fail("base in a windowed state")
	}
	if flags&flagBase != 0 {
		b.n = d.uvarint("base count")
		if b.n == 0 {
			d.fail("base count")
		}
		switch s.spec.Func {
		case Sum, Avg:
			k := d.uvarint("base components")
			if k > maxComponents {
				d.fail("base components")
				break
			}
			b.sum = make(xsum, 0, k)
			for j := uint64(0); j < k && d.err == nil; j++ {
				// Kept as written: later adds are exact whatever the
				// components, and renormalising would change the bytes.
				c := d.value("base component", maxSum)
				if c == 0 {
					d.fail("zero base component")
				}
				b.sum = append(b.sum, c)
			}
		case Min, Max:
			b.v = d.value("base value", MaxValue)
		}
	}
	if d.err == nil && len(d.b) > 0 {
		d.fail("trailing bytes")
	}
	if d.err != nil {
		return d.err
	}
	s.floor, s.ents, s.base = floor, ents, b
	return nil
}
