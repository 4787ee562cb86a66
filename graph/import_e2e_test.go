package graph_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/segmentd/segmentd/auth"
	"github.com/segmentd/segmentd/internal/testenv"
	"github.com/segmentd/segmentd/server"
	"github.com/segmentd/segmentd/store"
)

const importMutation = `mutation($s: ID!, $file: Upload!, $mode: ImportMode, $dry: Boolean) {
  importSegmentUsers(segmentId: $s, file: $file, mode: $mode, dryRun: $dry) { id status mode dryRun segment { id } }
}`

const importJobFields = `id status mode dryRun totalRows processedRows added removed unchanged invalidRows failure fileName fileBytes bytesRead startedAt finishedAt`

type importJob struct {
	ID                              string
	Status, Mode, Failure, FileName string
	DryRun                          bool
	TotalRows, ProcessedRows        int
	Added, Removed, Unchanged       int
	InvalidRows                     int
	FileBytes, BytesRead            int64
	StartedAt, FinishedAt           *time.Time
	Errors                          []struct {
		Line          int
		Value, Reason string
	}
}

// startImport uploads content and returns the job's ID.
func startImport(t *testing.T, c *testenv.Client, segID, mode string, dry bool, name, content string) string {
	t.Helper()
	r := c.Upload(t, importMutation, map[string]any{"s": segID, "mode": mode, "dry": dry}, "file", name, strings.NewReader(content))
	if len(r.Errors) > 0 || r.Status != http.StatusOK {
		t.Fatalf("import: status %d, errors %+v", r.Status, r.Errors)
	}
	var out struct {
		ImportSegmentUsers struct {
			ID, Status, Mode string
			DryRun           bool
			Segment          struct{ ID string }
		}
	}
	if err := json.Unmarshal(r.Data, &out); err != nil {
		t.Fatalf("decode %s: %v", r.Data, err)
	}
	j := out.ImportSegmentUsers
	if j.Mode != mode || j.DryRun != dry || j.Segment.ID != segID || (j.Status != "PENDING" && j.Status != "RUNNING" && j.Status != "SUCCEEDED") {
		t.Fatalf("job as created: %+v", j)
	}
	return j.ID
}

