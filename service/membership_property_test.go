package service_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentd/segmentd/ent"
	"github.com/segmentd/segmentd/ent/membership"
	"github.com/segmentd/segmentd/ent/schema/pulid"
	"github.com/segmentd/segmentd/ent/segment"
	"github.com/segmentd/segmentd/ent/user"
	"github.com/segmentd/segmentd/internal/testenv"
	"github.com/segmentd/segmentd/service"
	"github.com/segmentd/segmentd/trigger"
)

// The segments of the membership property test, by what the model does
// with them (README "Exits and DYNAMIC segments" and "Expiry").
const (
	propPlain      = iota // EVENT_TRIGGERED "Sign Up", user.plan = "pro" AND event.amount > 50; no exits
	propFails             // EVENT_TRIGGERED "Sign Up", user.plan = "pro" AND event.amount > 20; whenConditionFails
	propOnEvent           // EVENT_TRIGGERED "Sign Up", event.amount > 50; exits on "Unsubscribed"
	propAfter             // EVENT_TRIGGERED "Sign Up", event.amount > 50; exits 2h after entry
	propExitCond          // EVENT_TRIGGERED "Sign Up", event.amount > 50; exits on "Purchase" or "Sign Up" with event.amount > 90
	propDynamic           // DYNAMIC user.plan = "pro"
	propRecent            // DYNAMIC user.seen WITHIN_LAST 3h: the clock moves users in and out
	propBought            // DYNAMIC performed "Purchase" at least 2 times within 2h: events and the clock move users
	propExitBought        // EVENT_TRIGGERED "Sign Up", event.amount > 50; exits on "Purchase" once performed "Purchase" at least 2 times within 2h
	propSegments
)

const propExpiry = 2 * time.Hour

// propWindow is propRecent's WITHIN_LAST.
const propWindow = 3 * time.Hour

// propBoughtWindow is propBought's window.
const propBoughtWindow = 2 * time.Hour

// propModel is the test's own recomputation of memberships from the history
// it sent: each user's traits, and per segment who is a member, since when,
// and the ENTERED/EXITED sequence the change log should hold.
type propModel struct {
	plan  map[string]string // user → plan trait ("" when absent)
	known map[string]bool   // users the service has seen
	// seen is the seen trait of users that have one; due is the
	// re-evaluation deadline propRecent has for them (as the service
	// computes it: the next instant the clock changes the answer).
	seen map[string]time.Time
	due  map[string]time.Time
	// purchases are the timestamps of each user's Purchase events, and
	// dueBought propBought's re-evaluation deadlines; counted marks an
	// event that counted in the user's behaviour (it rewrites the deadline).
	purchases map[string][]time.Time
	dueBought map[string]time.Time
	counted   bool
	member    [propSegments]map[string]time.Time
	history   [propSegments]map[string][]propChange
}

// propChange is one expected change-log row of a (segment, user).
type propChange struct {
	entered bool
	at      time.Time
}

func newPropModel() *propModel {
	m := &propModel{plan: map[string]string{}, known: map[string]bool{}, seen: map[string]time.Time{}, due: map[string]time.Time{},
		purchases: map[string][]time.Time{}, dueBought: map[string]time.Time{}}
	for s := range propSegments {
		m.member[s] = map[string]time.Time{}
		m.history[s] = map[string][]propChange{}
	}
	return m
}

func (m *propModel) enter(s int, u string, at time.Time) {
	if _, ok := m.member[s][u]; ok {
		return
	}
	m.member[s][u] = at
	m.history[s][u] = append(m.history[s][u], propChange{true, at})
}

func (m *propModel) exit(s int, u string, at time.Time) {
	if _, ok := m.member[s][u]; !ok {
		return
	}
	delete(m.member[s], u)
	m.history[s][u] = append(m.history[s][u], propChange{false, at})
}

