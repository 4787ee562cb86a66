package schema

import (
	"time"

	"entgo.io/contrib/entgql"
	"entgo.io/ent"
	"entgo.io/ent/schema"
	"entgo.io/ent/schema/edge"
	"entgo.io/ent/schema/field"

	"github.com/segmentd/segmentd/ent/schema/pulid"
)

// RowError is one bad row of an imported file.
type RowError struct {
	Line   int    `json:"line"`
	Value  string `json:"value"`
	Reason string `json:"reason"`
}

// ImportJob is a background import of a CSV file of user IDs into a segment.
type ImportJob struct{ ent.Schema }

// Mixin of the ImportJob.
func (ImportJob) Mixin() []ent.Mixin { return []ent.Mixin{pulid.MixinWithPrefix("imp")} }

// Fields of the ImportJob.
func (ImportJob) Fields() []ent.Field {
	return []ent.Field{
		field.String("segment_ref").GoType(pulid.ID("")).Immutable().Annotations(entgql.Skip()),
		field.Enum("mode").Values("ADD", "REMOVE", "REPLACE").Immutable().Annotations(entgql.Type("ImportMode")),
		field.Bool("dry_run").Default(false).Immutable(),
		field.Enum("status").Values("PENDING", "RUNNING", "SUCCEEDED", "FAILED").Default("PENDING").Annotations(entgql.Type("ImportStatus")),
		field.Int("total_rows").Default(0),
		field.Int("processed_rows").Default(0),
		field.Int("added").Default(0),
		field.Int("removed").Default(0),
		field.Int("unchanged").Default(0),
		field.Int("invalid_rows").Default(0),
		// row_errors is unused: bad rows are kept, every one, in the
		// import_row_errors table (see store), which a JSON column could not
		// hold for a file of millions of rows.
		field.JSON("row_errors", []RowError{}).Default([]RowError{}).Annotations(entgql.Skip()),
		field.String("file_name").Default(""),
		field.Int64("file_bytes").Default(0),
		field.Int64("bytes_read").Default(0),
		field.Text("failure").Optional().Nillable(),
		field.Time("created_at").Default(time.Now).Immutable(),
		field.Time("started_at").Optional().Nillable(),
		field.Time("finished_at").Optional().Nillable(),
		// heartbeat_at is renewed while the job runs; a RUNNING job whose
		// heartbeat is old lost its process (see service.FailStaleImports).
		field.Time("heartbeat_at").Optional().Nillable().Annotations(entgql.Skip()),
	}
}

// Edges of the ImportJob.
func (ImportJob) Edges() []ent.Edge {
	return []ent.Edge{
		edge.From("segment", Segment.Type).Ref("import_jobs").Field("segment_ref").Unique().Required().Immutable(),
	}
}

// Annotations of the ImportJob.
func (ImportJob) Annotations() []schema.Annotation {
	return []schema.Annotation{entgql.Skip(entgql.SkipWhereInput, entgql.SkipOrderField)}
}
