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
