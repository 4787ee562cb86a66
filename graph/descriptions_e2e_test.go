package graph_test

// Issue 13, item 20: GraphiQL's docs pane is the API reference, so every
// field of every object type (the generated entity types as much as the
// hand-written ones) carries a description, and so do every type, every
// argument, every input field and every enum value. Read over HTTP by introspection, as GraphiQL reads it.

import (
	"sort"
	"strings"
	"testing"

	"github.com/segmentd/segmentd/internal/testenv"
)

type introspectedDoc struct {
	Name        string
	Description *string
	Args        []introspectedDoc
}

func TestEveryObjectFieldHasADescription(t *testing.T) {
	t.Parallel()
	srv := testenv.StartServer(t, testenv.DatabaseURL(t, "sqlite"))
	var out struct {
		Schema struct {
			Types []struct {
				Name        string
				Kind        string
				Description *string
				Fields      []introspectedDoc
				InputFields []introspectedDoc
				EnumValues  []introspectedDoc
			}
		} `json:"__schema"`
	}
	srv.Client(testenv.AdminKey).MustDo(t, `{ __schema { types { name kind description
		fields(includeDeprecated: true) { name description args { name description } } inputFields { name description }
		enumValues(includeDeprecated: true) { name description } } } }`, nil, &out)
	empty := func(s *string) bool { return s == nil || strings.TrimSpace(*s) == "" }
	var fieldsMissing, typesMissing, inputsMissing, valuesMissing, argsMissing []string
	objects, fields, types, inputs, values, args := 0, 0, 0, 0, 0, 0
	for _, typ := range out.Schema.Types {
		if strings.HasPrefix(typ.Name, "__") {
			continue
		}
		types++
		if empty(typ.Description) {
			typesMissing = append(typesMissing, typ.Kind+" "+typ.Name)
		}
		if typ.Kind == "OBJECT" {
			objects++
		}
		for _, f := range typ.Fields {
			fields++
			if empty(f.Description) {
				fieldsMissing = append(fieldsMissing, typ.Name+"."+f.Name)
			}
			for _, a := range f.Args {
				args++
				if empty(a.Description) {
					argsMissing = append(argsMissing, typ.Name+"."+f.Name+"("+a.Name+")")
				}
			}
		}
		for _, v := range typ.EnumValues {
			values++
			if empty(v.Description) {
				valuesMissing = append(valuesMissing, typ.Name+"."+v.Name)
			}
		}
		for _, f := range typ.InputFields {
			inputs++
			if empty(f.Description) {
				inputsMissing = append(inputsMissing, typ.Name+"."+f.Name)
			}
		}
	}
	if objects < 20 || fields < 150 || inputs < 100 {
		t.Fatalf("introspection saw only %d object types with %d fields, %d input fields", objects, fields, inputs)
	}
	for _, m := range []struct {
		what    string
		of      int
		missing []string
	}{
		{"fields of object types", fields, fieldsMissing},
		{"types", types, typesMissing},
		{"input fields", inputs, inputsMissing},
		{"enum values", values, valuesMissing},
		{"field arguments", args, argsMissing},
	} {
		sort.Strings(m.missing)
		if len(m.missing) > 0 {
			t.Errorf("%d of %d %s have no description:\n%s", len(m.missing), m.of, m.what, strings.Join(m.missing, "\n"))
		}
	}
}
