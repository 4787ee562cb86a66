// Package rawimport is the baseline of the import benchmarks
// (service.BenchmarkImport, segbench -scenario import): the rows that an
// import of new users into a STATIC segment with one ACTIVE campaign leaves
// behind (for each user a users row, a membership, a change-log row and an
// activation), written raw into copies of those four tables with the same
// columns and indexes: COPY on PostgreSQL, multi-row INSERTs on SQLite, all
// in one transaction. What an import costs beyond that is its own work.
package rawimport

import (
	"context"
	"database/sql"
	"fmt"
	"iter"
	"math/rand/v2"
	"regexp"
	"strings"
	"time"

	"entgo.io/ent/dialect"
	"github.com/lib/pq"
	"github.com/oklog/ulid/v2"
)

// Rows describes what an import wrote: IDs are the file's distinct user
// IDs, each of which became a user entering Segment at At with Reason, and
// an activation of Campaign.
type Rows struct {
	Segment, Campaign string
	Reason            string
	At                time.Time
	// IDs yields the user IDs; it is ranged over once per table, and
	// must yield the same IDs in the same order each time.
	IDs iter.Seq[string]
}

// Result is how long the raw write took.
type Result struct {
	How     string // "COPY" or "multi-row INSERT"
	Rows    int    // users written (each with its three other rows)
	Elapsed time.Duration
	// Took is how long each table of Tables took, in order.
	Took []time.Duration
}

// Tables are the tables an import of new users writes a row of per user,
// in the order the baseline writes them.
var Tables = []string{"users", "memberships", "membership_changes", "campaign_activations"}

// copyName is the baseline's copy of a table.
func copyName(table string) string { return "bench_raw_" + table }

