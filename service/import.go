package service

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/lib/pq"

	"github.com/segmentd/segmentd"
	"github.com/segmentd/segmentd/changelog"
	"github.com/segmentd/segmentd/ent"
	"github.com/segmentd/segmentd/ent/importjob"
	"github.com/segmentd/segmentd/ent/schema/pulid"
	"github.com/segmentd/segmentd/idcsv"
	"github.com/segmentd/segmentd/ledger"
)

// TopicImports is signalled whenever an import job's progress or status
// changes.
const TopicImports = "import_jobs"

// Import tuning.
const (
	// importChunkRows is how many IDs one multi-row INSERT stages (SQLite;
	// four parameters a row stays well under SQLite's 32,766).
	importChunkRows = 2000
	// importTxRows is how many staged rows one SQLite transaction holds, so
	// that staging interleaves with ingestion instead of holding the write
	// lock for the whole file.
	importTxRows = 100_000
	// importProgressEvery is how often a running job reports progress.
	importProgressEvery = 500 * time.Millisecond
	// importHeartbeat is how often a running job proves it is alive, and
	// importStale how old a heartbeat makes a job lost (see
	// FailStaleImports).
	importHeartbeat = 10 * time.Second
	importStale     = 2 * time.Minute
)

// ImportMaxRowErrors is how many bad rows a job keeps (the first ones, in
// line order); it counts the rest (ImportJob.invalidRows, and
// ErrorsOmitted), so that a file of bad lines cannot fill the database.
const ImportMaxRowErrors = 10_000

// ErrorsOmitted is how many of a job's bad rows were counted but not kept.
func ErrorsOmitted(j *ent.ImportJob) int { return max(0, j.InvalidRows-ImportMaxRowErrors) }

// ImportInput starts an import.
type ImportInput struct {
	SegmentID pulid.ID
	Mode      importjob.Mode
	DryRun    bool
	FileName  string
	// Path is a file that the import owns from now on: it reads it in the
	// background and removes it when done.
	Path string
	// Lock, if set, is held while the import owns Path (SpoolUpload's),
	// and closed when it is done with it.
	Lock io.Closer
}

// ImportRowError is a bad row of an imported file.
type ImportRowError struct {
	Line   int
	Value  string
	Reason string
}

// importResult counts what an import did, or would do in a dry run.
type importResult struct {
	rows, invalid, distinct   int
	added, removed, unchanged int
}

// StartImport records an import job for a segment and runs it in the
// background: the file's IDs are read and staged (outside the membership
// tables, in short transactions), then applied to the segment in one
// transaction, so that the segment changes all at once or, on failure, not
// at all. The job reports its progress as it goes.
func (s *Service) StartImport(ctx context.Context, in ImportInput) (*ent.ImportJob, error) {
	fail := func(err error) (*ent.ImportJob, error) {
		_ = os.Remove(in.Path)
		if in.Lock != nil {
			_ = in.Lock.Close()
		}
		return nil, fmt.Errorf("service.StartImport: %w", err)
	}
	if err := importjob.ModeValidator(in.Mode); err != nil {
		return fail(segmentd.Invalid("mode", "must be ADD, REMOVE or REPLACE"))
	}
	info, err := os.Stat(in.Path)
	if err != nil {
		return fail(err)
	}
	if err := s.SegmentExists(ctx, "segmentId", in.SegmentID); err != nil {
		return fail(err)
	}
	now := s.now()
	job, err := s.client.ImportJob.Create().
		SetSegmentRef(in.SegmentID).SetMode(in.Mode).SetDryRun(in.DryRun).
		SetFileName(in.FileName).SetFileBytes(info.Size()).
		SetCreatedAt(now).SetHeartbeatAt(now).
		Save(ctx)
	if err != nil {
		return fail(fmt.Errorf("create job: %w", err))
	}
	if err := s.setImportOwner(ctx, string(job.ID)); err != nil {
		return fail(fmt.Errorf("create job: owner: %w", err))
	}
	s.jobs.Add(1)
	go func() {
		defer s.jobs.Done()
		if in.Lock != nil {
			defer in.Lock.Close() // after runImport removed the file
		}
		s.runImport(s.background, job, in.Path)
	}()
	return job, nil
}

// SegmentExists returns a NOT_FOUND error on field unless the segment id
// exists: what StartImport checks first, for the HTTP layer to check before
// it reads an upload.
func (s *Service) SegmentExists(ctx context.Context, field string, id pulid.ID) error {
	return segmentExistsIn(ctx, nil, s.client, field, id)
}

