package trigger

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Limits on a condition tree. They keep evaluation cheap and the stored tree
// small; Parse and Compile reject trees beyond them.
const (
	// MaxDepth is the deepest a tree may nest; the root is level 1.
	MaxDepth = 10
	// MaxNodes is the most nodes (groups and predicates) a tree may have.
	MaxNodes = 200
)

const (
	maxPropertyLen = 256  // bytes in a property name
	maxStringLen   = 1000 // bytes in any string of a value
	maxListLen     = 1000 // elements in an IN / NOT_IN list
	maxValueDepth  = 32   // nesting of lists and objects inside a value
)

// ConditionInput mirrors the GraphQL input type ConditionInput (gqlgen binds
// to it directly). It is either a group (exactly one of And, Or, Not) or a
// predicate (Scope, Property, Operator and, depending on the operator,
// Value). Parse checks which.
type ConditionInput struct {
	And      []*ConditionInput `json:"and,omitempty"`
	Or       []*ConditionInput `json:"or,omitempty"`
	Not      *ConditionInput   `json:"not,omitempty"`
	Scope    *Scope            `json:"scope,omitempty"`
	Property *string           `json:"property,omitempty"`
	Operator *Operator         `json:"operator,omitempty"`
	// Value as decoded by gqlgen: nil, string, bool, json.Number, int,
	// int64, float64, []any, map[string]any. Other Go values are accepted
	// when encoding/json can marshal them.
	Value any `json:"value,omitempty"`
	// Performed makes the node a behaviour predicate instead; it stands
	// alone (no group or predicate fields).
	Performed *PerformedInput `json:"performed,omitempty"`
}

// Node is a validated condition tree, as built by [Parse].
type Node struct {
	Kind     Kind
	Children []*Node // AND/OR: one or more; NOT: exactly one; PREDICATE: none
	Scope    Scope   // PREDICATE only
	Property string  // PREDICATE only
	Operator Operator
	// Value is the canonical JSON of a predicate's value: compact, object
	// keys sorted, numbers exactly as given, HTML characters not escaped.
	// It is nil when the value was absent or null.
	Value json.RawMessage
	// Performed is set on KindPerformed nodes only.
	Performed *PerformedNode `json:",omitempty"`
}

// Error is a validation error from [Parse], [ParseAt] or [Compile]. Path
// names the offending node or field, for example "condition.or[1].value".
type Error struct {
	Path    string
	Message string
}

// Error returns "<path>: <message>".
func (e *Error) Error() string {
	if e.Path == "" {
		return e.Message
	}
	return e.Path + ": " + e.Message
}

func errAt(path, format string, args ...any) *Error {
	return &Error{Path: path, Message: fmt.Sprintf(format, args...)}
}

// Parse validates a condition tree and returns it as a [Node]; error paths
// start at "condition". A nil input means "no conditions" and gives a nil
// Node and no error. Every error is an [*Error] naming the first bad node or
// field in depth-first order; the package documentation lists the rules.
func Parse(in *ConditionInput) (*Node, error) { return ParseAt(in, "condition") }

// ParseAt is [Parse] with error paths starting at root instead of
// "condition", for a tree nested inside a larger input (for example
// "input.condition").
func ParseAt(in *ConditionInput, root string) (*Node, error) {
	if in == nil {
		return nil, nil
	}
	p := parser{root: root}
	n, err := p.node(in, root, 1)
	if err != nil {
		return nil, err
	}
	return n, nil
}

type parser struct {
	root      string
	count     int
	behaviors int  // performed predicates so far
	inWhere   bool // inside a performed's where: scope EVENT only
}

