package graph

import (
	"github.com/segmentd/segmentd/ent"
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
