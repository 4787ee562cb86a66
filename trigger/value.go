package trigger

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// normalize converts a Go value into the JSON data model: nil, string (valid
// UTF-8), bool, json.Number (a valid JSON literal, kept exactly), []any and
// map[string]any. Strings are coerced to valid UTF-8 here, the way
// encoding/json would, so that length checks and the stored form agree.
func normalize(v any, depth int) (any, error) {
	if depth > maxValueDepth {
		return nil, fmt.Errorf("nests more than %d levels", maxValueDepth)
	}
	switch x := v.(type) {
	case nil:
		return nil, nil
	case string:
		if strings.IndexByte(x, 0) >= 0 {
			return nil, errors.New("a string must not contain the NUL character (\\u0000)")
		}
		return validUTF8(x), nil
	case bool:
		return x, nil
	case json.Number:
		if !isJSONNumber(string(x)) {
			return nil, fmt.Errorf("invalid number %q", string(x))
		}
		if _, err := strconv.ParseFloat(string(x), 64); err != nil {
			// Events' numbers are 64-bit floats (see segmentd.CheckValue);
			// PostgreSQL's numeric cannot even store 1e200000.
			return nil, errors.New("the number is outside the range of a 64-bit float (at most ±1.7976931348623157e308)")
		}
		return x, nil
	case int:
		return json.Number(strconv.FormatInt(int64(x), 10)), nil
	case int8:
		return json.Number(strconv.FormatInt(int64(x), 10)), nil
	case int16:
		return json.Number(strconv.FormatInt(int64(x), 10)), nil
	case int32:
		return json.Number(strconv.FormatInt(int64(x), 10)), nil
	case int64:
		return json.Number(strconv.FormatInt(x, 10)), nil
	case uint:
		return json.Number(strconv.FormatUint(uint64(x), 10)), nil
	case uint8:
		return json.Number(strconv.FormatUint(uint64(x), 10)), nil
	case uint16:
		return json.Number(strconv.FormatUint(uint64(x), 10)), nil
	case uint32:
		return json.Number(strconv.FormatUint(uint64(x), 10)), nil
	case uint64:
		return json.Number(strconv.FormatUint(x, 10)), nil
	case float32, float64:
		// encoding/json's float formatting is the canonical one; it also
		// rejects NaN and infinities.
		b, err := json.Marshal(x)
		if err != nil {
			return nil, err
		}
		return json.Number(b), nil
	case []any:
		if x == nil {
			return nil, nil
		}
		out := make([]any, len(x))
		for i, e := range x {
			n, err := normalize(e, depth+1)
			if err != nil {
				return nil, err
			}
			out[i] = n
		}
		return out, nil
	case map[string]any:
		if x == nil {
			return nil, nil
		}
		out := make(map[string]any, len(x))
		for k, e := range x {
			n, err := normalize(e, depth+1)
			if err != nil {
				return nil, err
			}
			if strings.IndexByte(k, 0) >= 0 {
				return nil, errors.New("a key must not contain the NUL character (\\u0000)")
			}
			key := validUTF8(k)
			if _, dup := out[key]; dup {
				return nil, fmt.Errorf("duplicate key %q after replacing invalid UTF-8", key)
			}
			out[key] = n
		}
		return out, nil
	}
	// Anything else ([]string, time.Time, structs, pointers, ...) goes
	// through encoding/json, which knows how to represent it if anything
	// does, and reports cycles and unsupported types as errors.
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var decoded any
	if err := dec.Decode(&decoded); err != nil {
		return nil, err
	}
	return normalize(decoded, depth+1)
}

// validUTF8 replaces each invalid byte with U+FFFD, exactly as encoding/json
// does when it encodes a string.
func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		b.WriteRune(r) // RuneError for an invalid byte
		i += size
	}
	return b.String()
}

