package service

import (
	"context"
	"fmt"
	"sort"

	"github.com/segmentd/segmentd/ent"
	"github.com/segmentd/segmentd/ent/event"
	"github.com/segmentd/segmentd/ent/group"
	"github.com/segmentd/segmentd/ent/schema/pulid"
	"github.com/segmentd/segmentd/ent/user"
)

// groupUpdate is what a batch's group calls do to one group.
type groupUpdate struct {
	traits []map[string]any // in arrival order
	users  []pulid.ID       // users to record as members, in arrival order
}

// applyGroups applies a batch's fresh GROUP events: each named group is
// created on first sight, its traits merged with the calls' traits in
// order (a null trait removes it), and each call's user recorded as a
// member. Users' traits are not touched. Groups are locked in groupId order
// (PostgreSQL; SQLite's immediate transaction holds the database), so that
// concurrent trait merges are exact and concurrent batches do not deadlock.
func (s *Service) applyGroups(ctx context.Context, st *batchState, evs []*incoming) error {
	updates := map[string]*groupUpdate{}
	for _, ev := range evs {
		if ev.typ != event.TypeGROUP || ev.groupID == "" {
			continue
		}
		g := updates[ev.groupID]
		if g == nil {
			g = &groupUpdate{}
			updates[ev.groupID] = g
		}
		g.traits = append(g.traits, ev.traits)
		if ev.userID != "" {
			g.users = append(g.users, st.users[ev.userID].ID)
		}
	}
	if len(updates) == 0 {
		return nil
	}
	ids := make([]string, 0, len(updates))
	for id := range updates {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	tx := st.tx
	builders := make([]*ent.GroupCreate, len(ids))
	for i, id := range ids {
		builders[i] = tx.Group.Create().SetGroupID(id).SetTraits(map[string]any{}).
			SetFirstSeenAt(st.now).SetLastSeenAt(st.now)
	}
	err := tx.Group.CreateBulk(builders...).OnConflictColumns(group.FieldGroupID).DoNothing().Exec(ctx)
	if err != nil && !isNoRows(err) {
		return fmt.Errorf("create groups: %w", err)
	}
	sq := s.sql
	groups, err := tx.Group.Query().Where(group.GroupIDIn(ids...), sq.lockForUpdate).
		Order(ent.Asc(group.FieldGroupID)).All(ctx)
	if err != nil {
		return fmt.Errorf("lock groups: %w", err)
	}
	for _, g := range groups {
		upd := updates[g.GroupID]
		traits := g.Traits
		for _, in := range upd.traits {
			traits, _ = mergeTraits(traits, in)
		}
		if traits == nil {
			traits = map[string]any{}
		}
		up := tx.Group.UpdateOne(g).SetTraits(traits)
		if st.now.After(g.LastSeenAt) {
			up.SetLastSeenAt(st.now)
		}
		if len(upd.users) > 0 {
			// The users are locked (lockUsers), so no other transaction
			// records the same (group, user) meanwhile.
			known, err := g.QueryUsers().Where(user.IDIn(upd.users...)).IDs(ctx)
			if err != nil {
				return fmt.Errorf("find members of group %s: %w", g.ID, err)
			}
			have := map[pulid.ID]bool{}
			for _, id := range known {
				have[id] = true
			}
			for _, id := range upd.users {
				if !have[id] {
					have[id] = true
					up.AddUserIDs(id)
				}
			}
		}
		if err := up.Exec(ctx); err != nil {
			return fmt.Errorf("update group %s: %w", g.ID, err)
		}
	}
	return nil
}
