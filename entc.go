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
		entgql.WithSchemaHook(edgeDescriptions, typeDescriptions, whereDescriptions, enumDescriptions),
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

// typeDescriptions gives each entity type the text of its schema.Comment
// annotation, and the Query type one of its own.
func typeDescriptions(g *gen.Graph, s *ast.Schema) error {
	for _, node := range g.Nodes {
		def := s.Types[node.Name]
		if def == nil || def.Description != "" {
			continue
		}
		if c, ok := node.Annotations["Comment"].(map[string]any); ok {
			def.Description, _ = c["Text"].(string)
		}
	}
	if q := s.Types["Query"]; q != nil && q.Description == "" {
		q.Description = "Reads: every query needs a READ or ADMIN key."
	}
	return nil
}

// wherePredicates describes the generated predicate fields of a where
// input by the suffix entgql gives them.
var wherePredicates = []struct{ suffix, text string }{
	{"NotIn", "%s is none of these values."},
	{"In", "%s is one of these values."},
	{"NEQ", "%s is not equal to the value."},
	{"GTE", "%s is greater than or equal to the value."},
	{"GT", "%s is greater than the value."},
	{"LTE", "%s is less than or equal to the value."},
	{"LT", "%s is less than the value."},
	{"ContainsFold", "%s contains the value, ignoring case."},
	{"Contains", "%s contains the value."},
	{"HasPrefix", "%s starts with the value."},
	{"HasSuffix", "%s ends with the value."},
	{"EqualFold", "%s equals the value, ignoring case."},
	{"IsNil", "%s is null."},
	{"NotNil", "%s is not null."},
	{"", "%s equals the value."},
}

// whereDescriptions describes every field of the generated where inputs:
// entgql describes only the first predicate of each field.
func whereDescriptions(_ *gen.Graph, s *ast.Schema) error {
	for name, def := range s.Types {
		if def.Kind != ast.InputObject || !strings.HasSuffix(name, "WhereInput") {
			continue
		}
		for _, f := range def.Fields {
			if f.Description != "" && !strings.HasSuffix(f.Description, " predicates") {
				continue
			}
			switch {
			case f.Name == "not":
				f.Description = "Matches what this condition does not match."
			case f.Name == "and":
				f.Description = "Matches what every one of these conditions matches."
			case f.Name == "or":
				f.Description = "Matches what at least one of these conditions matches."
			case strings.HasPrefix(f.Name, "has") && strings.HasSuffix(f.Name, "With"):
				f.Description = "Has a " + lowerFirst(strings.TrimSuffix(strings.TrimPrefix(f.Name, "has"), "With")) + " that matches at least one of these conditions."
			case strings.HasPrefix(f.Name, "has") && f.Type.Name() == "Boolean":
				f.Description = "true: has a " + lowerFirst(strings.TrimPrefix(f.Name, "has")) + "; false: has none."
			default:
				for _, p := range wherePredicates {
					if base, ok := strings.CutSuffix(f.Name, p.suffix); ok && base != "" {
						f.Description = strings.Replace(p.text, "%s", base, 1)
						break
					}
				}
			}
		}
	}
	return nil
}

func lowerFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToLower(s[:1]) + s[1:]
}

