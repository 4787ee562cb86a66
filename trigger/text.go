package trigger

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
)

// String renders the tree as one readable line, for example
//
//	user."Sign Up Date" > "2025-01-01" AND (user.Channel = "Facebook" OR event."Reward Amount" > 50)
//
// Predicates read <scope>.<property> <operator> <value>: the scope is
// "event" or "user"; the property is bare when it is a dotted identifier
// and quoted otherwise; the value is its canonical JSON. Children of AND and
// OR are joined with " AND " and " OR "; an AND inside an OR (or the other
// way round) is parenthesized; NOT always reads NOT (<child>). A nil Node
// renders as "". The text is for people: there is no parser for it.
func (n *Node) String() string {
	var b strings.Builder
	n.write(&b, &budget{left: walkNodes}, 1)
	return b.String()
}

func (n *Node) write(b *strings.Builder, bud *budget, depth int) {
	if n == nil {
		return
	}
	if !bud.take(depth) {
		b.WriteString("…")
		return
	}
	switch n.Kind {
	case KindAnd, KindOr:
		sep := " AND "
		if n.Kind == KindOr {
			sep = " OR "
		}
		for i, c := range n.Children {
			if i > 0 {
				b.WriteString(sep)
			}
			paren := c != nil && c.Kind != n.Kind && (c.Kind == KindAnd || c.Kind == KindOr)
			if paren {
				b.WriteByte('(')
			}
			c.write(b, bud, depth+1)
			if paren {
				b.WriteByte(')')
			}
		}
	case KindNot:
		b.WriteString("NOT (")
		if len(n.Children) > 0 {
			n.Children[0].write(b, bud, depth+1)
		}
		b.WriteByte(')')
	case KindPerformed:
		writePerformed(b, n.Performed, bud, depth)
	default:
		writePredicate(b, n.Scope, n.Property, n.Operator, n.Value)
	}
}

var opText = map[Operator]string{
	OpEQ: "=", OpNEQ: "!=", OpGT: ">", OpGTE: ">=", OpLT: "<", OpLTE: "<=",
	OpContains: "contains", OpNotContains: "not contains",
	OpStartsWith: "starts with", OpEndsWith: "ends with", OpMatches: "matches",
	OpIn: "in", OpNotIn: "not in", OpExists: "exists", OpNotExists: "not exists",
	OpBetween: "between", OpWithinLast: "within last",
}

func writePredicate(b *strings.Builder, scope Scope, property string, op Operator, value json.RawMessage) {
	b.WriteString(strings.ToLower(string(scope)))
	b.WriteByte('.')
	if isIdentPath(property) {
		b.WriteString(property)
	} else {
		b.WriteString(strconv.Quote(property))
	}
	b.WriteByte(' ')
	text, ok := opText[op]
	if !ok {
		text = strings.ToLower(string(op))
	}
	b.WriteString(text)
	if op.ignoresValue() {
		return
	}
	b.WriteByte(' ')
	if op == OpBetween {
		var pair []json.RawMessage
		if json.Unmarshal(value, &pair) == nil && len(pair) == 2 {
			writeJSON(b, pair[0])
			b.WriteString(" and ")
			writeJSON(b, pair[1])
			return
		}
	}
	writeJSON(b, value)
}

// writeJSON writes a JSON value compactly. Values built by Parse already are
// compact; a tree loaded from a store may have been reformatted (PostgreSQL
// jsonb adds spaces).
func writeJSON(b *strings.Builder, raw json.RawMessage) {
	if len(bytes.TrimSpace(raw)) == 0 {
		b.WriteString("null")
		return
	}
	var buf bytes.Buffer
	if json.Compact(&buf, raw) != nil {
		b.Write(raw)
		return
	}
	b.Write(buf.Bytes())
}

// isIdentPath reports whether s matches
// ^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$, which prints bare.
func isIdentPath(s string) bool {
	start := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '_' || ('A' <= c && c <= 'Z') || ('a' <= c && c <= 'z'):
			start = false
		case isDigit(c) && !start:
		case c == '.' && !start:
			start = true
		default:
			return false
		}
	}
	return len(s) > 0 && !start
}
