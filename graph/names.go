package graph

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"entgo.io/ent/dialect/sql"

	"github.com/segmentd/segmentd"
	"github.com/segmentd/segmentd/auth"
	"github.com/segmentd/segmentd/ent"
	"github.com/segmentd/segmentd/ent/event"
	"github.com/segmentd/segmentd/ent/user"
	"github.com/segmentd/segmentd/graph/model"
	"github.com/segmentd/segmentd/service"
)

// The names that condition builders offer (eventNames, propertyNames,
// traitNames). Property and trait names are read from a recent sample, not
// from every row: a builder needs the names in use, and a scan of every
// event's JSON would cost as much as a full-table read on each keystroke.
const (
	maxNames = 1000
	// namesSample is how many recent events (of one name) or users the
	// property and trait names are read from.
	namesSample = 1000
	// maxNameDepth bounds how deep nested objects are walked for dotted
	// paths: deeper ones are named by their prefix only.
	maxNameDepth = 4
)

func namesFirst(first *int, def int) (int, error) {
	if first == nil {
		return def, nil
	}
	if *first < 1 || *first > maxNames {
		return 0, segmentd.Invalid("first", "must be from 1 to %d, got %d", maxNames, *first)
	}
	return *first, nil
}

// eventNames counts the stored TRACK events by name, most frequent first
// (ties by name), with the last receivedAt of each.
func eventNames(ctx context.Context, client *ent.Client, prefix *string, first *int) ([]*model.EventName, error) {
	n, err := namesFirst(first, 50)
	if err != nil {
		return nil, err
	}
	q := client.Event.Query().Where(event.TypeEQ(event.TypeTRACK), event.NameNotNil())
	if prefix != nil && *prefix != "" {
		q = q.Where(event.NameHasPrefix(*prefix))
	}
	var rows []struct {
		Name  string `json:"name"`
		Count int    `json:"count"`
	}
	if err := q.GroupBy(event.FieldName).Aggregate(ent.Count()).Scan(ctx, &rows); err != nil {
		return nil, fmt.Errorf("graph.eventNames: %w", err)
	}
	out := make([]*model.EventName, 0, len(rows))
	for _, r := range rows {
		out = append(out, &model.EventName{Name: r.Name, Count: r.Count})
	}
	slices.SortFunc(out, func(a, b *model.EventName) int {
		if a.Count != b.Count {
			return b.Count - a.Count
		}
		return strings.Compare(a.Name, b.Name)
	})
	if len(out) > n {
		out = out[:n]
	}
	// The last receipt of each name shown: one lookup on the (name,
	// received_at) index each, cheaper than MAX over the whole group.
	for _, en := range out {
		last, err := client.Event.Query().
			Where(event.TypeEQ(event.TypeTRACK), event.Name(en.Name)).
			Order(event.ByReceivedAt(sql.OrderDesc())).
			Select(event.FieldReceivedAt).
			First(ctx)
		if err != nil {
			return nil, fmt.Errorf("graph.eventNames: last seen of %q: %w", en.Name, err)
		}
		en.LastSeenAt = last.ReceivedAt
	}
	return out, nil
}

// propertyNames names the properties of the latest stored events of name.
func propertyNames(ctx context.Context, client *ent.Client, name string, first *int) ([]string, error) {
	n, err := namesFirst(first, 100)
	if err != nil {
		return nil, err
	}
	evs, err := client.Event.Query().
		Where(event.Name(name)).
		Order(event.ByReceivedAt(sql.OrderDesc())).
		Limit(namesSample).
		Select(event.FieldProperties).
		All(ctx)
	if err != nil {
		return nil, fmt.Errorf("graph.propertyNames: %w", err)
	}
	counts := map[string]int{}
	for _, e := range evs {
		countPaths(counts, "", map[string]any(e.Properties), 1)
	}
	return topNames(counts, n), nil
}

// traitNames names the traits of the users created last.
func traitNames(ctx context.Context, client *ent.Client, first *int) ([]string, error) {
	n, err := namesFirst(first, 100)
	if err != nil {
		return nil, err
	}
	us, err := client.User.Query().
		Where(service.NotErased()).
		Order(user.ByID(sql.OrderDesc())).
		Limit(namesSample).
		Select(user.FieldTraits).
		All(ctx)
	if err != nil {
		return nil, fmt.Errorf("graph.traitNames: %w", err)
	}
	counts := map[string]int{}
	for _, u := range us {
		countPaths(counts, "", map[string]any(u.Traits), 1)
	}
	return topNames(counts, n), nil
}

// countPaths counts each key of m, and the keys of nested objects as
// dotted paths (an object's own path counts too: conditions may test it
// with EXISTS).
func countPaths(counts map[string]int, prefix string, m map[string]any, depth int) {
	for k, v := range m {
		p := prefix + k
		counts[p]++
		if sub, ok := v.(map[string]any); ok && depth < maxNameDepth {
			countPaths(counts, p+".", sub, depth+1)
		}
	}
}

func topNames(counts map[string]int, n int) []string {
	names := make([]string, 0, len(counts))
	for k := range counts {
		names = append(names, k)
	}
	slices.SortFunc(names, func(a, b string) int {
		if counts[a] != counts[b] {
			return counts[b] - counts[a]
		}
		return strings.Compare(a, b)
	})
	if len(names) > n {
		names = names[:n]
	}
	return names
}

// viewer describes the key of the request (the server authenticates every
// request before it resolves, so a principal is always there).
func viewer(ctx context.Context) (*model.Viewer, error) {
	p := auth.FromContext(ctx)
	if p == nil {
		return nil, &segmentd.Error{Code: segmentd.CodeUnauthenticated, Message: "no API key"}
	}
	return &model.Viewer{KeyName: p.Name, Role: string(p.Role)}, nil
}
