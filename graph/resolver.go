// Package graph is segmentd's GraphQL API: the schema's resolvers, each a
// thin call into ent or the service package. The generated executor lives in
// graph/generated.
package graph

import (
	"github.com/segmentd/segmentd/ent"
	"github.com/segmentd/segmentd/graph/generated"
	"github.com/segmentd/segmentd/service"
	"github.com/segmentd/segmentd/webhook"
)

// Resolver is the root resolver: it holds the dependencies, nothing else.
type Resolver struct {
	client *ent.Client
	svc    *service.Service
	live   *service.Live
	hooks  *webhook.Hooks
}

// NewResolver returns the root resolver.
func NewResolver(client *ent.Client, svc *service.Service, live *service.Live, hooks *webhook.Hooks) *Resolver {
	return &Resolver{client: client, svc: svc, live: live, hooks: hooks}
}

// NewConfig returns the executable schema's configuration.
func NewConfig(r *Resolver) generated.Config {
	return generated.Config{Resolvers: r}
}
