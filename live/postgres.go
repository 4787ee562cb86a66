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

// horizon reads the running transactions that cannot write a log row
// with a key in ks (changelog.Log.PostgresSilentFor), in a statement of
// its own before the read's: see changelog/postgres_writers.go for why in
// that order.
func (postgresLog) horizon(ctx context.Context, db *sql.DB, src Source, ks keySet) (string, map[uint32]bool, error) {
	var silent, contended string
	q, args := src.PostgresSilentFor(ks.all, ks.keys)
	if err := db.QueryRowContext(ctx, q, args...).Scan(&silent, &contended); err != nil {
		return "", nil, fmt.Errorf("log horizon: %w", err)
	}
	var hashes map[uint32]bool
	if list := strings.Trim(contended, "{}"); list != "" {
		hashes = map[uint32]bool{}
		for _, h := range strings.Split(list, ",") {
			n, err := strconv.ParseUint(h, 10, 32)
			if err != nil {
				return "", nil, fmt.Errorf("log horizon: contended key %q: %w", h, err)
			}
			hashes[uint32(n)] = true
		}
	}
	return silent, hashes, nil
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
// transaction ids gained a digit. The page and the head come from one
// statement, so from one snapshot and one horizon: every row of the keys
// up to the head is in the page unless the page is full.
func (postgresLog) readQuery(src Source, horizon string, after changelog.Cursor, upTo *changelog.Cursor, ks keySet, limit int) (string, []any) {
	var q strings.Builder
	// The horizon once per statement, from the statement's snapshot.
	q.WriteString(src.SQL(`WITH horizon AS MATERIALIZED (SELECT segmentd_log_horizon($3::bigint[]) AS h)
			SELECT * FROM (SELECT {tx}::text AS tx_text, {seq} AS seq, {id}::text AS row_id, {key}::text AS row_key,
				{tx} < horizon.h AS stable, NULL::text AS h_text
			FROM {table}, horizon WHERE ({tx}, {seq}) > ($1::text::xid8, $2)`))
	args := []any{strconv.FormatUint(after.Tx, 10), after.Seq, horizon}
	if upTo != nil {
		fmt.Fprintf(&q, src.SQL(` AND ({tx}, {seq}) <= ($%d::text::xid8, $%d)`), len(args)+1, len(args)+2)
		args = append(args, strconv.FormatUint(upTo.Tx, 10), upTo.Seq)
	}
	if !ks.all {
		fmt.Fprintf(&q, ` AND %s = ANY ($%d::text[])`, src.Key, len(args)+1)
		args = append(args, textArray(ks.keys))
	}
	fmt.Fprintf(&q, src.SQL(` ORDER BY {table}.{tx}, {table}.{seq} LIMIT %d) page`), limit)
	q.WriteString(src.SQL(` UNION ALL SELECT head.tx_text, head.seq, NULL, NULL, true, horizon.h::text FROM horizon
			LEFT JOIN LATERAL (SELECT {tx}::text AS tx_text, {seq} AS seq FROM {table} WHERE {tx} < horizon.h
				ORDER BY {table}.{tx} DESC, {table}.{seq} DESC LIMIT 1) head ON true`))
	return q.String(), args
}

// textArray writes keys as a PostgreSQL text[] literal.
func textArray(keys []string) string {
	var b strings.Builder
	b.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('"')
		b.WriteString(strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(k))
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return b.String()
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