// WaitImports waits for the imports of this process to end (tests, and
// shutdown after the background context is cancelled).
func (s *Service) WaitImports() { s.jobs.Wait() }

// runImport runs a job to its end and records how it ended.
func (s *Service) runImport(ctx context.Context, job *ent.ImportJob, path string) {
	defer os.Remove(path)
	log := s.log.With("import", job.ID, "segment", job.SegmentRef)
	started := time.Now()
	hbCtx, stopHeartbeat := context.WithCancel(ctx)
	heartbeatDone := make(chan struct{})
	go func() {
		defer close(heartbeatDone)
		s.heartbeat(hbCtx, job.ID)
	}()
	res, err := s.importFile(ctx, job, path)
	stopHeartbeat()
	<-heartbeatDone
	// Staged IDs are scratch; the report (import_row_errors) stays.
	cleanup, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	if _, cerr := s.client.ExecContext(cleanup, "DELETE FROM import_ids WHERE job_ref = $1", string(job.ID)); cerr != nil {
		log.Warn("removing an import's staged IDs", "err", cerr)
	}
	if err != nil {
		reason := err.Error()
		if ctx.Err() != nil {
			reason = "interrupted: the server stopped (" + reason + ")"
		}
		log.Error("import failed", "err", err)
		// Only a job still this process's: one another server marked
		// FAILED keeps its reason.
		_, uerr := s.client.ImportJob.Update().
			Where(importjob.ID(job.ID), importjob.StatusIn(importjob.StatusPENDING, importjob.StatusRUNNING)).
			SetStatus(importjob.StatusFAILED).SetFailure(reason).SetFinishedAt(s.now()).
			Save(cleanup)
		if uerr != nil {
			log.Error("recording a failed import", "err", uerr)
		}
		s.notify(TopicImports)
		return
	}
	s.metrics.ImportRows("valid", res.distinct)
	s.metrics.ImportRows("duplicate", res.rows-res.invalid-res.distinct)
	s.metrics.ImportRows("invalid", res.invalid)
	log.Info("import done", "rows", res.rows, "invalid", res.invalid, "added", res.added,
		"removed", res.removed, "unchanged", res.unchanged, "dryRun", job.DryRun, "took", time.Since(started).Round(time.Millisecond))
}

// heartbeat renews the job's heartbeat until ctx ends.
func (s *Service) heartbeat(ctx context.Context, id pulid.ID) {
	if !s.sql.importsNeedHeartbeats() {
		return
	}
	every(ctx, importHeartbeat, func() {
		if err := s.client.ImportJob.UpdateOneID(id).SetHeartbeatAt(s.now()).Exec(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("import heartbeat", "import", id, "err", err)
		}
	})
}

// FailStaleImports marks as FAILED the jobs that were running in a process
// that stopped: on SQLite (one process) every unfinished job found at
// start; on PostgreSQL the jobs whose owner is gone (see
// ClaimImportOwner) or whose heartbeat is older than two minutes.
func (s *Service) FailStaleImports(ctx context.Context) error {
	q := s.client.ImportJob.Update().
		Where(importjob.StatusIn(importjob.StatusPENDING, importjob.StatusRUNNING))
	if stale := s.sql.staleImport(s.now()); stale != nil {
		q = q.Where(stale)
	}
	n, err := q.SetStatus(importjob.StatusFAILED).
		SetFailure("interrupted: the server running the import stopped before it finished; the segment is as it was before the import").
		SetFinishedAt(s.now()).Save(ctx)
	if err != nil {
		return fmt.Errorf("service.FailStaleImports: %w", err)
	}
	if n > 0 {
		s.log.Warn("marked interrupted imports as failed", "jobs", n)
	}
	return nil
}

