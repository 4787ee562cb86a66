package rawimport

import (
	"context"
	"database/sql"
	"fmt"
	"testing"
	"time"

	"entgo.io/ent/dialect"

	"github.com/segmentd/segmentd/internal/testenv"
	"github.com/segmentd/segmentd/store"
)

// TestCopiesHaveTheTablesIndexes: each copy has the columns and the
// indexes (unique or not, on the same columns) of its table, on both
// stores, and Write writes every user's four rows and drops the copies.
func TestCopiesHaveTheTablesIndexes(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, databaseURL string) {
		ctx := context.Background()
		st, err := store.Open(ctx, databaseURL)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		if err := st.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		create := createSQLite
		if st.Dialect == dialect.Postgres {
			create = createPostgres
		}
		for _, table := range Tables {
			if err := create(ctx, st.DB, table); err != nil {
				t.Fatal(err)
			}
			want, got := indexes(t, st, table), indexes(t, st, copyName(table))
			if len(want) < 2 || fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("%s: indexes %v, want those of the table: %v", table, got, want)
			}
			if want, got := columnNames(t, st, table), columnNames(t, st, copyName(table)); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("%s: columns %v, want %v", table, got, want)
			}
			if _, err := st.DB.ExecContext(ctx, "DROP TABLE "+copyName(table)); err != nil {
				t.Fatal(err)
			}
		}

		const n = 2500 // more than two INSERTs' worth on SQLite
		res, err := Write(ctx, st.DB, st.Dialect, Rows{Segment: "seg_x", Campaign: "cmp_x", Reason: "imported", At: time.Now(),
			IDs: func(yield func(string) bool) {
				for i := range n {
					if !yield(fmt.Sprintf("user-%d", i)) {
						return
					}
				}
			}})
		if err != nil {
			t.Fatal(err)
		}
		if res.Rows != n || len(res.Took) != len(Tables) || res.Elapsed <= 0 {
			t.Errorf("result %+v, want %d rows and a time per table", res, n)
		}
		for _, table := range Tables {
			if cols := columnNames(t, st, copyName(table)); len(cols) != 0 {
				t.Errorf("%s is still there after Write", copyName(table))
			}
		}
	})
}

// indexes lists a table's indexes as "unique? (columns)", sorted.
func indexes(t *testing.T, st *store.Store, table string) []string {
	t.Helper()
	q := `SELECT CASE WHEN il."unique" THEN 'unique ' ELSE '' END || '(' ||
  (SELECT group_concat(ii.name, ', ') FROM pragma_index_info(il.name) ii) || ')'
FROM pragma_index_list(?) il ORDER BY 1`
	if st.Dialect == dialect.Postgres {
		q = `SELECT CASE WHEN ix.indisunique THEN 'unique ' ELSE '' END || '(' ||
  (SELECT string_agg(a.attname, ', ' ORDER BY k.n) FROM unnest(ix.indkey) WITH ORDINALITY AS k(attnum, n)
   JOIN pg_attribute a ON a.attrelid = ix.indrelid AND a.attnum = k.attnum) || ')'
FROM pg_index ix WHERE ix.indrelid = to_regclass($1) ORDER BY 1`
	}
	return queryStrings(t, st.DB, q, table)
}

// columnNames lists a table's columns in order.
func columnNames(t *testing.T, st *store.Store, table string) []string {
	t.Helper()
	q := `SELECT name FROM pragma_table_info(?) ORDER BY cid`
	if st.Dialect == dialect.Postgres {
		q = `SELECT attname FROM pg_attribute WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped ORDER BY attnum`
	}
	return queryStrings(t, st.DB, q, table)
}

func queryStrings(t *testing.T, db *sql.DB, q string, args ...any) []string {
	t.Helper()
	rows, err := db.Query(q, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
