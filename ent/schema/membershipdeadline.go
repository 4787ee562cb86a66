package schema

import (
	"entgo.io/contrib/entgql"
	"entgo.io/ent"
	"entgo.io/ent/schema"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"

	"github.com/segmentd/segmentd/ent/schema/pulid"
)

// MembershipDeadline is the deadline index: the next instant at which time
// alone changes a user's membership of a segment (an expiry after entry;
// later, the re-evaluation of a DYNAMIC segment whose condition has a time
// window). A background sweeper takes the due rows in batches and makes
// their changes through the ledger; the ledger alone writes the table, in
// the transactions that write the memberships, so that a deadline exists
// exactly while its membership does.
//
// It has no foreign keys: a deadline whose membership or segment is gone
// (a deleted segment) is dropped by the sweeper when it comes due.
type MembershipDeadline struct{ ent.Schema }

// Fields of the MembershipDeadline.
func (MembershipDeadline) Fields() []ent.Field {
	return []ent.Field{
		field.Int64("id"),
		field.String("segment_ref").GoType(pulid.ID("")).Immutable(),
		field.String("user_ref").GoType(pulid.ID("")).Immutable(),
		field.Time("due_at").Comment("When the change is due."),
		field.Enum("why").Values("EXPIRE", "REEVALUATE").Immutable().
			Comment("EXPIRE: the membership ends (exit rule after); REEVALUATE: a DYNAMIC segment's condition may change its answer (a time window ends)."),
	}
}

// Indexes of the MembershipDeadline.
func (MembershipDeadline) Indexes() []ent.Index {
	return []ent.Index{
		index.Fields("segment_ref", "user_ref", "why").Unique(),
		// The sweeper reads the earliest deadlines first.
		index.Fields("due_at"),
	}
}

// Annotations of the MembershipDeadline.
func (MembershipDeadline) Annotations() []schema.Annotation {
	return []schema.Annotation{entgql.Skip()}
}
