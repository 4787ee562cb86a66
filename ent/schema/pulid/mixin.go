package pulid

import (
	"fmt"

	"entgo.io/ent"
	"entgo.io/ent/schema"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/mixin"
)

// MixinWithPrefix returns a mixin that gives a type an ID with the prefix.
func MixinWithPrefix(prefix string) *Mixin { return &Mixin{prefix: prefix} }

// Mixin defines the "id" field of a type with prefixed IDs.
type Mixin struct {
	mixin.Schema
	prefix string
}

// Fields provides the id field.
func (m Mixin) Fields() []ent.Field {
	return []ent.Field{
		field.String("id").
			GoType(ID("")).
			MaxLen(40).
			Immutable().
			Comment(fmt.Sprintf("The object's ID: %q and a ULID, so that it names its type (node(id:) resolves it) and sorts by creation.", m.prefix+"_")).
			DefaultFunc(func() ID { return New(m.prefix) }),
	}
}

// Annotation records the prefix of a type for the generated IDToType.
type Annotation struct{ Prefix string }

// Name implements schema.Annotation.
func (Annotation) Name() string { return "PULID" }

// Annotations returns the prefix annotation.
func (m Mixin) Annotations() []schema.Annotation {
	return []schema.Annotation{Annotation{Prefix: m.prefix}}
}
