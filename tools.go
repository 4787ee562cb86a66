//go:build tools

// Package segmentd pins the code generators that `go generate ./...` runs,
// so that their versions are recorded in go.mod and go.sum.
package segmentd

import (
	_ "entgo.io/contrib/entgql"
	_ "entgo.io/ent/cmd/ent"
	_ "entgo.io/ent/entc/gen"
	_ "github.com/99designs/gqlgen"
)
