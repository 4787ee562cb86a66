package trigger_test

import (
	"strings"
	"testing"
	"time"

	"github.com/segmentd/segmentd/trigger"
)

func TestParseDuration(t *testing.T) {
	t.Parallel()
	const day = 24 * time.Hour
	tests := []struct {
		in   string
		want time.Duration
		err  string // a substring of the error; "" for success
	}{
		{"7d", 7 * day, ""},
		{"24h", 24 * time.Hour, ""},
		{"30m", 30 * time.Minute, ""},
		{"45s", 45 * time.Second, ""},
		{"2w", 14 * day, ""},
		{"1h30m", 90 * time.Minute, ""},
		{"1w2d3h4m5s", 9*day + 3*time.Hour + 4*time.Minute + 5*time.Second, ""},
		{"1h0m", time.Hour, ""},
		{"007d", 7 * day, ""},
		{"36525d", 36525 * day, ""},
		{"5217w6d", 36525 * day, ""},
		{"", 0, "empty"},
		{"0d", 0, "more than zero"},
		{"0s0m", 0, "more than zero"},
		{"7", 0, "missing unit after 7"},
		{"d", 0, "expected a number before 'd'"},
		{"-7d", 0, "expected a number before '-'"},
		{"7D", 0, "unknown unit 'D'"},
		{"7y", 0, "unknown unit 'y'"},
		{"1ms", 0, "expected a number before 's'"},
		{"1.5h", 0, "unknown unit '.'"},
		{"7 d", 0, "unknown unit ' '"},
		{" 7d", 0, "expected a number before ' '"},
		{"7d ", 0, "expected a number before ' '"},
		{"7日", 0, "unknown unit '日'"},
		{"36525d1s", 0, "longer than 100 years"},
		{"5218w", 0, "longer than 100 years"},
		{"99999999999999999999s", 0, "longer than 100 years"},
		{strings.Repeat("9", 100) + "s", 0, "longer than 100 years"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			got, err := trigger.ParseDuration(tt.in)
			if tt.err == "" {
				if err != nil || got != tt.want {
					t.Errorf("ParseDuration(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParseDuration(%q) error = %v, want it to contain %q", tt.in, err, tt.err)
			}
			if got != 0 {
				t.Errorf("ParseDuration(%q) = %v with an error, want 0", tt.in, got)
			}
		})
	}
}
