package graph

import (
	"os"

	"github.com/99designs/gqlgen/graphql"
	"github.com/segmentd/segmentd/ent"
	"github.com/segmentd/segmentd/ent/importjob"
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
