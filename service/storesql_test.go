package service

import (
	"context"
	"testing"

	"entgo.io/ent/dialect"
)

func TestStoreSQLForUnknownDialectIsAnError(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"", "mysql", "sqlite"} {
		if got, err := storeSQLFor(name); err == nil {
			t.Errorf("storeSQLFor(%q) = %T, want an error (no store's SQL is a safe guess)", name, got)
		}
	}
}

func TestStoreSQLRebind(t *testing.T) {
	t.Parallel()
	const q = "SELECT a FROM t WHERE b = ? AND c IN (?, ?)"
	for _, tc := range []struct{ dialect, want string }{
		{dialect.SQLite, q},
		{dialect.Postgres, "SELECT a FROM t WHERE b = $1 AND c IN ($2, $3)"},
	} {
		sq, err := storeSQLFor(tc.dialect)
		if err != nil {
			t.Fatalf("storeSQLFor(%q): %v", tc.dialect, err)
		}
		if got := sq.rebind(q); got != tc.want {
			t.Errorf("%s: rebind = %q, want %q", tc.dialect, got, tc.want)
		}
	}
}

// On SQLite one server serves the file, so there is no owner to claim,
// and nothing is asked of the database (it may even be unset).
func TestSQLiteClaimsNoImportOwner(t *testing.T) {
	t.Parallel()
	sq, err := storeSQLFor(dialect.SQLite)
	if err != nil {
		t.Fatal(err)
	}
	conn, key, err := sq.claimImportOwner(context.Background(), nil)
	if conn != nil || key != 0 || err != nil {
		t.Errorf("claimImportOwner = %v, %d, %v; want no owner and no error", conn, key, err)
	}
}