// waitImport polls importJob until the job ends.
func waitImport(t *testing.T, c *testenv.Client, id string) importJob {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		var out struct{ ImportJob *importJob }
		c.MustDo(t, `query($id: ID!) { importJob(id: $id) { `+importJobFields+` errors(first: 1000) { line value reason } } }`, map[string]any{"id": id}, &out)
		if out.ImportJob == nil {
			t.Fatalf("importJob(%s) is null", id)
		}
		if s := out.ImportJob.Status; s == "SUCCEEDED" || s == "FAILED" {
			return *out.ImportJob
		}
		if time.Now().After(deadline) {
			t.Fatalf("import %s still %s after 60s", id, out.ImportJob.Status)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func runImport(t *testing.T, c *testenv.Client, segID, mode string, dry bool, content string) importJob {
	t.Helper()
	j := waitImport(t, c, startImport(t, c, segID, mode, dry, "users.csv", content))
	if j.Status != "SUCCEEDED" {
		t.Fatalf("import %s %s: %s", mode, j.Status, j.Failure)
	}
	return j
}

func checkCounts(t *testing.T, what string, j importJob, rows, added, removed, unchanged, invalid int) {
	t.Helper()
	var got importJobCounts
	if err := fetchCounts(j, &got); err != nil {
		t.Fatal(err)
	}
	want := importJobCounts{rows, added, removed, unchanged, invalid}
	if got != want {
		t.Fatalf("%s: rows/added/removed/unchanged/invalid = %+v, want %+v", what, got, want)
	}
}

type importJobCounts struct{ Rows, Added, Removed, Unchanged, Invalid int }

func fetchCounts(j importJob, out *importJobCounts) error {
	if j.ProcessedRows != j.TotalRows {
		return fmt.Errorf("processedRows %d != totalRows %d after the end", j.ProcessedRows, j.TotalRows)
	}
	*out = importJobCounts{j.TotalRows, j.Added, j.Removed, j.Unchanged, j.InvalidRows}
	return nil
}

// members lists a segment's members' user IDs, sorted, and checks that the
// segment's stats and the members' count agree.
func members(t *testing.T, c *testenv.Client, segID string) []string {
	t.Helper()
	var out struct {
		Node struct {
			Members struct {
				TotalCount int
				Edges      []struct {
					Node struct {
						Source string
						User   struct{ UserID string }
					}
				}
			}
			Stats struct{ TotalUsers int }
		}
	}
	c.MustDo(t, `query($s: ID!) { node(id: $s) { ... on Segment { members(first: 1000) { totalCount edges { node { source user { userId } } } } stats { totalUsers } } } }`,
		map[string]any{"s": segID}, &out)
	ids := []string{}
	for _, e := range out.Node.Members.Edges {
		ids = append(ids, e.Node.User.UserID)
	}
	sort.Strings(ids)
	if out.Node.Stats.TotalUsers != out.Node.Members.TotalCount || out.Node.Members.TotalCount != len(ids) {
		t.Fatalf("stats.totalUsers %d, members.totalCount %d, members listed %d", out.Node.Stats.TotalUsers, out.Node.Members.TotalCount, len(ids))
	}
	return ids
}

func createStatic(t *testing.T, c *testenv.Client, name string) string {
	t.Helper()
	var seg struct{ CreateSegment struct{ ID string } }
	c.MustDo(t, `mutation($n: String!) { createSegment(input: {name: $n, kind: STATIC}) { id } }`, map[string]any{"n": name}, &seg)
	return seg.CreateSegment.ID
}

func activationCount(t *testing.T, c *testenv.Client, campID string) int {
	t.Helper()
	var out struct{ Node struct{ ActivationCount int } }
	c.MustDo(t, `query($c: ID!) { node(id: $c) { ... on Campaign { activationCount } } }`, map[string]any{"c": campID}, &out)
	return out.Node.ActivationCount
}

// TestImportModes runs each mode and a dry run over real multipart
// requests, with and without a header row, and checks counts, members,
// stats, campaign activations, and that a dry run changes nothing.
func TestImportModes(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL)
		c := srv.Admin()
		segID := createStatic(t, c, "Launch list")
		var camp struct{ CreateCampaign struct{ ID string } }
		c.MustDo(t, `mutation($s: ID!) { createCampaign(input: {name: "Launch", segmentId: $s, status: ACTIVE}) { id } }`,
			map[string]any{"s": segID}, &camp)
		campID := camp.CreateCampaign.ID

		// ADD, no header, a duplicate, a blank line, a BOM, CRLF.
		j := runImport(t, c, segID, "ADD", false, "\uFEFFalice\r\nbob\r\nalice\r\n\r\ncarol\r\n")
		checkCounts(t, "ADD", j, 4, 3, 0, 0, 0)
		if j.FileName != "users.csv" || j.FileBytes == 0 || j.BytesRead != j.FileBytes || j.StartedAt == nil || j.FinishedAt == nil {
			t.Fatalf("job file and times: %+v", j)
		}
		if got := members(t, c, segID); strings.Join(got, ",") != "alice,bob,carol" {
			t.Fatalf("after ADD: %v", got)
		}
		if n := activationCount(t, c, campID); n != 3 {
			t.Fatalf("activations after ADD: %d, want 3", n)
		}

		// ADD again with one new user: the others are unchanged.
		j = runImport(t, c, segID, "ADD", false, "user_id\nalice\ndave\n")
		checkCounts(t, "second ADD", j, 2, 1, 0, 1, 0)

		// A dry run REPLACE with a header among other columns, semicolons.
		j = runImport(t, c, segID, "REPLACE", true, "name;user_id;plan\nBob;bob;pro\nEve;eve;free\n")
		checkCounts(t, "dry REPLACE", j, 2, 1, 3, 1, 0)
		if got := members(t, c, segID); strings.Join(got, ",") != "alice,bob,carol,dave" {
			t.Fatalf("a dry run changed the segment: %v", got)
		}
		var eve struct{ User *struct{ UserID string } }
		c.MustDo(t, `{ user(userId: "eve") { userId } }`, nil, &eve)
		if eve.User != nil {
			t.Fatalf("a dry run created user eve")
		}

		// REPLACE for real: the segment shrinks to exactly the file.
		j = runImport(t, c, segID, "REPLACE", false, "name;user_id;plan\nBob;bob;pro\nEve;eve;free\n")
		checkCounts(t, "REPLACE", j, 2, 1, 3, 1, 0)
		if got := members(t, c, segID); strings.Join(got, ",") != "bob,eve" {
			t.Fatalf("after REPLACE: %v", got)
		}
		if n := activationCount(t, c, campID); n != 5 {
			t.Fatalf("activations after REPLACE: %d, want 5 (eve activates; nobody twice)", n)
		}

		// REMOVE with tabs and an unknown user.
		j = runImport(t, c, segID, "REMOVE", false, "id\tnote\nbob\tx\nnobody\ty\n")
		checkCounts(t, "REMOVE", j, 2, 0, 1, 1, 0)
		if got := members(t, c, segID); strings.Join(got, ",") != "eve" {
			t.Fatalf("after REMOVE: %v", got)
		}

		// Re-adding a removed user who activated before: a new entry, no
		// second activation.
		j = runImport(t, c, segID, "ADD", false, "bob\n")
		checkCounts(t, "re-ADD", j, 1, 1, 0, 0, 0)
		if n := activationCount(t, c, campID); n != 5 {
			t.Fatalf("activations after re-ADD: %d, want 5", n)
		}

		// The change log has every entry and exit, with source IMPORT.
		var ch struct {
			Node struct {
				Members struct {
					Edges []struct {
						Node struct{ Source, Reason string }
					}
				}
			}
		}
		c.MustDo(t, `query($s: ID!) { node(id: $s) { ... on Segment { members(first: 10) { edges { node { source reason } } } } } }`, map[string]any{"s": segID}, &ch)
		for _, e := range ch.Node.Members.Edges {
			if e.Node.Source != "IMPORT" || !strings.Contains(e.Node.Reason, "users.csv") {
				t.Fatalf("member source/reason: %+v", e.Node)
			}
		}
	})
}