// traits applies a trait change (nil value removes the trait), then the
// trait-driven rules: whenConditionFails members whose traits now fail leave,
// and the DYNAMIC segment holds exactly the users whose traits pass.
func (m *propModel) traits(u string, traits map[string]any, at time.Time) {
	newUser := !m.known[u]
	m.known[u] = true
	changed := false
	if v, ok := traits["plan"]; ok {
		old, had := m.plan[u]
		if v == nil {
			delete(m.plan, u)
			changed = had
		} else {
			m.plan[u] = v.(string)
			changed = !had || old != v
		}
	}
	_, setsSeen := traits["seen"]
	if v, ok := traits["seen"]; ok {
		ts, _ := time.Parse(time.RFC3339, v.(string))
		old, had := m.seen[u]
		m.seen[u] = ts
		changed = changed || !had || !old.Equal(ts)
	}
	if _, ok := traits["other"]; ok {
		changed = true // the model does not track its value; a change either way
	}
	m.settleTraits(u, at)
	// propRecent reads the clock: every event of the user re-evaluates it
	// at the event's instant, and a trait change of seen (or a new user)
	// writes the next deadline.
	if m.recent(u, at) {
		m.enter(propRecent, u, at)
	} else {
		m.exit(propRecent, u, at)
	}
	if newUser || changed && setsSeen {
		m.schedule(u, at)
	}
	// propBought reads the clock too: evaluated on every event of the
	// user; a counted Purchase (or a new user) writes the next deadline.
	if m.bought(u, at) {
		m.enter(propBought, u, at)
	} else {
		m.exit(propBought, u, at)
	}
	if newUser || m.counted {
		m.scheduleBought(u, at)
	}
}

// bought is propBought's condition for u at t: at least 2 purchases with
// timestamps in [t-2h, t].
func (m *propModel) bought(u string, t time.Time) bool {
	n := 0
	for _, p := range m.purchases[u] {
		if !p.After(t) && !p.Before(t.Add(-propBoughtWindow)) {
			n++
		}
	}
	return n >= 2
}

// scheduleBought sets u's propBought deadline to the first instant after t
// at which bought changes (a purchase leaves the window one nanosecond
// after timestamp + 2h), rounded up to the microsecond, as the service
// computes it.
func (m *propModel) scheduleBought(u string, t time.Time) {
	delete(m.dueBought, u)
	was := m.bought(u, t)
	var cands []time.Time
	for _, p := range m.purchases[u] {
		if c := p.Add(propBoughtWindow + time.Nanosecond); c.After(t) {
			cands = append(cands, c)
		}
		if p.After(t) {
			cands = append(cands, p)
		}
	}
	sort.Slice(cands, func(i, j int) bool { return cands[i].Before(cands[j]) })
	for _, c := range cands {
		if m.bought(u, c) != was {
			if r := c.Truncate(time.Microsecond); !r.Equal(c) {
				c = r.Add(time.Microsecond)
			}
			m.dueBought[u] = c
			return
		}
	}
}

// recent is propRecent's condition for u at t.
func (m *propModel) recent(u string, t time.Time) bool {
	s, ok := m.seen[u]
	return ok && !t.Before(s) && !t.After(s.Add(propWindow))
}

// schedule sets u's deadline to the next instant after t at which the
// clock changes recent: seen itself, or the microsecond after the window.
func (m *propModel) schedule(u string, t time.Time) {
	delete(m.due, u)
	s, ok := m.seen[u]
	switch {
	case !ok:
	case s.After(t):
		m.due[u] = s
	case !s.Add(propWindow).Before(t):
		m.due[u] = s.Add(propWindow + time.Microsecond)
	}
}

func (m *propModel) settleTraits(u string, at time.Time) {
	pro := m.plan[u] == "pro"
	if !pro {
		m.exit(propFails, u, at)
		m.exit(propDynamic, u, at)
	} else {
		m.enter(propDynamic, u, at)
	}
}

