package behavior

import (
	"errors"
	"math"
	"sort"
	"time"
)

// ErrBeforeFloor is returned by Eval and NextChange for an instant before
// the state's floor: what the state kept no longer determines the answer
// there. See "The floor" in the package documentation.
var ErrBeforeFloor = errors.New("behavior: instant is before the state's floor")

// noFloor is the floor of a state that was never pruned: every instant is
// answerable and nothing has been folded or dropped.
const noFloor = math.MinInt64

// State is the incremental state of one (user, predicate): what exactness
// needs of the events that passed the predicate's filter, and no more. The
// zero State is not usable; make one with New or decode one with
// UnmarshalBinary on a State made by New with the same Spec. A State is
// not safe for concurrent use.
type State struct {
	spec Spec
	cap  uint64 // Count with a window: see Spec.countCap; noCap otherwise
	// floor is the earliest instant, in Unix nanoseconds, at which answers
	// are still exact; events at or before it are compacted.
	floor int64
	// ents are the kept events, sorted by timestamp: for Count, Min and
	// Max one entry per timestamp (n events, least or greatest value); for
	// Sum and Avg one entry per event, since merging two values at the
	// same nanosecond would gain little and need an expansion per entry.
	ents []entry
	// base folds the events at or before the floor of an all-time window,
	// which never leave it: O(1) whatever the history.
	base base
}

type entry struct {
	ts int64   // Unix nanoseconds
	n  uint64  // Count: events at ts (clamped by truncation); otherwise 1
	v  float64 // Sum, Avg: the value; Min, Max: the least or greatest at ts
}

type base struct {
	n   uint64 // events folded in (Count) or values (aggregates); 0: none
	sum xsum   // Sum, Avg
	v   float64
}

// Result is an answer at one instant.
type Result struct {
	Matched bool
	// Figure is the count, or the aggregate's value; 0 when not Defined.
	Figure float64
	// Defined is false for an aggregate over no values (the predicate is
	// then false, whatever the comparison); a count is always defined.
	Defined bool
	// AtLeast marks a windowed count whose Figure is a lower bound: the
	// state keeps only as many old events as the comparison needs (see
	// Spec.countCap), so "at least 3" is all it knows past 3. Matched is
	// exact either way.
	AtLeast bool
}

// New returns an empty State for spec, or the error of spec.Validate.
func New(spec Spec) (*State, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	s := &State{spec: spec, floor: noFloor, cap: noCap}
	if spec.Func == Count && spec.Within > 0 {
		s.cap = spec.countCap()
	}
	return s, nil
}

// Spec returns the Spec the state was made for.
func (s *State) Spec() Spec { return s.spec }

// Floor returns the state's floor (false: never pruned, every instant is
// answerable).
func (s *State) Floor() (time.Time, bool) {
	if s.floor == noFloor {
		return time.Time{}, false
	}
	return time.Unix(0, s.floor).UTC(), true
}

// Len is the number of kept entries (the folded all-time base aside).
func (s *State) Len() int { return len(s.ents) }

func (s *State) allTime() bool { return s.spec.Within == 0 }

// lowerBound is the earliest timestamp inside the window that ends at t.
func (s *State) lowerBound(t int64) int64 {
	if s.allTime() {
		return math.MinInt64
	}
	return satSub(t, int64(s.spec.Within))
}

// Add records an event that passed the predicate's filter: its timestamp
// and, for an aggregate, its value (hasValue false, or a value that is not
// finite or beyond ±MaxValue, is not counted: the event changes nothing).
// Events may come in any order. An event older than the window at the
// floor (timestamp + Within before the floor) is in no window the state
// can still be asked about and changes nothing; so does an event whose
// time has no Unix nanosecond (before 1678 or after 2262).
func (s *State) Add(ts time.Time, v float64, hasValue bool) {
	t, ok := unixNano(ts)
	if !ok {
		return
	}
	if s.spec.Func == Count {
		v = 0
	} else if !hasValue || !(math.Abs(v) <= MaxValue) {
		return
	}
	past := t <= s.floor
	if past {
		if s.allTime() {
			s.fold(entry{ts: t, n: 1, v: v})
			return
		}
		if satAdd(t, int64(s.spec.Within)) < s.floor {
			return
		}
	}
	i := sort.Search(len(s.ents), func(i int) bool { return s.ents[i].ts > t })
	if i > 0 && s.ents[i-1].ts == t && s.spec.Func != Sum && s.spec.Func != Avg {
		e := &s.ents[i-1]
		switch s.spec.Func {
		case Count:
			e.n = satAddU(e.n, 1)
		case Min:
			e.v = math.Min(e.v, v)
		case Max:
			e.v = math.Max(e.v, v)
		}
	} else {
		s.ents = append(s.ents, entry{})
		copy(s.ents[i+1:], s.ents[i:])
		s.ents[i] = entry{ts: t, n: 1, v: v}
	}
	if past {
		s.compact()
	}
}

