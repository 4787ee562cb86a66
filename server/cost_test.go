package server

import (
	"fmt"
	"strings"
	"syscall"
	"testing"

	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/parser"
	"github.com/vektah/gqlparser/v2/validator"

	"github.com/segmentd/segmentd/graph"
	"github.com/segmentd/segmentd/graph/generated"
	"github.com/segmentd/segmentd/server/querycost"
)

func testSchema(tb testing.TB) *ast.Schema {
	tb.Helper()
	return generated.NewExecutableSchema(graph.NewConfig(&graph.Resolver{})).Schema()
}

// validated parses and validates q against schema.
func validated(tb testing.TB, schema *ast.Schema, q string) *ast.QueryDocument {
	tb.Helper()
	doc, err := parser.ParseQuery(&ast.Source{Input: q})
	if err != nil {
		tb.Fatalf("parse: %v", err)
	}
	if errs := validator.Validate(schema, doc); len(errs) > 0 {
		tb.Fatalf("validate: %v", errs)
	}
	return doc
}

func estimate(tb testing.TB, schema *ast.Schema, q string, vars map[string]any) int64 {
	tb.Helper()
	doc := validated(tb, schema, q)
	return querycost.Estimate(schema, doc, doc.Operations[0], vars, costRules)
}

// TestQueryCostFigures pins the cost model the README describes.
func TestQueryCostFigures(t *testing.T) {
	schema := testSchema(t)
	cases := []struct {
		name  string
		query string
		vars  map[string]any
		want  int64
	}{
		{"a page: the connection, totalCount, then 10 × (edges + node + name)",
			`{ segments(first: 10) { totalCount edges { node { name } } } }`, nil, 2 + 10*3},
		{"the default page is 1,000", `{ segments { edges { node { id } } } }`, nil, 1 + 1000*3},
		{"last, and first from a variable", `query($n: Int) { a: segments(last: 5) { edges { node { id } } } b: segments(first: $n) { edges { node { id } } } }`,
			map[string]any{"n": 7}, (1 + 5*3) + (1 + 7*3)},
		{"nested pages multiply", `{ segments(first: 10) { edges { node { members(first: 20) { edges { node { reason } } } } } } }`, nil,
			1 + 10*(1+1+(1+20*(1+1+1)))},
		{"an unbounded list counts 20", `{ user(userId: "u") { memberships { reason } } }`, nil, 1 + 1 + 20*1},
		{"nodes(ids:) counts its IDs", `{ nodes(ids: ["a", "b", "c"]) { id } }`, nil, 1 + 3*1},
		{"growth counts its points", `{ segments(first: 1) { edges { node { growth(interval: DAY, from: "2025-09-01T00:00:00Z", to: "2025-10-01T00:00:00Z") { start total } } } } }`, nil,
			1 + (1 + 1 + (10 + 32*2))},
		{"trackEvents: results once per input", `mutation($in: [TrackInput!]!) { trackEvents(inputs: $in) { accepted results { duplicate } } }`,
			map[string]any{"in": []any{map[string]any{}, map[string]any{}, map[string]any{}, map[string]any{}}}, 1 + 1 + 4*(1+1)},
		{"a fragment costs what it selects, at each spread", `{ segments(first: 2) { edges { node { ...S ...S } } } } fragment S on Segment { id name }`, nil,
			1 + 2*(1+1+4)},
		{"weights", `query($s: ID!) { explainMembership(segmentId: $s, userId: "u") { member } }`, map[string]any{"s": "x"}, 2000 + 1},
		{"previewSegment weighs its scan; its sample is a list of first users",
			`{ previewSegment(input: {name: "p", kind: EVENT_TRIGGERED, triggerEvents: ["Sign Up"]}) { matchingUsers a: sample(first: 50) { userId traits } b: sample { userId } } }`, nil,
			20000 + 1 + (1 + 50*2) + (1 + 20*1)},
		{"a condition tree: 200 times its dearest level, not the product of its levels",
			`{ segments(first: 1) { edges { node { condition { id kind children { id children { ...C children { id } } } } } } } } fragment C on Condition { id kind property }`, nil,
			1 + (1 + (1 + (1 + 2 + (1 + 200*(1+3)))))},
		{"__typename is free", `{ __typename segments(first: 1) { __typename } }`, nil, 1},
	}
	for _, c := range cases {
		if got := estimate(t, schema, c.query, c.vars); got != c.want {
			t.Errorf("%s: cost %d, want %d", c.name, got, c.want)
		}
	}
}