// event applies one tracked event at instant at.
func (m *propModel) event(u, name string, amount int, traits map[string]any, at time.Time) {
	// The event counts in its own behaviour predicates.
	m.counted = name == "Purchase"
	if m.counted {
		m.purchases[u] = append(m.purchases[u], at)
	}
	m.traits(u, traits, at)
	m.counted = false
	pro := m.plan[u] == "pro"
	switch name {
	case "Sign Up":
		if pro && amount > 50 {
			m.enter(propPlain, u, at)
		}
		// A member's later trigger event checks the whole condition, with
		// this event's properties.
		if pro && amount > 20 {
			m.enter(propFails, u, at)
		} else {
			m.exit(propFails, u, at)
		}
		if amount > 50 {
			m.enter(propOnEvent, u, at)
			m.enter(propAfter, u, at)
			m.enter(propExitCond, u, at)
			m.enter(propExitBought, u, at)
		}
		// Both a trigger and an exit event: the exit wins (enter, then leave).
		if amount > 90 {
			m.exit(propExitCond, u, at)
		}
	case "Unsubscribed":
		m.exit(propOnEvent, u, at)
	case "Purchase":
		if amount > 90 {
			m.exit(propExitCond, u, at)
		}
		// The exit event counts in its own exit condition.
		if m.bought(u, at) {
			m.exit(propExitBought, u, at)
		}
	}
}

// sweep makes the expiry exits due at now, each logged at its own instant
// (entry + after).
func (m *propModel) sweep(now time.Time) {
	for u, at := range m.member[propAfter] {
		if due := at.Add(propExpiry); !due.After(now) {
			m.exit(propAfter, u, due)
		}
	}
	// The re-evaluations due: the answer at now, a change dated at the
	// deadline (an exit never before its entry), then the next deadline.
	for u, due := range m.due {
		if due.After(now) {
			continue
		}
		entered, member := m.member[propRecent][u]
		switch holds := m.recent(u, now); {
		case holds && !member:
			m.enter(propRecent, u, due)
		case !holds && member:
			if due.Before(entered) {
				due = entered
			}
			m.exit(propRecent, u, due)
		}
		m.schedule(u, now)
	}
	for u, due := range m.dueBought {
		if due.After(now) {
			continue
		}
		entered, member := m.member[propBought][u]
		switch holds := m.bought(u, now); {
		case holds && !member:
			m.enter(propBought, u, due)
		case !holds && member:
			if due.Before(entered) {
				due = entered
			}
			m.exit(propBought, u, due)
		}
		m.scheduleBought(u, now)
	}
}

// propEnv reads an int from the environment, or gives def.
func propEnv(t *testing.T, name string, def uint64) uint64 {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		t.Fatalf("%s=%q: %v", name, v, err)
	}
	return n
}

