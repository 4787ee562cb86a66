package graph

import (
	"github.com/segmentd/segmentd"
	"github.com/segmentd/segmentd/ent"
)

// The where filters on user IDs, anonymous IDs and message IDs compare with
// IDs as stored, so their equality operands follow the one rule of every
// write (segmentd.NormalizeID): users(where: {userID: " u1 "}) finds u1.
// Pattern operands (Contains, HasPrefix, ...) are left as typed.

func normIDs(p *string) {
	if p != nil {
		*p = segmentd.NormalizeID(*p)
	}
}

func normIDList(ids []string) {
	for i := range ids {
		ids[i] = segmentd.NormalizeID(ids[i])
	}
}

func normalizeUserWhere(w *ent.UserWhereInput) *ent.UserWhereInput {
	if w == nil {
		return nil
	}
	normIDs(w.UserID)
	normIDs(w.UserIDNEQ)
	normIDList(w.UserIDIn)
	normIDList(w.UserIDNotIn)
	normalizeUserWhere(w.Not)
	for _, c := range append(w.And, w.Or...) {
		normalizeUserWhere(c)
	}
	return w
}

func normalizeEventWhere(w *ent.EventWhereInput) *ent.EventWhereInput {
	if w == nil {
		return nil
	}
	for _, p := range []*string{w.UserID, w.UserIDNEQ, w.AnonymousID, w.AnonymousIDNEQ, w.MessageID, w.MessageIDNEQ} {
		normIDs(p)
	}
	for _, l := range [][]string{w.UserIDIn, w.UserIDNotIn, w.AnonymousIDIn, w.AnonymousIDNotIn, w.MessageIDIn, w.MessageIDNotIn} {
		normIDList(l)
	}
	normalizeEventWhere(w.Not)
	for _, c := range append(w.And, w.Or...) {
		normalizeEventWhere(c)
	}
	return w
}
