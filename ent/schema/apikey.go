package schema

import (
	"time"

	"entgo.io/contrib/entgql"
	"entgo.io/ent"
	"entgo.io/ent/schema"
	"entgo.io/ent/schema/field"

	"github.com/segmentd/segmentd/ent/schema/pulid"
)

// APIKey authenticates a client. Only the SHA-256 of the secret is stored;
// the secret is shown once, when the key is created.
type APIKey struct{ ent.Schema }

// Mixin of the APIKey.
func (APIKey) Mixin() []ent.Mixin { return []ent.Mixin{pulid.MixinWithPrefix("key")} }

// Fields of the APIKey.
func (APIKey) Fields() []ent.Field {
	return []ent.Field{
		field.String("name").NotEmpty().MaxLen(200),
		field.Enum("role").Values("ADMIN", "WRITE", "READ"),
		field.String("hash").NotEmpty().Unique().Sensitive(),
		// hint is the start of the secret, so that people can tell keys apart.
		field.String("hint").Default(""),
		field.Time("created_at").Default(time.Now).Immutable(),
		field.Time("last_used_at").Optional().Nillable(),
		field.Time("revoked_at").Optional().Nillable(),
	}
}

// Annotations of the APIKey.
func (APIKey) Annotations() []schema.Annotation {
	return []schema.Annotation{entgql.Skip()}
}