// TestMembershipPropertyRandomHistories runs random histories of events
// (triggers, exit events, others, with and without traits), identify calls,
// clock jumps followed by the sweeps (expiries and the clock's
// re-evaluations), and manual adds and removes, on seven segments covering
// every kind of entry and exit, DYNAMIC ones moved by the clock (a trait's
// WITHIN_LAST, a behaviour's window) included; after each step the
// memberships, the change log, the stats and Verify must equal the test's
// own recomputation from the history it sent.
func TestMembershipPropertyRandomHistories(t *testing.T) {
	seed := propEnv(t, "SEGMENTD_PROPERTY_SEED", uint64(time.Now().UnixNano()))
	steps := int(propEnv(t, "SEGMENTD_PROPERTY_STEPS", 250))
	if testing.Short() {
		steps = min(steps, 60)
	}
	t.Logf("SEGMENTD_PROPERTY_SEED=%d SEGMENTD_PROPERTY_STEPS=%d", seed, steps)
	testenv.ForEachStore(t, func(t *testing.T, databaseURL string) {
		ctx := context.Background()
		clk := &testClock{t: time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)}
		svc, st := openService(t, databaseURL, clk)
		rng := rand.New(rand.NewPCG(seed, 15))

		userPlan := &trigger.ConditionInput{Scope: ref(trigger.ScopeUser), Property: ref("plan"),
			Operator: ref(trigger.OpEQ), Value: "pro"}
		amountOver := func(n int) *trigger.ConditionInput {
			return &trigger.ConditionInput{Scope: ref(trigger.ScopeEvent), Property: ref("amount"),
				Operator: ref(trigger.OpGT), Value: json.Number(strconv.Itoa(n))}
		}
		amountOver50 := amountOver(50)
		inputs := [propSegments]service.CreateSegmentInput{
			propPlain: {Name: "plain", Kind: segment.KindEVENT_TRIGGERED, TriggerEvents: []string{"Sign Up"},
				Condition: &trigger.ConditionInput{And: []*trigger.ConditionInput{userPlan, amountOver50}}},
			propFails: {Name: "fails", Kind: segment.KindEVENT_TRIGGERED, TriggerEvents: []string{"Sign Up"},
				Condition: &trigger.ConditionInput{And: []*trigger.ConditionInput{userPlan, amountOver(20)}},
				ExitRules: &service.ExitRulesInput{WhenConditionFails: ref(true)}},
			propOnEvent: {Name: "on event", Kind: segment.KindEVENT_TRIGGERED, TriggerEvents: []string{"Sign Up"},
				Condition: amountOver50, ExitRules: &service.ExitRulesInput{OnEvents: []string{"Unsubscribed"}}},
			propAfter: {Name: "after", Kind: segment.KindEVENT_TRIGGERED, TriggerEvents: []string{"Sign Up"},
				Condition: amountOver50, ExitRules: &service.ExitRulesInput{After: ref("2h")}},
			propExitCond: {Name: "exit condition", Kind: segment.KindEVENT_TRIGGERED, TriggerEvents: []string{"Sign Up"},
				Condition: amountOver50, ExitRules: &service.ExitRulesInput{OnEvents: []string{"Purchase", "Sign Up"},
					OnEventCondition: amountOver(90)}},
			propDynamic: {Name: "dynamic", Kind: segment.KindDYNAMIC, Condition: userPlan},
			propRecent: {Name: "recent", Kind: segment.KindDYNAMIC, Condition: &trigger.ConditionInput{Scope: ref(trigger.ScopeUser),
				Property: ref("seen"), Operator: ref(trigger.OpWithinLast), Value: "3h"}},
			propBought: {Name: "bought twice", Kind: segment.KindDYNAMIC, Condition: &trigger.ConditionInput{Performed: &trigger.PerformedInput{
				Event: "Purchase", Within: ref("2h"), Count: &trigger.ComparisonInput{Operator: trigger.OpGTE, Value: json.Number("2")}}}},
			propExitBought: {Name: "exit when bought twice", Kind: segment.KindEVENT_TRIGGERED, TriggerEvents: []string{"Sign Up"},
				Condition: amountOver50, ExitRules: &service.ExitRulesInput{OnEvents: []string{"Purchase"},
					OnEventCondition: &trigger.ConditionInput{Performed: &trigger.PerformedInput{
						Event: "Purchase", Within: ref("2h"), Count: &trigger.ComparisonInput{Operator: trigger.OpGTE, Value: json.Number("2")}}}}},
		}
		var segs [propSegments]pulid.ID
		for s, in := range inputs {
			seg, err := svc.CreateSegment(ctx, in)
			if err != nil {
				t.Fatalf("create %s: %v", in.Name, err)
			}
			segs[s] = seg.ID
		}

		m := newPropModel()
		users := make([]string, 12)
		for i := range users {
			users[i] = fmt.Sprintf("u%d", i)
		}
		randUser := func() string { return users[rng.IntN(len(users))] }
		randTraits := func() map[string]any {
			switch rng.IntN(7) {
			case 5, 6: // a visit between 4 h ago and an hour ahead, to the second
				at := clk.Now().Truncate(time.Second).Add(time.Duration(rng.IntN(5*3600)-4*3600) * time.Second)
				return map[string]any{"seen": at.Format(time.RFC3339)}
			case 0:
				return map[string]any{"plan": "pro"}
			case 1:
				return map[string]any{"plan": "free"}
			case 2:
				return map[string]any{"plan": nil}
			case 3:
				return map[string]any{"other": rng.IntN(3)}
			}
			return nil
		}
		var lastStep string
		msg := 0
		for step := range steps {
			now := clk.Now()
			var what string
			switch k := rng.IntN(10); {
			case k < 4: // a batch of events
				var ins []*service.TrackInput
				var parts []string
				for range 1 + rng.IntN(5) {
					u := randUser()
					name := []string{"Sign Up", "Sign Up", "Sign Up", "Unsubscribed", "Purchase", "Page View"}[rng.IntN(6)]
					amount := rng.IntN(100)
					traits := randTraits()
					msg++
					ins = append(ins, &service.TrackInput{Event: name, UserID: ref(u), MessageID: ref(fmt.Sprintf("m%d", msg)),
						Properties: map[string]any{"amount": amount}, Traits: traits})
					m.event(u, name, amount, traits, now)
					parts = append(parts, fmt.Sprintf("%s %s amount=%d traits=%v", u, name, amount, traits))
				}
				what = "track [" + strings.Join(parts, "; ") + "]"
				if _, err := svc.TrackBatch(ctx, ins); err != nil {
					t.Fatalf("step %d %s: %v", step, what, err)
				}
			case k < 6: // identify
				u := randUser()
				traits := randTraits()
				if traits == nil {
					traits = map[string]any{"plan": "pro"}
				}
				msg++
				what = fmt.Sprintf("identify %s %v", u, traits)
				if _, err := svc.Identify(ctx, service.IdentifyInput{UserID: u, Traits: traits, MessageID: ref(fmt.Sprintf("m%d", msg))}); err != nil {
					t.Fatalf("step %d %s: %v", step, what, err)
				}
				m.traits(u, traits, now)
			case k < 8: // a clock jump, then the sweep
				d := []time.Duration{time.Second, 10 * time.Minute, time.Hour, propExpiry - time.Minute, propExpiry,
					time.Duration(rng.IntN(180)) * time.Minute}[rng.IntN(6)]
				clk.Set(now.Add(d))
				what = fmt.Sprintf("jump %v to %s, sweep", d, clk.Now().Format(time.RFC3339))
				if _, err := svc.SweepDue(ctx); err != nil {
					t.Fatalf("step %d %s: %v", step, what, err)
				}
				if _, err := svc.SweepReevaluations(ctx); err != nil {
					t.Fatalf("step %d %s: %v", step, what, err)
				}
				m.sweep(clk.Now())
			case k < 9: // manual add, to the segments without event-driven exits
				s := []int{propPlain, propAfter}[rng.IntN(2)]
				u := randUser()
				what = fmt.Sprintf("add %s to %s", u, inputs[s].Name)
				if _, err := svc.AddUsers(ctx, segs[s], []string{u}); err != nil {
					t.Fatalf("step %d %s: %v", step, what, err)
				}
				m.known[u] = true
				m.enter(s, u, now)
			default: // manual remove, from any segment but the DYNAMIC one
				s := rng.IntN(propDynamic)
				u := randUser()
				what = fmt.Sprintf("remove %s from %s", u, inputs[s].Name)
				if _, err := svc.RemoveUsers(ctx, segs[s], []string{u}); err != nil {
					t.Fatalf("step %d %s: %v", step, what, err)
				}
				m.exit(s, u, now)
			}
			label := fmt.Sprintf("seed %d step %d (%s; previous: %s)", seed, step, what, lastStep)
			checkPropModel(t, svc, st.Client, segs, inputs, m, label)
			lastStep = what
		}
		logPropCoverage(t, m, inputs)
	})
}

