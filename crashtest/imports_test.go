package crashtest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"mime/multipart"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/segmentd/segmentd/internal/testenv"
	"github.com/segmentd/segmentd/store"
)

// importRows is the size of the import killed during its apply step: large
// enough that the apply runs for a while after the rows are staged.
const importRows = 200_000

// gql posts one GraphQL request to the running server with the ADMIN key.
func (r *run) gql(hc *http.Client, query string, vars map[string]any, out any) error {
	up := r.url.Load()
	if up == nil {
		return errors.New("server down")
	}
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, err := http.NewRequest(http.MethodPost, *up+"/graphql", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+testenv.AdminKey)
	return r.do(hc, req, out)
}

func (r *run) do(hc *http.Client, req *http.Request, out any) error {
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var res struct {
		Data   json.RawMessage
		Errors []json.RawMessage
	}
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
		return fmt.Errorf("HTTP %d: %w", resp.StatusCode, err)
	}
	if resp.StatusCode != http.StatusOK || len(res.Errors) > 0 {
		return fmt.Errorf("HTTP %d: %s", resp.StatusCode, res.Errors)
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(res.Data, out)
}

// flipper flips the flip campaigns of segment A between PAUSED and ACTIVE
// while clients ingest into it (issue 13, item 2), until stop.
func (r *run) flipper(stop <-chan struct{}) {
	rnd := rand.New(rand.NewPCG(r.seed, 99))
	hc := &http.Client{Timeout: 20 * time.Second}
	status := map[string]string{}
	for {
		select {
		case <-stop:
			return
		case <-time.After(time.Duration(30+rnd.IntN(70)) * time.Millisecond):
		}
		id := r.flips[rnd.IntN(len(r.flips))]
		next := "ACTIVE"
		if status[id] == "ACTIVE" {
			next = "PAUSED"
		}
		if r.gql(hc, `mutation($id: ID!, $s: CampaignStatus!) { updateCampaign(id: $id, input: {status: $s}) { id } }`,
			map[string]any{"id": id, "s": next}, nil) == nil {
			status[id] = next
			r.mu.Lock()
			r.flipped++
			r.mu.Unlock()
		}
	}
}

// activateFlips makes every flip campaign ACTIVE, while clients still
// ingest: verify then checks that all of segment A's members activated them.
func (r *run) activateFlips() {
	hc := &http.Client{Timeout: 20 * time.Second}
	for _, id := range r.flips {
		if err := r.gql(hc, `mutation($id: ID!) { updateCampaign(id: $id, input: {status: ACTIVE}) { id } }`, map[string]any{"id": id}, nil); err != nil {
			r.t.Errorf("activate flip campaign %s: %v", id, err)
		}
	}
}

// importUntilStaged uploads a CSV of importRows IDs into the import
// segment and returns once some of them are staged (import_ids) and the
// job still runs: a kill now interrupts the import with staged rows and
// its upload copy on disk (issue 13, item 9).
func (r *run) importUntilStaged(ctx context.Context) {
	t := r.t
	var csv strings.Builder
	for i := range importRows {
		fmt.Fprintf(&csv, "imported-%d\n", i)
	}
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	ops, _ := json.Marshal(map[string]any{
		"query":     `mutation($f: Upload!, $s: ID!) { importSegmentUsers(segmentId: $s, file: $f, mode: ADD) { id } }`,
		"variables": map[string]any{"f": nil, "s": r.importSeg},
	})
	_ = mw.WriteField("operations", string(ops))
	_ = mw.WriteField("map", `{"0":["variables.f"]}`)
	fw, _ := mw.CreateFormFile("0", "crash.csv")
	_, _ = fw.Write([]byte(csv.String()))
	_ = mw.Close()
	req, _ := http.NewRequest(http.MethodPost, *r.url.Load()+"/graphql", &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Authorization", "Bearer "+testenv.AdminKey)
	var out struct{ ImportSegmentUsers struct{ ID string } }
	if err := r.do(&http.Client{Timeout: time.Minute}, req, &out); err != nil {
		t.Errorf("start the import: %v", err)
		return
	}
	r.killedImport = out.ImportSegmentUsers.ID
	st, err := store.Open(ctx, r.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		var staged int
		var status string
		if err := st.DB.QueryRowContext(ctx, rebind(st, `SELECT (SELECT count(*) FROM import_ids WHERE job_ref = ?), status FROM import_jobs WHERE id = ?`),
			r.killedImport, r.killedImport).Scan(&staged, &status); err != nil {
			t.Fatal(err)
		}
		if status != "PENDING" && status != "RUNNING" {
			t.Errorf("the import ended (%s) before the kill; make importRows larger", status)
			return
		}
		if staged > 0 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Errorf("nothing staged within 2 minutes")
}

// checkImports: the import killed during its apply step is FAILED, changed
// nothing, and left nothing behind once the server restarted: no staged
// rows, no upload copy in the server's temp folder.
func (r *run) checkImports(ctx context.Context, st *store.Store) []string {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if r.killedImport == "" {
		return []string{"no import was killed"}
	}
	var status, failure string
	var members, staged, unfinished int
	err := st.DB.QueryRowContext(ctx, rebind(st, `SELECT status, coalesce(failure, ''),
		(SELECT count(*) FROM memberships WHERE segment_ref = ?),
		(SELECT count(*) FROM import_ids),
		(SELECT count(*) FROM import_jobs WHERE status IN ('PENDING', 'RUNNING'))
		FROM import_jobs WHERE id = ?`), r.importSeg, r.killedImport).Scan(&status, &failure, &members, &staged, &unfinished)
	if err != nil {
		return []string{"read the import: " + err.Error()}
	}
	if status != "FAILED" || !strings.Contains(failure, "interrupted") {
		add("the killed import is %s (%q), want FAILED as interrupted", status, failure)
	}
	if members != 0 {
		add("the killed import's segment has %d members, want none (all or nothing)", members)
	}
	if staged != 0 || unfinished != 0 {
		add("after the restart: %d staged import rows and %d unfinished jobs remain", staged, unfinished)
	}
	entries, err := os.ReadDir(r.uploadDir)
	if err != nil {
		return append(problems, err.Error())
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "segmentd-import-") {
			add("an upload copy remains in the temp folder: %s", e.Name())
		}
	}
	return problems
}
