package graph_test

// Roles on every field, over real HTTP: a WRITE key sees in its mutation
// results only what it sent and what it caused (the event, duplicate,
// accepted/duplicates, the identified user's userId and traits, the id and
// name of the segments entered and campaigns activated). Anything else it
// selects refuses the whole operation before it runs: data null, one
// FORBIDDEN error per such field naming its path, nothing written.

import (
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/segmentd/segmentd/auth"
	"github.com/segmentd/segmentd/internal/testenv"
	"github.com/segmentd/segmentd/server"
)

// writeSpec is what issue 12 lets a WRITE key read, field by field.
var writeSpec = []string{
	"Mutation.trackEvent", "Mutation.trackEvents", "Mutation.identify",
	"TrackResult.event", "TrackResult.duplicate", "TrackResult.enteredSegments", "TrackResult.activatedCampaigns",
	"TrackBatchResult.accepted", "TrackBatchResult.duplicates", "TrackBatchResult.results",
	"Event.id", "Event.messageId", "Event.type", "Event.name", "Event.userId", "Event.anonymousId",
	"Event.properties", "Event.traits", "Event.context", "Event.timestamp", "Event.receivedAt", "Event.outcomes",
	"SegmentOutcome.entered", "SegmentOutcome.reason",
	"Segment.id", "Segment.name", "Campaign.id", "Campaign.name",
	"User.userId", "User.traits",
}

// forbidden checks that r refused the operation: no data, and FORBIDDEN
// errors naming exactly the field paths want.
func forbidden(t *testing.T, label string, r *testenv.Response, want ...string) {
	t.Helper()
	noData(t, label, r)
	var got []string
	for _, e := range r.Errors {
		if e.Code() != "FORBIDDEN" {
			t.Errorf("%s: error %+v; want FORBIDDEN", label, e)
		}
		got = append(got, e.Field())
	}
	sort.Strings(got)
	sort.Strings(want)
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("%s: FORBIDDEN for %v; want %v", label, got, want)
	}
}

