package trigger

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/segmentd/segmentd/behavior"
)

// Env is what a Program is evaluated against.
type Env struct {
	Event map[string]any // the triggering event's properties
	User  map[string]any // the user's traits (already merged with the event's traits)
	// Now is the event's timestamp: WITHIN_LAST is measured against this
	// clock. The zero time means the wall clock at the call.
	Now time.Time
	// Behaviors holds the answers of the condition's performed predicates,
	// indexed as [Program.Behaviors] lists them, each worked out by the
	// caller at Now (behavior.State.Eval). A performed predicate holds when
	// its result's Matched is set; one without a result (a short or nil
	// slice) does not hold, and its reason says "not evaluated".
	Behaviors []behavior.Result
	// BehaviorNext holds, indexed likewise, the instant at which each
	// performed predicate's answer next changes by time alone
	// (behavior.State.NextChange at Now); the zero time means never. Only
	// [Program.NextChange] reads it.
	BehaviorNext []time.Time
}

// Result is the outcome of [Program.Eval].
type Result struct {
	Matched bool
	// Reason explains the outcome: "matched: <condition>", "no conditions",
	// or "condition failed: ..." (see the package documentation).
	Reason string
}

// Program is a compiled condition tree. It is immutable and safe for
// concurrent use.
type Program struct {
	root       *cnode
	matched    string
	readsEvent bool // some predicate has scope EVENT
	behaviors  []Behavior
}

// ReadsEvent reports whether evaluation looks at Env.Event: false when no
// predicate has scope EVENT, so that a caller may leave the event's
// properties unread. The where conditions of performed predicates do not
// count here: they read the counted events (see [Behavior].Where, which
// has its own ReadsEvent).
func (p *Program) ReadsEvent() bool { return p != nil && p.readsEvent }

type cnode struct {
	kind     Kind
	children []*cnode
	text     string // the node's String(), for reasons
	pred     *predicate
	behavior int // KindPerformed: the index in Program.behaviors and Env.Behaviors
	// figureOf and figureWindow follow a performed node's figure in a
	// reason: " of 3" and " within 7d" make "(was 2 of 3 within 7d)", the
	// figure against the count it needs (at least N) and the window it is
	// counted in. Under a NOT, whose failure means the count was reached,
	// only the window.
	figureOf, figureWindow string
}

type predicate struct {
	scope    Scope
	property string
	path     []string // property split on "." for nested lookup; nil without a dot
	op       Operator
	ops      operands
}

// Compile checks n with the same rules as [Parse] and prepares it for
// evaluation: regular expressions, numbers, dates and durations are worked
// out once here. A nil n gives a Program that always matches with the reason
// "no conditions". Errors are [*Error] with paths starting at "condition",
// so a tree loaded from a store that no longer validates is reported like
// an input.
//
// Compile is lenient about how a store hands a tree back: a predicate's
// Value may be nil, empty or JSON null for "no value", and need not be
// compact. Predicate fields on group nodes are ignored.
func Compile(n *Node) (*Program, error) {
	if n == nil {
		return &Program{matched: "no conditions"}, nil
	}
	c := compiler{root: "condition"}
	root, err := c.node(n, "condition", 1)
	if err != nil {
		return nil, err
	}
	return &Program{root: root, matched: "matched: " + root.text, readsEvent: c.readsEvent, behaviors: c.behaviors}, nil
}

type compiler struct {
	root       string
	count      int
	readsEvent bool
	inWhere    bool
	behaviors  []Behavior
}

func (c *compiler) node(n *Node, path string, depth int) (*cnode, *Error) {
	if n == nil {
		return nil, errAt(path, "a condition must not be null")
	}
	if depth > MaxDepth {
		return nil, errAt(path, "conditions nest at most %d levels", MaxDepth)
	}
	c.count++
	if c.count > MaxNodes {
		return nil, errAt(c.root, "at most %d conditions", MaxNodes)
	}
	cn := &cnode{kind: n.Kind}
	switch n.Kind {
	case KindAnd, KindOr:
		field := strings.ToLower(string(n.Kind))
		if len(n.Children) == 0 {
			return nil, errAt(join(path, field), "a group needs at least one condition")
		}
		for i, child := range n.Children {
			cc, err := c.node(child, fmt.Sprintf("%s.%s[%d]", path, field, i), depth+1)
			if err != nil {
				return nil, err
			}
			cn.children = append(cn.children, cc)
		}
	case KindNot:
		if len(n.Children) != 1 {
			return nil, errAt(join(path, "not"), "NOT needs exactly one condition, got %d", len(n.Children))
		}
		cc, err := c.node(n.Children[0], join(path, "not"), depth+1)
		if err != nil {
			return nil, err
		}
		cn.children = []*cnode{cc}
	case KindPredicate:
		if len(n.Children) > 0 {
			return nil, errAt(path, "a predicate has no child conditions")
		}
		if err := checkPredicate(path, n.Scope != "", n.Scope, true, n.Property, n.Operator != "", n.Operator); err != nil {
			return nil, err
		}
		p := &predicate{scope: n.Scope, property: n.Property, op: n.Operator}
		c.readsEvent = c.readsEvent || n.Scope == ScopeEvent
		if strings.Contains(n.Property, ".") {
			p.path = strings.Split(n.Property, ".")
		}
		if !n.Operator.ignoresValue() {
			v, err := decodeValue(n.Value)
			if err != nil {
				return nil, errAt(join(path, "value"), "stored value: %v", err)
			}
			ops, msg := compileValue(n.Operator, v, false)
			if msg != "" {
				return nil, errAt(join(path, "value"), "%s", msg)
			}
			p.ops = ops
		}
		cn.pred = p
		if c.inWhere && n.Scope != ScopeEvent {
			return nil, errAt(join(path, "scope"), "a performed condition's where may only use scope EVENT (the counted event's properties)")
		}
	case KindPerformed:
		if len(n.Children) > 0 {
			return nil, errAt(path, "a predicate has no child conditions")
		}
		if err := c.performed(n, path, depth, cn); err != nil {
			return nil, err
		}
	default:
		return nil, errAt(path, "unknown kind %q", string(n.Kind))
	}
	cn.text = n.String()
	return cn, nil
}

