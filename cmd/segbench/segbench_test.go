package main

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"
)

// TestRefusesRemoteURL: load goes to loopback unless -allow-remote says
// otherwise.
func TestRefusesRemoteURL(t *testing.T) {
	for _, tc := range []struct {
		url    string
		remote bool
		ok     bool
	}{
		{"http://127.0.0.1:8080", false, true},
		{"http://localhost:8080", false, true},
		{"http://[::1]:8080", false, true},
		{"http://10.1.2.3:8080", false, false},
		{"http://10.1.2.3:8080", true, true},
		{"ftp://127.0.0.1", false, false},
	} {
		c := config{url: tc.url, key: "k", scenario: "seed", batch: 100, workers: 1, events: 1, duration: time.Second, allowRemote: tc.remote}
		err := c.validate()
		if (err == nil) != tc.ok {
			t.Errorf("%s (allow-remote %v): err %v, want ok %v", tc.url, tc.remote, err, tc.ok)
		}
	}
}

// TestReadProc reads this process's CPU time and peak RSS from /proc.
func TestReadProc(t *testing.T) {
	buf := make([]byte, 64<<20)
	for i := range buf {
		buf[i] = byte(i)
	}
	s, err := readProc(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if s.hwm < 64<<20 || s.rss <= 0 || s.hwm < s.rss {
		t.Fatalf("VmHWM %d, VmRSS %d: want a peak of at least the 64 MB touched", s.hwm, s.rss)
	}
	_ = buf[len(buf)-1]
}

// TestTableMarkdown: -markdown prints a table that a markdown renderer
// reads: a header, a separator, a row per figure, the scenario once.
func TestTableMarkdown(t *testing.T) {
	var tb table
	tb.add("seed · trackEvents", "events/s", fmtRate(12345.6), "raw: "+fmtRate(50000), ratio(12345.6, 50000))
	tb.add("seed · trackEvents", "ack latency p50", fmtDur(3*time.Millisecond), "", "")
	var b bytes.Buffer
	tb.print(&b, true)
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	want := []string{
		"| scenario | figure | segmentd | baseline | segmentd / baseline |",
		"|---|---|--:|--:|--:|",
		"| seed · trackEvents | events/s | 12,346/s | raw: 50,000/s | 0.25× |",
		"|  | ack latency p50 | 3.00 ms |  |  |",
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Fatalf("markdown:\n%s\nwant:\n%s", b.String(), strings.Join(want, "\n"))
	}
}
