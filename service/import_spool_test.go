package service_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/segmentd/segmentd/ent/importjob"
	"github.com/segmentd/segmentd/ent/segment"
	"github.com/segmentd/segmentd/internal/testenv"
	"github.com/segmentd/segmentd/service"
)

// The spooled file of an import is removed when its job ends, also when
// its rows are not valid, and at once when the job is refused.
func TestImportRemovesItsSpooledFile(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		ctx := context.Background()
		svc, _ := openService(t, dbURL, nil)
		seg, err := svc.CreateSegment(ctx, service.CreateSegmentInput{Name: "spooled", Kind: segment.KindSTATIC})
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		spool := func(name, content string) string {
			p := filepath.Join(dir, name)
			if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			return p
		}
		for _, c := range []struct {
			name, content string
			status        importjob.Status
		}{
			{"good.csv", "user_id\nu-1\nu-2\n", importjob.StatusSUCCEEDED},
			{"bad.csv", "user_id,user_id\n\xff\xfe\x00", importjob.StatusSUCCEEDED}, // every row reported invalid
		} {
			path := spool(c.name, c.content)
			job, err := svc.StartImport(ctx, service.ImportInput{SegmentID: seg.ID, Mode: importjob.ModeADD, Path: path, FileName: c.name})
			if err != nil {
				t.Fatal(err)
			}
			svc.WaitImports()
			if job, err = svc.EntClient().ImportJob.Get(ctx, job.ID); err != nil {
				t.Fatal(err)
			}
			if job.Status != c.status {
				t.Errorf("%s: job %s, want %s", c.name, job.Status, c.status)
			}
			if _, err := os.Stat(path); !os.IsNotExist(err) {
				t.Errorf("%s: the spooled file is still there after its job ended (%v)", c.name, err)
			}
		}
		path := spool("refused.csv", "u-1\n")
		if _, err := svc.StartImport(ctx, service.ImportInput{SegmentID: "seg_01J0000000000000000000000", Mode: importjob.ModeADD, Path: path}); err == nil {
			t.Fatal("an import into an unknown segment started")
		}
		if _, err := os.Stat(path); !os.IsNotExist(err) {
			t.Errorf("the spooled file of a refused import is still there (%v)", err)
		}
	})
}
