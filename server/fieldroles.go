package server

import (
	"context"
	"fmt"
	"maps"
	"strings"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/segmentd/segmentd"
	"github.com/segmentd/segmentd/auth"
)

// writeRules says, field by field ("Type.field"), what a WRITE key may
// read: the mutations it may call, and in their results the event it sent
// (with its outcomes' entered and reason), duplicate, accepted and
// duplicates, the identified user's own userId and traits, and the id and
// name of the segments entered and campaigns activated. A field with no
// rule is denied: a new field stays closed to WRITE keys until a rule here
// opens it. Every field of every type a WRITE key can reach has a rule,
// true or false, so that the decision is written down (the schema-walk test
// fails on a reachable field without one). READ and ADMIN keys read every
// field.
var writeRules = map[string]bool{
	"Mutation.trackEvent":              true,
	"Mutation.trackEvents":             true,
	"Mutation.identify":                true,
	"Mutation.addUsersToSegment":       false,
	"Mutation.createCampaign":          false,
	"Mutation.createSegment":           false,
	"Mutation.deleteCampaign":          false,
	"Mutation.deleteSegment":           false,
	"Mutation.deleteUser":              false,
	"Mutation.importSegmentUsers":      false,
	"Mutation.removeUsersFromSegment":  false,
	"Mutation.updateCampaign":          false,
	"Mutation.updateSegment":           false,
	"Mutation.createWebhookEndpoint":   false,
	"Mutation.updateWebhookEndpoint":   false,
	"Mutation.deleteWebhookEndpoint":   false,
	"Mutation.rotateWebhookSecret":     false,
	"Mutation.replayWebhookDeliveries": false,

	"TrackResult.event":              true,
	"TrackResult.duplicate":          true,
	"TrackResult.enteredSegments":    true,
	"TrackResult.activatedCampaigns": true,

	"TrackBatchResult.accepted":   true,
	"TrackBatchResult.duplicates": true,
	"TrackBatchResult.results":    true,

	// The event the key sent, as stored.
	"Event.id":          true,
	"Event.messageId":   true,
	"Event.type":        true,
	"Event.name":        true,
	"Event.userId":      true,
	"Event.anonymousId": true,
	"Event.properties":  true,
	"Event.traits":      true,
	"Event.context":     true,
	"Event.timestamp":   true,
	"Event.receivedAt":  true,
	"Event.outcomes":    true,
	"Event.user":        false, // the user's record: memberships, first and last seen

	"SegmentOutcome.entered": true,
	"SegmentOutcome.reason":  true,
	"SegmentOutcome.segment": false, // also segments the event did not enter

	// Segments entered (enteredSegments): their id and name only.
	"Segment.id":            true,
	"Segment.name":          true,
	"Segment.campaigns":     false,
	"Segment.condition":     false,
	"Segment.conditionText": false,
	"Segment.createdAt":     false,
	"Segment.description":   false,
	"Segment.exitRules":     false, // the segment's rules, like its condition
	"Segment.growth":        false,
	"Segment.kind":          false,
	"Segment.members":       false,
	"Segment.membersAt":     false,
	"Segment.stats":         false,
	"Segment.totalUsers":    false,
	"Segment.triggerEvents": false,
	"Segment.updatedAt":     false,

	// Campaigns activated (activatedCampaigns): their id and name only.
	"Campaign.id":              true,
	"Campaign.name":            true,
	"Campaign.activationCount": false,
	"Campaign.activations":     false,
	"Campaign.createdAt":       false,
	"Campaign.cooldown":        false,
	"Campaign.description":     false,
	"Campaign.reentry":         false,
	"Campaign.segment":         false,
	"Campaign.status":          false,
	"Campaign.updatedAt":       false,

	// The identified user (identify): their own userId and traits.
	"User.userId":      true,
	"User.traits":      true,
	"User.id":          false,
	"User.firstSeenAt": false,
	"User.lastSeenAt":  false,
	"User.memberships": false,
	"User.groups":      false,
}

// adminTypes are the types whose every field only ADMIN keys read, and
// adminFields the fields of other types only ADMIN keys read: webhooks
// (their URLs, filters, deliveries and payloads) are managed by ADMIN keys
// alone. A READ key that selects one is refused as a WRITE key is for a
// closed field (FORBIDDEN naming it), before the operation runs where the
// type is known then, else where the field resolves (node(id:)).
var (
	adminTypes = map[string]bool{
		"WebhookEndpoint": true, "WebhookEndpointConnection": true, "WebhookEndpointEdge": true,
		"WebhookDelivery": true, "WebhookDeliveryConnection": true, "WebhookDeliveryEdge": true,
		"CreatedWebhookEndpoint": true,
	}
	adminFields = map[string]bool{"Query.webhookEndpoints": true}
)

// adminOnly reports whether only ADMIN keys may read field of typeName.
func adminOnly(typeName, field string) bool {
	return adminTypes[typeName] || adminFields[typeName+"."+field]
}

// WriteRules returns a copy of the per-field rules of WRITE keys
// ("Type.field": allowed); fields without a rule are denied.
func WriteRules() map[string]bool { return maps.Clone(writeRules) }

