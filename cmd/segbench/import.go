package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/segmentd/segmentd/internal/rawimport"
	"github.com/segmentd/segmentd/store"
)

// importScenario (import): a CSV of c.importRows new user IDs imported
// into a STATIC segment with an ACTIVE campaign with importSegmentUsers
// (GraphQL multipart request spec: fields operations, map and 0), while
// trackEvents ingestion runs (unless -import-ingest=false), beside the raw
// write of the rows the import wrote (package rawimport: the users,
// memberships, change-log rows and activations, into copies of those
// tables with the same indexes; COPY on PostgreSQL, multi-row INSERTs on
// SQLite), in the same run. The server's peak RSS is reset (clear_refs)
// just before the upload and read when the job has ended.
// Skipped when the server has no importSegmentUsers.
func importScenario(ctx context.Context, c config, tg *target, t *table) error {
	ok, err := hasMutation(ctx, tg, "importSegmentUsers")
	if err != nil {
		return err
	}
	if !ok {
		return skipf("import: not available on this server")
	}
	segID, err := createSegment(ctx, tg, "Imported users", nil, nil)
	if err != nil {
		return err
	}
	campID, err := createCampaignID(ctx, tg, "Imported users' campaign", segID)
	if err != nil {
		return err
	}

	var csv bytes.Buffer
	csv.WriteString("userId\n")
	for i := 0; i < c.importRows; i++ {
		fmt.Fprintf(&csv, "imp-%s-%d\n", runID, i)
	}
	type importDone struct {
		elapsed time.Duration
		job     *jobResult
		err     error
	}
	var idle procSample
	if tg.pid != 0 {
		idle, _ = readProc(tg.pid)
		if err := resetPeak(tg.pid); err != nil {
			fmt.Fprintf(progress, "  server peak RSS not reset (%v): the figure is the peak since it started\n", err)
		}
	}
	done := make(chan importDone, 1)
	fmt.Fprintf(progress, "  importing %d rows (%d bytes)\n", c.importRows, csv.Len())
	go func() {
		s := time.Now()
		res, err := upload(ctx, tg, segID, c.importMode, csv.Bytes())
		var job *jobResult
		if err == nil {
			// The mutation answers with a PENDING job; the import is done
			// when the job is.
			job, err = waitJobResult(ctx, tg, res)
		}
		done <- importDone{time.Since(s), job, err}
	}()
	var drives []*driveResult
	if c.importIngest {
		sub, err := ingestSegment(ctx, tg)
		if err != nil {
			return err
		}
		defer sub.close()
		d := &drive{label: "trackEvents during the import", transport: "trackEvents", sub: sub, pids: pids(tg), makeEvent: func(i int) benchEvent {
			id := fmt.Sprintf("impev-%s-%d", runID, i)
			return benchEvent{MessageID: id, UserID: id, Name: "App Open", Enters: true, Props: map[string]any{"Screen": "home"}}
		}}
		r, err := d.run(ctx, c, tg)
		if err != nil {
			return err
		}
		drives = append(drives, r)
	}
	var imp importDone
	select {
	case imp = <-done:
	case <-ctx.Done():
		return ctx.Err()
	}
	var peak procSample
	if tg.pid != 0 {
		peak, _ = readProc(tg.pid)
	}
	name := fmt.Sprintf("importSegmentUsers, %d new users (STATIC segment, ACTIVE campaign): rows/s", c.importRows)
	if imp.err != nil {
		t.add("import", name, "failed: "+imp.err.Error(), "", "")
		if !c.importIngest {
			return nil
		}
		return finish(ctx, c, tg, t, "import", drives)
	}
	rate := float64(c.importRows) / imp.elapsed.Seconds()
	var base, rat string
	if tg.databaseURL != "" {
		fmt.Fprintf(progress, "  baseline: the raw write of the import's %d users' rows\n", c.importRows)
		raw, err := rawImport(ctx, tg.databaseURL, rawimport.Rows{Segment: segID, Campaign: campID, At: time.Now(),
			Reason: fmt.Sprintf("imported from %q (%s)", "users.csv", imp.job.ID),
			IDs: func(yield func(string) bool) {
				for i := 0; i < c.importRows; i++ {
					if !yield(fmt.Sprintf("imp-%s-%d", runID, i)) {
						return
					}
				}
			}})
		if err != nil {
			return err
		}
		rawRate := float64(raw.Rows) / raw.Elapsed.Seconds()
		base = fmt.Sprintf("raw %s of the same rows: %s (%s)", raw.How, fmtRate(rawRate), raw.Elapsed.Round(time.Millisecond))
		rat = ratio(rate, rawRate)
	}
	t.add("import", name, fmtRate(rate), base, rat)
	t.add("import", "import time (upload to SUCCEEDED); job", fmt.Sprintf("%s; %.160s", imp.elapsed.Round(time.Millisecond), imp.job.summary), "", "")
	if tg.pid != 0 {
		t.add("import", "server RSS before the upload; peak RSS (VmHWM) from the upload to the job's end",
			fmt.Sprintf("%s; %s", fmtBytes(idle.rss), fmtBytes(peak.hwm)), "", "")
	}
	if !c.importIngest {
		return nil
	}
	return finish(ctx, c, tg, t, "import", drives)
}

