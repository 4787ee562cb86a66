package server_test

import (
	"context"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentd/segmentd/auth"
	"github.com/segmentd/segmentd/internal/testenv"
)

// countingCSV yields n bytes of CSV rows and counts what was read of it.
type countingCSV struct {
	left int64
	read atomic.Int64
}

func (c *countingCSV) Read(p []byte) (int, error) {
	if c.left <= 0 {
		return 0, io.EOF
	}
	n := min(int64(len(p)), c.left)
	for i := range p[:n] {
		p[i] = "u-12345\n"[i%8]
	}
	c.left -= n
	c.read.Add(n)
	return int(n), nil
}

// uploadStream posts an importSegmentUsers multipart request whose file is
// file, and returns the HTTP status and the first error's code.
func uploadStream(t *testing.T, url, key string, vars map[string]any, file io.Reader) (int, string) {
	t.Helper()
	vars["f"] = nil
	ops, _ := json.Marshal(map[string]any{
		"query":     `mutation($s: ID!, $f: Upload!, $m: ImportMode) { importSegmentUsers(segmentId: $s, file: $f, mode: $m) { id } }`,
		"variables": vars,
	})
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		err := func() error {
			if err := mw.WriteField("operations", string(ops)); err != nil {
				return err
			}
			if err := mw.WriteField("map", `{"0":["variables.f"]}`); err != nil {
				return err
			}
			part, err := mw.CreateFormFile("0", "users.csv")
			if err != nil {
				return err
			}
			if _, err := io.Copy(part, file); err != nil {
				return err
			}
			return mw.Close()
		}()
		pw.CloseWithError(err)
	}()
	defer pr.Close()
	req, _ := http.NewRequest(http.MethodPost, url+"/graphql", pr)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := (&http.Client{Timeout: time.Minute}).Do(req)
	if err != nil {
		t.Fatalf("upload: %v", err)
	}
	defer resp.Body.Close()
	var body struct{ Errors []testenv.GQLError }
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, &body); err != nil {
		t.Fatalf("upload answer %q: %v", raw, err)
	}
	code := ""
	if len(body.Errors) > 0 {
		code = body.Errors[0].Code()
	}
	return resp.StatusCode, code
}

// An upload its caller may not make (a READ or WRITE key; an unknown
// segment; a mode that is not one) is refused from the operations part,
// before the file is read: of a 200 MB file, at most a few MB (what the
// sockets buffer) leave the client, nothing is spooled, no job starts.
func TestRefusedUploadIsNotRead(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := startAttackServer(t, dbURL)
		admin := srv.Admin()
		var seg struct{ CreateSegment struct{ ID string } }
		admin.MustDo(t, `mutation { createSegment(input: {name: "imported", kind: STATIC}) { id } }`, nil, &seg)
		segID := seg.CreateSegment.ID
		readKey := srv.secret(newKey(t, srv.Server, "dashboard", auth.RoleRead))
		writeKey := srv.secret(newKey(t, srv.Server, "ingestion", auth.RoleWrite))
		const size = 200 << 20
		const bound = 16 << 20
		for _, c := range []struct {
			name   string
			key    string
			vars   map[string]any
			status int
			code   string
		}{
			{"READ key", readKey, map[string]any{"s": segID}, 403, "FORBIDDEN"},
			{"WRITE key", writeKey, map[string]any{"s": segID, "m": "REPLACE"}, 403, "FORBIDDEN"},
			{"unknown segment", testenv.AdminKey, map[string]any{"s": "seg_01J0000000000000000000000"}, 404, "NOT_FOUND"},
			{"unknown mode", testenv.AdminKey, map[string]any{"s": segID, "m": "MERGE"}, 400, "BAD_USER_INPUT"},
		} {
			file := &countingCSV{left: size}
			start := time.Now()
			status, code := uploadStream(t, srv.URL, c.key, c.vars, file)
			if status != c.status || code != c.code {
				t.Errorf("%s: %d %s, want %d %s", c.name, status, code, c.status, c.code)
			}
			if n := file.read.Load(); n > bound {
				t.Errorf("%s: %d MB of the 200 MB file were sent before the refusal, want at most %d MB", c.name, n>>20, bound>>20)
			} else {
				t.Logf("%s: refused in %v after %d KB of the file", c.name, time.Since(start).Round(time.Millisecond), n>>10)
			}
		}
		n, err := srv.Store().Client.ImportJob.Query().Count(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Errorf("%d import jobs, want none", n)
		}
		// An allowed upload still works.
		file := &countingCSV{left: 80}
		if status, code := uploadStream(t, srv.URL, testenv.AdminKey, map[string]any{"s": segID}, file); status != 200 || code != "" {
			t.Errorf("an ADMIN upload: %d %s", status, code)
		}
	})
}
