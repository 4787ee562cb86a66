// Package segmentd holds the domain vocabulary shared by every layer: the
// error type with its codes. The subpackages hold the rest: trigger (the
// condition language), pubsub (the broker), service (the use cases), ent
// (the data model), graph (the GraphQL API) and server (HTTP).
package segmentd

//go:generate go run -mod=mod ./entc.go
//go:generate go run -mod=mod github.com/99designs/gqlgen generate
