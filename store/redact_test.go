package store

import (
	"context"
	"strings"
	"testing"
)

// A database URL that does not parse is reported without its password:
// url.Parse's own error quotes the URL whole.
func TestOpenUnparsableURLHidesPassword(t *testing.T) {
	for _, raw := range []string{
		"postgres://segmentd:s3cret%zz@db.internal/segmentd",    // bad escape
		"postgres://segmentd:s3cret/pw@db.internal/segmentd",    // slash in the password
		"postgresql://segmentd:s3cret pw@[db.internal/segmentd", // space and bracket
		"postgres://segmentd:s3cret@pw@db.internal:notaport/segmentd",
	} {
		_, err := Open(context.Background(), raw)
		if err == nil {
			t.Fatalf("Open(%q): no error", raw)
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("Open(%q): error %q shows the password", raw, err)
		}
		if !strings.Contains(err.Error(), "database URL") {
			t.Errorf("Open(%q): error %q does not say the database URL is at fault", raw, err)
		}
		if got := Redact(raw); strings.Contains(got, "s3cret") {
			t.Errorf("Redact(%q) = %q", raw, got)
		}
	}
}