// Write creates the copies of Tables (dropping leftovers of an earlier
// run), writes rows into them in one transaction, timed from its begin to
// its commit, and drops them.
func Write(ctx context.Context, db *sql.DB, dialectName string, rows Rows) (*Result, error) {
	var create func(context.Context, *sql.DB, string) error
	var write func(context.Context, *sql.Tx, Rows, *Result) error
	res := &Result{}
	switch dialectName {
	case dialect.Postgres:
		res.How, create, write = "COPY", createPostgres, copyPostgres
	case dialect.SQLite:
		res.How, create, write = "multi-row INSERT", createSQLite, insertSQLite
	default:
		return nil, fmt.Errorf("rawimport: no raw write for dialect %q", dialectName)
	}
	drop := func() {
		for _, t := range Tables {
			_, _ = db.ExecContext(context.WithoutCancel(ctx), "DROP TABLE IF EXISTS "+copyName(t))
		}
	}
	drop()
	defer drop()
	for _, t := range Tables {
		if err := create(ctx, db, t); err != nil {
			return nil, fmt.Errorf("rawimport: copy %s: %w", t, err)
		}
	}
	start := time.Now()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("rawimport: begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit, a no-op
	if err = write(ctx, tx, rows, res); err != nil {
		return nil, fmt.Errorf("rawimport: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("rawimport: commit: %w", err)
	}
	res.Elapsed = time.Since(start)
	return res, nil
}

// row is one user's four rows: the values the import writes, the database
// filling in the rest (change-log ids, log positions) by default.
type row struct {
	userID, user, membership, activation string
}

// each yields the users' rows. The row IDs are monotonic ULIDs, as an
// import's are (pulid.NewULID), from a fixed seed, so that every pass
// yields the same IDs.
func each(rows Rows) iter.Seq2[int, row] {
	return func(yield func(int, row) bool) {
		entropy := ulid.Monotonic(rand.NewChaCha8([32]byte{19}), 0)
		ms := ulid.Timestamp(rows.At)
		i := 0
		for id := range rows.IDs {
			k := ulid.MustNew(ms, entropy).String()
			if !yield(i, row{userID: id, user: "usr_" + k, membership: "mem_" + k, activation: "act_" + k}) {
				return
			}
			i++
		}
	}
}

// columns are the columns each table's rows set, and values their values.
var columns = map[string][]string{
	"users":                {"id", "user_id", "traits", "first_seen_at", "last_seen_at"},
	"memberships":          {"id", "segment_ref", "user_ref", "entered_at", "source", "reason"},
	"membership_changes":   {"segment_ref", "user_ref", "kind", "source", "at", "reason"},
	"campaign_activations": {"id", "campaign_ref", "user_ref", "segment_ref", "activated_at", "entry", "membership_ref"},
}

func values(table string, rows Rows, r row, dst []any) []any {
	switch table {
	case "users":
		return append(dst, r.user, r.userID, "{}", rows.At, rows.At)
	case "memberships":
		return append(dst, r.membership, rows.Segment, r.user, rows.At, "IMPORT", rows.Reason)
	case "membership_changes":
		return append(dst, rows.Segment, r.user, "ENTERED", "IMPORT", rows.At, rows.Reason)
	default:
		return append(dst, r.activation, rows.Campaign, r.user, rows.Segment, rows.At, 1, r.membership)
	}
}

// createPostgres copies a table with LIKE ... INCLUDING ALL: columns,
// defaults (the log tables' transaction ids and positions), constraints
// other than foreign keys, and every index.
func createPostgres(ctx context.Context, db *sql.DB, table string) error {
	_, err := db.ExecContext(ctx, fmt.Sprintf("CREATE TABLE %s (LIKE %s INCLUDING ALL)", copyName(table), table))
	return err
}

// copyPostgres writes the rows with one COPY FROM STDIN per table.
func copyPostgres(ctx context.Context, tx *sql.Tx, rows Rows, res *Result) error {
	for _, t := range Tables {
		start := time.Now()
		stmt, err := tx.PrepareContext(ctx, pq.CopyIn(copyName(t), columns[t]...))
		if err != nil {
			return fmt.Errorf("COPY %s: %w", t, err)
		}
		args := make([]any, 0, len(columns[t]))
		n := 0
		for _, r := range each(rows) {
			if _, err := stmt.ExecContext(ctx, values(t, rows, r, args[:0])...); err != nil {
				stmt.Close()
				return fmt.Errorf("COPY %s: %w", t, err)
			}
			n++
		}
		if _, err := stmt.ExecContext(ctx); err != nil {
			stmt.Close()
			return fmt.Errorf("COPY %s: %w", t, err)
		}
		if err := stmt.Close(); err != nil {
			return fmt.Errorf("COPY %s: %w", t, err)
		}
		res.Rows = n
		res.Took = append(res.Took, time.Since(start))
	}
	return nil
}

var (
	// sqliteForeignKey is a foreign key clause of ent's SQLite DDL.
	sqliteForeignKey = regexp.MustCompile("(?i), CONSTRAINT \\S+ FOREIGN KEY \\([^)]*\\) REFERENCES \\S+ \\([^)]*\\)( ON (DELETE|UPDATE) (CASCADE|SET NULL|SET DEFAULT|RESTRICT|NO ACTION))*")
	sqliteCreate     = regexp.MustCompile("(?i)^CREATE TABLE (`[^`]+`|\"[^\"]+\"|\\S+)")
	sqliteIndex      = regexp.MustCompile("(?i)^CREATE (UNIQUE )?INDEX (IF NOT EXISTS )?(`[^`]+`|\"[^\"]+\"|\\S+) ON (`[^`]+`|\"[^\"]+\"|\\S+)")
)

// createSQLite copies a table from its own CREATE TABLE statement, renamed
// and without foreign keys (SQLite has no CREATE TABLE ... LIKE), and its
// CREATE INDEX statements from sqlite_master. Triggers are not copied.
func createSQLite(ctx context.Context, db *sql.DB, table string) error {
	var create string
	if err := db.QueryRowContext(ctx, `SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?`, table).Scan(&create); err != nil {
		return fmt.Errorf("read the definition: %w", err)
	}
	m := sqliteCreate.FindString(create)
	if m == "" {
		return fmt.Errorf("unexpected definition %q", create)
	}
	create = "CREATE TABLE " + copyName(table) + sqliteForeignKey.ReplaceAllString(create[len(m):], "")
	if _, err := db.ExecContext(ctx, create); err != nil {
		return fmt.Errorf("%s: %w", create, err)
	}
	rs, err := db.QueryContext(ctx, `SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL`, table)
	if err != nil {
		return fmt.Errorf("read the indexes: %w", err)
	}
	var idx []string
	for rs.Next() {
		var s string
		if err := rs.Scan(&s); err != nil {
			rs.Close()
			return fmt.Errorf("read the indexes: %w", err)
		}
		idx = append(idx, s)
	}
	rs.Close()
	if err := rs.Err(); err != nil {
		return fmt.Errorf("read the indexes: %w", err)
	}
	for _, s := range idx {
		m := sqliteIndex.FindStringSubmatch(s)
		if m == nil {
			return fmt.Errorf("unexpected index %q", s)
		}
		name := strings.Trim(m[3], "`\"")
		s = fmt.Sprintf("CREATE %sINDEX %s ON %s", m[1], copyName(name), copyName(table)) + s[len(m[0]):]
		if _, err := db.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	return nil
}

// sqliteChunk is how many rows one INSERT writes (7 values a row at most:
// well under SQLite's 32,766 parameters).
const sqliteChunk = 1000

// insertSQLite writes the rows with multi-row INSERTs of sqliteChunk rows,
// table by table. The activations' log position, which a trigger numbers
// on the real table, is written with the row.
func insertSQLite(ctx context.Context, tx *sql.Tx, rows Rows, res *Result) error {
	for _, t := range Tables {
		start := time.Now()
		cols := columns[t]
		if t == "campaign_activations" {
			cols = append(cols[:len(cols):len(cols)], "log_seq")
		}
		one := "(" + strings.TrimSuffix(strings.Repeat("?,", len(cols)), ",") + ")"
		head := "INSERT INTO " + copyName(t) + " (" + strings.Join(cols, ", ") + ") VALUES "
		full := head + strings.TrimSuffix(strings.Repeat(one+",", sqliteChunk), ",")
		args := make([]any, 0, len(cols)*sqliteChunk)
		inChunk := 0
		flush := func() error {
			if inChunk == 0 {
				return nil
			}
			q := full
			if inChunk < sqliteChunk {
				q = head + strings.TrimSuffix(strings.Repeat(one+",", inChunk), ",")
			}
			if _, err := tx.ExecContext(ctx, q, args...); err != nil {
				return fmt.Errorf("INSERT %s: %w", t, err)
			}
			args, inChunk = args[:0], 0
			return nil
		}
		n := 0
		for i, r := range each(rows) {
			args = values(t, rows, r, args)
			if t == "campaign_activations" {
				args = append(args, i+1)
			}
			n++
			if inChunk++; inChunk == sqliteChunk {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		if err := flush(); err != nil {
			return err
		}
		res.Rows = n
		res.Took = append(res.Took, time.Since(start))
	}
	return nil
}
