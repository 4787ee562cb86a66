package segmentd_test

import (
	"encoding/json"
	"errors"
	"math"
	"testing"

	"github.com/segmentd/segmentd"
)

func TestCheckValue(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		v     any
		field string // "" when the value is fine
	}{
		{map[string]any{"a": json.Number("1e308"), "b": json.Number("1e-400"), "c": "text", "d": []any{true, nil, 3.5}}, ""},
		{map[string]any{"big": json.Number("1e400")}, "p.big"},
		{map[string]any{"x": []any{1, map[string]any{"Sign Up Date": json.Number("-1e200000")}}}, `p.x[1]["Sign Up Date"]`},
		{map[string]any{"f": math.Inf(1)}, "p.f"},
		{map[string]any{"s": "a\x00"}, "p.s"},
		{map[string]any{"k\x00": 1}, `p["k\x00"]`},
		{[]any{"ok", "\x00"}, "p[1]"},
	} {
		err := segmentd.CheckValue("p", tc.v)
		var e *segmentd.Error
		switch {
		case tc.field == "" && err != nil:
			t.Errorf("CheckValue(%v) = %v, want nil", tc.v, err)
		case tc.field != "" && (!errors.As(err, &e) || e.Field != tc.field || e.Code != segmentd.CodeInvalid):
			t.Errorf("CheckValue(%v) = %v, want BAD_USER_INPUT at %s", tc.v, err, tc.field)
		}
	}
}

func TestFieldPath(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ path, key, want string }{
		{"input.properties", "plan", "input.properties.plan"},
		{"", "plan", "plan"},
		{"p", "Sign Up Date", `p["Sign Up Date"]`},
		{"p", "a.b", `p["a.b"]`},
		{"p", "9lives", `p["9lives"]`},
		{"p", "v2_x", "p.v2_x"},
		{"p", "", `p[""]`},
		{"p", "ë", `p["ë"]`},
	} {
		if got := segmentd.FieldPath(tc.path, tc.key); got != tc.want {
			t.Errorf("FieldPath(%q, %q) = %s, want %s", tc.path, tc.key, got, tc.want)
		}
	}
}

func TestNormalizeID(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		" u1 ":          "u1",
		"Zoe\u0308":     "Zo\u00eb",
		"\tZo\u00eb\n":  "Zo\u00eb",
		"\ufb01":        "\ufb01",       // NFC keeps the ligature (NFKC would not)
		"a\u0301\u0323": "\u1ea1\u0301", // canonical reordering, then composition
		"":              "",
	} {
		if got := segmentd.NormalizeID(in); got != want {
			t.Errorf("NormalizeID(%q) = %q, want %q", in, got, want)
		}
	}
}
