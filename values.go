package segmentd

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"
)

// CheckValue reports the first part of a JSON value v (as encoding/json
// decodes it: maps, lists, strings, numbers as float64 or json.Number,
// booleans, nil) that segmentd could not store and read back the same on
// both stores:
//
//   - a number outside the range of a 64-bit float (1e400, -1e200000):
//     every reader decodes numbers as float64, so such a value could be
//     stored but never read;
//   - the NUL character (U+0000) in a string or in an object key:
//     PostgreSQL cannot store it in text or jsonb.
//
// The error is BAD_USER_INPUT with the path of the bad part: path itself
// ("input.properties") extended with keys and indexes, as FieldPath writes
// them ("input.properties.cart[1].price").
func CheckValue(path string, v any) error {
	switch x := v.(type) {
	case string:
		if strings.IndexByte(x, 0) >= 0 {
			return Invalid(path, "must not contain the NUL character (\\u0000)")
		}
	case json.Number:
		if _, err := strconv.ParseFloat(string(x), 64); err != nil {
			return Invalid(path, "the number %s is outside the range of a 64-bit float (at most ±1.7976931348623157e308)", shorten(string(x)))
		}
	case float64:
		if math.IsInf(x, 0) || math.IsNaN(x) {
			return Invalid(path, "the number %v is outside the range of a 64-bit float (at most ±1.7976931348623157e308)", x)
		}
	case float32:
		return CheckValue(path, float64(x))
	case map[string]any:
		for k, e := range x {
			p := FieldPath(path, k)
			if strings.IndexByte(k, 0) >= 0 {
				return Invalid(p, "a key must not contain the NUL character (\\u0000)")
			}
			if err := CheckValue(p, e); err != nil {
				return err
			}
		}
	case []any:
		for i, e := range x {
			if err := CheckValue(path+"["+strconv.Itoa(i)+"]", e); err != nil {
				return err
			}
		}
	}
	return nil
}

// FieldPath names key inside the object at path: path.key when key is a
// plain name (letters, digits, _), else path["key"] with key quoted as Go
// quotes strings, so that spaces, dots and control characters in keys stay
// unambiguous and printable.
func FieldPath(path, key string) string {
	plain := key != ""
	for i, r := range key {
		if !(r == '_' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || i > 0 && '0' <= r && r <= '9') {
			plain = false
			break
		}
	}
	switch {
	case plain && path == "":
		return key
	case plain:
		return path + "." + key
	}
	return path + "[" + strconv.Quote(shorten(key)) + "]"
}

// shorten cuts s to at most 40 bytes for messages, marking the cut.
func shorten(s string) string {
	if len(s) <= 40 {
		return s
	}
	cut := 40
	for cut > 0 && s[cut]&0xC0 == 0x80 {
		cut--
	}
	return s[:cut] + "…"
}
