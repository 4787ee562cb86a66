package service

import (
	"context"
	"fmt"
	"time"

	"github.com/segmentd/segmentd"
	"github.com/segmentd/segmentd/changelog"
	"github.com/segmentd/segmentd/ent"
	"github.com/segmentd/segmentd/ent/schema/pulid"
	"github.com/segmentd/segmentd/ent/user"
)

// PastMember is a user who was a member of a segment at some instant, and
// how they had entered.
type PastMember struct {
	User      *ent.User
	EnteredAt time.Time
	Source    changelog.Source
	Reason    string
}

// PastMemberEdge is a PastMember with its cursor.
type PastMemberEdge struct {
	Node   *PastMember
	Cursor ent.Cursor
}

// PastMemberConnection is a page of the members of a segment at an instant.
type PastMemberConnection struct {
	Edges      []*PastMemberEdge
	PageInfo   ent.PageInfo
	TotalCount int
}

// defaultPage is the page size when first is not given.
const defaultPage = 1000

// MembersAt answers who was a member of a segment at instant at, from the
// membership change log: a user was a member if their last change at or
// before at (by time, then log order) was an entry. Pages are in user ID
// order (first and after); TotalCount is the number of members at that
// instant, read from the counters. Each page is one indexed read of the
// log, user by user, whatever the segment's size.
func (s *Service) MembersAt(ctx context.Context, segmentID pulid.ID, at time.Time, first *int, after *ent.Cursor) (*PastMemberConnection, error) {
	limit := defaultPage
	if first != nil {
		if *first < 0 {
			return nil, segmentd.Invalid("first", "must not be negative, got %d", *first)
		}
		limit = *first
	}
	var afterRef pulid.ID
	if after != nil {
		// The list's cursors are user IDs: a cursor of another list
		// would silently start elsewhere.
		if after.ID.Prefix() != "usr" || after.Value != nil {
			return nil, segmentd.Invalid("after", "this cursor is not from a membersAt list")
		}
		afterRef = after.ID
	}
	conn := &PastMemberConnection{Edges: []*PastMemberEdge{}}
	total, err := s.membersAtCount(ctx, segmentID, at)
	if err != nil {
		return nil, fmt.Errorf("service.MembersAt: %w", err)
	}
	conn.TotalCount = total
	conn.PageInfo.HasPreviousPage = after != nil
	if limit == 0 {
		conn.PageInfo.HasNextPage = total > 0
		return conn, nil
	}
	q := `SELECT c.user_ref, c.at, c.source, c.reason FROM membership_changes c
WHERE c.segment_ref = ? AND c.user_ref > ? AND c.at <= ? AND c.kind = 'ENTERED'
AND NOT EXISTS (SELECT 1 FROM membership_changes d
  WHERE d.segment_ref = c.segment_ref AND d.user_ref = c.user_ref AND d.at <= ?
  AND (d.at > c.at OR (d.at = c.at AND d.id > c.id)))
ORDER BY c.user_ref LIMIT ?`
	sq := s.sql
	t := at.UTC()
	rows, err := s.client.QueryContext(ctx, sq.rebind(q), segmentID, afterRef, t, t, limit+1)
	if err != nil {
		return nil, fmt.Errorf("service.MembersAt: %w", err)
	}
	defer rows.Close()
	var (
		members []*PastMember
		refs    []pulid.ID
	)
	for rows.Next() {
		var (
			ref    pulid.ID
			m      PastMember
			source string
		)
		if err := rows.Scan(&ref, &m.EnteredAt, &source, &m.Reason); err != nil {
			return nil, fmt.Errorf("service.MembersAt: %w", err)
		}
		m.Source = changelog.Source(source)
		m.User = &ent.User{ID: ref}
		members = append(members, &m)
		refs = append(refs, ref)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("service.MembersAt: %w", err)
	}
	if len(members) > limit {
		conn.PageInfo.HasNextPage = true
		members, refs = members[:limit], refs[:limit]
	}
	users, err := s.client.User.Query().Where(user.IDIn(refs...)).All(ctx)
	if err != nil {
		return nil, fmt.Errorf("service.MembersAt: load users: %w", err)
	}
	byRef := make(map[pulid.ID]*ent.User, len(users))
	for _, u := range users {
		byRef[u.ID] = u
	}
	for _, m := range members {
		if u := byRef[m.User.ID]; u != nil {
			m.User = u
		}
		m.EnteredAt = m.EnteredAt.UTC()
		conn.Edges = append(conn.Edges, &PastMemberEdge{Node: m, Cursor: ent.Cursor{ID: m.User.ID}})
	}
	if n := len(conn.Edges); n > 0 {
		conn.PageInfo.StartCursor = &conn.Edges[0].Cursor
		conn.PageInfo.EndCursor = &conn.Edges[n-1].Cursor
	}
	return conn, nil
}
