package changelog_test

import (
	"testing"

	"github.com/segmentd/segmentd/changelog"
)

func TestCursorRoundTrip(t *testing.T) {
	t.Parallel()
	for _, c := range []changelog.Cursor{{}, {Tx: 0, Seq: 42}, {Tx: 1 << 40, Seq: 7}} {
		got, err := changelog.ParseCursor(c.String())
		if err != nil || got != c {
			t.Fatalf("ParseCursor(%q) = %v, %v", c.String(), got, err)
		}
	}
	for _, bad := range []string{"", "12", "a.b", "1.-2", "-1.2", "1.2.3"} {
		if _, err := changelog.ParseCursor(bad); err == nil {
			t.Fatalf("ParseCursor(%q) accepted", bad)
		}
	}
}

// Each log's scoped writer locks have a first key of their own: two logs
// sharing one would make a reader of one wait for the other's writers, and
// a key shared with another two-key advisory lock (service's event-name
// locks, 0x5e6e) would count those transactions as log writers.
func TestWriterSpacesAreDistinct(t *testing.T) {
	t.Parallel()
	seen := map[int32]string{0x5e6e: "service's event-name locks"}
	for _, l := range changelog.Logs() {
		if l.WriterSpace == 0 {
			t.Errorf("%s has no WriterSpace", l.Table)
		}
		if other, ok := seen[l.WriterSpace]; ok {
			t.Errorf("%s and %s share the first key %#x", l.Table, other, l.WriterSpace)
		}
		seen[l.WriterSpace] = l.Table
	}
}
