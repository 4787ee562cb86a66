package schema

import (
	"time"

	"entgo.io/contrib/entgql"
	"entgo.io/ent"
	"entgo.io/ent/dialect/entsql"
	"entgo.io/ent/schema"
	"entgo.io/ent/schema/edge"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"

	"github.com/segmentd/segmentd/ent/schema/pulid"
)

// Segment is a target audience: users enter it when one of its trigger events
// arrives and its condition holds (EVENT_TRIGGERED), or by hand and by import
// (STATIC).
type Segment struct{ ent.Schema }

// Mixin of the Segment.
func (Segment) Mixin() []ent.Mixin { return []ent.Mixin{pulid.MixinWithPrefix("seg")} }

// Fields of the Segment.
func (Segment) Fields() []ent.Field {
	return []ent.Field{
		field.String("name").NotEmpty().MaxLen(200).
			Comment("The segment's name, 1 to 200 characters (\"Activation Experiment - New Users\").").
			Annotations(entgql.OrderField("NAME")),
		field.String("description").Optional().Nillable().MaxLen(2000).
			Comment("A free-text description, at most 2,000 characters; null when none."),
		field.Enum("kind").Values("EVENT_TRIGGERED", "STATIC", "DYNAMIC").Immutable().
			Comment("EVENT_TRIGGERED: users enter when a trigger event arrives and the condition holds. STATIC: users are added by hand or by import. DYNAMIC: a user is a member exactly while the condition holds."),
		// trigger_events keeps the names in the order the user gave them; the
		// segment_triggers table indexes them for lookup by event name.
		field.Strings("trigger_events").Default([]string{}).
			Comment("The event names that can move a user in, in the order given; empty for STATIC.").
			Annotations(entgql.Skip(entgql.SkipWhereInput)),
		// Exit rules. They are exposed through the exitRules resolver as one
		// object (null when none is set), so they are skipped by entgql.
		field.Bool("exit_when_condition_fails").Default(false).
			Comment("Members leave once the segment's condition no longer holds for them.").
			Annotations(entgql.Skip()),
		// Optional (NULL: none), so that rows written by older versions and
		// by hand stay valid.
		field.Strings("exit_on_events").Optional().
			Comment("Members leave when one of these events arrives for them (and the exit-event condition, if any, holds).").
			Annotations(entgql.Skip()),
		// exit_after keeps the duration as the user gave it ("30d"), which is
		// also what the API shows; it was validated by trigger.ParseDuration.
		field.String("exit_after").Optional().Nillable().
			Comment("Members leave this long after entering (\"30d\"); null: no expiry.").
			Annotations(entgql.Skip()),
		field.Time("created_at").Default(time.Now).Immutable().
			Comment("When the segment was created.").
			Annotations(entgql.OrderField("CREATED_AT")),
		field.Time("updated_at").Default(time.Now).UpdateDefault(time.Now).
			Comment("When the segment's name, description or rules last changed.").
			Annotations(entgql.OrderField("UPDATED_AT")),
	}
}

// Edges of the Segment.
func (Segment) Edges() []ent.Edge {
	return []ent.Edge{
		edge.To("conditions", Condition.Type).
			Annotations(entsql.OnDelete(entsql.Cascade), entgql.Skip()),
		edge.To("triggers", SegmentTrigger.Type).
			Annotations(entsql.OnDelete(entsql.Cascade), entgql.Skip()),
		edge.To("campaigns", Campaign.Type).
			Annotations(entgql.Skip()),
		edge.To("memberships", Membership.Type).
			Annotations(entsql.OnDelete(entsql.Cascade), entgql.Skip()),
		edge.To("changes", MembershipChange.Type).
			Annotations(entsql.OnDelete(entsql.Cascade), entgql.Skip()),
		edge.To("activations", CampaignActivation.Type).
			Annotations(entsql.OnDelete(entsql.Cascade), entgql.Skip()),
		edge.To("import_jobs", ImportJob.Type).
			Annotations(entsql.OnDelete(entsql.Cascade), entgql.Skip()),
		edge.To("counters", SegmentCounter.Type).
			Annotations(entsql.OnDelete(entsql.Cascade), entgql.Skip()),
	}
}

// Indexes of the Segment.
func (Segment) Indexes() []ent.Index {
	return []ent.Index{index.Fields("created_at"), index.Fields("name")}
}

// Annotations of the Segment.
func (Segment) Annotations() []schema.Annotation {
	return []schema.Annotation{
		schema.Comment("A target audience. Users enter an EVENT_TRIGGERED segment when one of its trigger events arrives and its condition holds; a STATIC segment's users are added by hand or by import."),
		entgql.RelayConnection(),
		entgql.QueryField().Description("Segments, as a Relay connection, filtered by where and ordered by orderBy (NAME, CREATED_AT, UPDATED_AT, TOTAL_USERS, NEW_LAST_7_DAYS; ties by id)."),
	}
}

// SegmentTrigger indexes a segment's trigger events by name, so that an
// incoming event finds the segments it can trigger with one indexed lookup.
type SegmentTrigger struct{ ent.Schema }

// Fields of the SegmentTrigger.
func (SegmentTrigger) Fields() []ent.Field {
	return []ent.Field{
		field.String("segment_ref").GoType(pulid.ID("")),
		field.String("event_name").NotEmpty().MaxLen(256),
	}
}

// Edges of the SegmentTrigger.
func (SegmentTrigger) Edges() []ent.Edge {
	return []ent.Edge{
		edge.From("segment", Segment.Type).Ref("triggers").Field("segment_ref").Unique().Required(),
	}
}

// Indexes of the SegmentTrigger.
func (SegmentTrigger) Indexes() []ent.Index {
	return []ent.Index{
		index.Fields("segment_ref", "event_name").Unique(),
		index.Fields("event_name"),
	}
}

// Annotations of the SegmentTrigger.
func (SegmentTrigger) Annotations() []schema.Annotation {
	return []schema.Annotation{entgql.Skip()}
}