// importFile stages the file's IDs, then applies them.
func (s *Service) importFile(ctx context.Context, job *ent.ImportJob, path string) (*importResult, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open the uploaded file: %w", err)
	}
	defer f.Close()
	n, err := s.client.ImportJob.Update().Where(importjob.ID(job.ID), importjob.StatusEQ(importjob.StatusPENDING)).
		SetStatus(importjob.StatusRUNNING).SetStartedAt(s.now()).Save(ctx)
	if err != nil {
		return nil, fmt.Errorf("start job: %w", err)
	}
	if n == 0 {
		return nil, errJobTaken
	}
	s.notify(TopicImports)
	st := &stager{svc: s, job: job, csv: idcsv.NewReader(f), res: &importResult{}}
	if err := s.sql.stageImport(ctx, st); err != nil {
		return nil, err
	}
	if err := st.flushErrors(ctx); err != nil {
		return nil, err
	}
	res := st.res
	var topics ledger.Topics
	// The apply writes the entries and exits of one segment, and
	// activations: on PostgreSQL it announces itself as a writer of those
	// only, so that the minutes a large import takes hold back neither
	// the subscribers of other segments nor the events stream.
	applyCtx := changelog.WithWriterScope(ctx, changelog.WriterScope{
		{Log: changelog.MembershipChanges, Keys: []string{string(job.SegmentRef)}},
		{Log: changelog.CampaignActivations},
	})
	for attempt := 1; ; attempt++ {
		err = s.inTx(applyCtx, func(tx *ent.Tx) (err error) {
			topics, err = s.applyImport(ctx, tx, job, res)
			return err
		})
		if err == nil || !isRetryable(err) || attempt == 3 {
			break
		}
		s.log.Info("import: retrying after a deadlock with concurrent writers", "import", job.ID, "attempt", attempt)
	}
	if err != nil {
		return nil, err
	}
	s.publish(topics)
	s.notify(TopicImports)
	return res, nil
}

// stager reads the file and stages its distinct valid IDs in import_ids,
// and its bad rows in import_row_errors.
type stager struct {
	svc      *Service
	job      *ent.ImportJob
	csv      *idcsv.Reader
	res      *importResult
	errs     []*idcsv.RowError
	reported time.Time
	// tx is the SQLite staging transaction while one is open: bad rows
	// are stored in it, since a write outside it would wait for its own
	// write lock (until SQLITE_BUSY).
	tx *ent.Tx
}

// next reads the next valid ID, recording bad rows; ok is false at the end.
func (st *stager) next(ctx context.Context) (id string, ok bool, err error) {
	for {
		row, err := st.csv.Next()
		if errors.Is(err, io.EOF) {
			return "", false, nil
		}
		if err != nil {
			return "", false, fmt.Errorf("read the file: %w", err)
		}
		st.res.rows++
		if row.Err == nil {
			return row.ID, true, nil
		}
		st.res.invalid++
		if st.res.invalid > ImportMaxRowErrors {
			continue // counted, not kept
		}
		st.errs = append(st.errs, row.Err)
		if len(st.errs) >= importChunkRows {
			if err := st.flushErrors(ctx); err != nil {
				return "", false, err
			}
		}
	}
}

// flushErrors stores the bad rows read so far.
func (st *stager) flushErrors(ctx context.Context) error {
	if len(st.errs) == 0 {
		return nil
	}
	var q strings.Builder
	q.WriteString("INSERT INTO import_row_errors (job_ref, line, value, reason) VALUES ")
	args := make([]any, 0, 4*len(st.errs))
	for i, e := range st.errs {
		if i > 0 {
			q.WriteByte(',')
		}
		q.WriteString("(?,?,?,?)")
		args = append(args, string(st.job.ID), e.Line, e.Value, e.Reason)
	}
	var err error
	if st.tx != nil {
		_, err = st.tx.ExecContext(ctx, st.svc.sql.rebind(q.String()), args...)
	} else {
		_, err = st.svc.client.ExecContext(ctx, st.svc.sql.rebind(q.String()), args...)
	}
	if err != nil {
		return fmt.Errorf("store bad rows: %w", err)
	}
	st.errs = st.errs[:0]
	return nil
}

// progress records how far reading has got, at most every
// importProgressEvery unless final.
func (st *stager) progress(ctx context.Context, final bool) error {
	if !final && time.Since(st.reported) < importProgressEvery {
		return nil
	}
	st.reported = time.Now()
	u := st.svc.client.ImportJob.UpdateOneID(st.job.ID).
		SetProcessedRows(st.res.rows).SetInvalidRows(st.res.invalid).SetBytesRead(st.csv.BytesRead())
	if final {
		u = u.SetTotalRows(st.res.rows)
	}
	if err := u.Exec(ctx); err != nil {
		return fmt.Errorf("record progress: %w", err)
	}
	st.svc.notify(TopicImports)
	return nil
}