// checkPropModel compares the service with the model: the membership rows,
// the change log's ENTERED/EXITED sequence per (segment, user) (whose last
// kind must then say the same as the membership), stats and Verify.
func checkPropModel(t *testing.T, svc *service.Service, client *ent.Client, segs [propSegments]pulid.ID,
	inputs [propSegments]service.CreateSegmentInput, m *propModel, label string) {
	t.Helper()
	ctx := context.Background()
	users, err := client.User.Query().Select(user.FieldID, user.FieldUserID).All(ctx)
	if err != nil {
		t.Fatal(err)
	}
	external := map[pulid.ID]string{}
	for _, u := range users {
		external[u.ID] = u.UserID
	}
	failed := false
	for s, seg := range segs {
		name := inputs[s].Name
		rows, err := client.Membership.Query().Where(membership.SegmentRef(seg)).All(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]bool{}
		for _, r := range rows {
			got[external[r.UserRef]] = true
			if want, ok := m.member[s][external[r.UserRef]]; ok && !r.EnteredAt.Equal(want) {
				t.Errorf("%s: %s: %s entered at %v, want %v", label, name, external[r.UserRef], r.EnteredAt, want)
				failed = true
			}
		}
		if g, w := propKeys(got), propKeys(m.member[s]); g != w {
			t.Errorf("%s: %s: members %s, want %s", label, name, g, w)
			failed = true
		}
		gotLog := map[string][]propChange{}
		for _, c := range changeLog(t, client, seg) {
			u := external[c.user]
			gotLog[u] = append(gotLog[u], propChange{c.entered, c.at})
		}
		for _, u := range unionKeys(gotLog, m.history[s]) {
			g, w := kinds(gotLog[u]), kinds(m.history[s][u])
			if g != w {
				t.Errorf("%s: %s: log of %s is %s, want %s", label, name, u, g, w)
				failed = true
			}
			if l := gotLog[u]; len(l) > 0 && l[len(l)-1].entered != got[u] {
				t.Errorf("%s: %s: log of %s ends %s but membership is %v", label, name, u, kinds(l[len(l)-1:]), got[u])
				failed = true
			}
		}
		stats, err := svc.Stats(ctx, seg, time.UTC)
		if err != nil {
			t.Fatal(err)
		}
		if stats.TotalUsers != len(m.member[s]) {
			t.Errorf("%s: %s: stats say %d members, want %d", label, name, stats.TotalUsers, len(m.member[s]))
			failed = true
		}
	}
	rep, err := svc.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range rep.Findings {
		t.Errorf("%s: verify: %+v", label, f)
		failed = true
	}
	if failed {
		t.FailNow()
	}
}