// Eval decides whether env satisfies the condition and explains why. It
// never fails: a property that is missing or of a type that cannot be
// compared makes its predicate false. A nil Program always matches with the
// reason "no conditions".
func (p *Program) Eval(env Env) Result {
	if p == nil || p.root == nil {
		return Result{Matched: true, Reason: "no conditions"}
	}
	if env.Now.IsZero() {
		env.Now = time.Now()
	}
	if p.root.match(&env) {
		return Result{Matched: true, Reason: p.matched}
	}
	return Result{Reason: "condition failed: " + p.root.explain(&env)}
}

// match is the allocation-free decision; explain builds the text only once
// a node is known to have failed.
func (n *cnode) match(env *Env) bool {
	switch n.kind {
	case KindAnd:
		for _, c := range n.children {
			if !c.match(env) {
				return false
			}
		}
		return true
	case KindOr:
		for _, c := range n.children {
			if c.match(env) {
				return true
			}
		}
		return false
	case KindNot:
		return !n.children[0].match(env)
	case KindPerformed:
		return n.behavior < len(env.Behaviors) && env.Behaviors[n.behavior].Matched
	}
	return n.pred.match(env)
}

// explain says why n failed, without the "condition failed: " prefix.
func (n *cnode) explain(env *Env) string {
	switch n.kind {
	case KindAnd:
		for _, c := range n.children {
			if !c.match(env) {
				return c.explain(env)
			}
		}
		return n.text // unreachable when n failed
	case KindOr:
		var b strings.Builder
		b.WriteString("none of: ")
		for i, c := range n.children {
			if i > 0 {
				b.WriteString("; ")
			}
			text := c.explain(env)
			// A nested list gets parentheses so its items do not read as ours.
			if strings.HasPrefix(text, "none of: ") {
				text = "(" + text + ")"
			}
			b.WriteString(text)
		}
		return b.String()
	case KindNot:
		text := "NOT (" + n.children[0].text + ") held"
		if c := n.children[0]; c.kind == KindPerformed && c.behavior < len(env.Behaviors) {
			text += " (was " + FigureText(env.Behaviors[c.behavior]) + c.figureWindow + ")"
		}
		return text
	case KindPerformed:
		if n.behavior >= len(env.Behaviors) {
			return n.text + " (not evaluated)"
		}
		return n.text + " (was " + FigureText(env.Behaviors[n.behavior]) + n.figureOf + n.figureWindow + ")"
	}
	v, found := n.pred.lookup(env)
	return n.text + " (was " + describe(v, found) + ")"
}

func (p *predicate) lookup(env *Env) (v any, found bool) {
	m := env.Event
	if p.scope == ScopeUser {
		m = env.User
	}
	if m == nil {
		return nil, false
	}
	// The exact key wins: names may contain dots and spaces.
	if v, ok := m[p.property]; ok {
		return v, true
	}
	if len(p.path) < 2 {
		return nil, false
	}
	for _, key := range p.path[:len(p.path)-1] {
		next, ok := m[key].(map[string]any)
		if !ok {
			return nil, false
		}
		m = next
	}
	v, found = m[p.path[len(p.path)-1]]
	return v, found
}