// TestImportBadRows: a file with 10% bad rows imports the good rows and
// reports every bad row with its line, value and reason.
func TestImportBadRows(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL)
		c := srv.Admin()
		segID := createStatic(t, c, "Warehouse list")
		var b strings.Builder
		b.WriteString("user_id,plan\n")
		type bad struct {
			line          int
			value, reason string
		}
		var bads []bad
		for i := 0; i < 1000; i++ {
			line := i + 2
			switch {
			case i%10 != 3:
				fmt.Fprintf(&b, "user-%04d,pro\n", i)
			case i%40 == 3:
				b.WriteString(",pro\n")
				bads = append(bads, bad{line, "", "empty user ID"})
			case i%40 == 13:
				fmt.Fprintf(&b, "user\x07%d,pro\n", i)
				bads = append(bads, bad{line, fmt.Sprintf("user\x07%d", i), "control character in user ID"})
			case i%40 == 23:
				id := strings.Repeat("x", 300)
				fmt.Fprintf(&b, "%s,pro\n", id)
				bads = append(bads, bad{line, id[:200] + "…", "user ID longer than 256 bytes"})
			default:
				fmt.Fprintf(&b, "user-%04d,pro,extra\n", i)
				bads = append(bads, bad{line, fmt.Sprintf("user-%04d,pro,extra", i), "wrong column count: 3, want 2"})
			}
		}
		j := runImport(t, c, segID, "ADD", false, b.String())
		checkCounts(t, "10% bad", j, 1000, 900, 0, 0, 100)
		if len(j.Errors) != 100 {
			t.Fatalf("errors listed: %d, want 100", len(j.Errors))
		}
		for i, e := range j.Errors {
			if w := bads[i]; e.Line != w.line || e.Value != w.value || e.Reason != w.reason {
				t.Fatalf("error %d = %+v, want %+v", i, e, w)
			}
		}
		if n := len(members(t, c, segID)); n != 900 {
			t.Fatalf("members: %d, want 900", n)
		}
		// Paging through the errors.
		var page struct {
			ImportJob struct{ Errors []struct{ Line int } }
		}
		c.MustDo(t, `query($id: ID!) { importJob(id: $id) { errors(first: 2, afterLine: 50) { line } } }`, map[string]any{"id": j.ID}, &page)
		if got := page.ImportJob.Errors; len(got) != 2 || got[0].Line != bads[5].line || got[1].Line != bads[6].line {
			t.Fatalf("errors after line 50: %+v (bad lines %d, %d)", got, bads[5].line, bads[6].line)
		}
	})
}

