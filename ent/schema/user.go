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

	"github.com/segmentd/segmentd/ent/schema/jsonmap"
	"github.com/segmentd/segmentd/ent/schema/pulid"
)

// User is an end user of the customer's product, known by the customer's own
// user ID. Users are created on first sight (an event, an identify call, a
// manual add or an import).
type User struct{ ent.Schema }

// Mixin of the User.
func (User) Mixin() []ent.Mixin { return []ent.Mixin{pulid.MixinWithPrefix("usr")} }

// Fields of the User.
func (User) Fields() []ent.Field {
	return []ent.Field{
		field.String("user_id").NotEmpty().MaxLen(256).Immutable().Unique().
			Comment("The customer's own ID of the user, as events and identify calls send it.").
			Annotations(entgql.MapsTo("userId"), entgql.OrderField("USER_ID")),
		field.JSON("traits", jsonmap.Map{}).Default(jsonmap.Map{}).
			Comment("The user's traits: merged from identify calls and the traits of their events (a null trait removes it); USER conditions test them. A group call's traits stay on the group.").
			Annotations(entgql.Type("Map")),
		field.Time("first_seen_at").Default(time.Now).Immutable().
			Comment("When segmentd first saw the user (an event, identify, a manual add or an import).").
			Annotations(entgql.OrderField("FIRST_SEEN_AT")),
		field.Time("last_seen_at").Default(time.Now).
			Comment("When segmentd last received an event or call for the user.").
			Annotations(entgql.OrderField("LAST_SEEN_AT")),
	}
}

// Edges of the User.
func (User) Edges() []ent.Edge {
	return []ent.Edge{
		edge.To("events", Event.Type).Annotations(entgql.Skip()),
		edge.To("memberships", Membership.Type).
			Annotations(entsql.OnDelete(entsql.Cascade), entgql.Skip()),
		edge.To("changes", MembershipChange.Type).
			Annotations(entsql.OnDelete(entsql.Cascade), entgql.Skip()),
		edge.To("activations", CampaignActivation.Type).
			Annotations(entsql.OnDelete(entsql.Cascade), entgql.Skip()),
		edge.From("groups", Group.Type).Ref("users").
			Comment("The groups (companies, accounts) that group calls put this user in, by groupId."),
	}
}

// Indexes of the User.
func (User) Indexes() []ent.Index {
	return []ent.Index{index.Fields("first_seen_at"), index.Fields("last_seen_at")}
}

// Annotations of the User.
func (User) Annotations() []schema.Annotation {
	return []schema.Annotation{
		schema.Comment("An end user of the customer's product, known by the customer's own user ID; created on first sight."),
		entgql.RelayConnection(),
		entgql.QueryField().Description("Users, as a Relay connection, filtered by where and ordered by orderBy (default: by id)."),
	}
}