// ingestSegment creates the segment that the events ingested during the
// import enter, with a subscriber.
func ingestSegment(ctx context.Context, tg *target) (*subscriber, error) {
	hotID, err := createSegment(ctx, tg, "Ingested during the import", []string{"App Open"}, pred("EVENT", "Screen", "EXISTS", nil))
	if err != nil {
		return nil, err
	}
	return subscribe(ctx, tg, hotID)
}

// createCampaignID creates an ACTIVE campaign on a segment and returns its
// id.
func createCampaignID(ctx context.Context, tg *target, name, segID string) (string, error) {
	var out struct{ CreateCampaign struct{ ID string } }
	err := gql(ctx, tg, `mutation($n: String!, $s: ID!) { createCampaign(input: {name: $n, segmentId: $s, status: ACTIVE}) { id } }`,
		map[string]any{"n": name, "s": segID}, &out)
	if err != nil {
		return "", fmt.Errorf("create campaign %q: %w", name, err)
	}
	return out.CreateCampaign.ID, nil
}

// resetPeak resets a process's VmHWM to its current RSS (Linux:
// /proc/<pid>/clear_refs 5; the process must be ours).
func resetPeak(pid int) error {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
}

// hasMutation reports whether the server's schema has a mutation field,
// by introspection, or (introspection off) by asking for it.
func hasMutation(ctx context.Context, tg *target, field string) (bool, error) {
	var out struct {
		Schema struct {
			MutationType struct{ Fields []struct{ Name string } }
		} `json:"__schema"`
	}
	err := gql(ctx, tg, `{ __schema { mutationType { fields { name } } } }`, nil, &out)
	if err == nil {
		for _, f := range out.Schema.MutationType.Fields {
			if f.Name == field {
				return true, nil
			}
		}
		return false, nil
	}
	err = gql(ctx, tg, fmt.Sprintf(`mutation { %s }`, field), nil, nil)
	if err != nil && strings.Contains(err.Error(), "Cannot query field") {
		return false, nil
	}
	return true, nil
}

// jobResult is an import job that ended well.
type jobResult struct {
	ID      string
	summary string // its final counts
}

// waitJobResult is waitJob with the job's id.
func waitJobResult(ctx context.Context, tg *target, answer string) (*jobResult, error) {
	var created struct{ ImportSegmentUsers struct{ ID string } }
	if err := json.Unmarshal([]byte(answer), &created); err != nil || created.ImportSegmentUsers.ID == "" {
		return nil, fmt.Errorf("import: no job in %.200s", answer)
	}
	summary, err := waitJob(ctx, tg, answer)
	if err != nil {
		return nil, err
	}
	return &jobResult{ID: created.ImportSegmentUsers.ID, summary: summary}, nil
}