// isJSONNumber reports whether s is a number literal in JSON's grammar.
func isJSONNumber(s string) bool {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && '1' <= s[i] && s[i] <= '9':
		for i < len(s) && isDigit(s[i]) {
			i++
		}
	default:
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		if i == len(s) || !isDigit(s[i]) {
			return false
		}
		for i < len(s) && isDigit(s[i]) {
			i++
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if i == len(s) || !isDigit(s[i]) {
			return false
		}
		for i < len(s) && isDigit(s[i]) {
			i++
		}
	}
	return i == len(s)
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// parseDecimal reads a plain decimal number such as "42", "-3.5", ".5" or
// "1e3" (surrounding spaces allowed). Unlike strconv.ParseFloat alone it
// refuses "NaN", "Inf", hex floats and underscores: strings like those are
// text, not numbers, to a person writing a segment.
func parseDecimal(s string) (float64, bool) {
	s = strings.TrimSpace(s)
	i := 0
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		i++
	}
	digits := 0
	for i < len(s) && isDigit(s[i]) {
		i++
		digits++
	}
	if i < len(s) && s[i] == '.' {
		i++
		for i < len(s) && isDigit(s[i]) {
			i++
			digits++
		}
	}
	if digits == 0 {
		return 0, false
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		start := i
		for i < len(s) && isDigit(s[i]) {
			i++
		}
		if i == start {
			return 0, false
		}
	}
	if i != len(s) {
		return 0, false
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return 0, false
	}
	// Out of range means ±Inf or 0, which still orders correctly.
	return f, true
}

// operand is one scalar of a predicate's value, with every interpretation
// Eval may need worked out in advance.
type operand struct {
	kind   valueKind
	str    string    // the string; a number's literal; "true" or "false"
	num    float64   // a number, or a numeric string (isNum)
	t      time.Time // a date/time string (isTime)
	b      bool      // a bool, or the string "true"/"false" (isBool)
	isNum  bool
	isTime bool
	isBool bool
}

type valueKind uint8

const (
	kindNone valueKind = iota
	kindString
	kindNumber
	kindBool
	kindList
	kindObject
)

func kindOf(v any) valueKind {
	switch v.(type) {
	case string:
		return kindString
	case json.Number:
		return kindNumber
	case bool:
		return kindBool
	case []any:
		return kindList
	case map[string]any:
		return kindObject
	}
	return kindNone
}

func (k valueKind) String() string {
	switch k {
	case kindString:
		return "a string"
	case kindNumber:
		return "a number"
	case kindBool:
		return "a boolean"
	case kindList:
		return "a list"
	case kindObject:
		return "an object"
	}
	return "null"
}

// newOperand prepares a normalized scalar (string, json.Number or bool).
func newOperand(v any) operand {
	switch x := v.(type) {
	case string:
		o := operand{kind: kindString, str: x}
		o.num, o.isNum = parseDecimal(x)
		o.t, o.isTime = parseTime(x)
		if x == "true" || x == "false" {
			o.b, o.isBool = x == "true", true
		}
		return o
	case json.Number:
		o := operand{kind: kindNumber, str: string(x), isNum: true}
		o.num, _ = parseDecimal(string(x))
		return o
	case bool:
		return operand{kind: kindBool, str: strconv.FormatBool(x), b: x, isBool: true}
	}
	return operand{}
}

// operands is a predicate's value, compiled for its operator.
type operands struct {
	one    operand   // EQ ... MATCHES
	list   []operand // IN, NOT_IN
	lo, hi operand   // BETWEEN
	re     *regexp.Regexp
	dur    time.Duration
}

