package service

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/segmentd/segmentd/ent/importjob"
)

// uploadPrefix names the copies of uploaded files that imports own, in the
// upload folder. A live owner holds an exclusive flock on its copy until
// the import ends; a copy nobody holds belongs to a process that died
// (kill -9) and is removed at start (CleanImportLeftovers).
const uploadPrefix = "segmentd-import-"

// Spooled is an uploaded file on disk that an import owns.
type Spooled struct {
	Path string
	lock *os.File
}

// Close releases the file's lock (the import removes the file first).
func (sp *Spooled) Close() error {
	if sp == nil || sp.lock == nil {
		return nil
	}
	return sp.lock.Close()
}

// SpoolUpload gives an uploaded file a path of its own in the upload
// folder, locked as this process's: a file on disk (from) is hard-linked
// (no copy) when it can be, anything else copied from r. The name only
// matches uploadPrefix once the lock is held, so that a cleanup elsewhere
// never takes a live copy for a dead one.
func (s *Service) SpoolUpload(from *os.File, r io.Reader) (*Spooled, error) {
	var b [10]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("spool upload: %w", err)
	}
	dir := s.uploadDir
	tmp := filepath.Join(dir, ".spool-"+hex.EncodeToString(b[:]))
	final := filepath.Join(dir, uploadPrefix+hex.EncodeToString(b[:])+".csv")
	linked := from != nil && os.Link(from.Name(), tmp) == nil
	var (
		f   *os.File
		err error
	)
	if linked {
		f, err = os.OpenFile(tmp, os.O_RDWR, 0)
	} else {
		f, err = os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	}
	if err != nil {
		os.Remove(tmp)
		return nil, fmt.Errorf("spool upload: %w", err)
	}
	fail := func(err error) (*Spooled, error) {
		f.Close()
		os.Remove(tmp)
		os.Remove(final)
		return nil, fmt.Errorf("spool upload: %w", err)
	}
	if _, err := flock(f, false); err != nil {
		return fail(err)
	}
	if !linked {
		if _, err := io.Copy(f, r); err != nil {
			return fail(err)
		}
	}
	if err := os.Rename(tmp, final); err != nil {
		return fail(err)
	}
	return &Spooled{Path: final, lock: f}, nil
}

// CleanImportLeftovers removes what imports of dead processes left behind
// (a kill -9 runs no cleanup): the staged IDs of every job that is not
// PENDING or RUNNING (call it after FailStaleImports), and the upload
// copies in the upload folder that no live process holds.
func (s *Service) CleanImportLeftovers(ctx context.Context) error {
	res, err := s.client.ExecContext(ctx, `DELETE FROM import_ids WHERE job_ref NOT IN
(SELECT id FROM import_jobs WHERE status IN ($1, $2))`, string(importjob.StatusPENDING), string(importjob.StatusRUNNING))
	if err != nil {
		return fmt.Errorf("service.CleanImportLeftovers: staged IDs: %w", err)
	}
	if n, _ := res.RowsAffected(); n > 0 {
		s.log.Info("removed the staged IDs of interrupted imports", "rows", n)
	}
	dir := s.uploadDir
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("service.CleanImportLeftovers: %w", err)
	}
	removed := 0
	for _, e := range entries {
		name := e.Name()
		if !e.Type().IsRegular() || !strings.HasPrefix(name, uploadPrefix) || !strings.HasSuffix(name, ".csv") {
			continue
		}
		path := filepath.Join(dir, name)
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			continue // not ours to open
		}
		got, err := flock(f, true)
		if err == nil && got {
			if os.Remove(path) == nil {
				removed++
			}
		}
		f.Close()
	}
	if removed > 0 {
		s.log.Info("removed the upload copies of interrupted imports", "files", removed, "dir", dir)
	}
	return nil
}
