package trigger

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/segmentd/segmentd/behavior"
)

// Limits on behaviour predicates (performed). Parse and Compile refuse
// trees beyond them.
const (
	// MaxPerformed is the most performed predicates one condition may hold.
	MaxPerformed = 20
	// MaxPerformedNesting is how many groups (AND, OR, NOT) may stand above
	// a performed predicate: NOT(AND(OR(performed))) is 3 and allowed; a
	// fourth group around it is refused. A performed at the root has 0.
	MaxPerformedNesting = 3
	// MaxPerformedCount bounds a count's operand: a windowed count keeps up
	// to that many timestamps per user (see behavior.Spec), so the bound
	// is also a bound on the state's size.
	MaxPerformedCount = 10000
	// MinWithin and MaxWithin bound a performed predicate's window. Ten
	// years are counted with their leap days (3653 days).
	MinWithin = time.Second
	MaxWithin = 3653 * day
)

// PerformedInput mirrors the GraphQL input type PerformedInput: what the
// user did over time. Count and Aggregate are exclusive; with neither the
// predicate counts "at least 1".
type PerformedInput struct {
	Event string `json:"event"` // the event name, exact
	// Where is a condition each counted event must meet; it may use only
	// scope EVENT, which reads the counted event's properties.
	Where *ConditionInput `json:"where,omitempty"`
	// Within is the window that ends now, as read by [ParseDuration];
	// nil means all time.
	Within    *string          `json:"within,omitempty"`
	Count     *ComparisonInput `json:"count,omitempty"`
	Aggregate *AggregateInput  `json:"aggregate,omitempty"`
}

// ComparisonInput mirrors the GraphQL input type ComparisonInput: how many
// events. Operator is one of EQ NEQ GT GTE LT LTE BETWEEN; Value a whole
// number from 0 to [MaxPerformedCount], or [low, high] for BETWEEN.
type ComparisonInput struct {
	Operator Operator `json:"operator"`
	Value    any      `json:"value"`
}

// AggregateInput mirrors the GraphQL input type AggregateInput: Function of
// the numeric Property of the counted events, compared with Value (a
// number, or [low, high] for BETWEEN).
type AggregateInput struct {
	Function AggregateFunction `json:"function"`
	Property string            `json:"property"`
	Operator Operator          `json:"operator"`
	Value    any               `json:"value"`
}

// PerformedNode is a validated performed predicate (a Node of
// [KindPerformed]). Exactly one of Count and Aggregate is set after
// [Parse]; Parse fills Count with GTE 1 when the input had neither.
//
// Its JSON form (how segmentd stores it) leaves Where out: the where tree
// is stored as nodes of its own.
type PerformedNode struct {
	Event string `json:"event"`
	Where *Node  `json:"-"` // nil: every event named Event counts
	// Within is the window as given ("7d", "1h30m"); "" means all time.
	Within    string      `json:"within,omitempty"`
	Count     *Comparison `json:"count,omitempty"`
	Aggregate *Aggregate  `json:"aggregate,omitempty"`
}

// Comparison is a count's comparison. Value is canonical JSON, as in
// [Node].
type Comparison struct {
	Operator Operator        `json:"operator"`
	Value    json.RawMessage `json:"value"`
}

// Aggregate is an aggregate's function, property and comparison. Value is
// canonical JSON, as in [Node].
type Aggregate struct {
	Function AggregateFunction `json:"function"`
	Property string            `json:"property"`
	Operator Operator          `json:"operator"`
	Value    json.RawMessage   `json:"value"`
}

// Behavior is one performed predicate of a [Program], as listed by
// [Program.Behaviors]: what the caller counts and keeps state for. Its
// index in that list is the index of its result in [Env].Behaviors and of
// its next change in [Env].BehaviorNext.
type Behavior struct {
	Event string // the event name to count, exact
	// Where filters the counted events: evaluate it with Env.Event = the
	// counted event's properties and Env.Now = its timestamp. Nil: every
	// event named Event counts. It never reads Env.User.
	Where *Program
	// Spec is the measurement, for behavior.New.
	Spec behavior.Spec
	// Property is the aggregated property (dots for nesting, looked up as
	// predicates do); "" for a count. See [Behavior.Value].
	Property string
	// Text is the predicate's String(), for reasons and logs.
	Text string
	key  string
	path []string
}

