package graph

import (
	"context"
	"fmt"
	"os"

	"github.com/99designs/gqlgen/graphql"
	"github.com/segmentd/segmentd/ent"
	"github.com/segmentd/segmentd/ent/importjob"
	"github.com/segmentd/segmentd/ent/schema/pulid"
	"github.com/segmentd/segmentd/ent/user"
	"github.com/segmentd/segmentd/graph/model"
	"github.com/segmentd/segmentd/service"
)

// nullIfNotFound turns ent's not-found into a GraphQL null: for optional
// fields such as user(userId:), "no such thing" is an answer, not an error.
func nullIfNotFound[T any](v *T, err error) (*T, error) {
	if ent.IsNotFound(err) {
		return nil, nil
	}
	return v, err
}

// policy converts the GraphQL reevaluation policy; null means the default.
func policy(p *model.ReevaluationPolicy) service.ReevaluationPolicy {
	if p == nil {
		return service.FutureOnly
	}
	return service.ReevaluationPolicy(*p)
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func derefInt(p *int, def int) int {
	if p == nil {
		return def
	}
	return *p
}

func derefMode(m *importjob.Mode) importjob.Mode {
	if m == nil {
		return importjob.ModeADD
	}
	return *m
}

// spoolUpload gives an uploaded file a path of its own, which the import
// job removes when done: gqlgen removes its temporary file when the request
// ends, before the job has read it.
func (r *Resolver) spoolUpload(file graphql.Upload) (*service.Spooled, error) {
	f, _ := file.File.(*os.File)
	return r.svc.SpoolUpload(f, file.File)
}

// erasedNodes says which of the users among ns are erased users'
// tombstones, which node and nodes answer as unknown IDs. It asks the
// store: the nodes may have been loaded without their user_id.
func (r *Resolver) erasedNodes(ctx context.Context, ns []ent.Noder) (map[pulid.ID]bool, error) {
	var ids []pulid.ID
	for _, n := range ns {
		if u, ok := n.(*ent.User); ok && u != nil {
			ids = append(ids, u.ID)
		}
	}
	if len(ids) == 0 {
		return nil, nil
	}
	erased, err := r.client.User.Query().Where(user.IDIn(ids...), service.Erased()).IDs(ctx)
	if err != nil {
		return nil, fmt.Errorf("graph.erasedNodes: %w", err)
	}
	out := make(map[pulid.ID]bool, len(erased))
	for _, id := range erased {
		out[id] = true
	}
	return out, nil
}
