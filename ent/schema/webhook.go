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

// WebhookEndpoint is a receiver of membership changes and activations. Its
// positions are the last cursors of the two logs (membership_changes,
// campaign_activations) the dispatcher has turned into deliveries for it:
// durable, so a restart resumes where it stopped.
type WebhookEndpoint struct{ ent.Schema }

// Mixin of the WebhookEndpoint.
func (WebhookEndpoint) Mixin() []ent.Mixin { return []ent.Mixin{pulid.MixinWithPrefix("whe")} }

// Fields of the WebhookEndpoint.
func (WebhookEndpoint) Fields() []ent.Field {
	return []ent.Field{
		field.String("url").NotEmpty().MaxLen(2000).
			Comment("The URL deliveries are POSTed to."),
		field.String("description").Optional().Nillable().MaxLen(2000).
			Comment("A free-text description; null when none."),
		field.JSON("topics", []string{}).Annotations(entgql.Skip()),
		field.JSON("segment_ids", []string{}).Optional().Annotations(entgql.Skip()),
		field.JSON("campaign_ids", []string{}).Optional().Annotations(entgql.Skip()),
		field.Enum("format").Values("SEGMENTD", "SEGMENT").Default("SEGMENTD").
			Comment("The body's format: SEGMENTD (segmentd's JSON) or SEGMENT (a Segment HTTP Tracking API batch of track calls).").
			Annotations(entgql.Type("WebhookFormat")),
		field.Bool("enabled").Default(true).
			Comment("Whether deliveries are sent; false when disabled by hand or by a 410 answer (see disabledReason)."),
		field.String("disabled_reason").Optional().Nillable().
			Comment("Why the endpoint was disabled (by hand, or the receiver answered 410 Gone); null while enabled."),
		// The secrets are base64 (the part after whsec_): write-only.
		field.String("secret").Sensitive().Annotations(entgql.Skip()),
		field.String("previous_secret").Optional().Nillable().Sensitive().Annotations(entgql.Skip()),
		field.Time("previous_secret_until").Optional().Nillable().Annotations(entgql.Skip()),
		field.String("write_key").Optional().Nillable().Sensitive().Annotations(entgql.Skip()),
		// Positions in the logs, as changelog.Cursor strings; "" until set.
		field.String("changes_position").Default("").Annotations(entgql.Skip()),
		field.String("activations_position").Default("").Annotations(entgql.Skip()),
		// next_seq numbers the endpoint's deliveries in log order.
		field.Int64("next_seq").Default(1).Annotations(entgql.Skip()),
		field.Time("created_at").Default(time.Now).Immutable().
			Comment("When the endpoint was created."),
		field.Time("updated_at").Default(time.Now).UpdateDefault(time.Now).Annotations(entgql.Skip()),
	}
}

// Edges of the WebhookEndpoint.
func (WebhookEndpoint) Edges() []ent.Edge {
	return []ent.Edge{
		// WebhookEndpoint.deliveries is declared in schema.graphqls: newest
		// first, filtered by status.
		edge.To("deliveries", WebhookDelivery.Type).
			Annotations(entsql.OnDelete(entsql.Cascade), entgql.Skip(entgql.SkipAll)),
	}
}

// Annotations of the WebhookEndpoint.
func (WebhookEndpoint) Annotations() []schema.Annotation {
	return []schema.Annotation{
		schema.Comment("A webhook endpoint: a URL that receives signed deliveries of membership changes and campaign activations (Standard Webhooks)."),
		entgql.RelayConnection(),
		entgql.Skip(entgql.SkipWhereInput, entgql.SkipOrderField),
	}
}

// WebhookDelivery is one message to one endpoint: every attempt of it
// carries the same webhook_id.
type WebhookDelivery struct{ ent.Schema }

// Mixin of the WebhookDelivery.
func (WebhookDelivery) Mixin() []ent.Mixin { return []ent.Mixin{pulid.MixinWithPrefix("whd")} }

// Fields of the WebhookDelivery.
func (WebhookDelivery) Fields() []ent.Field {
	return []ent.Field{
		field.String("endpoint_ref").GoType(pulid.ID("")).Immutable().Annotations(entgql.Skip()),
		field.Int64("seq").Immutable().Annotations(entgql.Skip()),
		field.String("webhook_id").NotEmpty().Immutable().
			Comment("The webhook-id header: the same for every attempt of one message (derived from the change's cursor), so receivers can dedupe.").
			Annotations(entgql.MapsTo("webhookId")),
		field.Enum("topic").Values("MEMBERSHIP_ENTERED", "MEMBERSHIP_EXITED", "CAMPAIGN_ACTIVATED").Immutable().
			Comment("What happened: a user entered or exited a segment, or activated a campaign.").
			Annotations(entgql.Type("WebhookTopic")),
		field.Enum("status").Values("PENDING", "DELIVERED", "FAILED").Default("PENDING").
			Comment("PENDING until a 2xx answer (DELIVERED) or the last retry failed (FAILED).").
			Annotations(entgql.Type("DeliveryStatus")),
		field.Int("attempts").Default(0).
			Comment("How many times it was sent."),
		field.Int("last_status_code").Optional().Nillable().
			Comment("The HTTP status of the last attempt; null before one, or when it got no answer."),
		field.String("last_error").Optional().Nillable().
			Comment("Why the last attempt failed (a status, a timeout, a network error); null when it did not."),
		field.Time("next_attempt_at").Optional().Nillable().
			Comment("When the next attempt is due; null once DELIVERED or FAILED."),
		field.Time("delivered_at").Optional().Nillable().
			Comment("When a 2xx answer came; null until then."),
		field.Time("created_at").Default(time.Now).Immutable().
			Comment("When the delivery was queued."),
		field.JSON("payload", jsonmap.Map{}).Immutable().
			Comment("The body sent (SEGMENTD format), as JSON.").
			Annotations(entgql.Type("Map")),
		field.String("lease_owner").Optional().Nillable().Annotations(entgql.Skip()),
		field.Time("lease_until").Optional().Nillable().Annotations(entgql.Skip()),
		// user_ref is the user the payload names, so that erasing them
		// scrubs it (Service.DeleteUser); null for rows queued before the
		// column existed.
		field.String("user_ref").GoType(pulid.ID("")).Optional().Nillable().Immutable().Annotations(entgql.Skip()),
	}
}

// Edges of the WebhookDelivery.
func (WebhookDelivery) Edges() []ent.Edge {
	return []ent.Edge{
		edge.From("endpoint", WebhookEndpoint.Type).Ref("deliveries").Field("endpoint_ref").
			Unique().Required().Immutable().Annotations(entgql.Skip(entgql.SkipAll)),
	}
}

// Indexes of the WebhookDelivery.
func (WebhookDelivery) Indexes() []ent.Index {
	return []ent.Index{
		index.Fields("endpoint_ref", "seq").Unique(),
		index.Fields("endpoint_ref", "status", "seq"),
		index.Fields("user_ref"),
	}
}

// Annotations of the WebhookDelivery.
func (WebhookDelivery) Annotations() []schema.Annotation {
	return []schema.Annotation{
		schema.Comment("One message to a webhook endpoint, with its attempts: every attempt carries the same webhook-id."),
		entgql.RelayConnection(),
		entgql.Skip(entgql.SkipWhereInput, entgql.SkipOrderField),
	}
}