// Prune promises that the state will not be asked about instants before
// now, and drops what then can no longer matter. The floor becomes now
// rounded down to the second (never moving back), which keeps it short
// in the encoding and promises only less. Call it with the earliest
// instant still to be evaluated: see "The floor" in the package
// documentation.
func (s *State) Prune(now time.Time) {
	t, ok := unixNano(now)
	if !ok {
		return
	}
	f := t - mod(t, int64(time.Second))
	if f > s.floor {
		s.floor = f
		s.compact()
	}
}

// fold adds one entry at or before the floor into an all-time base.
func (s *State) fold(e entry) {
	b := &s.base
	first := b.n == 0
	switch s.spec.Func {
	case Count:
		b.n = satAddU(b.n, e.n)
		return
	case Sum, Avg:
		b.sum = b.sum.add(e.v)
		if len(b.sum) > 2 {
			b.sum = b.sum.compress()
		}
	case Min:
		if first || e.v < b.v {
			b.v = e.v
		}
	case Max:
		if first || e.v > b.v {
			b.v = e.v
		}
	}
	b.n = satAddU(b.n, 1)
}

// compact applies the invariants to the entries at or before the floor.
//
// Why this is exact, for every instant t >= floor and whatever events are
// added later: the window at t is [t-Within, t] and t >= floor, so of the
// entries at or before the floor ("past") it holds exactly those at or
// after t-Within, a newest-first run of the past; and an entry after
// the floor is kept whole until the floor passes it. Hence:
//
//   - An entry with ts+Within < floor is in no such window: dropped.
//   - All time: every past entry is in every such window, so only their
//     fold (count, exact sum, least, greatest) matters.
//   - Count with cap c (the answer is the same for all counts >= c): the
//     past part of the window is a newest-first run, so keeping the c
//     newest past events gives min(past in window, c) exactly, and
//     min(p, c)+q compares like p+q (if p >= c both are >= c). A late
//     event x at or before the floor: the c newest of (kept ∪ {x}) are
//     the c newest of (all past ∪ {x}), because every dropped event was
//     older than c kept ones, which are still there. A rising floor only
//     adds entries to the past (they were kept whole) and removes the
//     oldest by the first rule, which cannot disturb "the c newest of the
//     rest".
//   - Min (Max likewise): a past entry e with a newer past entry f whose
//     value is <= e's is in a window only when f is too (f is newer and
//     both are at or before the floor <= t), so e never decides the
//     least: dropped. What stays rises strictly from oldest to newest, the
//     monotonic deque. A late event only adds candidates, and it removes
//     only entries it dominates by the same argument.
//   - Sum, Avg: each past value leaves the window at its own instant, so
//     all stay (one entry per event in the window: the price of exact
//     sums; see the package documentation for the bytes).
func (s *State) compact() {
	p := sort.Search(len(s.ents), func(i int) bool { return s.ents[i].ts > s.floor })
	if p == 0 {
		return
	}
	if s.allTime() {
		for _, e := range s.ents[:p] {
			s.fold(e)
		}
		s.ents = s.cut(0, p)
		return
	}
	lb := satSub(s.floor, int64(s.spec.Within))
	q := sort.Search(p, func(i int) bool { return s.ents[i].ts >= lb })
	switch s.spec.Func {
	case Count:
		// Walk newest first; keep until c events are held.
		var held uint64
		i := p
		for i > q && held < s.cap {
			i--
			e := &s.ents[i]
			if e.n > s.cap-held {
				e.n = s.cap - held
			}
			held += e.n
		}
		q = i
	case Min, Max:
		// Keep an entry only if it beats every newer past entry.
		w := p
		for i := p - 1; i >= q; i-- {
			e := s.ents[i]
			if w == p || (s.spec.Func == Min && e.v < s.ents[w].v) || (s.spec.Func == Max && e.v > s.ents[w].v) {
				w--
				s.ents[w] = e
			}
		}
		q = w
	}
	if q > 0 {
		s.ents = s.cut(0, q)
	}
}