// TestImportFailureLeavesSegmentUnchanged: when the database refuses a
// write half-way through applying a REPLACE (after the removals, during the
// additions), the job fails with the reason and the segment, its users, its
// stats and its log are exactly as before.
func TestImportFailureLeavesSegmentUnchanged(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL)
		c := srv.Admin()
		segID := createStatic(t, c, "Fragile")
		runImport(t, c, segID, "ADD", false, "a\nb\nc\n")
		before := members(t, c, segID)

		st, err := store.Open(context.Background(), dbURL)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		failOn := map[string][]string{
			"sqlite3": {`CREATE TRIGGER refuse_import BEFORE INSERT ON memberships WHEN NEW.source = 'IMPORT'
BEGIN SELECT RAISE(ABORT, 'disk on fire'); END`},
			"postgres": {`CREATE FUNCTION refuse_import() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'disk on fire'; END $$`,
				`CREATE TRIGGER refuse_import BEFORE INSERT ON memberships FOR EACH ROW WHEN (NEW.source = 'IMPORT') EXECUTE FUNCTION refuse_import()`},
		}[map[bool]string{true: "postgres", false: "sqlite3"}[st.Dialect == "postgres"]]
		for _, stmt := range failOn {
			if _, err := st.DB.Exec(stmt); err != nil {
				t.Fatalf("%s: %v", stmt, err)
			}
		}

		j := waitImport(t, c, startImport(t, c, segID, "REPLACE", false, "new.csv", "b\nx\ny\n"))
		if j.Status != "FAILED" || !strings.Contains(j.Failure, "disk on fire") || j.FinishedAt == nil {
			t.Fatalf("job: %+v", j)
		}
		if got := members(t, c, segID); strings.Join(got, ",") != strings.Join(before, ",") {
			t.Fatalf("members after a failed REPLACE: %v, want %v", got, before)
		}
		var x struct{ User *struct{ UserID string } }
		c.MustDo(t, `{ user(userId: "x") { userId } }`, nil, &x)
		if x.User != nil {
			t.Fatal("a failed import left user x behind")
		}
		var changes int
		if err := st.DB.QueryRow("SELECT count(*) FROM membership_changes WHERE kind = 'EXITED'").Scan(&changes); err != nil {
			t.Fatal(err)
		}
		if changes != 0 {
			t.Fatalf("a failed import logged %d exits", changes)
		}
		var staged int
		if err := st.DB.QueryRow("SELECT count(*) FROM import_ids").Scan(&staged); err != nil {
			t.Fatal(err)
		}
		if staged != 0 {
			t.Fatalf("%d staged IDs left behind", staged)
		}
	})
}

// TestImportExportRoundTrip: the members.csv export imports back as the
// same member list.
func TestImportExportRoundTrip(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL)
		c := srv.Admin()
		src := createStatic(t, c, "Source")
		var ids []string
		for i := 0; i < 250; i++ {
			ids = append(ids, fmt.Sprintf("u%03d, \"quoted\";%d", i, i))
		}
		c.MustDo(t, `mutation($s: ID!, $u: [String!]!) { addUsersToSegment(segmentId: $s, userIds: $u) { added } }`,
			map[string]any{"s": src, "u": ids}, nil)
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/segments/"+src+"/members.csv", nil)
		req.Header.Set("Authorization", "Bearer "+testenv.AdminKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		export, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("export: %d %v", resp.StatusCode, err)
		}
		dst := createStatic(t, c, "Copy")
		j := runImport(t, c, dst, "REPLACE", false, string(export))
		checkCounts(t, "round trip", j, 250, 250, 0, 0, 0)
		if a, b := members(t, c, src), members(t, c, dst); strings.Join(a, "|") != strings.Join(b, "|") {
			t.Fatalf("round trip: exported %d members, imported %d differently", len(a), len(b))
		}
	})
}