// TestWriteKeyFieldAttacks: the ways issue 12 found for a WRITE key to read
// other users' memberships and traits through its own mutation results are
// refused, with nothing written and nothing of the victims in the answer;
// the same queries with the ADMIN key do show the members.
func TestWriteKeyFieldAttacks(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL)
		admin := srv.Admin()
		segID := ingCreateSegment(t, admin, map[string]any{"name": "Signed up", "kind": "EVENT_TRIGGERED", "triggerEvents": []string{"Sign Up"}})
		ingCreateCampaign(t, admin, "Welcome", segID, "ACTIVE")
		static := createStatic(t, admin, "VIP")
		admin.MustDo(t, `mutation { identify(input: {userId: "victim", traits: {email: "victim@example.com"}}) { userId } }`, nil, nil)
		admin.MustDo(t, `mutation { trackEvent(input: {event: "Sign Up", userId: "victim", messageId: "v-1"}) { duplicate } }`, nil, nil)
		admin.MustDo(t, `mutation($s: ID!) { addUsersToSegment(segmentId: $s, userIds: ["victim"]) { added } }`, map[string]any{"s": static}, nil)
		_, writeKey := newKey(t, srv, "web tracker", auth.RoleWrite)
		writer := srv.Client(writeKey)
		events := eventCount(t, admin)

		membersSel := `members(first: 10) { edges { node { user { userId traits } } } }`
		attacks := []struct {
			name, query string
			want        []string
		}{
			{"outcomes' segment members", `mutation { trackEvent(input: {event: "Sign Up", userId: "attacker", messageId: "a-1"}) {
  event { outcomes { segment { ` + membersSel + ` } } } } }`, []string{"trackEvent.event.outcomes.segment"}},
			{"entered segments' members", `mutation { trackEvent(input: {event: "Sign Up", userId: "attacker", messageId: "a-2"}) {
  enteredSegments { name ` + membersSel + ` } } }`, []string{"trackEvent.enteredSegments.members"}},
			{"activated campaigns' segment", `mutation { trackEvent(input: {event: "Sign Up", userId: "attacker", messageId: "a-3"}) {
  activatedCampaigns { name activations { totalCount } segment { ` + membersSel + ` } } } }`,
				[]string{"trackEvent.activatedCampaigns.activations", "trackEvent.activatedCampaigns.segment"}},
			{"the event's user", `mutation { trackEvents(inputs: [{event: "Sign Up", userId: "victim", messageId: "a-4"}]) {
  accepted results { event { user { traits memberships { segment { ` + membersSel + ` } } } } } } }`,
				[]string{"trackEvents.results.event.user"}},
			{"identify's memberships", `mutation { identify(input: {userId: "victim", traits: {email: "attacker@example.com"}}) {
  userId memberships { segment { ` + membersSel + ` } } } }`, []string{"identify.memberships"}},
			{"through fragments", `mutation { x: identify(input: {userId: "victim", traits: {plan: "free"}}) { ...U } }
fragment U on User { traits ... on Node { id } ... on User { lastSeenAt } }`, []string{"x.id", "x.lastSeenAt"}},
			{"aliases and __typename", `mutation { t: trackEvent(input: {event: "Sign Up", userId: "attacker", messageId: "a-5"}) {
  __typename s: enteredSegments { __typename n: name k: kind } } }`, []string{"t.s.k"}},
		}
		for _, a := range attacks {
			r := writer.Do(t, a.query, nil)
			forbidden(t, a.name, r, a.want...)
			for _, leak := range []string{"victim@example.com", `"victim"`, "VIP"} {
				if strings.Contains(string(r.Data), leak) || strings.Contains(fmt.Sprint(r.Errors), leak) {
					t.Errorf("%s: the answer shows %s: %s %+v", a.name, leak, r.Data, r.Errors)
				}
			}
		}
		if n := eventCount(t, admin); n != events {
			t.Errorf("refused operations stored %d events", n-events)
		}
		var victim struct {
			User struct{ Traits map[string]any }
		}
		admin.MustDo(t, `{ user(userId: "victim") { traits } }`, nil, &victim)
		if fmt.Sprint(victim.User.Traits) != "map[email:victim@example.com]" {
			t.Errorf("a refused identify changed the victim's traits: %v", victim.User.Traits)
		}
		var attacker struct{ User *struct{ UserID string } }
		admin.MustDo(t, `{ user(userId: "attacker") { userId } }`, nil, &attacker)
		if attacker.User != nil {
			t.Errorf("a refused trackEvent created its user")
		}

		// What a WRITE key may see, it sees.
		var ok struct {
			TrackEvent struct {
				Duplicate          bool
				EnteredSegments    []struct{ ID, Name string }
				ActivatedCampaigns []struct{ Name string }
				Event              struct {
					MessageID string
					Outcomes  []struct {
						Entered bool
						Reason  string
					}
				}
			}
		}
		writer.MustDo(t, `mutation { trackEvent(input: {event: "Sign Up", userId: "u-42", messageId: "m-1"}) {
  duplicate enteredSegments { id name } activatedCampaigns { name } event { messageId outcomes { entered reason } } } }`, nil, &ok)
		got := ok.TrackEvent
		if got.Duplicate || len(got.EnteredSegments) != 1 || got.EnteredSegments[0].ID != segID || len(got.ActivatedCampaigns) != 1 ||
			got.Event.MessageID != "m-1" || len(got.Event.Outcomes) != 1 || !got.Event.Outcomes[0].Entered {
			t.Errorf("the WRITE key's own result: %+v", got)
		}
		// ADMIN sees everything in the same query.
		var full struct {
			TrackEvent struct {
				Event struct {
					Outcomes []struct {
						Segment struct {
							Members struct {
								Edges []struct {
									Node struct{ User struct{ UserID string } }
								}
							}
						}
					}
				}
			}
		}
		admin.MustDo(t, `mutation { trackEvent(input: {event: "Sign Up", userId: "u-43"}) { event { outcomes { segment { `+membersSel+` } } } } }`, nil, &full)
		if o := full.TrackEvent.Event.Outcomes; len(o) != 1 || len(o[0].Segment.Members.Edges) != 3 {
			t.Errorf("ADMIN's view of the outcomes: %+v", o)
		}
	})
}

// introspected is the part of the schema the walk needs.
type introspected struct {
	Schema struct {
		MutationType struct{ Name string }
		Types        []introType
	} `json:"__schema"`
}

type introType struct {
	Kind        string
	Name        string
	Fields      []introField
	InputFields []struct {
		Name         string
		Type         typeRef
		DefaultValue *string
	}
	EnumValues []struct{ Name string }
}

type typeRef struct {
	Kind   string
	Name   string
	OfType *typeRef
}

func (r typeRef) named() typeRef {
	for r.OfType != nil {
		r = *r.OfType
	}
	return r
}

// walker builds queries from the introspected schema.
type walker struct {
	types map[string]introType
	rules map[string]bool
}