// cut removes ents[i:j], keeping the slice's storage.
func (s *State) cut(i, j int) []entry {
	n := copy(s.ents[i:], s.ents[j:])
	clear(s.ents[i+n:])
	return s.ents[:i+n]
}

// Eval answers at instant now: the comparison applied to the events whose
// timestamps are in [now-Within, now] (all time: at or before now). It
// returns ErrBeforeFloor for an instant before the floor.
func (s *State) Eval(now time.Time) (Result, error) {
	t, ok := unixNano(now)
	if !ok || t < s.floor {
		return Result{}, ErrBeforeFloor
	}
	return s.open(t).result(), nil
}

// NextChange returns the earliest instant after now at which Matched
// differs from Matched at now with no new event: an event leaving the
// window (one nanosecond after timestamp+Within, since the window holds
// its ends) or a future-dated event entering it. ok false: the answer
// stays as it is until an event arrives. Eval at the instant returned
// gives the new answer, and at every instant strictly between now and it
// the same answer as at now. It returns ErrBeforeFloor for an instant
// before the floor.
func (s *State) NextChange(now time.Time) (at time.Time, ok bool, err error) {
	t, tok := unixNano(now)
	if !tok || t < s.floor {
		return time.Time{}, false, ErrBeforeFloor
	}
	w := s.open(t)
	was := w.matched()
	for {
		next, found := int64(math.MaxInt64), false
		if w.hi < len(s.ents) {
			next, found = s.ents[w.hi].ts, true
		}
		if !s.allTime() && w.lo < w.hi {
			if last := satAdd(s.ents[w.lo].ts, int64(s.spec.Within)); last < math.MaxInt64 && last+1 < next {
				next, found = last+1, true
			}
		}
		if !found {
			return time.Time{}, false, nil
		}
		w.advance(next)
		if w.matched() != was {
			return time.Unix(0, next).UTC(), true, nil
		}
	}
}

// window is the set of entries in the window at instant t, ents[lo:hi],
// with its figure kept incrementally as t moves forward: entries enter at
// hi and leave at lo, both only ever advancing, so a sweep over every
// change point costs O(entries) (the deque is the classic sliding-window
// minimum). A sum is a float64 with an error bound while no operand is
// within the bound's reach, and exact (xsum) from then on, so the figure
// and the comparison are the ones a recomputation gives.
type window struct {
	s      *State
	lo, hi int
	n      uint64 // Count: events; aggregates: values
	past   uint64 // Count: events at or before the floor
	dq     []int  // Min, Max: indices with strictly better values, oldest first
	// Sum, Avg: until a comparison comes near an operand, a float64
	// running sum (approx) with a bound on its distance from the exact sum
	// (errb) is enough and cheap; from then on (exact) the exact sum.
	exact  bool
	sum    xsum
	approx float64
	errb   float64
}

func (s *State) open(t int64) *window {
	w := &window{s: s}
	lb := s.lowerBound(t)
	w.lo = sort.Search(len(s.ents), func(i int) bool { return s.ents[i].ts >= lb })
	w.hi = w.lo
	w.advance(t)
	return w
}

func (w *window) advance(t int64) {
	ents := w.s.ents
	for w.hi < len(ents) && ents[w.hi].ts <= t {
		w.push(w.hi)
		w.hi++
	}
	lb := w.s.lowerBound(t)
	for w.lo < w.hi && ents[w.lo].ts < lb {
		w.pop(w.lo)
		w.lo++
	}
}

func (w *window) push(i int) {
	e := w.s.ents[i]
	switch w.s.spec.Func {
	case Count:
		w.n += e.n
		if e.ts <= w.s.floor {
			w.past += e.n
		}
	case Sum, Avg:
		w.n++
		w.addValue(e.v)
	case Min:
		for len(w.dq) > 0 && w.s.ents[w.dq[len(w.dq)-1]].v >= e.v {
			w.dq = w.dq[:len(w.dq)-1]
		}
		w.dq = append(w.dq, i)
		w.n++
	case Max:
		for len(w.dq) > 0 && w.s.ents[w.dq[len(w.dq)-1]].v <= e.v {
			w.dq = w.dq[:len(w.dq)-1]
		}
		w.dq = append(w.dq, i)
		w.n++
	}
}

