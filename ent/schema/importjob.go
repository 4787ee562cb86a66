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
		field.Enum("mode").Values("ADD", "REMOVE", "REPLACE").Immutable().Annotations(entgql.Type("ImportMode")).
			Comment("ADD adds the file's users, REMOVE removes them, REPLACE makes the segment hold exactly them."),
		field.Bool("dry_run").Default(false).Immutable().
			Comment("True when the job only reports what it would change, and changes nothing."),
		field.Enum("status").Values("PENDING", "RUNNING", "SUCCEEDED", "FAILED").Default("PENDING").Annotations(entgql.Type("ImportStatus")).
			Comment("PENDING, RUNNING, then SUCCEEDED (the segment changed at once) or FAILED (the segment is as it was; see failure)."),
		field.Int("total_rows").Default(0).
			Comment("Rows of the file that hold a user ID or a bad value (blank lines and the header are not counted); final once the job ends."),
		field.Int("processed_rows").Default(0).
			Comment("Rows read so far."),
		field.Int("added").Default(0).
			Comment("Users who entered the segment (or, in a dry run, would)."),
		field.Int("removed").Default(0).
			Comment("Users who left the segment (or, in a dry run, would)."),
		field.Int("unchanged").Default(0).
			Comment("Valid rows that changed nothing: already (or, for REMOVE, not) members, or repeated in the file."),
		field.Int("invalid_rows").Default(0).
			Comment("Rows refused as bad; errors lists them with their line."),
		// row_errors is unused: bad rows are kept, every one, in the
		// import_row_errors table (see store), which a JSON column could not
		// hold for a file of millions of rows.
		field.JSON("row_errors", []RowError{}).Default([]RowError{}).Annotations(entgql.Skip()),
		field.String("file_name").Default("").
			Comment("The uploaded file's name, as the client sent it."),
		field.Int64("file_bytes").Default(0).
			Comment("The uploaded file's size in bytes."),
		field.Int64("bytes_read").Default(0).
			Comment("Bytes of the file read so far: with fileBytes, the job's progress."),
		field.Text("failure").Optional().Nillable().
			Comment("Why the job FAILED; null otherwise."),
		field.Time("created_at").Default(time.Now).Immutable().
			Comment("When the job was created (the upload arrived)."),
		field.Time("started_at").Optional().Nillable().
			Comment("When the job started running; null while PENDING."),
		field.Time("finished_at").Optional().Nillable().
			Comment("When the job SUCCEEDED or FAILED; null until then."),
		// heartbeat_at is renewed while the job runs; a RUNNING job whose
		// heartbeat is old lost its process (see service.FailStaleImports).
		field.Time("heartbeat_at").Optional().Nillable().Annotations(entgql.Skip()),
	}
}

// Edges of the ImportJob.
func (ImportJob) Edges() []ent.Edge {
	return []ent.Edge{
		edge.From("segment", Segment.Type).Ref("import_jobs").Field("segment_ref").Unique().Required().Immutable().
			Comment("The segment the file is imported into."),
	}
}

// Annotations of the ImportJob.
func (ImportJob) Annotations() []schema.Annotation {
	return []schema.Annotation{
		schema.Comment("A background import of a CSV file of user IDs into a segment; the segment changes all at once when it SUCCEEDS, and not at all when it FAILS."),
		entgql.Skip(entgql.SkipWhereInput, entgql.SkipOrderField),
	}
}