func (p *parser) node(in *ConditionInput, path string, depth int) (*Node, *Error) {
	if in == nil {
		return nil, errAt(path, "a condition must not be null")
	}
	if depth > MaxDepth {
		return nil, errAt(path, "conditions nest at most %d levels", MaxDepth)
	}
	// Counting before validating the node stops work on huge inputs early.
	p.count++
	if p.count > MaxNodes {
		return nil, errAt(p.root, "at most %d conditions", MaxNodes)
	}
	groups := 0
	for _, set := range []bool{in.And != nil, in.Or != nil, in.Not != nil} {
		if set {
			groups++
		}
	}
	isPredicate := in.Scope != nil || in.Property != nil || in.Operator != nil || in.Value != nil
	switch {
	case groups > 0 && isPredicate:
		return nil, errAt(path, "a condition is either a group (and/or/not) or a predicate (scope, property, operator, value), not both")
	case in.Performed != nil && (groups > 0 || isPredicate):
		return nil, errAt(path, "performed stands alone: a condition with performed has no and, or, not, scope, property, operator or value")
	case groups > 1:
		return nil, errAt(path, "use exactly one of and, or, not")
	case in.And != nil:
		return p.group(KindAnd, in.And, path, "and", depth)
	case in.Or != nil:
		return p.group(KindOr, in.Or, path, "or", depth)
	case in.Not != nil:
		child, err := p.node(in.Not, join(path, "not"), depth+1)
		if err != nil {
			return nil, err
		}
		return &Node{Kind: KindNot, Children: []*Node{child}}, nil
	case in.Performed != nil:
		return p.performed(in.Performed, path, depth)
	case isPredicate:
		n, err := parsePredicate(in, path)
		if err == nil && p.inWhere && n.Scope != ScopeEvent {
			return nil, errAt(join(path, "scope"), "a performed condition's where may only use scope EVENT (the counted event's properties)")
		}
		return n, err
	default:
		return nil, errAt(path, "empty condition")
	}
}

func (p *parser) group(kind Kind, list []*ConditionInput, path, field string, depth int) (*Node, *Error) {
	path = join(path, field)
	if len(list) == 0 {
		return nil, errAt(path, "a group needs at least one condition")
	}
	n := &Node{Kind: kind, Children: make([]*Node, 0, min(len(list), MaxNodes))}
	for i, c := range list {
		child, err := p.node(c, fmt.Sprintf("%s[%d]", path, i), depth+1)
		if err != nil {
			return nil, err
		}
		n.Children = append(n.Children, child)
	}
	return n, nil
}

func parsePredicate(in *ConditionInput, path string) (*Node, *Error) {
	var scope Scope
	var property string
	var op Operator
	if in.Scope != nil {
		scope = *in.Scope
	}
	if in.Property != nil {
		property = *in.Property
	}
	if in.Operator != nil {
		op = *in.Operator
	}
	if err := checkPredicate(path, in.Scope != nil, scope, in.Property != nil, property, in.Operator != nil, op); err != nil {
		return nil, err
	}
	n := &Node{Kind: KindPredicate, Scope: scope, Property: property, Operator: op}
	v, err := normalize(in.Value, 0)
	if err != nil {
		if op.ignoresValue() {
			// EXISTS and NOT_EXISTS never look at the value, so one that
			// cannot be stored as JSON is dropped rather than rejected.
			return n, nil
		}
		return nil, errAt(join(path, "value"), "unsupported value: %v", err)
	}
	if _, msg := compileValue(op, v, true); msg != "" {
		return nil, errAt(join(path, "value"), "%s", msg)
	}
	n.Value = canonical(v)
	return n, nil
}

// checkPredicate validates a predicate's scope, property and operator; the
// has* flags say whether the field was given at all.
func checkPredicate(path string, hasScope bool, scope Scope, hasProperty bool, property string, hasOp bool, op Operator) *Error {
	switch {
	case !hasScope:
		return errAt(join(path, "scope"), "is required")
	case !scope.IsValid():
		return errAt(join(path, "scope"), "unknown scope %q", string(scope))
	case !hasProperty:
		return errAt(join(path, "property"), "is required")
	}
	if msg := checkProperty(property); msg != "" {
		return errAt(join(path, "property"), "%s", msg)
	}
	switch {
	case !hasOp:
		return errAt(join(path, "operator"), "is required")
	case !op.IsValid():
		return errAt(join(path, "operator"), "unknown operator %q", string(op))
	}
	return nil
}