func (w *window) pop(i int) {
	e := w.s.ents[i]
	switch w.s.spec.Func {
	case Count:
		w.n -= e.n
		if e.ts <= w.s.floor {
			w.past -= e.n
		}
	case Sum, Avg:
		w.n--
		w.addValue(-e.v)
	case Min, Max:
		if len(w.dq) > 0 && w.dq[0] == i {
			w.dq = w.dq[1:]
		}
		w.n--
	}
}

func (w *window) addValue(v float64) {
	if w.exact {
		w.sum = w.sum.add(v)
		if len(w.sum) > 2 {
			w.sum = w.sum.compress()
		}
		return
	}
	// A float64 addition is off by at most half a unit in the last place
	// of its result; 2^-52 of it is a generous bound.
	w.approx += v
	w.errb += math.Abs(w.approx) * 0x1p-52
}

// makeExact switches the window to the exact sum of its entries.
func (w *window) makeExact() {
	if w.exact {
		return
	}
	w.exact = true
	w.sum = make(xsum, 0, 4)
	for _, e := range w.s.ents[w.lo:w.hi] {
		w.sum = w.sum.add(e.v)
		if len(w.sum) > 2 {
			w.sum = w.sum.compress()
		}
	}
}

// matched is result().Matched, faster for sums: when the float64 sum of
// the components is farther from every operand than any rounding could
// move it, the comparison of the exact figure is that of the approximation.
func (w *window) matched() bool {
	s := w.s
	if (s.spec.Func != Sum && s.spec.Func != Avg) || len(s.base.sum) > 0 || w.n == 0 {
		return w.result().Matched
	}
	// a is within slack of the figure (the exact sum or mean, rounded).
	var a, slack float64
	if w.exact {
		var mag float64
		for _, c := range w.sum {
			a += c
			mag += math.Abs(c)
		}
		slack = mag * 0x1p-40
	} else {
		a = w.approx
		slack = w.errb*(1+0x1p-40) + (math.Abs(a)+w.errb)*0x1p-50
	}
	if s.spec.Func == Avg {
		fn := float64(w.n)
		a /= fn
		slack = slack/fn + math.Abs(a)*0x1p-50
	}
	slack += 0x1p-1000
	far := func(k float64) bool { return math.Abs(a-k) > slack }
	if far(s.spec.Value) && (s.spec.Op != Between || far(s.spec.High)) {
		return s.spec.compare(a)
	}
	return w.result().Matched
}

func (w *window) result() Result {
	s := w.s
	b := &s.base
	n := satAddU(w.n, b.n)
	var r Result
	switch s.spec.Func {
	case Count:
		r.Defined = true
		r.Figure = float64(n)
		r.AtLeast = s.cap != noCap && w.past >= s.cap
	case Sum, Avg:
		if n == 0 {
			return r
		}
		w.makeExact()
		sum := w.sum
		if len(b.sum) > 0 {
			sum = append(xsum(nil), w.sum...).addAll(b.sum)
		}
		r.Defined = true
		if s.spec.Func == Sum {
			r.Figure = sum.value()
		} else {
			r.Figure = sum.mean(n)
		}
	case Min, Max:
		if n == 0 {
			return r
		}
		r.Defined = true
		have := false
		if len(w.dq) > 0 {
			r.Figure, have = s.ents[w.dq[0]].v, true
		}
		if b.n > 0 && (!have || (s.spec.Func == Min && b.v < r.Figure) || (s.spec.Func == Max && b.v > r.Figure)) {
			r.Figure = b.v
		}
	}
	r.Matched = r.Defined && s.spec.compare(r.Figure)
	return r
}

// unixNano is t in Unix nanoseconds, false outside the years that have
// one (with a margin so that floors and bounds never overflow).
func unixNano(t time.Time) (int64, bool) {
	const lim = 9_000_000_000 // seconds, about year 2255 (and 1684)
	if sec := t.Unix(); sec <= -lim || sec >= lim {
		return 0, false
	}
	return t.UnixNano(), true
}

func mod(a, m int64) int64 {
	r := a % m
	if r < 0 {
		r += m
	}
	return r
}

func satAdd(a, b int64) int64 {
	if b > 0 && a > math.MaxInt64-b {
		return math.MaxInt64
	}
	if b < 0 && a < math.MinInt64-b {
		return math.MinInt64
	}
	return a + b
}

func satSub(a, b int64) int64 {
	if b == math.MinInt64 {
		return satAdd(satAdd(a, math.MaxInt64), 1)
	}
	return satAdd(a, -b)
}

func satAddU(a, b uint64) uint64 {
	if a > math.MaxUint64-b {
		return math.MaxUint64
	}
	return a + b
}
