package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"strings"

	"entgo.io/ent/dialect"
	"github.com/lib/pq"
)

// ErrNoDatabase is OpenExisting's error (wrapped, with what is missing)
// when the database does not exist or holds no segmentd schema.
var ErrNoDatabase = errors.New("no segmentd database")

// schemaTable is a table every segmentd database has since its first start.
const schemaTable = "api_keys"

// CheckURL reports whether url names a database segmentd can open (a
// supported scheme, a parseable URL), without touching it.
func CheckURL(url string) error {
	_, _, err := driverFor(url)
	return err
}

// OpenExisting opens the database at url like Open, but only one that
// exists and holds segmentd's schema: it never creates a SQLite file, a
// PostgreSQL database or a table. Otherwise it returns an error wrapping
// ErrNoDatabase that says what is missing. It is for the admin commands
// (keys, verify), which must not mistake a mistyped URL for an empty
// database.
func OpenExisting(ctx context.Context, url string) (*Store, error) {
	drv, dsn, err := driverFor(url)
	if err != nil {
		return nil, err
	}
	if drv == "sqlite" {
		path := sqlitePath(dsn)
		fi, err := os.Stat(path)
		switch {
		case errors.Is(err, os.ErrNotExist):
			return nil, fmt.Errorf("%w: the SQLite file %s does not exist (check --database-url / DATABASE_URL; segmentd serve creates it)", ErrNoDatabase, path)
		case err != nil:
			return nil, fmt.Errorf("store.OpenExisting: %w", err)
		case fi.IsDir():
			return nil, fmt.Errorf("%w: %s is a directory, not a SQLite file", ErrNoDatabase, path)
		}
		// Look read-only first: opening with Open's pragmas (WAL) would
		// write to an empty or foreign file.
		if err := sqliteHasSchema(ctx, path); err != nil {
			return nil, err
		}
	}
	st, err := Open(ctx, url)
	if err != nil {
		var pqErr *pq.Error
		if errors.As(err, &pqErr) && pqErr.Code == "3D000" { // invalid_catalog_name
			return nil, fmt.Errorf("%w: %s (check --database-url / DATABASE_URL)", ErrNoDatabase, pqErr.Message)
		}
		return nil, err
	}
	var q string
	if st.Dialect == dialect.Postgres {
		// In the URL's search_path, as ent resolves table names.
		q = "SELECT COUNT(*) FROM pg_catalog.pg_tables WHERE tablename = $1 AND schemaname = ANY (current_schemas(false))"
	} else {
		q = "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?"
	}
	var n int
	if err := st.DB.QueryRowContext(ctx, q, schemaTable).Scan(&n); err != nil {
		st.Close()
		return nil, fmt.Errorf("store.OpenExisting: %w", err)
	}
	if n == 0 {
		st.Close()
		return nil, fmt.Errorf("%w: %s holds no segmentd tables (check --database-url / DATABASE_URL; segmentd serve creates them)", ErrNoDatabase, redact(url))
	}
	return st, nil
}

// sqliteHasSchema checks, read-only, that the SQLite file at path holds
// segmentd's tables.
func sqliteHasSchema(ctx context.Context, path string) error {
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		return fmt.Errorf("store.OpenExisting: %w", err)
	}
	defer db.Close()
	var n int
	err = db.QueryRowContext(ctx, "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?", schemaTable).Scan(&n)
	switch {
	case err != nil && strings.Contains(err.Error(), "not a database"):
		return fmt.Errorf("%w: %s is not a SQLite database", ErrNoDatabase, path)
	case err != nil:
		return fmt.Errorf("store.OpenExisting: %s: %w", path, err)
	case n == 0:
		return fmt.Errorf("%w: %s holds no segmentd tables (check --database-url / DATABASE_URL; segmentd serve creates them)", ErrNoDatabase, path)
	}
	return nil
}
