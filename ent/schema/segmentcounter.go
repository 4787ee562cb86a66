package schema

import (
	"entgo.io/contrib/entgql"
	"entgo.io/ent"
	"entgo.io/ent/schema"
	"entgo.io/ent/schema/edge"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"

	"github.com/segmentd/segmentd/ent/schema/pulid"
)

// SegmentCounter holds a segment's maintained aggregates, so that its
// figures cost the same at 10 members and at 10 million. Every transaction
// that changes memberships adds its deltas to these rows before it commits.
//
// A row is one (segment, bucket, shard): bucket is the Unix second at which
// a 15-minute bucket starts (every time zone's offset is a multiple of 15
// minutes, so day, week and month starts fall on bucket edges), or -1 for
// the row of current totals. entered and exited count the changes made in
// the bucket; members counts the current members who entered in it (an exit
// takes one off the bucket its member entered in). Concurrent transactions
// into one hot segment write different shards, so that they do not queue on
// one row; readers add the shards up.
type SegmentCounter struct{ ent.Schema }

// Fields of the SegmentCounter.
func (SegmentCounter) Fields() []ent.Field {
	return []ent.Field{
		field.String("segment_ref").GoType(pulid.ID("")).Immutable(),
		field.Int64("bucket").Immutable(),
		field.Int("shard").Immutable(),
		field.Int64("entered").Default(0),
		field.Int64("exited").Default(0),
		field.Int64("members").Default(0),
	}
}

// Edges of the SegmentCounter.
func (SegmentCounter) Edges() []ent.Edge {
	return []ent.Edge{
		edge.From("segment", Segment.Type).Ref("counters").Field("segment_ref").Unique().Required().Immutable(),
	}
}

// Indexes of the SegmentCounter.
func (SegmentCounter) Indexes() []ent.Index {
	return []ent.Index{
		index.Fields("segment_ref", "bucket", "shard").Unique(),
	}
}

// Annotations of the SegmentCounter.
func (SegmentCounter) Annotations() []schema.Annotation {
	return []schema.Annotation{entgql.Skip()}
}
