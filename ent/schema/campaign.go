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

// Campaign takes a segment as its audience. A user who is or becomes a member
// of an ACTIVE campaign's segment activates it once, or once per entry with
// reentry EVERY_ENTRY.
type Campaign struct{ ent.Schema }

// Mixin of the Campaign.
func (Campaign) Mixin() []ent.Mixin { return []ent.Mixin{pulid.MixinWithPrefix("cmp")} }

// Fields of the Campaign.
func (Campaign) Fields() []ent.Field {
	return []ent.Field{
		field.String("name").NotEmpty().MaxLen(200).
			Comment("The campaign's name, 1 to 200 characters.").
			Annotations(entgql.OrderField("NAME")),
		field.String("description").Optional().Nillable().MaxLen(2000).
			Comment("A free-text description, at most 2,000 characters; null when none."),
		field.Enum("status").Values("DRAFT", "ACTIVE", "PAUSED", "ENDED").Default("DRAFT").
			Comment("DRAFT, ACTIVE, PAUSED or ENDED. Only an ACTIVE campaign activates: every member of its segment, on entry and when it becomes ACTIVE or gets its segment, once per entry its reentry policy allows.").
			Annotations(entgql.OrderField("STATUS")),
		field.String("segment_ref").GoType(pulid.ID("")).Optional().Nillable().
			Annotations(entgql.Skip()),
		field.Enum("reentry").Values("ONCE", "EVERY_ENTRY").Default("ONCE").
			Comment("ONCE: a user activates the campaign once, ever. EVERY_ENTRY: once per entry into the segment (after an exit), at most once per cooldown.").
			Annotations(entgql.Type("ReentryPolicy")),
		field.String("cooldown").Optional().Nillable().
			Comment("With EVERY_ENTRY, the least time between two activations of one user, as a duration such as \"30m\", \"7d\" or \"1h30m\" (units s, m, h, d, w): an entry within it of the user's last activation activates nothing. Null: no cooldown."),
		field.Time("created_at").Default(time.Now).Immutable().
			Comment("When the campaign was created.").
			Annotations(entgql.OrderField("CREATED_AT")),
		field.Time("updated_at").Default(time.Now).UpdateDefault(time.Now).
			Comment("When the campaign was last changed.").
			Annotations(entgql.OrderField("UPDATED_AT")),
	}
}

// Edges of the Campaign.
func (Campaign) Edges() []ent.Edge {
	return []ent.Edge{
		edge.From("segment", Segment.Type).Ref("campaigns").Field("segment_ref").Unique().
			Comment("The campaign's audience; null when it has none (or its segment was deleted)."),
		// Campaign.activations is declared in schema.graphqls and resolved
		// by service.Activations: entgql's pagination of the edge (and its
		// eager loading) applies cursors from the wrong end.
		edge.To("activations", CampaignActivation.Type).
			Comment("The activations of this campaign: one per user with reentry ONCE, one per entry with EVERY_ENTRY.").
			Annotations(entsql.OnDelete(entsql.Cascade), entgql.Skip(entgql.SkipAll)),
	}
}

// Indexes of the Campaign.
func (Campaign) Indexes() []ent.Index {
	return []ent.Index{index.Fields("segment_ref", "status"), index.Fields("created_at")}
}

// Annotations of the Campaign.
func (Campaign) Annotations() []schema.Annotation {
	return []schema.Annotation{
		schema.Comment("A campaign takes a segment as its audience: a user who is, or becomes, a member of an ACTIVE campaign's segment activates the campaign once (reentry ONCE) or once per entry (EVERY_ENTRY, at most once per cooldown)."),
		entgql.RelayConnection(),
		entgql.QueryField().Description("Campaigns, as a Relay connection, filtered by where and ordered by orderBy (default: by id, oldest first)."),
	}
}

// CampaignActivation records that a user activated a campaign; the unique
// indexes on (campaign, user, entry) and (campaign, membership) make
// "exactly once per entry" a database guarantee.
type CampaignActivation struct{ ent.Schema }

// Mixin of the CampaignActivation.
func (CampaignActivation) Mixin() []ent.Mixin { return []ent.Mixin{pulid.MixinWithPrefix("act")} }

// Fields of the CampaignActivation.
func (CampaignActivation) Fields() []ent.Field {
	return []ent.Field{
		field.String("campaign_ref").GoType(pulid.ID("")).Immutable().Annotations(entgql.Skip()),
		field.String("user_ref").GoType(pulid.ID("")).Immutable().Annotations(entgql.Skip()),
		field.String("segment_ref").GoType(pulid.ID("")).Immutable().Annotations(entgql.Skip()),
		field.String("event_ref").GoType(pulid.ID("")).Optional().Nillable().Immutable().Annotations(entgql.Skip()),
		field.Time("activated_at").Default(time.Now).Immutable().
			Comment("When the user activated the campaign.").
			Annotations(entgql.OrderField("ACTIVATED_AT")),
		field.Int("entry").Default(1).Positive().Immutable().
			Comment("1 for the user's first activation of this campaign, 2 for the second, and so on (more than 1 only with reentry EVERY_ENTRY)."),
		// membership_ref is the membership (one entry into the segment,
		// until the exit) that caused the activation: unique per campaign,
		// so one entry activates a campaign at most once. Not a foreign
		// key: the membership row goes when the user exits. Null for
		// activations written before re-entry existed.
		field.String("membership_ref").GoType(pulid.ID("")).Optional().Nillable().Immutable().
			Annotations(entgql.Skip()),
	}
}

// Edges of the CampaignActivation.
func (CampaignActivation) Edges() []ent.Edge {
	return []ent.Edge{
		edge.From("campaign", Campaign.Type).Ref("activations").Field("campaign_ref").Unique().Required().Immutable().
			Comment("The campaign activated."),
		// CampaignActivation.user is declared in schema.graphqls: null
		// once the user is erased, which a required edge cannot say.
		edge.From("user", User.Type).Ref("activations").Field("user_ref").Unique().Required().Immutable().
			Comment("The user who activated it.").
			Annotations(entgql.Skip(entgql.SkipType)),
		edge.From("segment", Segment.Type).Ref("activations").Field("segment_ref").Unique().Required().Immutable().
			Comment("The segment whose membership activated it (the campaign's segment at the time)."),
		edge.To("event", Event.Type).Field("event_ref").Unique().Immutable().
			Comment("The event whose entry activated it; null when the entry had no event (manual add, import, or the campaign becoming ACTIVE)."),
	}
}

// Indexes of the CampaignActivation.
func (CampaignActivation) Indexes() []ent.Index {
	return []ent.Index{
		// (campaign, user, entry) unique: two transactions that number the
		// same user's activation alike cannot both write it. The index on
		// (campaign, user) that made activation once-ever before re-entry
		// is dropped by store.Migrate.
		index.Fields("campaign_ref", "user_ref", "entry").Unique(),
		index.Fields("campaign_ref", "membership_ref").Unique(),
		index.Fields("campaign_ref", "activated_at"),
	}
}

// Annotations of the CampaignActivation.
func (CampaignActivation) Annotations() []schema.Annotation {
	return []schema.Annotation{
		schema.Comment("A user's activation of a campaign: at most one per entry into the campaign's segment (with reentry ONCE, one per campaign and user, ever)."),
		entgql.RelayConnection(),
	}
}