// insertSQLite stages IDs with multi-row INSERTs that skip duplicates, in
// transactions of importTxRows rows.
func (st *stager) insertSQLite(ctx context.Context) error {
	ids := make([]string, 0, importChunkRows)
	done := false
	for !done {
		err := st.svc.inTx(ctx, func(tx *ent.Tx) error {
			st.tx = tx
			defer func() { st.tx = nil }()
			for staged := 0; staged < importTxRows; {
				ids = ids[:0]
				for len(ids) < importChunkRows {
					id, ok, err := st.next(ctx)
					if err != nil {
						return err
					}
					if !ok {
						done = true
						break
					}
					ids = append(ids, id)
				}
				if len(ids) > 0 {
					n, err := stageChunk(ctx, tx, st.job.ID, ids)
					if err != nil {
						return err
					}
					st.res.distinct += n
					staged += len(ids)
				}
				if done {
					break
				}
			}
			return st.flushErrors(ctx)
		})
		if err != nil {
			return fmt.Errorf("stage IDs: %w", err)
		}
		if err := st.progress(ctx, done); err != nil {
			return err
		}
	}
	return nil
}

// stageChunk inserts IDs into import_ids, skipping those already staged;
// it returns how many were new.
func stageChunk(ctx context.Context, tx *ent.Tx, job pulid.ID, ids []string) (int, error) {
	// Anonymous "?" parameters: SQLite looks numbered ones ($2) up by
	// name, in time quadratic in their number.
	q := "INSERT INTO import_ids (job_ref, user_id, k) VALUES " +
		strings.TrimSuffix(strings.Repeat("(?,?,?),", len(ids)), ",") + " ON CONFLICT DO NOTHING"
	args := make([]any, 0, 3*len(ids))
	for _, id := range ids {
		args = append(args, string(job), id, pulid.NewULID())
	}
	res, err := tx.ExecContext(ctx, q, args...)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	return int(n), err
}

// copyPostgres streams the IDs with COPY into a temporary table, then keeps
// the distinct ones in import_ids, in one transaction of its own.
func (st *stager) copyPostgres(ctx context.Context) (err error) {
	tx, err := st.svc.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("stage IDs: begin: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	if _, err := tx.ExecContext(ctx, "CREATE TEMPORARY TABLE import_copy (user_id text NOT NULL, k text NOT NULL) ON COMMIT DROP"); err != nil {
		return fmt.Errorf("stage IDs: %w", err)
	}
	stmt, err := tx.PrepareContext(ctx, pq.CopyIn("import_copy", "user_id", "k"))
	if err != nil {
		return fmt.Errorf("stage IDs: COPY: %w", err)
	}
	for {
		id, ok, err := st.next(ctx)
		if err != nil {
			_ = stmt.Close()
			return err
		}
		if !ok {
			break
		}
		if _, err := stmt.ExecContext(ctx, id, pulid.NewULID()); err != nil {
			_ = stmt.Close()
			return fmt.Errorf("stage IDs: COPY: %w", err)
		}
		if st.res.rows%10_000 == 0 {
			if err := st.progress(ctx, false); err != nil {
				_ = stmt.Close()
				return err
			}
		}
	}
	if _, err := stmt.ExecContext(ctx); err != nil {
		_ = stmt.Close()
		return fmt.Errorf("stage IDs: COPY: %w", err)
	}
	if err := stmt.Close(); err != nil {
		return fmt.Errorf("stage IDs: COPY: %w", err)
	}
	// In the order of k (the file's order): the apply's statements read
	// import_ids in this order, and the rows they write are keyed by k, so
	// that each index of the tables written is appended to at its end
	// rather than at random pages (the hash aggregate's order).
	res, err := tx.ExecContext(ctx, `INSERT INTO import_ids (job_ref, user_id, k)
SELECT CAST($1 AS TEXT), user_id, min(k) FROM import_copy GROUP BY user_id ORDER BY 3`, string(st.job.ID))
	if err != nil {
		return fmt.Errorf("stage IDs: distinct: %w", err)
	}
	n, _ := res.RowsAffected()
	st.res.distinct = int(n)
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("stage IDs: commit: %w", err)
	}
	// Fresh statistics, so that the apply step joins a large file with a
	// hash join instead of the nested loop a stale "empty" estimate picks.
	if _, err := st.svc.db.ExecContext(ctx, "ANALYZE import_ids"); err != nil {
		return fmt.Errorf("stage IDs: analyze: %w", err)
	}
	return st.progress(ctx, true)
}

