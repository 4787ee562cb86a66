package store

import (
	"context"
	"database/sql"
	"fmt"
	"sync/atomic"

	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"

	"github.com/segmentd/segmentd/changelog"
)

// driver is the ent driver of a Store. It counts the statements it runs
// (Store.Statements), and on SQLite it sends reads outside transactions
// to a pool of reader connections, and everything else (transactions,
// writes) to the writer, a pool of one connection: writers queue in Go,
// in order and cancellably, instead of polling SQLite's lock, and never
// wait for a reader's connection, however many long reads run.
type driver struct {
	*entsql.Driver         // the writer (and, on PostgreSQL, every statement)
	read           *sql.DB // SQLite's readers; nil on PostgreSQL
	n              *atomic.Int64
	// announce is the first statement of every transaction: on
	// PostgreSQL, changelog.PostgresAnnounceWriter, so that live readers
	// wait for this transaction and for no session that writes no log;
	// or, in a context with changelog.WithWriterScope, the scope's
	// announcement.
	announce string
}

var _ dialect.Driver = (*driver)(nil)

func (d *driver) reader() *entsql.Conn {
	if d.read == nil {
		return &d.Driver.Conn
	}
	return &entsql.Conn{ExecQuerier: d.read}
}

// Exec implements dialect.ExecQuerier.
func (d *driver) Exec(ctx context.Context, query string, args, v any) error {
	d.n.Add(1)
	return d.Driver.Exec(ctx, query, args, v)
}

// Query implements dialect.ExecQuerier: on SQLite, on a reader.
func (d *driver) Query(ctx context.Context, query string, args, v any) error {
	d.n.Add(1)
	return d.reader().Query(ctx, query, args, v)
}

// ExecContext serves ent's Client.ExecContext (raw statements).
func (d *driver) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	d.n.Add(1)
	return d.Driver.ExecContext(ctx, query, args...)
}

// QueryContext serves ent's Client.QueryContext (raw reads): on SQLite,
// on a reader.
func (d *driver) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	d.n.Add(1)
	return d.reader().QueryContext(ctx, query, args...)
}

// Tx implements dialect.Driver: on the writer.
func (d *driver) Tx(ctx context.Context) (dialect.Tx, error) {
	return d.BeginTx(ctx, nil)
}

// BeginTx starts a transaction with options, on the writer.
func (d *driver) BeginTx(ctx context.Context, opts *sql.TxOptions) (dialect.Tx, error) {
	d.n.Add(1)
	tx, err := d.Driver.BeginTx(ctx, opts)
	if err != nil {
		return nil, err
	}
	etx, ok := tx.(*entsql.Tx)
	if !ok {
		_ = tx.Rollback()
		return nil, fmt.Errorf("store: unexpected transaction type %T", tx)
	}
	if d.announce != "" {
		announce := d.announce
		if scope, ok := changelog.WriterScopeOf(ctx); ok {
			// A writer of some logs' keys only: readers of other keys do
			// not wait for it.
			announce = scope.PostgresAnnounce()
		}
		if _, err := etx.ExecContext(ctx, announce); err != nil {
			_ = etx.Rollback()
			return nil, fmt.Errorf("store: announce a log writer: %w", err)
		}
	}
	return &countedTx{Tx: etx, n: d.n}, nil
}

// Close closes the writer and the readers.
func (d *driver) Close() error {
	err := d.Driver.Close()
	if d.read != nil {
		if rerr := d.read.Close(); err == nil {
			err = rerr
		}
	}
	return err
}

// countedTx is a transaction that counts its statements.
type countedTx struct {
	*entsql.Tx
	n *atomic.Int64
}

func (t *countedTx) Exec(ctx context.Context, query string, args, v any) error {
	t.n.Add(1)
	return t.Tx.Exec(ctx, query, args, v)
}

func (t *countedTx) Query(ctx context.Context, query string, args, v any) error {
	t.n.Add(1)
	return t.Tx.Query(ctx, query, args, v)
}

func (t *countedTx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	t.n.Add(1)
	return t.Tx.ExecContext(ctx, query, args...)
}

func (t *countedTx) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	t.n.Add(1)
	return t.Tx.QueryContext(ctx, query, args...)
}
