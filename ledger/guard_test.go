package ledger_test

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// The ledger is the one writer of these tables; TestOnlyTheLedgerWrites
// keeps it so.
var ledgerTables = []string{"memberships", "membership_changes", "campaign_activations", "segment_counters", "membership_deadlines"}

// ledgerEntities are the ent clients of those tables, and entPackages their
// generated packages (whose Table constant names the table).
var (
	ledgerEntities = map[string]bool{"Membership": true, "MembershipChange": true, "CampaignActivation": true, "SegmentCounter": true, "MembershipDeadline": true}
	entPackages    = map[string]bool{"membership": true, "membershipchange": true, "campaignactivation": true, "segmentcounter": true, "membershipdeadline": true}
	entWrites      = map[string]bool{
		"Create": true, "CreateBulk": true, "MapCreateBulk": true,
		"Update": true, "UpdateOne": true, "UpdateOneID": true,
		"Delete": true, "DeleteOne": true, "DeleteOneID": true,
	}
	sqlBuilders = map[string]bool{"Insert": true, "Update": true, "Delete": true}
)

// writeSQL matches a statement that writes one of the tables: INSERT INTO,
// UPDATE, DELETE FROM, COPY, or a TRUNCATE that lists it.
var writeSQL = regexp.MustCompile(`(?is)\b(?:INSERT\s+INTO|UPDATE|DELETE\s+FROM|COPY)\s+(?:ONLY\s+)?"?(` +
	strings.Join(ledgerTables, "|") + `)\b|\bTRUNCATE\b[^;]*?\b(` + strings.Join(ledgerTables, "|") + `)\b`)

// TestOnlyTheLedgerWrites fails if code outside ledger/ writes memberships,
// their change log, activations or counters, by SQL text or by ent
// builders. Tests (which seed data) and generated code (ent/, files marked
// "Code generated") are left out. SEGMENTD_GUARD_ROOT points it at another
// checkout of the module (to count what another tree does).
func TestOnlyTheLedgerWrites(t *testing.T) {
	root := os.Getenv("SEGMENTD_GUARD_ROOT")
	if root == "" {
		root = moduleRoot(t)
	}
	writes, err := ledgerWritesOutside(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(writes) == 0 {
		return
	}
	files := map[string]bool{}
	for _, w := range writes {
		files[strings.SplitN(w, ":", 2)[0]] = true
	}
	t.Errorf("%d writes in %d files outside ledger/ write the ledger's tables (%s); call the ledger instead:\n%s",
		len(writes), len(files), strings.Join(ledgerTables, ", "), strings.Join(writes, "\n"))
}

// TestGuardFindsWrites checks the guard on code that writes in each way it
// knows, and on code that only reads.
func TestGuardFindsWrites(t *testing.T) {
	dir := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module example\n"), 0o644))
	must(os.MkdirAll(filepath.Join(dir, "svc"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "svc", "w.go"), []byte(`package svc

const q = "insert into memberships (id) values ($1)"

func f(tx T) {
	tx.Membership.Create()
	tx.Client().CampaignActivation.CreateBulk()
	tx.SegmentCounter.Delete()
	tx.ExecContext("DELETE FROM " + "membership_changes WHERE id = $1")
	tx.ExecContext("TRUNCATE users, segment_counters")
	sql.Insert(membership.Table)
}
`), 0o644))
	must(os.WriteFile(filepath.Join(dir, "svc", "r.go"), []byte(`package svc

const r = "SELECT * FROM memberships m WHERE m.segment_ref = $1"
const l = "LOCK TABLE memberships IN SHARE MODE"

func g(tx T) {
	tx.Membership.Query()
	tx.User.Create()
	tx.Segment.Delete()
}
`), 0o644))
	must(os.WriteFile(filepath.Join(dir, "svc", "w_test.go"), []byte(`package svc

func seed(tx T) { tx.Membership.Create() }
`), 0o644))
	writes, err := ledgerWritesOutside(dir)
	must(err)
	if len(writes) != 7 {
		t.Errorf("found %d writes, want 7:\n%s", len(writes), strings.Join(writes, "\n"))
	}
	for _, w := range writes {
		if !strings.HasPrefix(w, "svc/w.go:") {
			t.Errorf("a read or a test counted as a write: %s", w)
		}
	}
}

func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}

// ledgerWritesOutside lists, as "path:line: what", the writes of the
// ledger's tables in the module at root outside ledger/.
func ledgerWritesOutside(root string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			name := d.Name()
			if rel != "." && (strings.HasPrefix(name, ".") || name == "testdata" || name == "vendor" || name == "node_modules" ||
				rel == "ent" || rel == "ledger") {
				return filepath.SkipDir
			}
			if rel != "." {
				if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil {
					return filepath.SkipDir // another module
				}
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		found, err := fileWrites(path, rel)
		if err != nil {
			return err
		}
		out = append(out, found...)
		return nil
	})
	sort.Strings(out)
	return out, err
}

func fileWrites(path, rel string) ([]string, error) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, path, nil, parser.ParseComments)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", rel, err)
	}
	if ast.IsGenerated(f) {
		return nil, nil
	}
	var out []string
	report := func(n ast.Node, what string) {
		out = append(out, fmt.Sprintf("%s:%d: %s", rel, fset.Position(n.Pos()).Line, what))
	}
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.BinaryExpr:
			// A statement put together from pieces: read it whole, with
			// the pieces that are not literals as placeholders.
			if n.Op != token.ADD || !hasString(n) {
				return true
			}
			if m := writeSQL.FindStringSubmatch(concat(n)); m != nil {
				report(n, "SQL writes "+m[1]+m[2])
			}
			return false
		case *ast.BasicLit:
			if n.Kind != token.STRING {
				return true
			}
			s, err := strconv.Unquote(n.Value)
			if err != nil {
				return true
			}
			if m := writeSQL.FindStringSubmatch(s); m != nil {
				report(n, "SQL writes "+m[1]+m[2])
			}
		case *ast.SelectorExpr:
			// x.Membership.Create (and the like), called or not.
			if inner, ok := n.X.(*ast.SelectorExpr); ok && entWrites[n.Sel.Name] && ledgerEntities[inner.Sel.Name] {
				report(n, "ent "+inner.Sel.Name+"."+n.Sel.Name)
			}
		case *ast.CallExpr:
			// sql.Insert(membership.Table), and the like.
			fn, ok := n.Fun.(*ast.SelectorExpr)
			if !ok || !sqlBuilders[fn.Sel.Name] || len(n.Args) == 0 {
				return true
			}
			if arg, ok := n.Args[0].(*ast.SelectorExpr); ok && arg.Sel.Name == "Table" {
				if pkg, ok := arg.X.(*ast.Ident); ok && entPackages[pkg.Name] {
					report(n, "SQL builder "+fn.Sel.Name+"("+pkg.Name+".Table)")
				}
			}
		}
		return true
	})
	return out, nil
}

func hasString(e ast.Expr) bool {
	found := false
	ast.Inspect(e, func(n ast.Node) bool {
		if l, ok := n.(*ast.BasicLit); ok && l.Kind == token.STRING {
			found = true
		}
		return !found
	})
	return found
}

func concat(e ast.Expr) string {
	switch e := e.(type) {
	case *ast.BinaryExpr:
		if e.Op == token.ADD {
			return concat(e.X) + concat(e.Y)
		}
	case *ast.BasicLit:
		if e.Kind == token.STRING {
			if s, err := strconv.Unquote(e.Value); err == nil {
				return s
			}
		}
	case *ast.ParenExpr:
		return concat(e.X)
	}
	return " ? "
}
