package service_test

import (
	"bufio"
	"context"
	"fmt"
	"iter"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentd/segmentd/ent/importjob"
	"github.com/segmentd/segmentd/ent/segment"
	"github.com/segmentd/segmentd/internal/rawimport"
	"github.com/segmentd/segmentd/internal/testenv"
	"github.com/segmentd/segmentd/service"
)

// BenchmarkImport imports a CSV file of N distinct user IDs (default
// 1,000,000; SEGMENTD_BENCH_IMPORT_ROWS sets it) into an empty STATIC
// segment with an ACTIVE campaign, on each store, and reports:
//
//   - rows/s of the import (upload excluded: the file is on disk; staging,
//     users, memberships, change log, activations, counters and the job's
//     report included);
//
//   - raw_rows/s: users per second of the raw write of the rows the import
//     wrote, in the same run (package rawimport): for each user a users
//     row, a membership, a change-log row and an activation, into copies of
//     those tables with the same columns and indexes, in one transaction:
//     COPY on PostgreSQL, multi-row INSERTs on SQLite;
//
//   - ratio = rows/s ÷ raw_rows/s (the aim is ≥ 0.6);
//
//   - peak_MB_above_idle: the process's peak resident memory during the
//     import (VmHWM, reset before it starts) minus its resident memory
//     just before (the aim is < 100 MB).
//
//     go test ./service -run '^$' -bench BenchmarkImport -benchtime 1x
//     SEGMENTD_BENCH_IMPORT_ROWS=10000000 go test ./service -run '^$' -bench BenchmarkImport -benchtime 1x -timeout 2h
func BenchmarkImport(b *testing.B) {
	rows := 1_000_000
	if v := os.Getenv("SEGMENTD_BENCH_IMPORT_ROWS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			b.Fatalf("SEGMENTD_BENCH_IMPORT_ROWS: %v", err)
		}
		rows = n
	}
	file := filepath.Join(b.TempDir(), "ids.csv")
	writeIDFile(b, file, rows)
	for _, storeName := range testenv.Stores {
		b.Run(fmt.Sprintf("store=%s/rows=%d", storeName, rows), func(b *testing.B) {
			ctx := context.Background()
			st := openIngestStore(b, storeName)
			var cfg service.Config
			if os.Getenv("SEGMENTD_BENCH_LOG") != "" {
				h := slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})
				slog.SetDefault(slog.New(h))
				cfg.Log = slog.New(h)
			}
			svc := newService(b, st, cfg)

			var took time.Duration
			var peak int64
			var raw *rawimport.Result
			for i := 0; b.Loop(); i++ {
				b.StopTimer()
				seg, err := st.Client.Segment.Create().SetName(fmt.Sprintf("import %d", i)).SetKind(segment.KindSTATIC).Save(ctx)
				if err != nil {
					b.Fatal(err)
				}
				camp, err := st.Client.Campaign.Create().SetName(fmt.Sprintf("c%d", i)).SetSegmentRef(seg.ID).SetStatus("ACTIVE").Save(ctx)
				if err != nil {
					b.Fatal(err)
				}
				path := file + ".job"
				if err := os.Link(file, path); err != nil {
					b.Fatal(err)
				}
				idle := procStatus(b, "VmRSS")
				resetPeak(b)
				b.StartTimer()
				start := time.Now()
				job, err := svc.StartImport(ctx, service.ImportInput{SegmentID: seg.ID, Mode: importjob.ModeADD, Path: path, FileName: "ids.csv"})
				if err != nil {
					b.Fatal(err)
				}
				svc.WaitImports()
				took = time.Since(start)
				b.StopTimer()
				peak = procStatus(b, "VmHWM") - idle
				job, err = st.Client.ImportJob.Get(ctx, job.ID)
				if err != nil {
					b.Fatal(err)
				}
				if job.Status != importjob.StatusSUCCEEDED || job.Added != rows || job.TotalRows != rows {
					b.Fatalf("job: %s %v added %d of %d rows", job.Status, job.Failure, job.Added, job.TotalRows)
				}
				members, err := seg.QueryMemberships().Count(ctx)
				if err != nil || members != rows {
					b.Fatalf("members %d of %d (%v)", members, rows, err)
				}
				raw, err = rawimport.Write(ctx, st.DB, st.Dialect, rawimport.Rows{
					Segment: string(seg.ID), Campaign: string(camp.ID), At: time.Now(),
					Reason: fmt.Sprintf("imported from %q (%s)", "ids.csv", job.ID), IDs: fileIDs(b, file)})
				if err != nil {
					b.Fatal(err)
				}
				if raw.Rows != rows {
					b.Fatalf("raw write: %d of %d rows", raw.Rows, rows)
				}
				b.Logf("raw write: %s per table (%v): %v", raw.How, rawimport.Tables, raw.Took)
				b.StartTimer()
			}
			rate := float64(rows) / took.Seconds()
			rawRate := float64(rows) / raw.Elapsed.Seconds()
			b.ReportMetric(rate, "rows/s")
			b.ReportMetric(rawRate, "raw_rows/s")
			b.ReportMetric(rate/rawRate, "ratio")
			b.ReportMetric(float64(peak)/(1<<20), "peak_MB_above_idle")
		})
	}
}

func writeIDFile(b *testing.B, path string, rows int) {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	w.WriteString("user_id\n")
	for i := range rows {
		fmt.Fprintf(w, "import-user-%09d\n", i)
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
}

// fileIDs yields the IDs of a file that writeIDFile wrote.
func fileIDs(b *testing.B, file string) iter.Seq[string] {
	return func(yield func(string) bool) {
		f, err := os.Open(file)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		sc.Scan() // header
		for sc.Scan() {
			if !yield(sc.Text()) {
				return
			}
		}
		if err := sc.Err(); err != nil {
			b.Fatal(err)
		}
	}
}

// procStatus reads a memory figure (kB) of this process from
// /proc/self/status, in bytes.
func procStatus(b *testing.B, key string) int64 {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Skipf("no /proc/self/status: %v", err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, key+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return kb << 10
		}
	}
	b.Fatalf("%s not in /proc/self/status", key)
	return 0
}

// resetPeak resets VmHWM to the current RSS (Linux: clear_refs 5).
func resetPeak(b *testing.B) {
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		b.Fatalf("reset peak RSS: %v", err)
	}
}