func (p *predicate) match(env *Env) bool {
	v, _ := p.lookup(env)
	if v == nil {
		// Missing and JSON null are the same: only NOT_EXISTS holds.
		return p.op == OpNotExists
	}
	o := &p.ops.one
	switch p.op {
	case OpExists:
		return true
	case OpNotExists:
		return false
	case OpEQ:
		eq, _ := o.equal(v)
		return eq
	case OpNEQ:
		eq, ok := o.equal(v)
		return ok && !eq
	case OpGT:
		c, ok := o.compare(v)
		return ok && c > 0
	case OpGTE:
		c, ok := o.compare(v)
		return ok && c >= 0
	case OpLT:
		c, ok := o.compare(v)
		return ok && c < 0
	case OpLTE:
		c, ok := o.compare(v)
		return ok && c <= 0
	case OpContains:
		found, _ := o.contains(v)
		return found
	case OpNotContains:
		found, ok := o.contains(v)
		return ok && !found
	case OpStartsWith:
		s, ok := v.(string)
		return ok && strings.HasPrefix(s, o.str)
	case OpEndsWith:
		s, ok := v.(string)
		return ok && strings.HasSuffix(s, o.str)
	case OpMatches:
		s, ok := v.(string)
		return ok && p.ops.re.MatchString(s)
	case OpIn:
		for i := range p.ops.list {
			if eq, _ := p.ops.list[i].equal(v); eq {
				return true
			}
		}
		return false
	case OpNotIn:
		comparable := false
		for i := range p.ops.list {
			eq, ok := p.ops.list[i].equal(v)
			if eq {
				return false
			}
			comparable = comparable || ok
		}
		return comparable
	case OpBetween:
		lo, ok1 := p.ops.lo.compare(v)
		hi, ok2 := p.ops.hi.compare(v)
		return ok1 && ok2 && lo >= 0 && hi <= 0
	case OpWithinLast:
		t, ok := timeOf(v)
		return ok && !t.Before(env.Now.Add(-p.ops.dur)) && !t.After(env.Now)
	}
	return false
}

// maxDescribe is roughly how many bytes of an actual value a reason shows.
const maxDescribe = 100

// describe renders an actual value for a reason: "missing", or JSON cut to
// about maxDescribe bytes. It never marshals more than it shows of strings,
// lists and objects, because events can carry large properties.
func describe(v any, found bool) string {
	if !found {
		return "missing"
	}
	b := appendValue(nil, v, 0)
	if len(b) <= maxDescribe {
		return string(b)
	}
	cut := maxDescribe
	for cut > 0 && !utf8.RuneStart(b[cut]) {
		cut--
	}
	return string(b[:cut]) + "…"
}

func appendValue(b []byte, v any, depth int) []byte {
	if len(b) > maxDescribe || depth > maxValueDepth {
		return append(b, "…"...)
	}
	switch x := v.(type) {
	case nil:
		return append(b, "null"...)
	case string:
		return appendString(b, x)
	case bool:
		return strconv.AppendBool(b, x)
	case json.Number:
		return append(b, x...)
	case float64:
		return appendFloat(b, x)
	case float32:
		return appendFloat(b, float64(x))
	case int:
		return strconv.AppendInt(b, int64(x), 10)
	case int64:
		return strconv.AppendInt(b, x, 10)
	case int32:
		return strconv.AppendInt(b, int64(x), 10)
	case uint64:
		return strconv.AppendUint(b, x, 10)
	case time.Time:
		return appendString(b, x.Format(time.RFC3339Nano))
	case []string:
		b = append(b, '[')
		for i, e := range x {
			if i > 0 {
				b = append(b, ',')
			}
			if len(b) > maxDescribe {
				return append(b, "…"...)
			}
			b = appendString(b, e)
		}
		return append(b, ']')
	case []any:
		b = append(b, '[')
		for i, e := range x {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendValue(b, e, depth+1)
			if len(b) > maxDescribe {
				return b
			}
		}
		return append(b, ']')
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b = append(b, '{')
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, k)
			b = append(b, ':')
			b = appendValue(b, x[k], depth+1)
			if len(b) > maxDescribe {
				return b
			}
		}
		return append(b, '}')
	}
	if j, err := json.Marshal(v); err == nil {
		return append(b, j...)
	}
	return fmt.Appendf(b, "%v", v)
}

func appendFloat(b []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return strconv.AppendFloat(b, f, 'g', -1, 64)
	}
	if f == math.Trunc(f) && math.Abs(f) < 1e21 {
		return strconv.AppendFloat(b, f, 'f', -1, 64)
	}
	return strconv.AppendFloat(b, f, 'g', -1, 64)
}

// appendString writes s as a JSON string, looking at no more of s than a
// reason can show.
func appendString(b []byte, s string) []byte {
	if len(s) > maxDescribe+8 {
		s = s[:maxDescribe+8]
	}
	b = append(b, '"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b = append(b, '\\', byte(r))
		case r == '\n':
			b = append(b, `\n`...)
		case r == '\r':
			b = append(b, `\r`...)
		case r == '\t':
			b = append(b, `\t`...)
		case r < 0x20 || r == 0x2028 || r == 0x2029:
			b = fmt.Appendf(b, `\u%04x`, r)
		default:
			b = utf8.AppendRune(b, r) // invalid bytes come out as U+FFFD
		}
	}
	return append(b, '"')
}