// value is a literal of type r, for required arguments.
func (w walker) value(r typeRef) string {
	switch r.Kind {
	case "NON_NULL":
		return w.value(*r.OfType)
	case "LIST":
		return "[" + w.value(*r.OfType) + "]"
	}
	switch r.Name {
	case "Int", "Float":
		return "1"
	case "Boolean":
		return "true"
	case "Time":
		return `"2025-01-01T00:00:00Z"`
	case "Map", "JSON":
		return "{}"
	}
	t := w.types[r.Name]
	switch t.Kind {
	case "ENUM":
		return t.EnumValues[0].Name
	case "INPUT_OBJECT":
		var parts []string
		for _, f := range t.InputFields {
			if f.Type.Kind == "NON_NULL" && f.DefaultValue == nil {
				parts = append(parts, f.Name+": "+w.value(f.Type))
			}
		}
		return "{" + strings.Join(parts, ", ") + "}"
	}
	return `"x"`
}

// fieldRef is a field of an object type reachable by a WRITE key, at the
// response path from its root mutation.
type fieldRef struct {
	typ, field, path string
	allowed          bool
}

type introField = struct {
	Name string
	Args []struct {
		Name         string
		Type         typeRef
		DefaultValue *string
	}
	Type typeRef
}

// selection is the selection of every field of typ, descending into the
// fields the rules allow (onlyAllowed: selecting no other); it appends every
// field selected to refs.
func (w walker) selection(typ, path string, onlyAllowed bool, refs *[]fieldRef, args map[string]string) string {
	var b strings.Builder
	for _, f := range w.types[typ].Fields {
		if onlyAllowed && !w.rules[typ+"."+f.Name] {
			continue
		}
		b.WriteString(w.fieldSelection(typ, f, path, onlyAllowed, refs, args) + " ")
	}
	return b.String()
}

// rootSelection is the selection of the mutation root alone, as selection.
func (w walker) rootSelection(mutation, root string, onlyAllowed bool, refs *[]fieldRef, args map[string]string) string {
	for _, f := range w.types[mutation].Fields {
		if f.Name == root {
			return "mutation { " + w.fieldSelection(mutation, f, "", onlyAllowed, refs, args) + " }"
		}
	}
	return ""
}

func (w walker) fieldSelection(typ string, f introField, path string, onlyAllowed bool, refs *[]fieldRef, args map[string]string) string {
	key := typ + "." + f.Name
	allowed := w.rules[key]
	fpath := f.Name
	if path != "" {
		fpath = path + "." + f.Name
	}
	*refs = append(*refs, fieldRef{typ, f.Name, fpath, allowed})
	s := f.Name + w.arguments(key, f, args)
	child := w.types[f.Type.named().Name]
	if child.Kind == "OBJECT" || child.Kind == "INTERFACE" || child.Kind == "UNION" {
		if allowed {
			s += " { __typename " + w.selection(child.Name, fpath, onlyAllowed, refs, args) + "}"
		} else {
			s += " { __typename }"
		}
	}
	return s
}

// arguments are the field's arguments given in args (by "Type.field.arg"),
// and a value of the right type for each other required one.
func (w walker) arguments(key string, f introField, args map[string]string) string {
	var as []string
	for _, a := range f.Args {
		if v, ok := args[key+"."+a.Name]; ok {
			as = append(as, a.Name+": "+v)
		} else if a.Type.Kind == "NON_NULL" && a.DefaultValue == nil {
			as = append(as, a.Name+": "+w.value(a.Type))
		}
	}
	if len(as) == 0 {
		return ""
	}
	return "(" + strings.Join(as, ", ") + ")"
}