// Key identifies the measurement: the event, the where condition, the
// window, the function, the property and the comparison, hashed (hex,
// 32 characters). Two predicates with the same Key need the same state,
// in this condition or another; a changed predicate gets a new Key, so
// state stored under (user, segment, Key) is rebuilt when the predicate
// changes. Equivalent windows ("7d", "1w") share a Key; differently written
// where values ("1.5", "1.50") do not.
func (b *Behavior) Key() string { return b.key }

// Counts reports whether an event named name with properties props at ts
// is one this behaviour counts: the name matches and Where holds.
func (b *Behavior) Counts(name string, props map[string]any, ts time.Time) bool {
	if name != b.Event {
		return false
	}
	if b.Where == nil || b.Where.root == nil {
		return true
	}
	env := Env{Event: props, Now: ts}
	if env.Now.IsZero() {
		env.Now = time.Now()
	}
	return b.Where.root.match(&env)
}

// Value reads the aggregated property of a counted event as a number, for
// behavior.State.Add: ok false when the property is missing, null or not
// numeric (it is then not counted). Numbers and numeric strings ("42",
// " 3.5 ") count, as in typed comparison; NaN does not. A count has no
// property and gives 0, false.
func (b *Behavior) Value(props map[string]any) (v float64, ok bool) {
	if b.Property == "" {
		return 0, false
	}
	p := predicate{scope: ScopeEvent, property: b.Property, path: b.path}
	x, found := p.lookup(&Env{Event: props})
	if !found || x == nil {
		return 0, false
	}
	return numberOf(x, true)
}

// Behaviors lists the condition's performed predicates in depth-first
// order (the order of their text), one per occurrence: a predicate written
// twice appears twice, with the same Key. The list is a copy.
func (p *Program) Behaviors() []Behavior {
	if p == nil {
		return nil
	}
	out := make([]Behavior, len(p.behaviors))
	copy(out, p.behaviors)
	return out
}

// FigureText renders a behaviour's figure for a reason: the count ("0",
// "at least 3" when the state knows only a lower bound), the aggregate's
// value, or "no values" for an aggregate over none.
func FigureText(r behavior.Result) string {
	switch {
	case !r.Defined:
		return "no values"
	case r.AtLeast:
		return "at least " + string(appendFloat(nil, r.Figure))
	}
	return string(appendFloat(nil, r.Figure))
}

// parsePerformed validates a performed input into a node. depth is the
// performed node's level (the root is 1); all its ancestors are groups.
func (p *parser) performed(in *PerformedInput, path string, depth int) (*Node, *Error) {
	path = join(path, "performed")
	if p.inWhere {
		return nil, errAt(path, "a performed condition's where cannot contain another performed")
	}
	p.behaviors++
	if p.behaviors > MaxPerformed {
		return nil, errAt(path, "at most %d behaviour predicates (performed) in one condition", MaxPerformed)
	}
	if depth-1 > MaxPerformedNesting {
		return nil, errAt(path, "performed may be nested in at most %d groups (and, or, not)", MaxPerformedNesting)
	}
	pn := &PerformedNode{Event: in.Event}
	if in.Within != nil {
		pn.Within = *in.Within
		if pn.Within == "" {
			// "" is how the node says "all time"; an input says it with null.
			return nil, errAt(join(path, "within"), "must not be empty (null means all time)")
		}
	}
	if in.Count != nil {
		v, err := normalize(in.Count.Value, 0)
		if err != nil {
			return nil, errAt(join(path, "count.value"), "unsupported value: %v", err)
		}
		pn.Count = &Comparison{Operator: in.Count.Operator, Value: canonical(v)}
	}
	if in.Aggregate != nil {
		v, err := normalize(in.Aggregate.Value, 0)
		if err != nil {
			return nil, errAt(join(path, "aggregate.value"), "unsupported value: %v", err)
		}
		pn.Aggregate = &Aggregate{Function: in.Aggregate.Function, Property: in.Aggregate.Property,
			Operator: in.Aggregate.Operator, Value: canonical(v)}
	}
	if pn.Count == nil && pn.Aggregate == nil {
		pn.Count = &Comparison{Operator: OpGTE, Value: json.RawMessage("1")}
	}
	// The fields are checked in their order in the input type, event first.
	if msg := checkEventName(pn.Event); msg != "" {
		return nil, errAt(join(path, "event"), "%s", msg)
	}
	if in.Where != nil {
		p.inWhere = true
		w, err := p.node(in.Where, join(path, "where"), depth+1)
		p.inWhere = false
		if err != nil {
			return nil, err
		}
		pn.Where = w
	}
	if _, err := measure(pn, path); err != nil {
		return nil, err
	}
	return &Node{Kind: KindPerformed, Performed: pn}, nil
}