// compileValue checks that a normalized value has the shape op needs and
// prepares it. A non-empty message says what is wrong. strict refuses a
// string that is neither a number nor a date in an ordering predicate
// (GT, GTE, LT, LTE, BETWEEN), as Parse does; without it (Compile, for
// trees already stored) such a string orders as text, as it used to.
func compileValue(op Operator, v any, strict bool) (operands, string) {
	var ops operands
	k := kindOf(v)
	if msg := checkStrings(v); msg != "" && !op.ignoresValue() {
		return ops, msg
	}
	switch op {
	case OpExists, OpNotExists:
		// The value is ignored, whatever it is.
	case OpEQ, OpNEQ, OpContains, OpNotContains:
		if k != kindString && k != kindNumber && k != kindBool {
			return ops, fmt.Sprintf("%s needs a string, number or boolean, not %s", op, k)
		}
		ops.one = newOperand(v)
	case OpGT, OpGTE, OpLT, OpLTE:
		if k != kindString && k != kindNumber {
			return ops, fmt.Sprintf("%s needs a number or a date, not %s", op, k)
		}
		ops.one = newOperand(v)
		if msg := orderable(op, ops.one, strict); msg != "" {
			return ops, msg
		}
	case OpStartsWith, OpEndsWith:
		if k != kindString {
			return ops, fmt.Sprintf("%s needs a string, not %s", op, k)
		}
		ops.one = newOperand(v)
	case OpMatches:
		if k != kindString {
			return ops, fmt.Sprintf("MATCHES needs a regular expression as a string, not %s", k)
		}
		re, err := regexp.Compile(v.(string))
		if err != nil {
			return ops, fmt.Sprintf("MATCHES needs a valid RE2 regular expression: %v", err)
		}
		ops.one, ops.re = newOperand(v), re
	case OpIn, OpNotIn:
		list, _ := v.([]any)
		switch {
		case k != kindList:
			return ops, fmt.Sprintf("%s needs a list of values, not %s", op, k)
		case len(list) == 0:
			return ops, fmt.Sprintf("%s needs a non-empty list of values", op)
		case len(list) > maxListLen:
			return ops, fmt.Sprintf("%s takes at most %d values", op, maxListLen)
		}
		ops.list = make([]operand, len(list))
		for i, e := range list {
			if ek := kindOf(e); ek != kindString && ek != kindNumber && ek != kindBool {
				return ops, fmt.Sprintf("%s needs a list of strings, numbers or booleans; element %d is %s", op, i, ek)
			}
			ops.list[i] = newOperand(e)
		}
	case OpBetween:
		list, _ := v.([]any)
		if len(list) != 2 {
			return ops, "BETWEEN needs a list of two values"
		}
		lk, hk := kindOf(list[0]), kindOf(list[1])
		if lk != hk || (lk != kindNumber && lk != kindString) {
			return ops, fmt.Sprintf("BETWEEN needs two numbers or two dates, not %s and %s", lk, hk)
		}
		ops.lo, ops.hi = newOperand(list[0]), newOperand(list[1])
		for _, o := range []operand{ops.lo, ops.hi} {
			if msg := orderable(op, o, strict); msg != "" {
				return ops, msg
			}
		}
		lo, hi := ops.lo, ops.hi
		if lk == kindString && lo.isTime != hi.isTime && strict {
			return ops, fmt.Sprintf("BETWEEN needs two numbers or two dates (dates as %s), not %q and %q", DateForms, lo.str, hi.str)
		}
		if (lk == kindNumber && lo.num > hi.num) || (lo.isTime && hi.isTime && lo.t.After(hi.t)) {
			return ops, fmt.Sprintf("BETWEEN needs low <= high, got %s and %s", lo.str, hi.str)
		}
	case OpWithinLast:
		s, ok := v.(string)
		if !ok {
			return ops, fmt.Sprintf(`WITHIN_LAST needs a duration string such as "7d", "24h" or "30m", not %s`, k)
		}
		d, err := ParseDuration(s)
		if err != nil {
			return ops, `WITHIN_LAST needs a duration such as "7d", "24h" or "30m": ` + err.Error()
		}
		ops.dur = d
	default:
		return ops, fmt.Sprintf("unknown operator %q", string(op))
	}
	return ops, ""
}

// orderable checks that an ordering predicate's string is a number or a
// date. Without strict, any other string orders as text.
func orderable(op Operator, o operand, strict bool) string {
	if !strict || o.kind != kindString || o.isNum || o.isTime {
		return ""
	}
	return fmt.Sprintf("%s compares numbers and dates: %q is neither; write a number, or a date as %s", op, o.str, DateForms)
}