// TestWriteKeySchemaWalk walks the whole schema, from introspection, from
// every root field a WRITE key may call: every field of every type it can
// reach must have a rule (a new field without one fails here), the rules
// must be what issue 12 allows, and the server must answer accordingly: a
// query of every reachable field is refused naming exactly the denied ones,
// each denied field alone is refused, and a query of every allowed field
// returns them all. Nothing refused is written.
func TestWriteKeySchemaWalk(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		srv := testenv.StartServer(t, dbURL)
		admin := srv.Admin()
		segID := ingCreateSegment(t, admin, map[string]any{"name": "Signed up", "kind": "EVENT_TRIGGERED", "triggerEvents": []string{"Sign Up"}})
		ingCreateCampaign(t, admin, "Welcome", segID, "ACTIVE")
		_, writeKey := newKey(t, srv, "web tracker", auth.RoleWrite)
		writer := srv.Client(writeKey)

		var schema introspected
		writer.MustDo(t, `{ __schema { mutationType { name } types { kind name
  fields { name args { name defaultValue type { ...R } } type { ...R } }
  inputFields { name defaultValue type { ...R } } enumValues { name } } } }
fragment R on __Type { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } }`, nil, &schema)
		w := walker{types: map[string]introType{}, rules: server.WriteRules()}
		for _, typ := range schema.Schema.Types {
			w.types[typ.Name] = typ
		}
		mutation := schema.Schema.MutationType.Name

		// Every reachable field has a rule, and the rules allow what the
		// issue allows.
		var roots []string
		reached := map[string]bool{mutation: true}
		queue := []string{mutation}
		var allowed []string
		for len(queue) > 0 {
			typ := queue[0]
			queue = queue[1:]
			for _, f := range w.types[typ].Fields {
				key := typ + "." + f.Name
				rule, ok := w.rules[key]
				if !ok {
					t.Errorf("%s is reachable by a WRITE key and has no rule in server.writeRules: decide whether WRITE keys may read it", key)
					continue
				}
				if !rule {
					continue
				}
				allowed = append(allowed, key)
				if typ == mutation {
					roots = append(roots, f.Name)
				}
				child := w.types[f.Type.named().Name]
				if (child.Kind == "OBJECT" || child.Kind == "INTERFACE") && !reached[child.Name] {
					reached[child.Name] = true
					queue = append(queue, child.Name)
				}
			}
		}
		sort.Strings(allowed)
		spec := append([]string(nil), writeSpec...)
		sort.Strings(spec)
		if strings.Join(allowed, " ") != strings.Join(spec, " ") {
			t.Errorf("WRITE keys may read\n  %v\nthe issue allows\n  %v", allowed, spec)
		}
		for key, rule := range w.rules {
			typ, _, _ := strings.Cut(key, ".")
			if !reached[typ] {
				t.Errorf("rule %s=%v is for a type WRITE keys cannot reach", key, rule)
			}
		}

		// The server answers as the rules say, from each root.
		n := 0
		rootArgs := func() map[string]string {
			n++
			in := fmt.Sprintf(`{event: "Sign Up", userId: "walker-%d", messageId: "walk-%d"}`, n, n)
			return map[string]string{
				mutation + ".trackEvent.input":   in,
				mutation + ".trackEvents.inputs": "[" + in + "]",
				mutation + ".identify.input":     fmt.Sprintf(`{userId: "walker-%d", traits: {plan: "pro"}}`, n),
			}
		}
		events := eventCount(t, admin)
		for _, root := range roots {
			// Every reachable field at once: refused, naming each denied one.
			var refs []fieldRef
			q := w.rootSelection(mutation, root, false, &refs, rootArgs())
			var denied []string
			for _, ref := range refs {
				if !ref.allowed {
					denied = append(denied, ref.path)
				}
			}
			if len(denied) == 0 {
				t.Fatalf("%s: the walk found no denied field", root)
			}
			forbidden(t, root+": every reachable field", writer.Do(t, q, nil), denied...)
			t.Logf("%s: %d reachable fields selected, %d denied", root, len(refs), len(denied))

			// Each denied field alone: refused.
			for _, ref := range refs {
				if ref.allowed {
					continue
				}
				q := "mutation { " + pathQuery(w, mutation, ref, rootArgs()) + " }"
				forbidden(t, ref.typ+"."+ref.field+" alone", writer.Do(t, q, nil), ref.path)
			}

			// Every allowed field: answered, each one present.
			refs = nil
			q = w.rootSelection(mutation, root, true, &refs, rootArgs())
			var data map[string]any
			writer.MustDo(t, q, nil, &data)
			for _, ref := range refs {
				if !present(data, strings.Split(ref.path, ".")) {
					t.Errorf("%s: allowed field %s missing from %v", root, ref.path, data)
				}
			}
		}
		// Only the allowed queries wrote: one event each (identify stores
		// an IDENTIFY event).
		if got := eventCount(t, admin) - events; got != len(roots) {
			t.Errorf("the walk stored %d events; want %d (one per allowed query)", got, len(roots))
		}
	})
}

// pathQuery selects ref alone, through the allowed fields on its path.
func pathQuery(w walker, mutation string, ref fieldRef, args map[string]string) string {
	names := strings.Split(ref.path, ".")
	typ := mutation
	var open []string
	for i, name := range names {
		var field introField
		for _, f := range w.types[typ].Fields {
			if f.Name == name {
				field = f
			}
		}
		s := name + w.arguments(typ+"."+name, field, args)
		child := w.types[field.Type.named().Name]
		if child.Kind == "OBJECT" || child.Kind == "INTERFACE" || child.Kind == "UNION" {
			if i == len(names)-1 {
				s += " { __typename }"
			} else {
				s += " {"
			}
		}
		open = append(open, s)
		typ = child.Name
	}
	return strings.Join(open, " ") + strings.Repeat(" }", len(names)-1)
}

// present reports whether the response data holds path (through the first
// item of each list).
func present(v any, path []string) bool {
	if len(path) == 0 {
		return true
	}
	switch x := v.(type) {
	case map[string]any:
		child, ok := x[path[0]]
		if !ok {
			return false
		}
		return present(child, path[1:])
	case []any:
		return len(x) > 0 && present(x[0], path)
	}
	return false
}
