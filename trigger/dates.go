package trigger

import (
	"strings"
	"time"
)

// DateForms lists the written forms of a date or time that conditions,
// traits and properties may use wherever a date is compared: in ordering
// conditions (GT, GTE, LT, LTE, BETWEEN), equality (EQ, NEQ, IN, NOT_IN) and
// WITHIN_LAST. A date without a time is midnight UTC; a time without a zone
// is UTC.
// Month names are English, in any case, full or abbreviated ("Sept" and
// "Jan." too).
const DateForms = `"January 1, 2025", "Jan 1, 2025", "1 January 2025", "2025-01-01" or "2025-01-01T09:30:00Z"`

// months maps English month names and their usual abbreviations, lower
// case, to months.
var months = map[string]time.Month{
	"january": time.January, "jan": time.January,
	"february": time.February, "feb": time.February,
	"march": time.March, "mar": time.March,
	"april": time.April, "apr": time.April,
	"may":  time.May,
	"june": time.June, "jun": time.June,
	"july": time.July, "jul": time.July,
	"august": time.August, "aug": time.August,
	"september": time.September, "sep": time.September, "sept": time.September,
	"october": time.October, "oct": time.October,
	"november": time.November, "nov": time.November,
	"december": time.December, "dec": time.December,
}

// maxWrittenDate is the longest written date: "September 30, 2025" with
// room for extra spaces. Longer strings are not dates.
const maxWrittenDate = 40

// parseTime reads the date/time forms the language understands (see
// [DateForms]): RFC 3339 (with or without fractional seconds, "T" or a
// space between date and time), "2006-01-02T15:04:05" without a zone (UTC),
// "2006-01-02" (midnight UTC), and the written forms "January 2, 2006",
// "Jan 2, 2006", "January 2 2006", "2 January 2006" and "2 Jan 2006"
// (midnight UTC). Surrounding spaces are allowed.
func parseTime(s string) (time.Time, bool) {
	s = strings.TrimSpace(s)
	if len(s) < 10 {
		return time.Time{}, false
	}
	// A cheap shape check first: most strings are not dates, and failed
	// time.Parse calls allocate.
	if s[4] == '-' {
		return parseISO(s)
	}
	return parseWritten(s)
}

func parseISO(s string) (time.Time, bool) {
	if s[7] != '-' ||
		!isDigit(s[0]) || !isDigit(s[1]) || !isDigit(s[2]) || !isDigit(s[3]) ||
		!isDigit(s[5]) || !isDigit(s[6]) || !isDigit(s[8]) || !isDigit(s[9]) {
		return time.Time{}, false
	}
	if len(s) == 10 {
		t, err := time.Parse(time.DateOnly, s)
		return t, err == nil
	}
	if s[10] != 'T' && s[10] != ' ' {
		return time.Time{}, false
	}
	if s[10] == ' ' {
		s = s[:10] + "T" + s[11:]
	}
	last := s[len(s)-1]
	if last == 'Z' || (len(s) > 19 && strings.ContainsAny(s[19:], "+-")) {
		t, err := time.Parse(time.RFC3339Nano, s)
		return t, err == nil
	}
	t, err := time.Parse("2006-01-02T15:04:05.999999999", s)
	return t, err == nil
}

// parseWritten reads "January 2, 2006", "Jan 2, 2006", "January 2 2006",
// "Jan. 2, 2006", "2 January 2006" and "2 Jan 2006".
func parseWritten(s string) (time.Time, bool) {
	if len(s) > maxWrittenDate {
		return time.Time{}, false
	}
	f := strings.Fields(s)
	if len(f) != 3 {
		return time.Time{}, false
	}
	var monthWord, dayWord string
	switch {
	case isDigit(f[0][0]): // 2 January 2006
		dayWord, monthWord = f[0], f[1]
	default: // January 2, 2006
		monthWord, dayWord = f[0], strings.TrimSuffix(f[1], ",")
	}
	month, ok := months[strings.ToLower(strings.TrimSuffix(monthWord, "."))]
	if !ok {
		return time.Time{}, false
	}
	day, ok := smallNumber(dayWord, 2)
	if !ok || day < 1 {
		return time.Time{}, false
	}
	year, ok := smallNumber(f[2], 4)
	if !ok || len(f[2]) != 4 {
		return time.Time{}, false
	}
	t := time.Date(year, month, day, 0, 0, 0, 0, time.UTC)
	if t.Day() != day { // February 30 rolls over: not a date
		return time.Time{}, false
	}
	return t, true
}

// smallNumber reads 1 to maxDigits decimal digits.
func smallNumber(s string, maxDigits int) (int, bool) {
	if s == "" || len(s) > maxDigits {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return 0, false
		}
		n = n*10 + int(s[i]-'0')
	}
	return n, true
}