func checkEventName(s string) string {
	if s == "" {
		return "is required"
	}
	return checkProperty(s)
}

// measure checks a performed node's window, count and aggregate and
// converts them into a behavior.Spec. path is the performed field's.
func measure(pn *PerformedNode, path string) (behavior.Spec, *Error) {
	var spec behavior.Spec
	if pn.Within != "" {
		d, err := ParseDuration(pn.Within)
		switch {
		case err != nil:
			return spec, errAt(join(path, "within"), "%v", err)
		case d < MinWithin:
			return spec, errAt(join(path, "within"), "must be at least 1s")
		case d > MaxWithin:
			return spec, errAt(join(path, "within"), "must be at most 10 years (%dd)", MaxWithin/day)
		}
		spec.Within = d
	}
	count := pn.Count
	switch {
	case pn.Count != nil && pn.Aggregate != nil:
		return spec, errAt(path, "use count or aggregate, not both")
	case pn.Count == nil && pn.Aggregate == nil:
		// A hand-built node: Parse fills the default, Compile assumes it.
		count = &Comparison{Operator: OpGTE, Value: json.RawMessage("1")}
	}
	if count != nil {
		spec.Func = behavior.Count
		if err := comparison(&spec, count.Operator, count.Value, join(path, "count"), true); err != nil {
			return spec, err
		}
		return spec, nil
	}
	a := pn.Aggregate
	apath := join(path, "aggregate")
	switch a.Function {
	case AggSum:
		spec.Func = behavior.Sum
	case AggAvg:
		spec.Func = behavior.Avg
	case AggMin:
		spec.Func = behavior.Min
	case AggMax:
		spec.Func = behavior.Max
	case "":
		return spec, errAt(join(apath, "function"), "is required")
	default:
		return spec, errAt(join(apath, "function"), "unknown aggregate function %q (use SUM, AVG, MIN or MAX)", string(a.Function))
	}
	if a.Property == "" {
		return spec, errAt(join(apath, "property"), "is required")
	}
	if msg := checkProperty(a.Property); msg != "" {
		return spec, errAt(join(apath, "property"), "%s", msg)
	}
	if err := comparison(&spec, a.Operator, a.Value, apath, false); err != nil {
		return spec, err
	}
	return spec, nil
}

// comparison checks a count's or an aggregate's operator and value (path is
// the count or aggregate field's) and sets them on spec. A count's values
// are whole numbers from 0 to MaxPerformedCount; an aggregate's are any
// finite numbers. Strings, numeric or not, are refused: the figure is a
// number, and "100" would read as text.
func comparison(spec *behavior.Spec, op Operator, raw json.RawMessage, path string, isCount bool) *Error {
	switch op {
	case OpEQ:
		spec.Op = behavior.EQ
	case OpNEQ:
		spec.Op = behavior.NEQ
	case OpGT:
		spec.Op = behavior.GT
	case OpGTE:
		spec.Op = behavior.GTE
	case OpLT:
		spec.Op = behavior.LT
	case OpLTE:
		spec.Op = behavior.LTE
	case OpBetween:
		spec.Op = behavior.Between
	case "":
		return errAt(join(path, "operator"), "is required")
	default:
		return errAt(join(path, "operator"), "%s cannot compare a figure (use EQ, NEQ, GT, GTE, LT, LTE or BETWEEN)", string(op))
	}
	vpath := join(path, "value")
	v, err := decodeValue(raw)
	if err != nil {
		return errAt(vpath, "stored value: %v", err)
	}
	if op == OpBetween {
		pair, ok := v.([]any)
		if !ok || len(pair) != 2 {
			return errAt(vpath, "BETWEEN needs a list of two numbers [low, high]")
		}
		lo, msg := figureOperand(pair[0], isCount)
		if msg != "" {
			return errAt(vpath+"[0]", "%s", msg)
		}
		hi, msg := figureOperand(pair[1], isCount)
		if msg != "" {
			return errAt(vpath+"[1]", "%s", msg)
		}
		if lo > hi {
			return errAt(vpath, "BETWEEN needs low <= high, got %s > %s", string(appendFloat(nil, lo)), string(appendFloat(nil, hi)))
		}
		spec.Value, spec.High = lo, hi
		return nil
	}
	x, msg := figureOperand(v, isCount)
	if msg != "" {
		return errAt(vpath, "%s", msg)
	}
	spec.Value = x
	return nil
}

