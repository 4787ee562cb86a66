// Package pulid implements prefixed, sortable identifiers (a type prefix and a
// ULID, such as "seg_01JD3V6N5Q8K4Z2R7W9X1Y0B3C"), so that every ID names its
// entity type: `node(id:)` resolves any ID without a lookup table, and people
// reading logs or URLs can tell a segment from a campaign at a glance.
package pulid

import (
	"crypto/rand"
	"database/sql/driver"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"
)

// ID is a prefixed ULID: "<prefix>_<ulid>".
type ID string

var (
	entropyMu sync.Mutex
	// Monotonic entropy keeps IDs made in the same millisecond in creation
	// order, so that ordering by ID follows creation order within a process.
	entropy = ulid.Monotonic(rand.Reader, 0)
)

// New returns a new ID with the given prefix for the current time.
func New(prefix string) ID {
	entropyMu.Lock()
	defer entropyMu.Unlock()
	return ID(prefix + "_" + ulid.MustNew(ulid.Timestamp(time.Now()), entropy).String())
}

// Prefix returns the type prefix of the ID ("seg" for "seg_01J..."), or "" if
// the ID has none.
// NewULID returns a new ULID as text: the part of an ID after its prefix.
// Bulk writers (CSV imports) prefix it in SQL to name the rows they create.
func NewULID() string {
	entropyMu.Lock()
	defer entropyMu.Unlock()
	return ulid.MustNew(ulid.Timestamp(time.Now()), entropy).String()
}

func (id ID) Prefix() string {
	p, _, ok := strings.Cut(string(id), "_")
	if !ok {
		return ""
	}
	return p
}

// UnmarshalGQL implements graphql.Unmarshaler.
func (id *ID) UnmarshalGQL(v any) error {
	switch v := v.(type) {
	case string:
		*id = ID(v)
	case ID: // ent's Noder hands IDs back through here
		*id = v
	default:
		return fmt.Errorf("an ID must be a string, not %T", v)
	}
	return nil
}

// MarshalGQL implements graphql.Marshaler.
func (id ID) MarshalGQL(w io.Writer) {
	_, _ = io.WriteString(w, strconv.Quote(string(id)))
}

// Scan implements sql.Scanner.
func (id *ID) Scan(src any) error {
	switch src := src.(type) {
	case nil:
		return fmt.Errorf("pulid: expected a value")
	case string:
		*id = ID(src)
	case []byte:
		*id = ID(src)
	default:
		return fmt.Errorf("pulid: unexpected type %T", src)
	}
	return nil
}

// Value implements driver.Valuer.
func (id ID) Value() (driver.Value, error) { return string(id), nil }
