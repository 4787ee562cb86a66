package graph_test

// Issue 13, item 20: GraphiQL's docs pane is the API reference, so every
// field of every object type (the generated entity types as much as the
// hand-written ones) carries a description. Read over HTTP by introspection,
// as GraphiQL reads it.

import (
	"sort"
	"strings"
	"testing"

	"github.com/segmentd/segmentd/internal/testenv"
)

func TestEveryObjectFieldHasADescription(t *testing.T) {
	t.Parallel()
	srv := testenv.StartServer(t, testenv.DatabaseURL(t, "sqlite"))
	var out struct {
		Schema struct {
			Types []struct {
				Name   string
				Kind   string
				Fields []struct {
					Name        string
					Description *string
					Args        []struct {
						Name        string
						Description *string
					}
				}
			}
		} `json:"__schema"`
	}
	srv.Client(testenv.AdminKey).MustDo(t, `{ __schema { types { name kind
		fields(includeDeprecated: true) { name description args { name description } } } } }`, nil, &out)
	var missing []string
	objects, fields := 0, 0
	for _, typ := range out.Schema.Types {
		if typ.Kind != "OBJECT" || strings.HasPrefix(typ.Name, "__") {
			continue
		}
		objects++
		for _, f := range typ.Fields {
			fields++
			if f.Description == nil || strings.TrimSpace(*f.Description) == "" {
				missing = append(missing, typ.Name+"."+f.Name)
			}
		}
	}
	if objects < 20 || fields < 150 {
		t.Fatalf("introspection saw only %d object types with %d fields", objects, fields)
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("%d of %d fields of %d object types have no description:\n%s",
			len(missing), fields, objects, strings.Join(missing, "\n"))
	}
}
