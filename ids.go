package segmentd

import (
	"strings"

	"golang.org/x/text/unicode/norm"
)

// NormalizeID is segmentd's one rule for the identifiers of users and
// events: leading and trailing white space is dropped, and the rest is put
// in Unicode Normalization Form C. It applies on every write and on every
// lookup (user IDs, anonymous IDs, message IDs, every argument that names a
// user), so that " u1 " and "u1" are one user, and "Zoë" typed as one code
// point (U+00EB) or as "e" plus a combining diaeresis (U+0308) is one user
// and one messageId.
//
// NFC, not NFKC: compatibility forms ("ﬁ" and "fi", full-width and ASCII
// digits) stay distinct, since for IDs they may well be different values;
// NFC only unifies different encodings of the same text.
func NormalizeID(s string) string {
	s = strings.TrimSpace(s)
	if norm.NFC.IsNormalString(s) {
		return s
	}
	return norm.NFC.String(s)
}
