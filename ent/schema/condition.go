package schema

import (
	"encoding/json"

	"entgo.io/contrib/entgql"
	"entgo.io/ent"
	"entgo.io/ent/dialect/entsql"
	"entgo.io/ent/schema"
	"entgo.io/ent/schema/edge"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"

	"github.com/segmentd/segmentd/ent/schema/pulid"
	"github.com/segmentd/segmentd/trigger"
)

// Condition is one node of a segment's condition tree: an AND / OR / NOT group
// or a predicate. Every node carries its segment, so that a whole tree loads
// with one query; position orders siblings.
type Condition struct{ ent.Schema }

// Mixin of the Condition.
func (Condition) Mixin() []ent.Mixin { return []ent.Mixin{pulid.MixinWithPrefix("cnd")} }

// Fields of the Condition.
func (Condition) Fields() []ent.Field {
	return []ent.Field{
		field.String("segment_ref").GoType(pulid.ID("")).Annotations(entgql.Skip()),
		field.String("parent_ref").GoType(pulid.ID("")).Optional().Nillable().Annotations(entgql.Skip()),
		// tree tells a segment's trees apart: ENTRY is the segment's
		// condition, EXIT_EVENT the condition of its exit events.
		field.Enum("tree").Values("ENTRY", "EXIT_EVENT").Default("ENTRY").Annotations(entgql.Skip()),
		field.Int("position").NonNegative().Annotations(entgql.Skip()),
		field.Enum("kind").GoType(trigger.Kind("")).Annotations(entgql.Type("ConditionKind")).
			Comment("AND, OR or NOT for a group (its children are the conditions it combines), PREDICATE for a test of one property."),
		field.Enum("scope").GoType(trigger.Scope("")).Optional().Nillable().Annotations(entgql.Type("ConditionScope")).
			Comment("A predicate's scope: EVENT tests the triggering event's properties, USER the user's traits; null for a group."),
		field.String("property").Optional().Nillable().
			Comment("A predicate's property or trait name; dots walk nested objects (\"address.city\"); null for a group."),
		field.Enum("operator").GoType(trigger.Operator("")).Optional().Nillable().Annotations(entgql.Type("ConditionOperator")).
			Comment("A predicate's operator; null for a group."),
		// value is the predicate's value as canonical JSON; exposed through a
		// resolver as the JSON scalar.
		field.JSON("value", json.RawMessage{}).Optional().Annotations(entgql.Skip()),
		// performed is a PERFORMED node's event, window and measure; its
		// where tree is stored as the node's one child. Exposed through a
		// resolver.
		field.JSON("performed", &trigger.PerformedNode{}).Optional().Annotations(entgql.Skip()),
	}
}

// Edges of the Condition.
func (Condition) Edges() []ent.Edge {
	return []ent.Edge{
		edge.From("segment", Segment.Type).Ref("conditions").Field("segment_ref").Unique().Required().
			Annotations(entgql.Skip()),
		edge.To("children", Condition.Type).
			Annotations(entsql.OnDelete(entsql.Cascade), entgql.Skip()).
			From("parent").Field("parent_ref").Unique().
			Annotations(entgql.Skip()),
	}
}

// Indexes of the Condition.
func (Condition) Indexes() []ent.Index {
	return []ent.Index{index.Fields("segment_ref", "position")}
}

// Annotations of the Condition.
func (Condition) Annotations() []schema.Annotation {
	return []schema.Annotation{
		schema.Comment("One node of a segment's condition tree: an AND, OR or NOT group, or a predicate that tests one event property or user trait."),
		entgql.Skip(entgql.SkipWhereInput, entgql.SkipOrderField, entgql.SkipMutationCreateInput, entgql.SkipMutationUpdateInput),
	}
}