// TestImportRequests: bad requests get clear errors and start nothing.
func TestImportRequests(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL, func(c *server.Config) { c.MaxUploadBytes = 4096 })
		c := srv.Admin()
		segID := createStatic(t, c, "Guarded")

		r := c.Upload(t, importMutation, map[string]any{"s": "seg_nope", "mode": "ADD"}, "file", "a.csv", strings.NewReader("a\n"))
		if len(r.Errors) != 1 || r.Errors[0].Code() != "NOT_FOUND" || r.Errors[0].Field() != "segmentId" {
			t.Fatalf("unknown segment: %+v", r.Errors)
		}
		r = c.Upload(t, importMutation, map[string]any{"s": segID, "mode": "MERGE"}, "file", "a.csv", strings.NewReader("a\n"))
		// Refused from the operations part, before the file is read.
		if len(r.Errors) != 1 || r.Errors[0].Code() != "BAD_USER_INPUT" || r.Errors[0].Field() != "mode" || !strings.Contains(r.Errors[0].Message, "MERGE") {
			t.Fatalf("unknown mode: %+v", r.Errors)
		}
		_, readKey := newKey(t, srv, "reader", auth.RoleRead)
		reader := srv.Client(readKey)
		r = reader.Upload(t, importMutation, map[string]any{"s": segID, "mode": "ADD"}, "file", "a.csv", strings.NewReader("a\n"))
		if len(r.Errors) != 1 || r.Errors[0].Code() != "FORBIDDEN" {
			t.Fatalf("READ key: %+v", r.Errors)
		}
		big := strings.Repeat("user-000000\n", 1000)
		r = c.Upload(t, importMutation, map[string]any{"s": segID, "mode": "ADD"}, "file", "big.csv", strings.NewReader(big))
		if r.Status != http.StatusRequestEntityTooLarge || len(r.Errors) != 1 || r.Errors[0].Code() != "BAD_USER_INPUT" ||
			!strings.Contains(r.Errors[0].Message, "4096") || !strings.Contains(r.Errors[0].Message, "SEGMENTD_MAX_UPLOAD_BYTES") {
			t.Fatalf("too large: status %d, %+v", r.Status, r.Errors)
		}
		var jobs int
		st, err := store.Open(context.Background(), dbURL)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		if err := st.DB.QueryRow("SELECT count(*) FROM import_jobs").Scan(&jobs); err != nil {
			t.Fatal(err)
		}
		if jobs != 0 {
			t.Fatalf("refused requests created %d jobs", jobs)
		}
		if got := members(t, c, segID); len(got) != 0 {
			t.Fatalf("members: %v", got)
		}
	})
}

// TestImportJobProgress: a subscriber sees the job's states to the final
// one, and then the stream completes.
func TestImportJobProgress(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL)
		c := srv.Admin()
		segID := createStatic(t, c, "Watched")
		var b strings.Builder
		for i := 0; i < 20000; i++ {
			fmt.Fprintf(&b, "w%05d\n", i)
		}
		id := startImport(t, c, segID, "ADD", false, "big.csv", b.String())
		ws := srv.DialWS(t, testenv.AdminKey, "graphql-transport-ws")
		ws.Subscribe(t, "p", `subscription($id: ID!) { importJobProgress(id: $id) { status processedRows totalRows added invalidRows } }`, map[string]any{"id": id})
		var last struct {
			ImportJobProgress struct {
				Status                                       string
				ProcessedRows, TotalRows, Added, InvalidRows int
			}
		}
		prev := -1
		for {
			m := ws.Next(t, 60*time.Second)
			if m.Type == "complete" && m.ID == "p" {
				break
			}
			if m.Type != "next" {
				t.Fatalf("message: %+v", m)
			}
			var p struct {
				Data   json.RawMessage
				Errors []testenv.GQLError
			}
			if err := json.Unmarshal(m.Payload, &p); err != nil || len(p.Errors) > 0 {
				t.Fatalf("payload %s: %v", m.Payload, err)
			}
			if err := json.Unmarshal(p.Data, &last); err != nil {
				t.Fatal(err)
			}
			if last.ImportJobProgress.ProcessedRows < prev {
				t.Fatalf("progress went back: %d after %d", last.ImportJobProgress.ProcessedRows, prev)
			}
			prev = last.ImportJobProgress.ProcessedRows
		}
		if p := last.ImportJobProgress; p.Status != "SUCCEEDED" || p.TotalRows != 20000 || p.ProcessedRows != 20000 || p.Added != 20000 {
			t.Fatalf("last message: %+v", p)
		}
		ws.Subscribe(t, "q", `subscription { importJobProgress(id: "imp_nope") { status } }`, nil)
		errs := ws.NextError(t, "q", 10*time.Second)
		if len(errs) == 0 || errs[0].Code() != "NOT_FOUND" {
			t.Fatalf("unknown job: %+v", errs)
		}
	})
}