// checkStrings enforces the length limit on every string in a value.
func checkStrings(v any) string {
	switch x := v.(type) {
	case string:
		if len(x) > maxStringLen {
			return fmt.Sprintf("strings in a value are at most %d bytes", maxStringLen)
		}
	case []any:
		for _, e := range x {
			if msg := checkStrings(e); msg != "" {
				return msg
			}
		}
	case map[string]any:
		for _, e := range x {
			if msg := checkStrings(e); msg != "" {
				return msg
			}
		}
	}
	return ""
}

// numberOf reads an actual value as a number. Strings count only when
// allowString is set; NaN never counts, since it compares with nothing.
func numberOf(v any, allowString bool) (float64, bool) {
	var f float64
	switch x := v.(type) {
	case float64:
		f = x
	case float32:
		f = float64(x)
	case int:
		f = float64(x)
	case int8:
		f = float64(x)
	case int16:
		f = float64(x)
	case int32:
		f = float64(x)
	case int64:
		f = float64(x)
	case uint:
		f = float64(x)
	case uint8:
		f = float64(x)
	case uint16:
		f = float64(x)
	case uint32:
		f = float64(x)
	case uint64:
		f = float64(x)
	case json.Number:
		return parseDecimal(string(x))
	case string:
		if !allowString {
			return 0, false
		}
		return parseDecimal(x)
	default:
		return 0, false
	}
	return f, !math.IsNaN(f)
}

// timeOf reads an actual value as an instant.
func timeOf(v any) (time.Time, bool) {
	switch x := v.(type) {
	case string:
		return parseTime(x)
	case time.Time:
		return x, true
	}
	return time.Time{}, false
}

// equal is typed equality between an expected scalar and an actual value.
// ok is false when the two cannot be compared.
func (o *operand) equal(actual any) (eq, ok bool) {
	switch o.kind {
	case kindNumber:
		if f, ok := numberOf(actual, true); ok {
			return f == o.num, true
		}
	case kindBool:
		switch a := actual.(type) {
		case bool:
			return a == o.b, true
		case string:
			if a == "true" || a == "false" {
				return (a == "true") == o.b, true
			}
		}
	case kindString:
		switch a := actual.(type) {
		case string:
			if o.isTime {
				if t, ok := parseTime(a); ok {
					return t.Equal(o.t), true
				}
			}
			return a == o.str, true
		case bool:
			if o.isBool {
				return a == o.b, true
			}
		case time.Time:
			if o.isTime {
				return a.Equal(o.t), true
			}
		default:
			if o.isNum {
				if f, ok := numberOf(actual, false); ok {
					return f == o.num, true
				}
			}
		}
	}
	return false, false
}

// compare orders an actual value against an expected scalar: the sign of
// actual - expected. ok is false when the two cannot be ordered.
func (o *operand) compare(actual any) (c int, ok bool) {
	switch o.kind {
	case kindNumber:
		if f, ok := numberOf(actual, true); ok {
			return cmpFloat(f, o.num), true
		}
	case kindString:
		switch a := actual.(type) {
		case string:
			if o.isTime {
				// A date only orders against dates: "N/A" is not after
				// 2025-01-01, whatever the byte order says.
				if t, ok := parseTime(a); ok {
					return t.Compare(o.t), true
				}
				return 0, false
			}
			return strings.Compare(a, o.str), true
		case time.Time:
			if o.isTime {
				return a.Compare(o.t), true
			}
		default:
			if o.isNum {
				if f, ok := numberOf(actual, false); ok {
					return cmpFloat(f, o.num), true
				}
			}
		}
	}
	return 0, false
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// contains is CONTAINS: substring of a string, or typed membership in a list.
// ok is false when actual is neither a string nor a list.
func (o *operand) contains(actual any) (found, ok bool) {
	switch a := actual.(type) {
	case string:
		return strings.Contains(a, o.str), true
	case []any:
		for _, e := range a {
			if eq, _ := o.equal(e); eq {
				return true, true
			}
		}
		return false, true
	case []string:
		for _, e := range a {
			if eq, _ := o.equal(e); eq {
				return true, true
			}
		}
		return false, true
	}
	return false, false
}