// fragmentBomb is n fragments on Segment, each spreading the next twice.
func fragmentBomb(n int) string {
	var b strings.Builder
	b.WriteString("query { segments(first: 1) { edges { node { ...F0 } } } }\n")
	for i := range n - 1 {
		fmt.Fprintf(&b, "fragment F%d on Segment { ...F%d ...F%d }\n", i, i+1, i+1)
	}
	fmt.Fprintf(&b, "fragment F%d on Segment { name }\n", n-1)
	return b.String()
}

// TestQueryCostFragmentBomb: 41 fragments, each spreading the next twice,
// cost 2^40 names (saturating, never wrapping) and are measured in one pass;
// the depth check measures them once each too.
func TestQueryCostFragmentBomb(t *testing.T) {
	schema := testSchema(t)
	doc := validated(t, schema, fragmentBomb(41))
	got := querycost.Estimate(schema, doc, doc.Operations[0], nil, costRules)
	if want := int64(1 + 1 + 1 + 1<<40); got != want {
		t.Errorf("cost %d, want %d", got, want)
	}
	if d := selectionDepth(doc.Operations[0].SelectionSet, map[string]int{}); d != 4 {
		t.Errorf("depth %d, want 4", d)
	}
	doc = validated(t, schema, strings.Replace(fragmentBomb(70), "{ name }", "{ name members { edges { node { reason } } } }", 1))
	if got := querycost.Estimate(schema, doc, doc.Operations[0], nil, costRules); got != querycost.Max {
		t.Errorf("70 doublings: cost %d, want the saturated %d", got, querycost.Max)
	}
}

// sizedDocument is a query of about size bytes: blocks of aliased pages
// of segments, each with its own fragment of members, users, memberships
// and campaigns.
func sizedDocument(size int) string {
	var ops, frags strings.Builder
	for i := 0; ops.Len()+frags.Len() < size; i++ {
		fmt.Fprintf(&ops, "a%d: segments(first: 10, where: {nameContains: \"x%d\"}) { totalCount edges { cursor node { id name ...S%d } } }\n", i, i, i)
		fmt.Fprintf(&frags, "fragment S%d on Segment { kind conditionText members(first: 5) { edges { node { enteredAt user { userId traits "+
			"memberships { segment { name } } } } } } campaigns { name status } growth(interval: DAY, from: \"2025-09-01T00:00:00Z\", to: \"2025-10-01T00:00:00Z\") { start total } }\n", i)
	}
	return "query {\n" + ops.String() + "}\n" + frags.String()
}

// BenchmarkQueryCost times the cost check (querycost.Estimate on the parsed,
// validated document) for the 41-fragment document and for documents of
// 1 KB, 100 KB and 1 MiB: ns/KB stays flat, the time grows linearly.
func BenchmarkQueryCost(b *testing.B) {
	schema := testSchema(b)
	docs := []struct {
		name string
		q    string
	}{
		{"fragments41", fragmentBomb(41)},
		{"1KB", sizedDocument(1 << 10)},
		{"100KB", sizedDocument(100 << 10)},
		{"1MiB", sizedDocument(1 << 20)},
	}
	for _, d := range docs {
		doc := validated(b, schema, d.q)
		b.Run(d.name, func(b *testing.B) {
			b.ReportAllocs()
			cpu0 := processCPU()
			for b.Loop() {
				querycost.Estimate(schema, doc, doc.Operations[0], nil, costRules)
			}
			// CPU time as well as wall time: on a shared machine the
			// wall time also counts waiting for a core.
			cpu := float64(processCPU()-cpu0) / float64(b.N)
			kb := float64(len(d.q)) / 1024
			b.ReportMetric(float64(len(d.q)), "bytes")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/kb, "ns/KB")
			b.ReportMetric(cpu, "cpu-ns/op")
			b.ReportMetric(cpu/kb, "cpu-ns/KB")
		})
	}
}

// processCPU is the process's user and system CPU time so far, in ns.
func processCPU() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
