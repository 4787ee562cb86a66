package main

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// latencies collects durations from many goroutines.
type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, d)
	l.mu.Unlock()
}

func (l *latencies) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.d)
}

// pct returns the p-quantile (0..1), or -1 without samples.
func (l *latencies) pct(p float64) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.d) == 0 {
		return -1
	}
	sort.Slice(l.d, func(i, j int) bool { return l.d[i] < l.d[j] })
	return l.d[min(len(l.d)-1, int(float64(len(l.d))*p))]
}

// procSample is a process's CPU time and peak memory, from /proc.
type procSample struct {
	cpu time.Duration // user + system
	hwm int64         // VmHWM: peak resident set, bytes
	rss int64         // VmRSS, bytes
}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat times: 100 on every
// Linux that Go supports (sysconf(_SC_CLK_TCK)).
const clockTicks = 100

func readProc(pid int) (procSample, error) {
	var s procSample
	if pid == 0 {
		return s, fmt.Errorf("no pid")
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, fmt.Errorf("read /proc/%d/stat: %w", pid, err)
	}
	// The command name (field 2) may hold spaces: fields count from the
	// closing parenthesis. utime and stime are fields 14 and 15.
	rest := string(b[strings.LastIndexByte(string(b), ')')+2:])
	f := strings.Fields(rest)
	if len(f) < 13 {
		return s, fmt.Errorf("short /proc/%d/stat", pid)
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	s.cpu = time.Duration(ut+st) * time.Second / clockTicks
	b, err = os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, fmt.Errorf("read /proc/%d/status: %w", pid, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmHWM:":
			s.hwm = kb * 1024
		case "VmRSS:":
			s.rss = kb * 1024
		}
	}
	return s, nil
}

// row is one line of the results table.
type row struct {
	scenario, figure, value, baseline, ratio string
}

// table is the results, printed at the end.
type table struct {
	mu   sync.Mutex
	rows []row
}

func (t *table) add(scenario, figure, value, baseline, ratio string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.rows = append(t.rows, row{scenario, figure, value, baseline, ratio})
}

func (t *table) print(w io.Writer, markdown bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	head := row{"scenario", "figure", "segmentd", "baseline", "segmentd / baseline"}
	if markdown {
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s |\n|---|---|--:|--:|--:|\n", head.scenario, head.figure, head.value, head.baseline, head.ratio)
		last := ""
		for _, r := range t.rows {
			sc := r.scenario
			if sc == last {
				sc = ""
			}
			last = r.scenario
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s |\n", sc, r.figure, r.value, r.baseline, r.ratio)
		}
		return
	}
	widths := [5]int{}
	all := append([]row{head}, t.rows...)
	for _, r := range all {
		for i, s := range []string{r.scenario, r.figure, r.value, r.baseline, r.ratio} {
			widths[i] = max(widths[i], len([]rune(s)))
		}
	}
	pad := func(s string, n int, right bool) string {
		sp := strings.Repeat(" ", max(0, n-len([]rune(s))))
		if right {
			return sp + s
		}
		return s + sp
	}
	last := ""
	for i, r := range all {
		sc := r.scenario
		if i > 0 && sc == last {
			sc = ""
		}
		last = r.scenario
		fmt.Fprintf(w, "%s  %s  %s  %s  %s\n", pad(sc, widths[0], false), pad(r.figure, widths[1], false),
			pad(r.value, widths[2], true), pad(r.baseline, widths[3], true), pad(r.ratio, widths[4], true))
		if i == 0 {
			fmt.Fprintln(w, strings.Repeat("-", widths[0]+widths[1]+widths[2]+widths[3]+widths[4]+8))
		}
	}
}

func fmtDur(d time.Duration) string {
	switch {
	case d < 0:
		return "n/a"
	case d < time.Millisecond:
		return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond))
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
	case d < time.Second:
		return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.2f s", d.Seconds())
}

func fmtRate(r float64) string {
	if r <= 0 {
		return "n/a"
	}
	s := strconv.FormatFloat(r, 'f', 0, 64)
	// thousands separators
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String() + "/s"
}

func fmtBytes(n int64) string {
	if n <= 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.0f MB", float64(n)/(1<<20))
}

// ratio formats a/b as "0.25×", or "" when either is unknown.
func ratio(a, b float64) string {
	if a <= 0 || b <= 0 {
		return ""
	}
	r := a / b
	switch {
	case r >= 100:
		return fmt.Sprintf("%.0f×", r)
	case r >= 10:
		return fmt.Sprintf("%.1f×", r)
	}
	return fmt.Sprintf("%.2f×", r)
}
