//go:build ignore

// entc.go generates the ent client and the GraphQL schema of the entities
// (ent.graphqls). It runs from the repository root, where gqlgen.yml lives:
// run from ent/ with "../" paths, a second run drops scalars from the schema
// (see STACK-NOTES.md).
package main

import (
	"log"
	"strings"

	"entgo.io/contrib/entgql"
	"entgo.io/ent/entc"
	"entgo.io/ent/entc/gen"
	"github.com/vektah/gqlparser/v2/ast"
)

func main() {
	ex, err := entgql.NewExtension(
		entgql.WithSchemaGenerator(),
		entgql.WithSchemaPath("./ent.graphqls"),
		entgql.WithConfigPath("./gqlgen.yml"),
		entgql.WithWhereInputs(true),
		entgql.WithRelaySpec(true),
		entgql.WithSchemaHook(edgeDescriptions),
	)
	if err != nil {
		log.Fatalf("creating entgql extension: %v", err)
	}
	templates := append(entgql.AllTemplates,
		gen.MustParse(gen.NewTemplate("pulid").ParseFiles("./ent/schema/pulid/template/pulid.tmpl")))
	err = entc.Generate("./ent/schema", &gen.Config{
		Target:    "./ent",
		Package:   "github.com/segmentd/segmentd/ent",
		Templates: templates,
		Features: []gen.Feature{
			gen.FeatureVersionedMigration,
			gen.FeatureUpsert,
			gen.FeatureLock,
			gen.FeatureExecQuery,
			gen.FeatureIntercept,
		},
	}, entc.Extensions(ex))
	if err != nil {
		log.Fatalf("running ent codegen: %v", err)
	}
}

// edgeDescriptions gives a Relay-connection edge field the description of
// its ent edge's Comment: entgql builds those fields anew and drops it,
// and GraphiQL's docs pane should describe every field.
func edgeDescriptions(g *gen.Graph, s *ast.Schema) error {
	for _, node := range g.Nodes {
		def := s.Types[node.Name]
		if def == nil {
			continue
		}
		for _, e := range node.Edges {
			if e.Comment() == "" {
				continue
			}
			if f := def.Fields.ForName(lowerCamel(e.Name)); f != nil && f.Description == "" {
				f.Description = e.Comment()
			}
		}
	}
	return nil
}

// lowerCamel turns an edge name such as import_jobs into importJobs.
func lowerCamel(s string) string {
	parts := strings.Split(s, "_")
	for i := 1; i < len(parts); i++ {
		if parts[i] != "" {
			parts[i] = strings.ToUpper(parts[i][:1]) + parts[i][1:]
		}
	}
	return strings.Join(parts, "")
}