// waitJob polls the job that an importSegmentUsers answer names until it
// ends, and returns its final counts; a FAILED job is an error.
func waitJob(ctx context.Context, tg *target, answer string) (string, error) {
	var created struct{ ImportSegmentUsers struct{ ID string } }
	if err := json.Unmarshal([]byte(answer), &created); err != nil || created.ImportSegmentUsers.ID == "" {
		return "", fmt.Errorf("import: no job in %.200s", answer)
	}
	for {
		var out struct {
			ImportJob struct {
				Status, Failure                                   string
				TotalRows, Added, Removed, Unchanged, InvalidRows int
			}
		}
		err := gql(ctx, tg, `query($id: ID!) { importJob(id: $id) { status failure totalRows added removed unchanged invalidRows } }`,
			map[string]any{"id": created.ImportSegmentUsers.ID}, &out)
		var timeout net.Error
		if errors.As(err, &timeout) && timeout.Timeout() {
			// On SQLite a request that writes (a key's last use) waits
			// for the apply's write lock, which a large file's holds for
			// minutes: ask again.
			continue
		}
		if err != nil {
			return "", fmt.Errorf("import job: %w", err)
		}
		j := out.ImportJob
		switch j.Status {
		case "SUCCEEDED":
			return fmt.Sprintf("%d rows, %d added, %d removed, %d unchanged, %d invalid", j.TotalRows, j.Added, j.Removed, j.Unchanged, j.InvalidRows), nil
		case "FAILED":
			return "", fmt.Errorf("import job failed: %s", j.Failure)
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// upload sends the multipart request and returns the response's data.
func upload(ctx context.Context, tg *target, segID, mode string, file []byte) (string, error) {
	args := "segmentId: $s, file: $f, dryRun: false"
	if mode != "" {
		args += ", mode: " + mode
	}
	ops, _ := json.Marshal(map[string]any{
		"query":     fmt.Sprintf(`mutation($s: ID!, $f: Upload!) { importSegmentUsers(%s) { id } }`, args),
		"variables": map[string]any{"s": segID, "f": nil},
	})
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	_ = mw.WriteField("operations", string(ops))
	_ = mw.WriteField("map", `{"0": ["variables.f"]}`)
	fw, err := mw.CreateFormFile("0", "users.csv")
	if err != nil {
		return "", fmt.Errorf("multipart: %w", err)
	}
	if _, err := fw.Write(file); err != nil {
		return "", fmt.Errorf("multipart: %w", err)
	}
	if err := mw.Close(); err != nil {
		return "", fmt.Errorf("multipart: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, tg.url+"/graphql", &body)
	if err != nil {
		return "", fmt.Errorf("request: %w", err)
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Authorization", "Bearer "+tg.key)
	hc := &http.Client{Timeout: 10 * time.Minute}
	resp, err := hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var r struct {
		Data   json.RawMessage
		Errors []struct{ Message string }
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(raw, &r) != nil {
		return "", fmt.Errorf("HTTP %d: %.300s", resp.StatusCode, raw)
	}
	if len(r.Errors) > 0 {
		return "", fmt.Errorf("graphql: %s", r.Errors[0].Message)
	}
	return string(r.Data), nil
}

// rawImport writes rows raw into copies of the import's tables in the
// database of databaseURL (see package rawimport).
func rawImport(ctx context.Context, databaseURL string, rows rawimport.Rows) (*rawimport.Result, error) {
	st, err := store.Open(ctx, databaseURL)
	if err != nil {
		return nil, fmt.Errorf("raw import baseline: %w", err)
	}
	defer st.Close()
	res, err := rawimport.Write(ctx, st.DB, st.Dialect, rows)
	if err != nil {
		return nil, fmt.Errorf("raw import baseline: %w", err)
	}
	return res, nil
}
