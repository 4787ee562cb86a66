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
// (performed) for one user: what exactness needs of the user's counted
// events (behavior.State, encoded), so that evaluating the predicate never
// reads the user's history. It is keyed by the predicate's measurement
// (trigger.Behavior.Key), so segments with the same predicate share it.
// The ingest transaction that stores an event updates the states it counts
// in; a segment whose predicate no other segment has builds its states
// from the stored events.
//
// Like the deadline index it has no foreign keys: erasing a user deletes
// their states, and deleting or editing a segment the states of keys no
// segment has any more, in the same transaction.
type BehaviorState struct{ ent.Schema }

// Fields of the BehaviorState.
func (BehaviorState) Fields() []ent.Field {
	return []ent.Field{
		field.Int64("id"),
		field.String("user_ref").GoType(pulid.ID("")).Immutable(),
		field.String("key").Immutable().
			Comment("The predicate's measurement (trigger.Behavior.Key): a changed predicate gets a new key, and so a new state."),
		field.Bytes("state").Comment("behavior.State in its binary encoding."),
	}
}

// Indexes of the BehaviorState.
func (BehaviorState) Indexes() []ent.Index {
	return []ent.Index{
		index.Fields("user_ref", "key").Unique(),
		// Dropping a key no segment has any more.
		index.Fields("key"),
	}
}

// Annotations of the BehaviorState.
func (BehaviorState) Annotations() []schema.Annotation {
	return []schema.Annotation{entgql.Skip()}
}
