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
			Comment("The idempotency key, unique forever: the sender's messageId, or one the server assigned (srv-…).").
			Annotations(entgql.MapsTo("messageId")),
		field.Enum("type").Values("TRACK", "IDENTIFY", "PAGE", "SCREEN", "GROUP", "ALIAS").Immutable().
			Comment("The call that sent it: TRACK (trackEvent, /v1/track), IDENTIFY, or the Segment API's PAGE, SCREEN, GROUP and ALIAS. Only TRACK events trigger segments."),
		field.String("name").Optional().Nillable().MaxLen(256).Immutable().
			Comment("The event name (\"Sign Up\"); for PAGE and SCREEN the page or screen name; null for calls without one."),
		field.String("user_id").Optional().Nillable().MaxLen(256).Immutable().
			Comment("The customer's own ID of the user it is about; null for anonymous events.").
			Annotations(entgql.MapsTo("userId")),
		field.String("anonymous_id").Optional().Nillable().MaxLen(256).Immutable().
			Comment("The sender's anonymous ID, if it sent one.").
			Annotations(entgql.MapsTo("anonymousId")),
		field.String("user_ref").GoType(pulid.ID("")).Optional().Nillable().Immutable().
			Annotations(entgql.Skip()),
		field.JSON("properties", jsonmap.Map{}).Default(jsonmap.Map{}).Immutable().
			Comment("The event's properties as sent (for a GROUP call, with its groupId; for ALIAS, its previousId); EVENT conditions test them.").
			Annotations(entgql.Type("Map")),
		field.JSON("traits", jsonmap.Map{}).Default(jsonmap.Map{}).Immutable().
			Comment("The traits the call carried: merged into the user's traits (TRACK, IDENTIFY, PAGE, SCREEN, ALIAS), except for a GROUP call, whose traits are the group's and stay on the group.").
			Annotations(entgql.Type("Map")),
		field.JSON("context", jsonmap.Map{}).Default(jsonmap.Map{}).Immutable().
			Comment("The call's context object as sent (library, ip, page, ...).").
			Annotations(entgql.Type("Map")),
		field.Time("timestamp").Immutable().
			Comment("When the event happened, as the sender said (corrected for clock skew by sentAt), or when it arrived; WITHIN_LAST measures from it.").
			Annotations(entgql.OrderField("TIMESTAMP")),
		field.Time("received_at").Default(time.Now).Immutable().
			Comment("When segmentd stored it.").
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
// filtered by name, user or type; replays (BACKFILL, RECONCILE,
// previewSegment) read the TRACK events of one name in ID order, a page at
// a time, with (type, name, id): without it SQLite read every TRACK event
// and sorted them for each page.
func (Event) Indexes() []ent.Index {
	return []ent.Index{
		index.Fields("type", "name", "id"),
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
		schema.Comment("A stored event (track, identify, page, screen, group or alias call), with what evaluation did with it for each segment its name triggers."),
		entgql.RelayConnection(),
	}
}