// importCreateUsers creates the users of the staged IDs that are new, before
// the ledger applies the staged set (ledger.StagedSet). $1 the job, $2 the
// time.
const importCreateUsers = `INSERT INTO users (id, user_id, traits, first_seen_at, last_seen_at)
SELECT 'usr_' || i.k, i.user_id, '{}', $2, $2 FROM import_ids i
WHERE i.job_ref = CAST($1 AS TEXT)
ON CONFLICT (user_id) DO NOTHING`

// applyImport applies a job's staged IDs to its segment in tx, or, for a
// dry run, counts what it would do; and records the job's outcome in the
// same transaction.
func (s *Service) applyImport(ctx context.Context, tx *ent.Tx, job *ent.ImportJob, res *importResult) (ledger.Topics, error) {
	if err := segmentExistsIn(ctx, tx, nil, "segmentId", job.SegmentRef); err != nil {
		return ledger.Topics{}, fmt.Errorf("the segment was deleted during the import: %w", err)
	}
	seg, err := tx.Segment.Get(ctx, job.SegmentRef)
	if err != nil {
		return ledger.Topics{}, fmt.Errorf("load the segment: %w", err)
	}
	res.added, res.removed, res.unchanged = 0, 0, 0
	l := s.ledger()
	now := s.now()
	set := ledger.StagedSet{Job: job.ID, Segment: job.SegmentRef, At: now,
		Reason:    fmt.Sprintf("imported from %s (%s)", fileLabel(job.FileName), job.ID),
		ExpiresAt: expiresAt(seg, now)}
	inFileMembers, err := l.CountStaged(ctx, tx, set, ledger.Staged)
	if err != nil {
		return ledger.Topics{}, err
	}
	if job.DryRun {
		switch job.Mode {
		case importjob.ModeADD:
			res.added, res.unchanged = res.distinct-inFileMembers, inFileMembers
		case importjob.ModeREMOVE:
			res.removed, res.unchanged = inFileMembers, res.distinct-inFileMembers
		case importjob.ModeREPLACE:
			others, err := l.CountStaged(ctx, tx, set, ledger.Unstaged)
			if err != nil {
				return ledger.Topics{}, err
			}
			res.added, res.removed, res.unchanged = res.distinct-inFileMembers, others, inFileMembers
		}
		return ledger.Topics{}, s.finishImport(ctx, tx, job, res)
	}

	if err := s.sql.lockAgainstErasure(ctx, tx, false); err != nil {
		return ledger.Topics{}, err
	}
	w := l.Writer(tx)
	enter := func() error {
		if _, err := execCount(ctx, tx, importCreateUsers, string(job.ID), now); err != nil {
			return fmt.Errorf("create users: %w", err)
		}
		r, err := w.EnterStaged(ctx, set)
		if err != nil {
			return err
		}
		res.added = r.Entered
		res.unchanged = res.distinct - r.Entered
		return nil
	}
	switch job.Mode {
	case importjob.ModeREMOVE:
		gone := set
		gone.Reason = "removed by import " + string(job.ID)
		r, err := w.ExitStaged(ctx, gone, ledger.Staged)
		if err != nil {
			return ledger.Topics{}, err
		}
		res.removed = r.Exited
		res.unchanged = res.distinct - res.removed
	case importjob.ModeREPLACE:
		gone := set
		gone.Reason = "removed by import " + string(job.ID) + " (REPLACE: not in the file)"
		r, err := w.ExitStaged(ctx, gone, ledger.Unstaged)
		if err != nil {
			return ledger.Topics{}, err
		}
		res.removed = r.Exited
		if err := enter(); err != nil {
			return ledger.Topics{}, err
		}
	case importjob.ModeADD:
		if err := enter(); err != nil {
			return ledger.Topics{}, err
		}
	}
	topics, err := w.Flush(ctx)
	if err != nil {
		return ledger.Topics{}, err
	}
	return topics, s.finishImport(ctx, tx, job, res)
}

// errJobTaken: another server marked the job FAILED while this one ran it
// (it took this one for dead). The job stays as that server left it.
var errJobTaken = errors.New("the job was marked FAILED by another server meanwhile; the segment is as it was before the import")

