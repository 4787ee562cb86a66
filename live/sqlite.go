package live

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/segmentd/segmentd/changelog"
)

// sqliteLog reads a log on SQLite, where writers are serialized, so a
// row's sequence alone is its position and every committed row is stable.
type sqliteLog struct{}

// horizon: every committed row is stable.
func (sqliteLog) horizon(context.Context, *sql.DB, Source, keySet) (string, map[uint32]bool, error) {
	return "", nil, nil
}

func (sqliteLog) headQuery(src Source, _ string) (string, []any) {
	return src.SQL(`SELECT '0', {seq} FROM {table} WHERE {seq} IS NOT NULL ORDER BY {seq} DESC LIMIT 1`), nil
}

func (sqliteLog) readQuery(src Source, _ string, after changelog.Cursor, upTo *changelog.Cursor, ks keySet, limit int) (string, []any) {
	var q strings.Builder
	q.WriteString(src.SQL(`SELECT * FROM (SELECT '0', {seq}, CAST({id} AS TEXT), {key}, 1, NULL FROM {table} WHERE {seq} > ?`))
	args := []any{after.Seq}
	if upTo != nil {
		fmt.Fprintf(&q, ` AND %s <= ?`, src.Seq)
		args = append(args, upTo.Seq)
	}
	if !ks.all {
		fmt.Fprintf(&q, ` AND %s IN (%s)`, src.Key, placeholders(len(ks.keys)))
		for _, k := range ks.keys {
			args = append(args, k)
		}
	}
	fmt.Fprintf(&q, ` ORDER BY %s LIMIT %d)`, src.Seq, limit)
	q.WriteString(src.SQL(` UNION ALL SELECT '0', MAX({seq}), NULL, NULL, 1, NULL FROM {table}`))
	return q.String(), args
}

// placeholders is n question marks, comma-separated ("NULL" for none, so
// that IN () matches nothing).
func placeholders(n int) string {
	if n == 0 {
		return "NULL"
	}
	return strings.TrimSuffix(strings.Repeat("?,", n), ",")
}

// within: a cursor has no transaction part on SQLite, and its sequence is
// at most the last one handed out. For a log numbered by log_seq that is
// its counter in changelog.SQLiteSequences (store.Migrate), which deletes never lower;
// for one numbered by its AUTOINCREMENT id, the table's largest rowid or
// its AUTOINCREMENT counter if larger (rows may have been deleted).
func (sqliteLog) within(ctx context.Context, db *sql.DB, src Source, c changelog.Cursor) (bool, error) {
	if c.Tx != 0 {
		return false, nil
	}
	var last int64
	if src.Seq == changelog.SeqColumn {
		// The rowid is smaller once rows have been deleted (and, for rows
		// from before the numbering, unrelated).
		err := db.QueryRowContext(ctx, src.SQL(`SELECT MAX(
		COALESCE((SELECT MAX({seq}) FROM {table}), 0),
		COALESCE((SELECT seq FROM {sequences} WHERE name = '{table}'), 0))`)).Scan(&last)
		return c.Seq <= last, err
	}
	err := db.QueryRowContext(ctx, fmt.Sprintf(`SELECT MAX(
		COALESCE((SELECT MAX(rowid) FROM %[1]s), 0),
		COALESCE((SELECT seq FROM sqlite_sequence WHERE name = '%[1]s'), 0))`, src.Table)).Scan(&last)
	if err != nil && strings.Contains(err.Error(), "no such table: sqlite_sequence") {
		// No AUTOINCREMENT table in the database.
		err = db.QueryRowContext(ctx, fmt.Sprintf(`SELECT COALESCE(MAX(rowid), 0) FROM %s`, src.Table)).Scan(&last)
	}
	return c.Seq <= last, err
}

func (sqliteLog) cursorOf(ctx context.Context, db *sql.DB, src Source, id string) (changelog.Cursor, error) {
	var c changelog.Cursor
	err := db.QueryRowContext(ctx, src.SQL(`SELECT {seq} FROM {table} WHERE {id} = ?`), id).Scan(&c.Seq)
	return c, err
}
