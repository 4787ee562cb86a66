package schema

import (
	"entgo.io/contrib/entgql"
	"entgo.io/ent"
	"entgo.io/ent/schema"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"

	"github.com/segmentd/segmentd/ent/schema/pulid"
)

// BehaviorState is the incremental state of one behaviour predicate
// (performed) of a segment for one user: what exactness needs of the
// user's counted events (behavior.State, encoded), so that evaluating the
// predicate never reads the user's history. The ingest transaction that
// stores an event updates the states it counts in; a new or edited
// segment builds its states from the stored events.
//
// Like the deadline index it has no foreign keys: deleting a segment and
// erasing a user delete their states in the same transaction.
type BehaviorState struct{ ent.Schema }

// Fields of the BehaviorState.
func (BehaviorState) Fields() []ent.Field {
	return []ent.Field{
		field.Int64("id"),
		field.String("segment_ref").GoType(pulid.ID("")).Immutable(),
		field.String("user_ref").GoType(pulid.ID("")).Immutable(),
		field.String("key").Immutable().
			Comment("The predicate's measurement (trigger.Behavior.Key): a changed predicate gets a new key, and so a new state."),
		field.Bytes("state").Comment("behavior.State in its binary encoding."),
	}
}

// Indexes of the BehaviorState.
func (BehaviorState) Indexes() []ent.Index {
	return []ent.Index{
		index.Fields("segment_ref", "user_ref", "key").Unique(),
		// Erasure deletes a user's states.
		index.Fields("user_ref"),
	}
}

// Annotations of the BehaviorState.
func (BehaviorState) Annotations() []schema.Annotation {
	return []schema.Annotation{entgql.Skip()}
}