// finishImport records a job's success with its counts, if the job is
// still this process's: RUNNING. If another server has marked it FAILED
// meanwhile, the apply rolls back (errJobTaken), so that a job never ends
// SUCCEEDED with a failure, nor a segment changed by a FAILED job.
func (s *Service) finishImport(ctx context.Context, tx *ent.Tx, job *ent.ImportJob, res *importResult) error {
	n, err := tx.ImportJob.Update().
		Where(importjob.ID(job.ID), importjob.StatusEQ(importjob.StatusRUNNING)).
		SetStatus(importjob.StatusSUCCEEDED).
		SetTotalRows(res.rows).SetProcessedRows(res.rows).SetInvalidRows(res.invalid).
		SetAdded(res.added).SetRemoved(res.removed).SetUnchanged(res.unchanged).
		SetFinishedAt(s.now()).
		Save(ctx)
	if err != nil {
		return fmt.Errorf("record the outcome: %w", err)
	}
	if n == 0 {
		return errJobTaken
	}
	return nil
}

// ImportRowErrors lists a job's bad rows in line order, after a line.
func (s *Service) ImportRowErrors(ctx context.Context, jobID pulid.ID, first, afterLine int) ([]*ImportRowError, error) {
	if first < 0 || first > 1000 {
		return nil, segmentd.Invalid("first", "must be between 0 and 1000")
	}
	rows, err := s.client.QueryContext(ctx,
		"SELECT line, value, reason FROM import_row_errors WHERE job_ref = $1 AND line > $2 ORDER BY line LIMIT $3",
		string(jobID), afterLine, first)
	if err != nil {
		return nil, fmt.Errorf("service.ImportRowErrors: %w", err)
	}
	defer rows.Close()
	out := []*ImportRowError{}
	for rows.Next() {
		e := &ImportRowError{}
		if err := rows.Scan(&e.Line, &e.Value, &e.Reason); err != nil {
			return nil, fmt.Errorf("service.ImportRowErrors: %w", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("service.ImportRowErrors: %w", err)
	}
	return out, nil
}

// WatchImport sends the job now and after every change, and closes the
// channel after its final state (SUCCEEDED or FAILED) or when ctx ends.
func (s *Service) WatchImport(ctx context.Context, id pulid.ID) (<-chan *ent.ImportJob, error) {
	job, err := s.client.ImportJob.Get(ctx, id)
	if ent.IsNotFound(err) {
		return nil, &segmentd.Error{Code: segmentd.CodeNotFound, Field: "id", Message: fmt.Sprintf("no import job with id %q", id)}
	}
	if err != nil {
		return nil, fmt.Errorf("service.WatchImport: %w", err)
	}
	wake, cancel := s.broker.Subscribe(TopicImports)
	out := make(chan *ent.ImportJob, 1)
	go func() {
		defer close(out)
		defer cancel()
		// A slow poll as well: the broker is a wake-up, not the truth.
		poll := time.NewTicker(time.Second)
		defer poll.Stop()
		last := job
		send := func(j *ent.ImportJob) bool {
			select {
			case out <- j:
				return true
			case <-ctx.Done():
				return false
			}
		}
		if !send(job) {
			return
		}
		for !importDone(last) {
			select {
			case <-ctx.Done():
				return
			case <-wake:
			case <-poll.C:
			}
			j, err := s.client.ImportJob.Get(ctx, id)
			if err != nil {
				if ctx.Err() == nil {
					s.log.Warn("watching an import", "import", id, "err", err)
				}
				continue
			}
			if sameProgress(j, last) {
				continue
			}
			last = j
			if !send(j) {
				return
			}
		}
	}()
	return out, nil
}

func importDone(j *ent.ImportJob) bool {
	return j.Status == importjob.StatusSUCCEEDED || j.Status == importjob.StatusFAILED
}

func sameProgress(a, b *ent.ImportJob) bool {
	return a.Status == b.Status && a.ProcessedRows == b.ProcessedRows && a.InvalidRows == b.InvalidRows &&
		a.BytesRead == b.BytesRead && a.TotalRows == b.TotalRows
}

func fileLabel(name string) string {
	if name == "" {
		return "a file"
	}
	return fmt.Sprintf("%q", name)
}

func execCount(ctx context.Context, tx *ent.Tx, query string, args ...any) (int, error) {
	defer timed(ctx, query)()
	res, err := tx.ExecContext(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	return int(n), err
}

// timed logs how long a statement of an import took, at debug level.
func timed(ctx context.Context, query string) func() {
	start := time.Now()
	return func() {
		first, _, _ := strings.Cut(strings.TrimSpace(query), "\n")
		slog.DebugContext(ctx, "import statement", "took", time.Since(start).Round(time.Millisecond), "sql", first)
	}
}
