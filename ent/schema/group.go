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

// Group is a group of users (a company, team or account) as Segment's and
// RudderStack's group call names it: its traits are the group's own and
// never merge into its users' traits. A group call records the user as a
// member of the group.
type Group struct{ ent.Schema }

// Mixin of the Group.
func (Group) Mixin() []ent.Mixin { return []ent.Mixin{pulid.MixinWithPrefix("grp")} }

// Fields of the Group.
func (Group) Fields() []ent.Field {
	return []ent.Field{
		field.String("group_id").NotEmpty().MaxLen(256).Immutable().Unique().
			Comment("The customer's own ID of the group: the groupId of its group calls.").
			Annotations(entgql.MapsTo("groupId"), entgql.OrderField("GROUP_ID")),
		field.JSON("traits", map[string]any{}).Default(map[string]any{}).
			Comment("The group's traits (\"plan\", \"employees\", ...), merged from its group calls in arrival order; a null trait removes it. They never become traits of the group's users.").
			Annotations(entgql.Type("Map")),
		field.Time("first_seen_at").Default(time.Now).Immutable().
			Comment("When the first group call for this group arrived.").
			Annotations(entgql.OrderField("FIRST_SEEN_AT")),
		field.Time("last_seen_at").Default(time.Now).
			Comment("When the latest group call for this group arrived.").
			Annotations(entgql.OrderField("LAST_SEEN_AT")),
	}
}

// Edges of the Group.
func (Group) Edges() []ent.Edge {
	return []ent.Edge{
		// Group.users is declared in schema.graphqls and resolved by
		// service.GroupUsers: entgql's pagination of the edge applies
		// cursors from the wrong end.
		edge.To("users", User.Type).
			Comment("The users that group calls put in this group.").
			Annotations(entgql.Skip(entgql.SkipAll)),
	}
}

// Indexes of the Group.
func (Group) Indexes() []ent.Index {
	return []ent.Index{index.Fields("last_seen_at")}
}

// Annotations of the Group.
func (Group) Annotations() []schema.Annotation {
	return []schema.Annotation{
		schema.Comment("A group of users (a company, team or account) as group calls name it. Its traits are its own and never become its users' traits."),
		// "groups" is a keyword in SQLite's and PostgreSQL's window syntax.
		entsql.Table("user_groups"),
		entgql.RelayConnection(),
		entgql.QueryField().Description("Groups (companies, accounts) that group calls named, as a Relay connection."),
	}
}