func figureOperand(v any, isCount bool) (float64, string) {
	n, ok := v.(json.Number)
	if !ok {
		if v == nil {
			return 0, "is required (a number)"
		}
		return 0, fmt.Sprintf("must be a number, not %s", kindOf(v))
	}
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, "must be a finite 64-bit number"
	}
	if isCount {
		switch {
		case f < 0:
			return 0, "a count is not negative"
		case f != math.Trunc(f):
			return 0, "a count is a whole number"
		case f > MaxPerformedCount:
			return 0, fmt.Sprintf("a count is at most %d", MaxPerformedCount)
		}
	}
	return f + 0, "" // + 0 turns -0 into 0
}

// behaviorKey hashes the measurement's canonical form (see Behavior.Key).
func behaviorKey(pn *PerformedNode, spec behavior.Spec) string {
	type canon struct {
		V        int             `json:"v"`
		Event    string          `json:"event"`
		Where    *ConditionInput `json:"where,omitempty"`
		WithinNS int64           `json:"within_ns"`
		Func     string          `json:"func"`
		Property string          `json:"property,omitempty"`
		Op       string          `json:"op"`
		Value    string          `json:"value"`
		High     string          `json:"high,omitempty"`
	}
	c := canon{V: 1, Event: pn.Event, Where: pn.Where.ToInput(), WithinNS: int64(spec.Within),
		Func: spec.Func.String(), Op: spec.Op.String(), Value: strconv.FormatFloat(spec.Value, 'g', -1, 64)}
	if pn.Aggregate != nil {
		c.Property = pn.Aggregate.Property
	}
	if spec.Op == behavior.Between {
		c.High = strconv.FormatFloat(spec.High, 'g', -1, 64)
	}
	b, err := json.Marshal(c)
	if err != nil {
		// A where tree from Compile is made of JSON values; this cannot
		// happen, and the text still tells predicates apart.
		b = []byte(fmt.Sprintf("%+v", c))
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

// toInput converts a performed node back into its input.
func (pn *PerformedNode) toInput(b *budget, depth int) *PerformedInput {
	if pn == nil {
		return nil
	}
	in := &PerformedInput{Event: pn.Event, Where: pn.Where.toInput(b, depth+1)}
	if pn.Within != "" {
		w := pn.Within
		in.Within = &w
	}
	if pn.Count != nil {
		in.Count = &ComparisonInput{Operator: pn.Count.Operator}
		if v, err := decodeValue(pn.Count.Value); err == nil {
			in.Count.Value = v
		}
	}
	if a := pn.Aggregate; a != nil {
		in.Aggregate = &AggregateInput{Function: a.Function, Property: a.Property, Operator: a.Operator}
		if v, err := decodeValue(a.Value); err == nil {
			in.Aggregate.Value = v
		}
	}
	return in
}

// writePerformed renders a performed predicate:
//
//	performed "Purchase Completed" where event.total > 10 at least 3 times within 7d
//	performed "Purchase Completed" SUM of amount > 100 within 30d
func writePerformed(b *strings.Builder, pn *PerformedNode, bud *budget, depth int) {
	if pn == nil {
		b.WriteString("performed ?")
		return
	}
	b.WriteString("performed ")
	b.WriteString(strconv.Quote(pn.Event))
	if pn.Where != nil {
		b.WriteString(" where ")
		// A group in parentheses, so that its AND does not read as ours.
		paren := pn.Where.Kind == KindAnd || pn.Where.Kind == KindOr
		if paren {
			b.WriteByte('(')
		}
		pn.Where.write(b, bud, depth+1)
		if paren {
			b.WriteByte(')')
		}
	}
	b.WriteByte(' ')
	switch {
	case pn.Aggregate != nil:
		a := pn.Aggregate
		b.WriteString(string(a.Function))
		b.WriteString(" of ")
		writeProperty(b, a.Property)
		b.WriteByte(' ')
		text, ok := opText[a.Operator]
		if !ok {
			text = strings.ToLower(string(a.Operator))
		}
		b.WriteString(text)
		b.WriteByte(' ')
		if !writePair(b, a.Operator, a.Value) {
			writeJSON(b, a.Value)
		}
	case pn.Count != nil:
		writeCount(b, pn.Count)
	default:
		writeCount(b, &Comparison{Operator: OpGTE, Value: json.RawMessage("1")})
	}
	if pn.Within != "" {
		b.WriteString(" within ")
		b.WriteString(pn.Within)
	}
}

var countText = map[Operator]string{
	OpEQ: "exactly ", OpNEQ: "not exactly ", OpGT: "more than ", OpGTE: "at least ",
	OpLT: "fewer than ", OpLTE: "at most ", OpBetween: "between ",
}

// writeCount renders a count: "at least 3 times", "0 times" (EQ 0, how
// "did not" reads), "exactly 1 time", "between 2 and 5 times".
func writeCount(b *strings.Builder, c *Comparison) {
	var buf strings.Builder
	writeJSON(&buf, c.Value)
	value := buf.String()
	if c.Operator == OpEQ && value == "0" {
		b.WriteString("0 times")
		return
	}
	text, ok := countText[c.Operator]
	if !ok {
		text = strings.ToLower(string(c.Operator)) + " "
	}
	b.WriteString(text)
	if writePair(b, c.Operator, c.Value) {
		b.WriteString(" times")
		return
	}
	b.WriteString(value)
	if value == "1" {
		b.WriteString(" time")
	} else {
		b.WriteString(" times")
	}
}

// writePair writes BETWEEN's [low, high] as "low and high"; false when op
// is not BETWEEN or the value is not a pair.
func writePair(b *strings.Builder, op Operator, value json.RawMessage) bool {
	if op != OpBetween {
		return false
	}
	var pair []json.RawMessage
	if json.Unmarshal(value, &pair) != nil || len(pair) != 2 {
		return false
	}
	writeJSON(b, pair[0])
	b.WriteString(" and ")
	writeJSON(b, pair[1])
	return true
}

func writeProperty(b *strings.Builder, property string) {
	if isIdentPath(property) {
		b.WriteString(property)
	} else {
		b.WriteString(strconv.Quote(property))
	}
}

// performed compiles a KindPerformed node into cn: the checks of Parse,
// then the Behavior, whose where condition becomes a Program of its own.
func (c *compiler) performed(n *Node, path string, depth int, cn *cnode) *Error {
	path = join(path, "performed")
	pn := n.Performed
	switch {
	case pn == nil:
		return errAt(path, "is required for a PERFORMED condition")
	case c.inWhere:
		return errAt(path, "a performed condition's where cannot contain another performed")
	case len(c.behaviors) >= MaxPerformed:
		return errAt(path, "at most %d behaviour predicates (performed) in one condition", MaxPerformed)
	case depth-1 > MaxPerformedNesting:
		return errAt(path, "performed may be nested in at most %d groups (and, or, not)", MaxPerformedNesting)
	}
	if msg := checkEventName(pn.Event); msg != "" {
		return errAt(join(path, "event"), "%s", msg)
	}
	bh := Behavior{Event: pn.Event}
	if pn.Where != nil {
		// The where tree shares the node budget; its EVENT scope reads the
		// counted event, so it does not make the outer program read one.
		outer := c.readsEvent
		c.readsEvent, c.inWhere = false, true
		w, err := c.node(pn.Where, join(path, "where"), depth+1)
		whereReads := c.readsEvent
		c.readsEvent, c.inWhere = outer, false
		if err != nil {
			return err
		}
		bh.Where = &Program{root: w, matched: "matched: " + w.text, readsEvent: whereReads}
	}
	spec, err := measure(pn, path)
	if err != nil {
		return err
	}
	bh.Spec = spec
	if pn.Aggregate != nil {
		bh.Property = pn.Aggregate.Property
		if strings.Contains(bh.Property, ".") {
			bh.path = strings.Split(bh.Property, ".")
		}
	}
	bh.key = behaviorKey(pn, spec)
	bh.Text = n.String()
	if pn.Count != nil && spec.Op == behavior.GTE {
		cn.figureOf = " of " + string(appendFloat(nil, spec.Value))
	}
	if pn.Within != "" {
		cn.figureWindow = " within " + pn.Within
	}
	cn.behavior = len(c.behaviors)
	c.behaviors = append(c.behaviors, bh)
	return nil
}