// mayRead reports whether p may read field of the object type typeName.
// Meta fields (__typename, introspection) are open to every key.
func mayRead(p *auth.Principal, typeName, field string) bool {
	if p == nil {
		return false
	}
	if strings.HasPrefix(field, "__") || strings.HasPrefix(typeName, "__") {
		return true
	}
	if adminOnly(typeName, field) {
		return p.CanAdmin()
	}
	if p.CanRead() || strings.HasPrefix(field, "__") || strings.HasPrefix(typeName, "__") {
		return true
	}
	return p.Role == auth.RoleWrite && writeRules[typeName+"."+field]
}

// fieldRoles checks the caller's role where each field resolves: a field
// its rules do not allow resolves to null with FORBIDDEN naming its path.
// checkFieldRoles refuses such operations before they run; this is the
// second line, deny by default, for any way a field is reached.
func fieldRoles(ctx context.Context, next graphql.Resolver) (any, error) {
	fc := graphql.GetFieldContext(ctx)
	if fc == nil || fc.Field.Field == nil {
		return next(ctx)
	}
	p := auth.FromContext(ctx)
	if p != nil && p.CanRead() && (p.CanAdmin() || !adminOnly(fc.Object, fc.Field.Name)) {
		return next(ctx)
	}
	if !mayRead(p, fc.Object, fc.Field.Name) {
		return nil, forbiddenField(p, fc.Object, fc.Field.Name, fieldPath(fc.Path()))
	}
	return next(ctx)
}

func forbiddenField(p *auth.Principal, typeName, field, path string) *segmentd.Error {
	role := "this"
	if p != nil {
		role = "a " + string(p.Role)
	}
	return &segmentd.Error{Code: segmentd.CodeForbidden, Field: path,
		Message: fmt.Sprintf("%s key may not read %s.%s", role, typeName, field)}
}

// fieldPath renders a response path as "trackEvent.event.outcomes[0].segment".
func fieldPath(path ast.Path) string {
	var b strings.Builder
	for _, el := range path {
		switch el := el.(type) {
		case ast.PathIndex:
			fmt.Fprintf(&b, "[%d]", int(el))
		case ast.PathName:
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(string(el))
		}
	}
	return b.String()
}

// maxRoleErrors bounds the FORBIDDEN errors of one refused operation.
const maxRoleErrors = 100

// checkFieldRoles walks an operation before it runs and returns a FORBIDDEN
// error for every field (by its response path) that the caller's role may
// not read, so that an operation asking for one runs not at all: no
// mutation is applied, no data returned. Each fragment is walked once per
// type it is spread on, so the time is linear in the document's size.
func checkFieldRoles(schema *ast.Schema, op *ast.OperationDefinition, p *auth.Principal) gqlerror.List {
	if p == nil || p.CanAdmin() {
		return nil
	}
	w := roleWalker{schema: schema, p: p, seen: map[string]bool{}}
	w.walk(op.SelectionSet, rootType(schema, op), nil)
	return w.errs
}

type roleWalker struct {
	schema *ast.Schema
	p      *auth.Principal
	seen   map[string]bool // fragment name + type already walked
	errs   gqlerror.List
}

func rootType(schema *ast.Schema, op *ast.OperationDefinition) *ast.Definition {
	switch op.Operation {
	case ast.Mutation:
		return schema.Mutation
	case ast.Subscription:
		return schema.Subscription
	}
	return schema.Query
}

// walk checks set, selected on parent, at the response path path.
func (w *roleWalker) walk(set ast.SelectionSet, parent *ast.Definition, path ast.Path) {
	if parent == nil || len(w.errs) >= maxRoleErrors {
		return
	}
	for _, sel := range set {
		switch s := sel.(type) {
		case *ast.Field:
			if strings.HasPrefix(s.Name, "__") {
				continue
			}
			fpath := append(append(ast.Path{}, path...), ast.PathName(s.Alias))
			denied := false
			types := w.schema.GetPossibleTypes(parent)
			if w.p.CanRead() && parent.Kind != ast.Object {
				// A READ key is denied only admin types' fields: on an
				// interface (node), where the type resolves.
				types = nil
			}
			for _, t := range types {
				if !mayRead(w.p, t.Name, s.Name) {
					err := forbiddenField(w.p, t.Name, s.Name, fieldPath(fpath))
					w.errs = append(w.errs, &gqlerror.Error{Message: err.Error(), Path: fpath,
						Extensions: map[string]any{"code": string(err.Code), "field": err.Field}})
					denied = true
					break
				}
			}
			if !denied && s.Definition != nil && len(s.SelectionSet) > 0 {
				w.walk(s.SelectionSet, w.schema.Types[s.Definition.Type.Name()], fpath)
			}
		case *ast.InlineFragment:
			w.walk(s.SelectionSet, w.narrow(parent, s.TypeCondition), path)
		case *ast.FragmentSpread:
			if s.Definition == nil {
				continue
			}
			t := w.narrow(parent, s.Definition.TypeCondition)
			if t == nil {
				continue
			}
			key := s.Name + " " + t.Name
			if w.seen[key] {
				continue // already checked; its errors are reported at its first spread
			}
			w.seen[key] = true
			w.walk(s.Definition.SelectionSet, t, path)
		}
	}
}

// narrow is the type a fragment on cond selects from when spread on parent:
// parent itself when it is an object (the fragment applies or not), else
// the condition.
func (w *roleWalker) narrow(parent *ast.Definition, cond string) *ast.Definition {
	if cond == "" || parent == nil {
		return parent
	}
	if parent.Kind == ast.Object {
		return parent
	}
	return w.schema.Types[cond]
}