func checkProperty(s string) string {
	switch {
	case strings.TrimSpace(s) == "":
		return "must not be empty"
	case len(s) > maxPropertyLen:
		return fmt.Sprintf("must be at most %d bytes", maxPropertyLen)
	case !utf8.ValidString(s):
		// Stores (PostgreSQL text) reject invalid UTF-8.
		return "must be valid UTF-8"
	case strings.IndexFunc(s, unicode.IsControl) >= 0:
		return "must not contain control characters"
	}
	return ""
}

func (o Operator) ignoresValue() bool { return o == OpExists || o == OpNotExists }

func join(path, field string) string {
	if path == "" {
		return field
	}
	return path + "." + field
}

// canonical encodes a normalized value as compact JSON, or nil for null.
// HTML characters stay unescaped so that the text form stays readable.
func canonical(v any) json.RawMessage {
	if v == nil {
		return nil
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		// normalize only lets through what encoding/json can encode.
		return nil
	}
	return bytes.Clone(bytes.TrimRight(buf.Bytes(), "\n"))
}

// decodeValue decodes a Node's JSON value with numbers kept as json.Number.
// Empty input and JSON null both mean "no value".
func decodeValue(raw json.RawMessage) (any, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return nil, nil
	}
	if !json.Valid(raw) {
		return nil, fmt.Errorf("not valid JSON")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}

// Walkers over a Node guard against hand-built trees that are cyclic or far
// too large: they give up past these limits instead of running forever.
const (
	walkDepth = 4 * MaxDepth
	walkNodes = 4 * MaxNodes
)

type budget struct{ left int }

func (b *budget) take(depth int) bool {
	if depth > walkDepth || b.left <= 0 {
		return false
	}
	b.left--
	return true
}

// ToInput converts n back into the input it came from: Parse(n.ToInput())
// returns a tree equal to n. Values come back as encoding/json decodes them
// with UseNumber (json.Number for numbers). A nil Node gives nil.
func (n *Node) ToInput() *ConditionInput {
	return n.toInput(&budget{left: walkNodes}, 1)
}

func (n *Node) toInput(b *budget, depth int) *ConditionInput {
	if n == nil || !b.take(depth) {
		return nil
	}
	in := &ConditionInput{}
	children := func() []*ConditionInput {
		list := make([]*ConditionInput, len(n.Children))
		for i, c := range n.Children {
			list[i] = c.toInput(b, depth+1)
		}
		return list
	}
	switch n.Kind {
	case KindAnd:
		in.And = children()
	case KindOr:
		in.Or = children()
	case KindNot:
		if len(n.Children) > 0 {
			in.Not = n.Children[0].toInput(b, depth+1)
		}
	case KindPerformed:
		in.Performed = n.Performed.toInput(b, depth)
	default:
		scope, property, op := n.Scope, n.Property, n.Operator
		in.Scope, in.Property, in.Operator = &scope, &property, &op
		if v, err := decodeValue(n.Value); err == nil {
			in.Value = v
		}
	}
	return in
}

// Count returns the number of nodes in the tree, groups and predicates
// alike, the nodes of performed predicates' where conditions included; a
// nil Node has none.
func (n *Node) Count() int {
	b := &budget{left: walkNodes}
	n.count(b, 1)
	return walkNodes - b.left
}

func (n *Node) count(b *budget, depth int) {
	if n == nil || !b.take(depth) {
		return
	}
	for _, c := range n.Children {
		c.count(b, depth+1)
	}
	if n.Performed != nil {
		n.Performed.Where.count(b, depth+1)
	}
}
