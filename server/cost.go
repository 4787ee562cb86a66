package server

import (
	"context"
	"fmt"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/segmentd/segmentd"
	"github.com/segmentd/segmentd/server/querycost"
	"github.com/segmentd/segmentd/service"
	"github.com/segmentd/segmentd/trigger"
)

// DefaultMaxQueryCost is the default of --max-query-cost: every README
// example, GraphiQL's introspection, a page of 1,000 members with their
// users, a page of 1,000 events with their outcomes, a growth series of
// 10,000 points and a page of 100 segments with their condition trees fit;
// a page of members each with their own segments' pages, 200 growth series
// or 500 explanations do not.
const DefaultMaxQueryCost = 200000

// DefaultListSize is the size the cost estimate assumes for a list field
// that has no page or list argument (a user's memberships, an event's
// outcomes, a segment's campaigns).
const DefaultListSize = 20

// costRules are segmentd's query cost rules (see querycost.Rules and the
// README's "Query cost").
var costRules = querycost.Rules{
	MaxPage:     MaxPage,
	DefaultPage: MaxPage, // capPages gives a connection asked for with neither first nor last MaxPage items
	DefaultList: DefaultListSize,
	Weights: map[string]int64{
		// Replays the user's latest evaluated event: 500 of them took
		// 11.5 s of CPU (issue 12), about 23 ms each.
		"Query.explainMembership": 2000,
		// Scans the stored events of the trigger names: 1M of them take
		// seconds (BenchmarkPreviewSegment); at most 10 in one operation.
		"Query.previewSegment":     20000,
		"Segment.stats":            10,
		"Segment.growth":           10,
		"Segment.membersAt":        10,
		"Campaign.activationCount": 5,
	},
	Sizes: map[string]func(map[string]any) int64{
		"Segment.growth": growthPoints,
	},
	// A condition tree holds at most trigger.MaxNodes conditions however it
	// nests.
	Trees: map[string]int64{"Condition.children": trigger.MaxNodes},
	PageItems: map[string]bool{
		"TrackBatchResult.results": true, // one per input of trackEvents
	},
}

// growthPoints is how many points growth(interval, from, to) returns, or
// the most it may if its arguments do not parse (it then fails anyway).
func growthPoints(args map[string]any) int64 {
	from, err1 := parseTimeArg(args["from"])
	to, err2 := parseTimeArg(args["to"])
	iv, _ := args["interval"].(string)
	width := map[string]time.Duration{"HOUR": time.Hour, "DAY": 24 * time.Hour, "WEEK": 7 * 24 * time.Hour}[iv]
	if err1 != nil || err2 != nil || width == 0 {
		return service.MaxGrowthPoints
	}
	if !to.After(from) {
		return 1
	}
	return min(int64(to.Sub(from)/width)+2, service.MaxGrowthPoints)
}

func parseTimeArg(v any) (time.Time, error) {
	switch t := v.(type) {
	case string:
		return time.Parse(time.RFC3339Nano, t)
	case time.Time:
		return t, nil
	}
	return time.Time{}, fmt.Errorf("not a time: %T", v)
}

// costLimit refuses an operation whose estimated cost (querycost) is over
// Max with COST_LIMIT, extensions.cost and extensions.limit, before any
// resolver runs: on HTTP and for every operation on a websocket, whatever
// the key. The estimate takes time linear in the document's size. Max < 0
// turns it off.
type costLimit struct {
	Max    int64
	Schema *ast.Schema
}

var _ interface {
	graphql.HandlerExtension
	graphql.OperationContextMutator
} = costLimit{}

func (costLimit) ExtensionName() string                   { return "QueryCost" }
func (costLimit) Validate(graphql.ExecutableSchema) error { return nil }
func (c costLimit) MutateOperationContext(ctx context.Context, oc *graphql.OperationContext) *gqlerror.Error {
	if c.Max < 0 || oc.Operation == nil || oc.Doc == nil {
		return nil
	}
	cost := querycost.Estimate(c.Schema, oc.Doc, oc.Operation, oc.Variables, costRules)
	noteCost(ctx, cost)
	if cost <= c.Max {
		return nil
	}
	err := gqlerror.Errorf("the query's estimated cost is %d; at most %d is allowed (page sizes multiply through nesting: ask for smaller pages or fewer nested lists)", cost, c.Max)
	err.Extensions = map[string]any{"code": string(segmentd.CodeCostLimit), "cost": cost, "limit": c.Max}
	return err
}