// logPropCoverage says how many entries and exits each segment saw, so a
// run that exercised nothing shows.
func logPropCoverage(t *testing.T, m *propModel, inputs [propSegments]service.CreateSegmentInput) {
	t.Helper()
	for s := range propSegments {
		entered, exited := 0, 0
		for _, l := range m.history[s] {
			for _, c := range l {
				if c.entered {
					entered++
				} else {
					exited++
				}
			}
		}
		t.Logf("%s: %d entries, %d exits, %d members at the end", inputs[s].Name, entered, exited, len(m.member[s]))
	}
}

// kinds spells a change sequence as "E@08:00:00 X@10:00:00 ...".
func kinds(l []propChange) string {
	parts := make([]string, len(l))
	for i, c := range l {
		k := "X"
		if c.entered {
			k = "E"
		}
		parts[i] = k + "@" + c.at.UTC().Format("01-02T15:04:05.999999")
	}
	return strings.Join(parts, " ")
}

func propKeys[V any](m map[string]V) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return "[" + strings.Join(keys, " ") + "]"
}

func unionKeys[V any](a, b map[string]V) []string {
	seen := map[string]bool{}
	for k := range a {
		seen[k] = true
	}
	for k := range b {
		seen[k] = true
	}
	keys := make([]string, 0, len(seen))
	for k := range seen {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
