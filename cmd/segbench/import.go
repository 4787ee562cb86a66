package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"time"

	"entgo.io/ent/dialect"

	"github.com/segmentd/segmentd/store"
)

// importScenario (import): a CSV of c.importRows user IDs imported into a
// STATIC segment with importSegmentUsers (GraphQL multipart request spec:
// fields operations, map and 0), while trackEvents ingestion runs, beside
// a raw COPY (PostgreSQL) or multi-row INSERT (SQLite) of the same rows.
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
	hotID, err := createSegment(ctx, tg, "Ingested during the import", []string{"App Open"}, pred("EVENT", "Screen", "EXISTS", nil))
	if err != nil {
		return err
	}
	sub, err := subscribe(ctx, tg, hotID)
	if err != nil {
		return err
	}
	defer sub.close()

	var csv bytes.Buffer
	csv.WriteString("userId\n")
	for i := 0; i < c.importRows; i++ {
		fmt.Fprintf(&csv, "imp-%s-%d\n", runID, i)
	}
	type importDone struct {
		elapsed time.Duration
		result  string
		err     error
	}
	done := make(chan importDone, 1)
	fmt.Fprintf(progress, "  importing %d rows (%d bytes) while ingesting\n", c.importRows, csv.Len())
	go func() {
		s := time.Now()
		res, err := upload(ctx, tg, segID, c.importMode, csv.Bytes())
		if err == nil {
			// The mutation answers with a PENDING job; the import is done
			// when the job is.
			res, err = waitJob(ctx, tg, res)
		}
		done <- importDone{time.Since(s), res, err}
	}()
	d := &drive{label: "trackEvents during the import", transport: "trackEvents", sub: sub, pids: pids(tg), makeEvent: func(i int) benchEvent {
		id := fmt.Sprintf("impev-%s-%d", runID, i)
		return benchEvent{MessageID: id, UserID: id, Name: "App Open", Enters: true, Props: map[string]any{"Screen": "home"}}
	}}
	r, err := d.run(ctx, c, tg)
	if err != nil {
		return err
	}
	var imp importDone
	select {
	case imp = <-done:
	case <-time.After(10 * time.Minute):
		return fmt.Errorf("import did not finish within 10 minutes")
	}
	if imp.err != nil {
		t.add("import", fmt.Sprintf("importSegmentUsers, %d rows", c.importRows), "failed: "+imp.err.Error(), "", "")
	} else {
		var base, rat string
		if tg.databaseURL != "" {
			raw, err := rawCopy(ctx, tg.databaseURL, c.importRows)
			if err != nil {
				return err
			}
			base = fmt.Sprintf("raw %s: %s", raw.how, fmtRate(float64(c.importRows)/raw.elapsed.Seconds()))
			rat = ratio(float64(c.importRows)/imp.elapsed.Seconds(), float64(c.importRows)/raw.elapsed.Seconds())
		}
		t.add("import", fmt.Sprintf("importSegmentUsers, %d rows: rows/s", c.importRows),
			fmtRate(float64(c.importRows)/imp.elapsed.Seconds()), base, rat)
		t.add("import", "import time (upload to SUCCEEDED); job", fmt.Sprintf("%s; %.160s", imp.elapsed.Round(time.Millisecond), imp.result), "", "")
	}
	return finish(ctx, c, tg, t, "import", []*driveResult{r})
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

type copyResult struct {
	how     string
	elapsed time.Duration
}

// rawCopy writes n user IDs into a bare table bench_raw_import: COPY FROM
// STDIN on PostgreSQL, 1,000-row INSERTs in one transaction on SQLite.
func rawCopy(ctx context.Context, databaseURL string, n int) (*copyResult, error) {
	st, err := store.Open(ctx, databaseURL)
	if err != nil {
		return nil, fmt.Errorf("raw import baseline: %w", err)
	}
	defer st.Close()
	// Each store's fastest bulk load: COPY on PostgreSQL; SQLite has none,
	// and multi-row INSERTs in one transaction are its fast path.
	res := &copyResult{}
	var write func(context.Context, *sql.Tx, int) error
	switch st.Dialect {
	case dialect.Postgres:
		res.how, write = "COPY", copyIDs
	case dialect.SQLite:
		res.how, write = "multi-row INSERT", insertIDs
	default:
		return nil, fmt.Errorf("raw import baseline: no bulk load for dialect %q", st.Dialect)
	}
	db := st.DB
	_, _ = db.ExecContext(ctx, "DROP TABLE IF EXISTS bench_raw_import")
	if _, err := db.ExecContext(ctx, "CREATE TABLE bench_raw_import (user_id TEXT PRIMARY KEY)"); err != nil {
		return nil, fmt.Errorf("create bench_raw_import: %w", err)
	}
	defer db.ExecContext(context.WithoutCancel(ctx), "DROP TABLE bench_raw_import") //nolint:errcheck // best effort
	start := time.Now()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // after commit: no-op
	if err := write(ctx, tx, n); err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("commit: %w", err)
	}
	res.elapsed = time.Since(start)
	return res, nil
}

// copyIDs writes n user IDs into bench_raw_import with COPY FROM STDIN
// (PostgreSQL).
func copyIDs(ctx context.Context, tx *sql.Tx, n int) error {
	stmt, err := tx.PrepareContext(ctx, "COPY bench_raw_import (user_id) FROM STDIN")
	if err != nil {
		return fmt.Errorf("copy: %w", err)
	}
	defer stmt.Close()
	for i := 0; i < n; i++ {
		if _, err := stmt.ExecContext(ctx, fmt.Sprintf("imp-%s-%d", runID, i)); err != nil {
			return fmt.Errorf("copy: %w", err)
		}
	}
	if _, err := stmt.ExecContext(ctx); err != nil {
		return fmt.Errorf("copy: %w", err)
	}
	return nil
}

// insertIDs writes n user IDs into bench_raw_import with 1,000-row
// INSERTs (SQLite).
func insertIDs(ctx context.Context, tx *sql.Tx, n int) error {
	for start := 0; start < n; start += 1000 {
		end := min(start+1000, n)
		q := "INSERT INTO bench_raw_import (user_id) VALUES " + strings.TrimSuffix(strings.Repeat("(?),", end-start), ",")
		args := make([]any, 0, end-start)
		for i := start; i < end; i++ {
			args = append(args, fmt.Sprintf("imp-%s-%d", runID, i))
		}
		if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			return fmt.Errorf("insert: %w", err)
		}
	}
	return nil
}
