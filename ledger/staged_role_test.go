package ledger_test

import (
	"context"
	"database/sql"
	"net/url"
	"testing"

	"github.com/segmentd/segmentd/internal/testenv"
	"github.com/segmentd/segmentd/ledger"
	"github.com/segmentd/segmentd/store"
)

// TestEnterStagedAsAPlainRole: on PostgreSQL, a role that may not set
// session_replication_role (not a superuser, no SET grant) applies staged
// sets as well, with the foreign key checks on: the same entries, log,
// counters and activations as testEnterStaged expects.
func TestEnterStagedAsAPlainRole(t *testing.T) {
	ctx := context.Background()
	dbURL := testenv.DatabaseURL(t, "postgres")
	owner, err := store.Open(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer owner.Close()
	if err := owner.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	var super bool
	if err := owner.DB.QueryRowContext(ctx, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user").Scan(&super); err != nil {
		t.Fatal(err)
	}
	if !super {
		t.Skip("the test database's role is not a superuser: it cannot create the plain role")
	}
	const role = "segmentd_ledger_plain"
	for _, stmt := range []string{
		`DO $$ BEGIN CREATE ROLE ` + role + ` LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$`,
		`GRANT USAGE ON SCHEMA ` + schemaOf(t, owner.DB) + ` TO ` + role,
		`GRANT ALL ON ALL TABLES IN SCHEMA ` + schemaOf(t, owner.DB) + ` TO ` + role,
		`GRANT ALL ON ALL SEQUENCES IN SCHEMA ` + schemaOf(t, owner.DB) + ` TO ` + role,
	} {
		if _, err := owner.DB.ExecContext(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.User(role)
	st, err := store.Open(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	var can bool
	if err := st.DB.QueryRowContext(ctx, "SELECT has_parameter_privilege('session_replication_role', 'SET')").Scan(&can); err != nil {
		t.Fatal(err)
	}
	if can {
		t.Fatalf("%s may set session_replication_role: the test needs a role that may not", role)
	}
	l, err := ledger.New(st.Dialect)
	if err != nil {
		t.Fatal(err)
	}
	testEnterStaged(t, &fixture{ctx: ctx, st: st, l: l})
}

func schemaOf(t *testing.T, db *sql.DB) string {
	t.Helper()
	var s string
	if err := db.QueryRow("SELECT current_schema()").Scan(&s); err != nil {
		t.Fatal(err)
	}
	return s
}
