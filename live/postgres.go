package live

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"

	"github.com/segmentd/segmentd/changelog"
)

// postgresLog reads a log on PostgreSQL, where a row's position is
// (log_txid, seq) and only rows whose transaction is older than every log
// writer still running are delivered (see the package comment and
// changelog/postgres_writers.go).
type postgresLog struct{}

// horizon reads the running transactions that cannot write a log
// (changelog.PostgresSilentQuery), in a statement of its own before the
// read's: see changelog/postgres_writers.go for why in that order.
func (postgresLog) horizon(ctx context.Context, db *sql.DB) (string, error) {
	var silent string
	if err := db.QueryRowContext(ctx, changelog.PostgresSilentQuery).Scan(&silent); err != nil {
		return "", fmt.Errorf("log horizon: %w", err)
	}
	return silent, nil
}

// headQuery: the text of the id is named tx_text, since an output column
// named log_txid would be what ORDER BY log_txid sorts by, as text.
func (postgresLog) headQuery(src Source, horizon string) (string, []any) {
	return src.SQL(`SELECT {tx}::text AS tx_text, {seq} FROM {table}
			WHERE {tx} < segmentd_log_horizon($1::bigint[])
			ORDER BY {table}.{tx} DESC, {table}.{seq} DESC LIMIT 1`), []any{horizon}
}

// readQuery: ORDER BY names the table's columns. PostgreSQL resolves a
// bare ORDER BY name against the output columns first, and an output
// column log_txid::text named log_txid sorted "100188" before "99941" once
// transaction ids gained a digit.
func (postgresLog) readQuery(src Source, horizon string, after changelog.Cursor, upTo *changelog.Cursor, key string, limit int) (string, []any) {
	var q strings.Builder
	// The horizon once per statement, from the statement's snapshot.
	q.WriteString(src.SQL(`WITH horizon AS MATERIALIZED (SELECT segmentd_log_horizon($3::bigint[]) AS h)
			SELECT {tx}::text AS tx_text, {seq}, {id}::text AS row_id, {key}, {tx} < horizon.h AS stable
			FROM {table}, horizon WHERE ({tx}, {seq}) > ($1::text::xid8, $2)`))
	args := []any{strconv.FormatUint(after.Tx, 10), after.Seq, horizon}
	if upTo != nil {
		fmt.Fprintf(&q, src.SQL(` AND ({tx}, {seq}) <= ($%d::text::xid8, $%d)`), len(args)+1, len(args)+2)
		args = append(args, strconv.FormatUint(upTo.Tx, 10), upTo.Seq)
	}
	if key != "" {
		fmt.Fprintf(&q, ` AND %s = $%d`, src.Key, len(args)+1)
		args = append(args, key)
	}
	fmt.Fprintf(&q, src.SQL(` ORDER BY {table}.{tx}, {table}.{seq} LIMIT %d`), limit)
	return q.String(), args
}

// within: a transaction id that has been assigned (below the current
// snapshot's xmax) and a sequence value that has been handed out.
func (postgresLog) within(ctx context.Context, db *sql.DB, src Source, c changelog.Cursor) (bool, error) {
	var ok bool
	err := db.QueryRowContext(ctx, `SELECT $1::text::xid8 < pg_snapshot_xmax(pg_current_snapshot())
			AND $2 <= COALESCE(pg_sequence_last_value(pg_get_serial_sequence($3, $4)::regclass), 0)`,
		strconv.FormatUint(c.Tx, 10), c.Seq, src.Table, src.Seq).Scan(&ok)
	return ok, err
}

func (postgresLog) cursorOf(ctx context.Context, db *sql.DB, src Source, id string) (changelog.Cursor, error) {
	var (
		c  changelog.Cursor
		tx string
	)
	err := db.QueryRowContext(ctx, src.SQL(`SELECT {tx}::text, {seq} FROM {table} WHERE {id} = $1`), id).Scan(&tx, &c.Seq)
	if err == nil {
		c.Tx, err = strconv.ParseUint(tx, 10, 64)
	}
	return c, err
}
