package schema

import (
	"time"

	"entgo.io/contrib/entgql"
	"entgo.io/ent"
	"entgo.io/ent/schema"
	"entgo.io/ent/schema/edge"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"

	"github.com/segmentd/segmentd/ent/schema/jsonmap"
	"github.com/segmentd/segmentd/ent/schema/pulid"
)

// Outcome records what evaluation did with an event for one segment.
type Outcome struct {
	SegmentID pulid.ID `json:"segment_id"`
	Entered   bool     `json:"entered"`
	Reason    string   `json:"reason"`
}

// Event is an incoming event (track, identify, page, ...). message_id is the
// idempotency key, unique forever.
type Event struct{ ent.Schema }

// Mixin of the Event.
func (Event) Mixin() []ent.Mixin { return []ent.Mixin{pulid.MixinWithPrefix("evt")} }

// Fields of the Event.
func (Event) Fields() []ent.Field {
	return []ent.Field{
		field.String("message_id").NotEmpty().MaxLen(256).Immutable().Unique().
			Annotations(entgql.MapsTo("messageId")),
		field.Enum("type").Values("TRACK", "IDENTIFY", "PAGE", "SCREEN", "GROUP", "ALIAS").Immutable(),
		field.String("name").Optional().Nillable().MaxLen(256).Immutable(),
		field.String("user_id").Optional().Nillable().MaxLen(256).Immutable().
			Annotations(entgql.MapsTo("userId")),
		field.String("anonymous_id").Optional().Nillable().MaxLen(256).Immutable().
			Annotations(entgql.MapsTo("anonymousId")),
		field.String("user_ref").GoType(pulid.ID("")).Optional().Nillable().Immutable().
			Annotations(entgql.Skip()),
		field.JSON("properties", jsonmap.Map{}).Default(jsonmap.Map{}).Immutable().
			Annotations(entgql.Type("Map")),
		field.JSON("traits", jsonmap.Map{}).Default(jsonmap.Map{}).Immutable().
			Annotations(entgql.Type("Map")),
		field.JSON("context", jsonmap.Map{}).Default(jsonmap.Map{}).Immutable().
			Annotations(entgql.Type("Map")),
		field.Time("timestamp").Immutable().
			Annotations(entgql.OrderField("TIMESTAMP")),
		field.Time("received_at").Default(time.Now).Immutable().
			Annotations(entgql.OrderField("RECEIVED_AT")),
		field.JSON("outcomes", []Outcome{}).Default([]Outcome{}).
			Annotations(entgql.Skip()),
	}
}

// Edges of the Event.
func (Event) Edges() []ent.Edge {
	return []ent.Edge{
		// The edge is named subject, not user: ent would give an edge "user"
		// a UserID setter, which the user_id field already has.
		edge.From("subject", User.Type).Ref("events").Field("user_ref").Unique().Immutable().
			Annotations(entgql.Skip()),
	}
}

// Indexes of the Event: the data-ingestion view lists events newest first,
// filtered by name, user or type.
func (Event) Indexes() []ent.Index {
	return []ent.Index{
		index.Fields("received_at"),
		index.Fields("timestamp"),
		index.Fields("name", "received_at"),
		index.Fields("user_id", "received_at"),
		index.Fields("type", "received_at"),
	}
}

// Annotations of the Event.
func (Event) Annotations() []schema.Annotation {
	return []schema.Annotation{
		entgql.RelayConnection(),
	}
}
