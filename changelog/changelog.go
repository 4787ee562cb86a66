// Package changelog is the vocabulary of segmentd's append-only logs, shared
// by the ent schema, the store's migrations, the live tailers and the writers
// of memberships: what put a user in a segment (Source), what a change is
// (Kind), which tables are logs and by which columns they are read (Log),
// and how a position in a log is written for clients (Cursor).
//
// It is a leaf: it imports only the standard library, so that ent/schema can
// use its types without an import cycle. A column or table name a log reader
// needs is spelled here once; the packages that build SQL take it from here.
package changelog

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Source is what put a user in a segment, on a membership and on each of
// its changes.
type Source string

// The sources of memberships and changes.
const (
	SourceEvent    Source = "EVENT"    // a trigger event whose condition held
	SourceManual   Source = "MANUAL"   // addUsersToSegment or removeUsersFromSegment
	SourceImport   Source = "IMPORT"   // a CSV import
	SourceBackfill Source = "BACKFILL" // re-evaluation of stored events
	SourceTraits   Source = "TRAITS"   // a trait change (identify, or traits carried on an event)
	SourceTime     Source = "TIME"     // time alone: a window passed or a membership expired
	SourceErasure  Source = "ERASURE"  // the user was deleted (deleteUser)
)

// Values lists every Source, in the order of the GraphQL enum: ent reads
// the enum's values from it (field.Enum(...).GoType).
func (Source) Values() []string {
	return []string{string(SourceEvent), string(SourceManual), string(SourceImport), string(SourceBackfill),
		string(SourceTraits), string(SourceTime), string(SourceErasure)}
}

// String returns the source's name.
func (s Source) String() string { return string(s) }

// MarshalGQL writes the source as a GraphQL enum value.
func (s Source) MarshalGQL(w io.Writer) { _, _ = io.WriteString(w, strconv.Quote(string(s))) }

// UnmarshalGQL reads a GraphQL enum value; it fails on a name that is not a
// Source.
func (s *Source) UnmarshalGQL(v any) error {
	name, ok := v.(string)
	if !ok || !valid(Source("").Values(), name) {
		return fmt.Errorf("%v is not a valid MembershipSource", v)
	}
	*s = Source(name)
	return nil
}

// Kind is what a membership change did: the user entered or exited.
type Kind string

// The kinds of membership changes.
const (
	KindEntered Kind = "ENTERED"
	KindExited  Kind = "EXITED"
)

// Values lists every Kind, for ent's enum.
func (Kind) Values() []string { return []string{string(KindEntered), string(KindExited)} }

// String returns the kind's name.
func (k Kind) String() string { return string(k) }

// MarshalGQL writes the kind as a GraphQL enum value.
func (k Kind) MarshalGQL(w io.Writer) { _, _ = io.WriteString(w, strconv.Quote(string(k))) }

// UnmarshalGQL reads a GraphQL enum value; it fails on a name that is not a
// Kind.
func (k *Kind) UnmarshalGQL(v any) error {
	name, ok := v.(string)
	if !ok || !valid(Kind("").Values(), name) {
		return fmt.Errorf("unknown membership change kind %v", v)
	}
	*k = Kind(name)
	return nil
}

func valid(values []string, name string) bool {
	for _, v := range values {
		if v == name {
			return true
		}
	}
	return false
}

// The columns every log shares.
const (
	// IDColumn is a log row's primary key.
	IDColumn = "id"
	// TxColumn holds, on PostgreSQL, the id (xid8) of the transaction that
	// wrote the row; readers order by it first (see package live).
	TxColumn = "log_txid"
	// SeqColumn is the position column of the logs whose ids are text: a
	// counter that is never reused (a bigserial on PostgreSQL, numbered by
	// a trigger on SQLite).
	SeqColumn = "log_seq"
	// SQLiteSequences is the SQLite table of the SeqColumn counters, one
	// row (name, seq) per log table: the last position handed out, which
	// deletes never lower.
	SQLiteSequences = "log_sequences"
)

// Log describes one log table as its readers see it.
type Log struct {
	// Table is the table's name.
	Table string
	// Seq is the column that numbers rows, never reusing a value: IDColumn
	// for an integer AUTOINCREMENT id, or SeqColumn.
	Seq string
	// Key is the column subscribers filter on (segment, event name,
	// campaign).
	Key string
	// KeyIndex names the PostgreSQL index on (Key, TxColumn, Seq) that
	// filtered reads use; "" if reads by key are not indexed.
	KeyIndex string
	// Topic is the broker topic signalled after a commit that wrote rows.
	Topic string
	// WriterSpace is the first key of the log's scoped writer locks on
	// PostgreSQL (see WriterScope); one per log, apart from every other
	// advisory key.
	WriterSpace int32
}

// The logs that live subscribers follow.
var (
	// MembershipChanges is every entry and exit: ent's MembershipChange.
	MembershipChanges = Log{Table: "membership_changes", Seq: IDColumn, Key: "segment_ref",
		KeyIndex: "membership_changes_segment_log", Topic: "membership_changes", WriterSpace: 0x5e6d_0101}
	// Events is every stored event: ent's Event.
	Events = Log{Table: "events", Seq: SeqColumn, Key: "name", Topic: "events", WriterSpace: 0x5e6d_0102}
	// CampaignActivations is every activation of a campaign: ent's
	// CampaignActivation.
	CampaignActivations = Log{Table: "campaign_activations", Seq: SeqColumn, Key: "campaign_ref",
		KeyIndex: "campaign_activations_campaign_log", Topic: "campaign_activations", WriterSpace: 0x5e6d_0103}
)

// Logs lists every log.
func Logs() []Log { return []Log{MembershipChanges, Events, CampaignActivations} }

// SQL fills the placeholders of a statement with the log's names: {table},
// {seq}, {key} and {key_index}, and the columns every log has, {tx} and
// {id}. The names are the constants of this package, never user input.
func (l Log) SQL(q string) string {
	return strings.NewReplacer("{table}", l.Table, "{seq}", l.Seq, "{key}", l.Key, "{key_index}", l.KeyIndex,
		"{tx}", TxColumn, "{id}", IDColumn, "{sequences}", SQLiteSequences).Replace(q)
}

// Cursor is a position in a log.
type Cursor struct {
	Tx  uint64 // PostgreSQL transaction id (TxColumn, xid8); 0 on SQLite
	Seq int64  // row sequence: the value of Log.Seq
}

// Less reports whether c sorts before d.
func (c Cursor) Less(d Cursor) bool { return c.Tx < d.Tx || (c.Tx == d.Tx && c.Seq < d.Seq) }

// String encodes the cursor for clients: "<tx>.<seq>".
func (c Cursor) String() string {
	return strconv.FormatUint(c.Tx, 10) + "." + strconv.FormatInt(c.Seq, 10)
}

// errCursor is the one message of every malformed cursor: what a good one
// looks like.
var errCursor = errors.New("a cursor looks like 123.456")

// ParseCursor decodes a cursor made by String.
func ParseCursor(s string) (Cursor, error) {
	tx, seq, ok := strings.Cut(s, ".")
	if !ok {
		return Cursor{}, errCursor
	}
	t, err := strconv.ParseUint(tx, 10, 64)
	if err != nil {
		return Cursor{}, errCursor
	}
	q, err := strconv.ParseInt(seq, 10, 64)
	if err != nil || q < 0 {
		return Cursor{}, errCursor
	}
	return Cursor{Tx: t, Seq: q}, nil
}
