package schema

import (
	"time"

	"entgo.io/contrib/entgql"
	"entgo.io/ent"
	"entgo.io/ent/schema"
	"entgo.io/ent/schema/edge"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"

	"github.com/segmentd/segmentd/changelog"
	"github.com/segmentd/segmentd/ent/schema/pulid"
)

// Membership is a user's current membership of a segment. An exit deletes
// the row; the membership_changes log keeps the history. The unique index on
// (segment, user) makes "enters at most once" a database guarantee.
type Membership struct{ ent.Schema }

// Mixin of the Membership.
func (Membership) Mixin() []ent.Mixin { return []ent.Mixin{pulid.MixinWithPrefix("mem")} }

// Fields of the Membership.
func (Membership) Fields() []ent.Field {
	return []ent.Field{
		field.String("segment_ref").GoType(pulid.ID("")).Immutable().Annotations(entgql.Skip()),
		field.String("user_ref").GoType(pulid.ID("")).Immutable().Annotations(entgql.Skip()),
		field.String("event_ref").GoType(pulid.ID("")).Optional().Nillable().Immutable().Annotations(entgql.Skip()),
		field.Time("entered_at").Default(time.Now).Immutable().
			Comment("When the user entered the segment.").
			Annotations(entgql.OrderField("ENTERED_AT")),
		field.Enum("source").GoType(changelog.Source("")).Immutable().
			Comment("What put the user in: EVENT (a trigger event whose condition held), MANUAL (addUsersToSegment), IMPORT (a CSV import), BACKFILL (re-evaluation of stored events), TRAITS (a trait change), TIME (a window passed or the membership expired) or ERASURE (the user was deleted)."),
		field.Text("reason").Default("").
			Comment("Why the user entered, in one line: the event and the condition it met, or the manual add or import."),
	}
}

// Edges of the Membership.
func (Membership) Edges() []ent.Edge {
	return []ent.Edge{
		edge.From("segment", Segment.Type).Ref("memberships").Field("segment_ref").Unique().Required().Immutable().
			Comment("The segment.").
			Annotations(entgql.Skip(entgql.SkipWhereInput)),
		edge.From("user", User.Type).Ref("memberships").Field("user_ref").Unique().Required().Immutable().
			Comment("The member.").
			Annotations(entgql.Skip(entgql.SkipWhereInput)),
		edge.To("event", Event.Type).Field("event_ref").Unique().Immutable().
			Comment("The event that put the user in; null for MANUAL and IMPORT entries.").
			Annotations(entgql.Skip(entgql.SkipWhereInput)),
	}
}

// Indexes of the Membership.
func (Membership) Indexes() []ent.Index {
	return []ent.Index{
		index.Fields("segment_ref", "user_ref").Unique(),
		index.Fields("segment_ref", "entered_at"),
		index.Fields("user_ref"),
	}
}

// Annotations of the Membership.
func (Membership) Annotations() []schema.Annotation {
	return []schema.Annotation{
		schema.Comment("A user's current membership of a segment: why and when they entered."),
		entgql.RelayConnection(),
	}
}

// MembershipChange is the append-only log of entries and exits. Its integer
// id is the cursor that live subscribers resume from.
type MembershipChange struct{ ent.Schema }

// Fields of the MembershipChange.
func (MembershipChange) Fields() []ent.Field {
	return []ent.Field{
		field.Int64("id"),
		field.String("segment_ref").GoType(pulid.ID("")).Immutable(),
		field.String("user_ref").GoType(pulid.ID("")).Immutable(),
		field.String("event_ref").GoType(pulid.ID("")).Optional().Nillable().Immutable(),
		field.Enum("kind").GoType(changelog.Kind("")).Immutable(),     // ENTERED or EXITED
		field.Enum("source").GoType(changelog.Source("")).Immutable(), // as Membership.source
		field.Time("at").Default(time.Now).Immutable(),
		field.Text("reason").Default("").Immutable(),
	}
}

// Edges of the MembershipChange.
func (MembershipChange) Edges() []ent.Edge {
	return []ent.Edge{
		edge.From("segment", Segment.Type).Ref("changes").Field("segment_ref").Unique().Required().Immutable(),
		edge.From("user", User.Type).Ref("changes").Field("user_ref").Unique().Required().Immutable(),
		edge.To("event", Event.Type).Field("event_ref").Unique().Immutable(),
	}
}

// Indexes of the MembershipChange.
func (MembershipChange) Indexes() []ent.Index {
	return []ent.Index{
		index.Fields("segment_ref", "id"),
		index.Fields("segment_ref", "at"),
		// Who was a member at a past instant: a user's last change
		// before it, user by user (service.MembersAt).
		index.Fields("segment_ref", "user_ref", "at"),
	}
}

// Annotations of the MembershipChange.
func (MembershipChange) Annotations() []schema.Annotation {
	return []schema.Annotation{entgql.Skip()}
}