// enumValues describes the values of the entities' enums.
var enumValues = map[string]map[string]string{
	"CampaignStatus": {
		"DRAFT":  "Being prepared: activates no one.",
		"ACTIVE": "Running: every member of its segment activates it, as its reentry policy allows.",
		"PAUSED": "Stopped for now: activates no one until it is ACTIVE again.",
		"ENDED":  "Over for good: activates no one and cannot be restarted.",
	},
	"ReentryPolicy": {
		"ONCE":        "A user activates the campaign once, ever (the default).",
		"EVERY_ENTRY": "A user activates the campaign on every entry into its segment (after an exit), at most once per cooldown.",
	},
	"SegmentKind": {
		"EVENT_TRIGGERED": "Users enter when a trigger event arrives for them and the condition holds.",
		"STATIC":          "Users are added by hand or by import.",
		"DYNAMIC":         "A user is a member exactly while the condition (on their traits) holds: checked on each of their events and trait changes.",
	},
	"EventType": {
		"TRACK":    "trackEvent, trackEvents or /v1/track: the only type that triggers segments.",
		"IDENTIFY": "identify or /v1/identify: traits for the user.",
		"PAGE":     "/v1/page: a page view, named by the page.",
		"SCREEN":   "/v1/screen: a screen view, named by the screen.",
		"GROUP":    "/v1/group: the user joins a group; the traits are the group's.",
		"ALIAS":    "/v1/alias: another ID of the user (previousId in the properties).",
	},
	"ImportMode": {
		"ADD":     "Add the file's users to the segment.",
		"REMOVE":  "Remove the file's users from the segment.",
		"REPLACE": "Make the segment hold exactly the file's users.",
	},
	"ImportStatus": {
		"PENDING":   "Waiting to run.",
		"RUNNING":   "Reading the file and staging its rows.",
		"SUCCEEDED": "Done: the segment changed, all at once.",
		"FAILED":    "Stopped: the segment is as it was before (see failure).",
	},
	"MembershipSource": {
		"EVENT":    "A trigger event whose condition held.",
		"MANUAL":   "addUsersToSegment or removeUsersFromSegment.",
		"IMPORT":   "A CSV import.",
		"BACKFILL": "A re-evaluation of stored events (updateSegment with BACKFILL or RECONCILE).",
		"TRAITS":   "A trait change: identify, or traits carried on an event.",
		"TIME":     "Time alone: a window passed or a membership expired.",
		"ERASURE":  "The user was deleted (deleteUser).",
	},
	"WebhookFormat": {
		"SEGMENTD": "segmentd's JSON: {type, id, timestamp, data}.",
		"SEGMENT":  "A Segment HTTP Tracking API batch of track calls (Audience Entered, Audience Exited, Campaign Activated), messageId the webhook id.",
	},
	"WebhookTopic": {
		"MEMBERSHIP_ENTERED": "A user entered a segment.",
		"MEMBERSHIP_EXITED":  "A user exited a segment.",
		"CAMPAIGN_ACTIVATED": "A user activated a campaign.",
	},
	"DeliveryStatus": {
		"PENDING":   "Not delivered yet: waiting for its first attempt or a retry.",
		"DELIVERED": "A 2xx answer came.",
		"FAILED":    "Every attempt failed; replayWebhookDeliveries queues it again.",
	},
	"ConditionKind": {
		"AND":       "A group: every child holds.",
		"OR":        "A group: at least one child holds.",
		"NOT":       "A group: its one child does not hold.",
		"PREDICATE": "A test of one property or trait.",
		"PERFORMED": "A test of the user's behaviour over time: how often they performed an event, or an aggregate of its property, within a window (not accepted as input yet).",
	},
	"ConditionScope": {
		"EVENT": "The triggering event's properties.",
		"USER":  "The user's traits.",
	},
	"ConditionOperator": {
		"EQ":           "Equal (typed: numbers as numbers, dates as dates).",
		"NEQ":          "Present and not equal.",
		"GT":           "Greater than a number or later than a date.",
		"GTE":          "Greater than or equal to a number, or not earlier than a date.",
		"LT":           "Less than a number or earlier than a date.",
		"LTE":          "Less than or equal to a number, or not later than a date.",
		"CONTAINS":     "A string contains the value, or a list has it as an element.",
		"NOT_CONTAINS": "A string or list that does not contain the value.",
		"STARTS_WITH":  "A string that starts with the value.",
		"ENDS_WITH":    "A string that ends with the value.",
		"MATCHES":      "A string in which the RE2 regular expression finds a match.",
		"IN":           "Equal to one of the values of a list.",
		"NOT_IN":       "Present and equal to none of the values of a list.",
		"EXISTS":       "Present and not null (the value is ignored).",
		"NOT_EXISTS":   "Missing or null (the value is ignored).",
		"BETWEEN":      "Between [low, high], inclusive: two numbers or two dates.",
		"WITHIN_LAST":  "A date no older than a duration (\"7d\", \"24h\", \"30m\") before the event's timestamp.",
	},
}

// enumDescriptions describes enum values: those of enumValues, and the
// values of the generated order-field enums.
func enumDescriptions(_ *gen.Graph, s *ast.Schema) error {
	for name, def := range s.Types {
		if def.Kind != ast.Enum {
			continue
		}
		for _, v := range def.EnumValues {
			if v.Description != "" {
				continue
			}
			if text, ok := enumValues[name][v.Name]; ok {
				v.Description = text
			} else if strings.HasSuffix(name, "OrderField") {
				v.Description = "Order by " + strings.ToLower(strings.ReplaceAll(v.Name, "_", " ")) + "."
			}
		}
	}
	return nil
}
