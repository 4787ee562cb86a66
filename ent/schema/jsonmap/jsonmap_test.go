package jsonmap_test

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/segmentd/segmentd/ent/schema/jsonmap"
)

// TestUnmarshal: a stored object decodes exactly as encoding/json decodes
// it, except that a number outside float64, anywhere in it, reads as its
// text instead of failing the whole object.
func TestUnmarshal(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want jsonmap.Map
	}{
		{`{"a":1,"b":[1.5,"x",{"c":null}],"d":true}`, nil}, // nil: as encoding/json
		{`null`, nil},
		{`{"big":1e400,"ok":2,"deep":{"l":[3,-1e999]}}`, jsonmap.Map{"big": "1e400", "ok": 2.0, "deep": map[string]any{"l": []any{3.0, "-1e999"}}}},
	} {
		var got jsonmap.Map
		if err := json.Unmarshal([]byte(tc.in), &got); err != nil {
			t.Fatalf("Unmarshal(%s): %v", tc.in, err)
		}
		want := tc.want
		if want == nil {
			var std map[string]any
			if err := json.Unmarshal([]byte(tc.in), &std); err != nil {
				t.Fatal(err)
			}
			want = std
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("Unmarshal(%s) = %#v, want %#v", tc.in, got, want)
		}
	}
	var m jsonmap.Map
	if err := json.Unmarshal([]byte(`{"a":`), &m); err == nil {
		t.Error("invalid JSON decoded without an error")
	}
}
