package trigger

import (
	"fmt"
	"time"
	"unicode/utf8"
)

const (
	day  = 24 * time.Hour
	week = 7 * day
	// maxDuration is 100 years of 365.25 days.
	maxDuration = 36525 * day
)

// ParseDuration reads a WITHIN_LAST duration: one or more
// <integer><unit> pairs with no spaces, where the unit is s (seconds),
// m (minutes), h (hours), d (days of 24 hours) or w (weeks of 7 days), for
// example "7d", "24h", "30m" or "1h30m". Pairs add up; the total must be
// more than zero and at most 100 years (36525 days). Units are lower case;
// there are no fractions, months or years, because those have no fixed
// length.
func ParseDuration(s string) (time.Duration, error) {
	fail := func(format string, args ...any) (time.Duration, error) {
		return 0, fmt.Errorf("invalid duration %q: %s", s, fmt.Sprintf(format, args...))
	}
	if s == "" {
		return fail("empty")
	}
	var total time.Duration
	for i := 0; i < len(s); {
		start := i
		var n int64
		for i < len(s) && isDigit(s[i]) {
			n = n*10 + int64(s[i]-'0')
			// Seconds are the smallest unit, so this bound also keeps n
			// from overflowing.
			if n > int64(maxDuration/time.Second) {
				return fail("longer than 100 years")
			}
			i++
		}
		if i == start {
			r, _ := utf8.DecodeRuneInString(s[i:])
			return fail("expected a number before %q", r)
		}
		if i == len(s) {
			return fail("missing unit after %s (use s, m, h, d or w)", s[start:i])
		}
		var unit time.Duration
		switch s[i] {
		case 's':
			unit = time.Second
		case 'm':
			unit = time.Minute
		case 'h':
			unit = time.Hour
		case 'd':
			unit = day
		case 'w':
			unit = week
		default:
			r, _ := utf8.DecodeRuneInString(s[i:])
			return fail("unknown unit %q (use s, m, h, d or w)", r)
		}
		i++
		if n > int64(maxDuration/unit) {
			return fail("longer than 100 years")
		}
		total += time.Duration(n) * unit
		if total > maxDuration {
			return fail("longer than 100 years")
		}
	}
	if total <= 0 {
		return fail("must be more than zero")
	}
	return total, nil
}
