package crashtest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/segmentd/segmentd/changelog"
	"github.com/segmentd/segmentd/ent/membershipchange"
	"github.com/segmentd/segmentd/ent/schema/pulid"
	"github.com/segmentd/segmentd/internal/testenv"
	"github.com/segmentd/segmentd/service"
	"github.com/segmentd/segmentd/store"
)

// Knobs. SEGMENTD_CRASH_KILLS sets the kills per store (default 5; CI's
// whole run stays under a minute a store); SEGMENTD_CRASH_SEED repeats a
// run's random choices (kill moments, the clients' events; not the
// interleaving of the clients, which the scheduler decides).
const (
	workers       = 4
	usersInPlay   = 3000
	crashEvent    = "Crash Sign Up"
	defaultKills  = 5
	subscribeFrom = "0.0" // before every change: the subscriber misses nothing at the start
)

// The rules under test: segment A (with an ACTIVE campaign) takes users
// whose Channel is Facebook on an event with a Reward Amount above 30;
// segment B takes any event with a Reward Amount above 90. A user's
// channel never changes, so the test can compute the expected members
// from the events the server acknowledged.
func channelOf(user int) string {
	if user%3 == 0 {
		return "Facebook"
	}
	return "Google"
}

func inA(user int, reward int) bool { return channelOf(user) == "Facebook" && reward > 30 }
func inB(reward int) bool           { return reward > 90 }

// TestCrashRecovery: 4 clients ingest through trackEvents (client-chosen
// messageIds, about 10% of them repeats) while segmentd is killed with
// SIGKILL at random moments and restarted on the same database, at least 5
// times. Then: every acknowledged event is stored exactly once; every
// membership and activation the acknowledged events imply exists, once;
// service.Verify finds the data consistent with every stored event,
// acknowledged or not (nothing half-written); and a subscriber that resumed
// membershipChanged from its last cursor after every restart received every
// change of the log exactly once, in order. The checker is then shown to
// fail on damaged data.
func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("kills real processes for about 30 s a store")
	}
	kills := defaultKills
	if v, err := strconv.Atoi(os.Getenv("SEGMENTD_CRASH_KILLS")); err == nil && v > 0 {
		kills = v
	}
	seed := uint64(time.Now().UnixNano())
	if v, err := strconv.ParseUint(os.Getenv("SEGMENTD_CRASH_SEED"), 10, 64); err == nil {
		seed = v
	}
	t.Logf("kills per store %d, seed %d (SEGMENTD_CRASH_SEED=%d repeats the random choices)", kills, seed, seed)
	bin := testenv.BuildSegmentd(t, "..")
	testenv.ForEachStore(t, func(t *testing.T, dbURL string) {
		r := &run{t: t, bin: bin, dbURL: dbURL, seed: seed, rnd: rand.New(rand.NewPCG(seed, 8)),
			acked: map[string]sentEvent{}, sent: map[string]sentEvent{}, uploadDir: t.TempDir()}
		r.crash(kills)
		ctx := context.Background()
		st, err := store.Open(ctx, dbURL)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		problems := r.check(ctx, st, r.received())
		for _, p := range problems {
			t.Error(p)
		}
		if len(problems) > 0 {
			return
		}

		// The checker must be able to fail: damage the data in ways a
		// broken durability would, one at a time, and see each reported.
		t.Run("checker catches damage", func(t *testing.T) {
			r.proc.Kill()
			got := r.received()
			if len(got) > 1 {
				expectProblem(t, "a change the subscriber missed", r.check(ctx, st, got[1:]), "subscriber did not receive change")
				expectProblem(t, "a change delivered twice", r.check(ctx, st, append(got, got[0])), "subscriber received change")
			}
			victim := r.ackedEventNotEntering(ctx, t, st)
			exec(t, st, `DELETE FROM events WHERE message_id = ?`, victim)
			expectProblem(t, "a lost acknowledged event", r.check(ctx, st, got), "acknowledged event "+strconv.Quote(victim)+" is not stored")
			userID := r.ackedMemberOfA(t)
			exec(t, st, `DELETE FROM memberships WHERE segment_ref = ? AND user_ref = (SELECT id FROM users WHERE user_id = ?)`, r.segA, userID)
			expectProblem(t, "a lost membership", r.check(ctx, st, got), "user "+userID+" should be in segment A")
			exec(t, st, `DELETE FROM campaign_activations WHERE id = (SELECT min(id) FROM campaign_activations WHERE campaign_ref = ?)`, r.flips[0])
			expectProblem(t, "a missed activation of a flipped campaign", r.check(ctx, st, got), "has not activated its ACTIVE campaign")
			exec(t, st, `INSERT INTO import_ids (job_ref, user_id, k) VALUES (?, 'left', 'left')`, r.killedImport)
			expectProblem(t, "a staged row left behind", r.check(ctx, st, got), "staged import rows")
			if err := os.WriteFile(filepath.Join(r.uploadDir, "segmentd-import-left.csv"), []byte("u\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			expectProblem(t, "an upload copy left behind", r.check(ctx, st, got), "an upload copy remains")
		})
	})
}

func expectProblem(t *testing.T, what string, problems []string, want string) {
	t.Helper()
	for _, p := range problems {
		if strings.Contains(p, want) {
			t.Logf("%s is reported: %s (%d problems)", what, p, len(problems))
			return
		}
	}
	t.Errorf("%s is not reported (want %q); problems: %q", what, want, problems)
}

// sentEvent is one event a client sent.
type sentEvent struct {
	MessageID string
	User      int
	Reward    int
}

type run struct {
	t          *testing.T
	bin, dbURL string
	seed       uint64
	rnd        *rand.Rand // the test goroutine's: kill times
	segA, segB string
	campaign   string
	// flips are campaigns of segment A flipped PAUSED/ACTIVE during
	// ingestion; importSeg is the static segment of the import killed
	// during its apply step (killedImport); uploadDir is the servers'
	// temp folder.
	flips        []string
	importSeg    string
	killedImport string
	uploadDir    string
	flipped      int

	url   atomic.Pointer[string] // the running server's; nil while it is down
	proc  *testenv.Process
	procs []*testenv.Process // every one started, for their logs

	mu         sync.Mutex
	sent       map[string]sentEvent // every messageId sent, first content
	acked      map[string]sentEvent
	requests   int
	failed     int
	ackedCalls int

	subMu     sync.Mutex
	changes   []change // what the subscriber received, in order
	subErrors []string
	resumes   int
}

type change struct {
	cursor string
	user   string
	kind   string
}

func (r *run) received() []change {
	r.subMu.Lock()
	defer r.subMu.Unlock()
	return append([]change(nil), r.changes...)
}

// start starts segmentd and publishes its URL.
func (r *run) start() {
	r.proc = testenv.StartProcess(r.t, r.bin, r.dbURL, "SEGMENTD_RATE_LIMIT=-1", "TMPDIR="+r.uploadDir)
	r.procs = append(r.procs, r.proc)
	u := r.proc.URL
	r.url.Store(&u)
}

// kill kills segmentd with SIGKILL, with no warning to the clients.
func (r *run) kill() {
	r.url.Store(nil)
	r.proc.Kill()
}

func (r *run) crash(kills int) {
	t := r.t
	r.start()
	r.setup()

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); r.subscriber(ctx) }()
	var ingest sync.WaitGroup
	stopIngest := make(chan struct{})
	for w := range workers {
		ingest.Add(1)
		go func() { defer ingest.Done(); r.client(w, stopIngest) }()
	}
	stopFlips := make(chan struct{})
	flipsDone := make(chan struct{})
	go func() { defer close(flipsDone); r.flipper(stopFlips) }()
	for k := 0; k < kills; k++ {
		time.Sleep(time.Duration(200+r.rnd.IntN(800)) * time.Millisecond)
		if k == kills/2 {
			r.importUntilStaged(ctx) // this kill interrupts an import
		}
		r.kill()
		r.start()
	}
	close(stopFlips)
	<-flipsDone
	r.activateFlips()
	time.Sleep(300 * time.Millisecond)
	close(stopIngest)
	ingest.Wait()

	// Let the subscriber catch up with the log, then stop it.
	ctxDB := context.Background()
	st, err := store.Open(ctxDB, r.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	want, err := st.Client.MembershipChange.Query().Where(membershipchange.SegmentRef(pulid.ID(r.segA))).Count(ctxDB)
	if err != nil {
		t.Fatal(err)
	}
	// 30 s, or up to 5 minutes while an older transaction runs on the
	// PostgreSQL cluster (another package's test, say): live delivery
	// waits for the oldest running transaction (README, "Live
	// subscriptions"). This test is about exactly-once, not latency.
	start, unblocked, checked := time.Now(), time.Now(), time.Time{}
	for len(r.received()) < want && time.Since(start) < 5*time.Minute && time.Since(unblocked) < 30*time.Second {
		if time.Since(checked) > 500*time.Millisecond {
			checked = time.Now()
			if olderTransactionRunning(ctxDB, st) {
				unblocked = checked // 30 s more from when it ends
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := len(r.received()); got < want && st.Dialect != "sqlite3" {
		// Live delivery on PostgreSQL waits for the cluster's oldest
		// running transaction (README, "Live subscriptions"): say so.
		var age, who string
		_ = st.DB.QueryRowContext(ctxDB, `SELECT (now() - xact_start)::text, datname || ' pid ' || pid || ': ' || left(query, 80)
			FROM pg_stat_activity WHERE xact_start IS NOT NULL AND pid <> pg_backend_pid() ORDER BY xact_start LIMIT 1`).Scan(&age, &who)
		t.Logf("the subscriber has %d of %d changes; the cluster's oldest transaction is %s old (%s)", got, want, age, who)
	}
	time.Sleep(200 * time.Millisecond) // anything extra would arrive now
	cancel()
	wg.Wait()
	r.mu.Lock()
	defer r.mu.Unlock()
	t.Logf("%d kills (one during import %s); %d requests, %d acknowledged, %d failed; %d distinct messageIds sent, %d acknowledged; %d campaign flips; subscriber resumed %d times, received %d changes",
		kills, r.killedImport, r.requests, r.ackedCalls, r.failed, len(r.sent), len(r.acked), r.flipped, r.resumes, len(r.received()))
	if r.ackedCalls == 0 || r.failed == 0 {
		t.Errorf("the run proves little: %d acknowledged and %d failed requests", r.ackedCalls, r.failed)
	}
}

func (r *run) setup() {
	t := r.t
	admin := r.proc.Admin()
	pred := func(scope, prop, op string, v any) map[string]any {
		return map[string]any{"scope": scope, "property": prop, "operator": op, "value": v}
	}
	create := func(name string, cond map[string]any) string {
		var out struct{ CreateSegment struct{ ID string } }
		admin.MustDo(t, `mutation($in: CreateSegmentInput!) { createSegment(input: $in) { id } }`, map[string]any{"in": map[string]any{
			"name": name, "kind": "EVENT_TRIGGERED", "triggerEvents": []string{crashEvent}, "condition": cond}}, &out)
		return out.CreateSegment.ID
	}
	r.segA = create("Crash A", map[string]any{"and": []any{
		pred("USER", "Channel", "EQ", "Facebook"), pred("EVENT", "Reward Amount", "GT", 30)}})
	r.segB = create("Crash B", pred("EVENT", "Reward Amount", "GT", 90))
	var c struct{ CreateCampaign struct{ ID string } }
	admin.MustDo(t, `mutation($s: ID!) { createCampaign(input: {name: "Crash Welcome", segmentId: $s, status: ACTIVE}) { id } }`,
		map[string]any{"s": r.segA}, &c)
	r.campaign = c.CreateCampaign.ID
	for i := range 2 {
		var f struct{ CreateCampaign struct{ ID string } }
		admin.MustDo(t, `mutation($n: String!, $s: ID!) { createCampaign(input: {name: $n, segmentId: $s, status: PAUSED}) { id } }`,
			map[string]any{"n": fmt.Sprintf("Crash Flip %d", i), "s": r.segA}, &f)
		r.flips = append(r.flips, f.CreateCampaign.ID)
	}
	var imp struct{ CreateSegment struct{ ID string } }
	admin.MustDo(t, `mutation { createSegment(input: {name: "Crash import", kind: STATIC}) { id } }`, nil, &imp)
	r.importSeg = imp.CreateSegment.ID
}

// client sends batches of 5 to 30 events until stop, each event new or
// (about 1 in 10) a repeat of one sent before by any client. A batch the
// server did not answer with 200 and no errors is unacknowledged; half of
// them are sent again (same messageIds) later.
func (r *run) client(w int, stop <-chan struct{}) {
	rnd := rand.New(rand.NewPCG(r.seed, uint64(w)))
	hc := &http.Client{Timeout: 20 * time.Second}
	var retry [][]sentEvent
	for seq := 0; ; {
		select {
		case <-stop:
			return
		default:
		}
		up := r.url.Load()
		if up == nil {
			time.Sleep(10 * time.Millisecond)
			continue
		}
		var batch []sentEvent
		if len(retry) > 0 && rnd.IntN(2) == 0 {
			batch, retry = retry[0], retry[1:]
		} else {
			n := 5 + rnd.IntN(26)
			r.mu.Lock()
			for range n {
				if len(r.sent) > 0 && rnd.IntN(10) == 0 {
					for _, e := range r.sent { // a random earlier one
						batch = append(batch, e)
						break
					}
					continue
				}
				seq++
				e := sentEvent{MessageID: fmt.Sprintf("w%d-%d", w, seq), User: rnd.IntN(usersInPlay), Reward: rnd.IntN(100)}
				r.sent[e.MessageID] = e
				batch = append(batch, e)
			}
			r.mu.Unlock()
		}
		ok := r.send(hc, *up, batch)
		r.mu.Lock()
		r.requests++
		if ok {
			r.ackedCalls++
			for _, e := range batch {
				r.acked[e.MessageID] = e
			}
		} else {
			r.failed++
			if rnd.IntN(2) == 0 {
				retry = append(retry, batch)
			}
		}
		r.mu.Unlock()
	}
}

// send posts one trackEvents call and reports whether it was acknowledged:
// HTTP 200, no errors, and a result for every input.
func (r *run) send(hc *http.Client, url string, batch []sentEvent) bool {
	inputs := make([]map[string]any, len(batch))
	for i, e := range batch {
		inputs[i] = map[string]any{
			"event": crashEvent, "userId": fmt.Sprintf("user-%d", e.User), "messageId": e.MessageID,
			"traits":     map[string]any{"Channel": channelOf(e.User)},
			"properties": map[string]any{"Reward Amount": e.Reward},
		}
	}
	body, _ := json.Marshal(map[string]any{
		"query":     `mutation($in: [TrackInput!]!) { trackEvents(inputs: $in) { accepted duplicates } }`,
		"variables": map[string]any{"in": inputs},
	})
	req, err := http.NewRequest(http.MethodPost, url+"/graphql", bytes.NewReader(body))
	if err != nil {
		return false
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+testenv.AdminKey)
	resp, err := hc.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var out struct {
		Data struct {
			TrackEvents *struct{ Accepted, Duplicates int }
		}
		Errors []json.RawMessage
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&out) != nil {
		return false
	}
	return len(out.Errors) == 0 && out.Data.TrackEvents != nil &&
		out.Data.TrackEvents.Accepted+out.Data.TrackEvents.Duplicates == len(batch)
}

// subscriber follows membershipChanged on segment A, from the start of the
// log, and after every disconnection resumes on the running server from
// the last cursor it received.
func (r *run) subscriber(ctx context.Context) {
	cursor := subscribeFrom
	first := true
	for ctx.Err() == nil {
		up := r.url.Load()
		if up == nil {
			time.Sleep(10 * time.Millisecond)
			continue
		}
		if !first {
			r.subMu.Lock()
			r.resumes++
			r.subMu.Unlock()
		}
		first = false
		cursor = r.follow(ctx, *up, cursor)
	}
}

// follow subscribes once and reads until the connection ends; it returns
// the last cursor received.
func (r *run) follow(ctx context.Context, url, cursor string) string {
	d := websocket.Dialer{Subprotocols: []string{testenv.TransportWS}, HandshakeTimeout: 5 * time.Second}
	conn, resp, err := d.DialContext(ctx, "ws"+strings.TrimPrefix(url, "http")+"/graphql", nil)
	if err != nil {
		time.Sleep(20 * time.Millisecond)
		return cursor
	}
	resp.Body.Close()
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if conn.WriteJSON(map[string]any{"type": "connection_init", "payload": map[string]any{"Authorization": "Bearer " + testenv.AdminKey}}) != nil {
		return cursor
	}
	err = conn.WriteJSON(map[string]any{"id": "1", "type": "subscribe", "payload": map[string]any{
		"query":     `subscription($s: ID, $after: String) { membershipChanged(segmentId: $s, after: $after) { cursor kind user { userId } } }`,
		"variables": map[string]any{"s": r.segA, "after": cursor},
	}})
	if err != nil {
		return cursor
	}
	for {
		var m struct {
			Type    string
			Payload json.RawMessage
		}
		if err := conn.ReadJSON(&m); err != nil {
			return cursor
		}
		switch m.Type {
		case "connection_ack", "pong":
		case "ping":
			_ = conn.WriteJSON(map[string]any{"type": "pong"})
		case "next":
			var p struct {
				Data struct {
					MembershipChanged struct {
						Cursor, Kind string
						User         struct{ UserID string }
					}
				}
				Errors []json.RawMessage
			}
			if err := json.Unmarshal(m.Payload, &p); err != nil || len(p.Errors) > 0 {
				r.subError(fmt.Sprintf("bad next %s", m.Payload))
				return cursor
			}
			mc := p.Data.MembershipChanged
			r.subMu.Lock()
			r.changes = append(r.changes, change{cursor: mc.Cursor, user: mc.User.UserID, kind: mc.Kind})
			r.subMu.Unlock()
			cursor = mc.Cursor
		default:
			r.subError(fmt.Sprintf("unexpected %s %s", m.Type, m.Payload))
			return cursor
		}
	}
}

func (r *run) subError(s string) {
	r.subMu.Lock()
	defer r.subMu.Unlock()
	r.subErrors = append(r.subErrors, s)
}

// check compares the database with what the clients were told and what
// the subscriber received, and returns every problem found.
func (r *run) check(ctx context.Context, st *store.Store, got []change) []string {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	r.mu.Lock()
	acked := make(map[string]sentEvent, len(r.acked))
	for k, v := range r.acked {
		acked[k] = v
	}
	r.mu.Unlock()
	r.subMu.Lock()
	for _, e := range r.subErrors {
		add("subscriber: %s", e)
	}
	r.subMu.Unlock()

	// 1. Every acknowledged event is stored, exactly once, as sent.
	stored := map[string]int{}
	storedContent := map[string]string{}
	rows, err := st.DB.QueryContext(ctx, `SELECT e.message_id, e.user_id, e.properties FROM events e`)
	if err != nil {
		return append(problems, "read events: "+err.Error())
	}
	for rows.Next() {
		var mid, uid, props string
		if err := rows.Scan(&mid, &uid, &props); err != nil {
			rows.Close()
			return append(problems, "read events: "+err.Error())
		}
		stored[mid]++
		storedContent[mid] = uid + " " + props
	}
	rows.Close()
	for mid, e := range acked {
		switch n := stored[mid]; {
		case n == 0:
			add("acknowledged event %q is not stored", mid)
		case n > 1:
			add("acknowledged event %q is stored %d times", mid, n)
		default:
			var p struct {
				Reward int `json:"Reward Amount"`
			}
			_, props, _ := strings.Cut(storedContent[mid], " ")
			if json.Unmarshal([]byte(props), &p) != nil || p.Reward != e.Reward ||
				!strings.HasPrefix(storedContent[mid], fmt.Sprintf("user-%d ", e.User)) {
				add("acknowledged event %q is stored as %s, sent as user-%d reward %d", mid, storedContent[mid], e.User, e.Reward)
			}
		}
	}

	// 2. The memberships and activations the acknowledged events imply.
	memberOf := func(seg string) (map[string]int, error) {
		out := map[string]int{}
		rows, err := st.DB.QueryContext(ctx, rebind(st, `SELECT u.user_id FROM memberships m JOIN users u ON u.id = m.user_ref WHERE m.segment_ref = ?`), seg)
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		for rows.Next() {
			var u string
			if err := rows.Scan(&u); err != nil {
				return nil, err
			}
			out[u]++
		}
		return out, rows.Err()
	}
	membersA, err := memberOf(r.segA)
	if err != nil {
		return append(problems, "read memberships: "+err.Error())
	}
	membersB, err := memberOf(r.segB)
	if err != nil {
		return append(problems, "read memberships: "+err.Error())
	}
	activated, err := memberOf2(ctx, st, r.campaign)
	if err != nil {
		return append(problems, "read activations: "+err.Error())
	}
	wantA, wantB := map[string]bool{}, map[string]bool{}
	for _, e := range acked {
		u := fmt.Sprintf("user-%d", e.User)
		if inA(e.User, e.Reward) {
			wantA[u] = true
		}
		if inB(e.Reward) {
			wantB[u] = true
		}
	}
	for u := range wantA {
		if membersA[u] != 1 {
			add("user %s should be in segment A once (an acknowledged event matches), is %d times", u, membersA[u])
		}
		if activated[u] != 1 {
			add("user %s should have activated the campaign once, did %d times", u, activated[u])
		}
	}
	for u := range wantB {
		if membersB[u] != 1 {
			add("user %s should be in segment B once (an acknowledged event matches), is %d times", u, membersB[u])
		}
	}

	// 3. The oracle, over every stored event, acknowledged or not.
	svc, err := service.New(st, service.Config{Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return append(problems, "verify: "+err.Error())
	}
	rep, err := svc.Verify(ctx)
	if err != nil {
		return append(problems, "verify: "+err.Error())
	}
	if !rep.OK() {
		add("verify: %s", rep)
	}

	// 4. The subscriber received every change of segment A's log once, in order.
	var logIDs []int64
	rows, err = st.DB.QueryContext(ctx, rebind(st, `SELECT id FROM membership_changes WHERE segment_ref = ?`), r.segA)
	if err != nil {
		return append(problems, "read changes: "+err.Error())
	}
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return append(problems, "read changes: "+err.Error())
		}
		logIDs = append(logIDs, id)
	}
	rows.Close()
	seen := map[int64]int{}
	var prev changelog.Cursor
	for i, c := range got {
		cur, err := changelog.ParseCursor(c.cursor)
		if err != nil {
			add("subscriber got cursor %q: %v", c.cursor, err)
			continue
		}
		if i > 0 && !prev.Less(cur) {
			add("subscriber got cursor %s after %s: out of order", cur, prev)
		}
		prev = cur
		seen[cur.Seq]++
		if seen[cur.Seq] == 2 {
			add("subscriber received change %d (user %s) more than once", cur.Seq, c.user)
		}
	}
	sort.Slice(logIDs, func(i, j int) bool { return logIDs[i] < logIDs[j] })
	for _, id := range logIDs {
		if seen[id] == 0 {
			add("subscriber did not receive change %d of the log", id)
		}
		delete(seen, id)
	}
	for id := range seen {
		add("subscriber received change %d, which is not in the log", id)
	}
	// 5. No request failed on a deadlock (campaign backfills, entries and
	// imports lock rows in compatible orders).
	for _, p := range r.procs {
		if n := strings.Count(p.Stderr(), "deadlock detected"); n > 0 {
			add("segmentd (%s) answered %d requests with a deadlock error", p, n)
		}
	}
	return append(problems, r.checkImports(ctx, st)...)
}

// memberOf2 counts each user's activations of a campaign.
func memberOf2(ctx context.Context, st *store.Store, campaignID string) (map[string]int, error) {
	out := map[string]int{}
	rows, err := st.DB.QueryContext(ctx, rebind(st, `SELECT u.user_id FROM campaign_activations a JOIN users u ON u.id = a.user_ref WHERE a.campaign_ref = ?`), campaignID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var u string
		if err := rows.Scan(&u); err != nil {
			return nil, err
		}
		out[u]++
	}
	return out, rows.Err()
}

// olderTransactionRunning reports whether, on PostgreSQL, some other
// session has had a transaction open for more than 10 s.
func olderTransactionRunning(ctx context.Context, st *store.Store) bool {
	if st.Dialect == "sqlite3" {
		return false
	}
	var n int
	err := st.DB.QueryRowContext(ctx, `SELECT count(*) FROM pg_stat_activity
		WHERE xact_start < now() - interval '10 seconds' AND pid <> pg_backend_pid()`).Scan(&n)
	return err == nil && n > 0
}

// ackedMemberOfA returns a user whom an acknowledged event put in segment A.
func (r *run) ackedMemberOfA(t *testing.T) string {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	var users []string
	for _, e := range r.acked {
		if inA(e.User, e.Reward) {
			users = append(users, fmt.Sprintf("user-%d", e.User))
		}
	}
	sort.Strings(users)
	if len(users) == 0 {
		t.Fatal("no acknowledged event entered segment A")
	}
	return users[0]
}

// ackedEventNotEntering returns the messageId of an acknowledged event that
// entered nobody into anything (nothing refers to it), to delete.
func (r *run) ackedEventNotEntering(ctx context.Context, t *testing.T, st *store.Store) string {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	ids := make([]string, 0, len(r.acked))
	for mid := range r.acked {
		ids = append(ids, mid)
	}
	sort.Strings(ids)
	for _, mid := range ids {
		var n int
		err := st.DB.QueryRowContext(ctx, rebind(st, `SELECT
			(SELECT COUNT(*) FROM memberships m JOIN events e ON e.id = m.event_ref WHERE e.message_id = ?) +
			(SELECT COUNT(*) FROM membership_changes c JOIN events e ON e.id = c.event_ref WHERE e.message_id = ?) +
			(SELECT COUNT(*) FROM campaign_activations a JOIN events e ON e.id = a.event_ref WHERE e.message_id = ?)`), mid, mid, mid).Scan(&n)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return mid
		}
	}
	t.Fatal("every acknowledged event entered someone")
	return ""
}

func exec(t *testing.T, st *store.Store, q string, args ...any) {
	t.Helper()
	res, err := st.DB.Exec(rebind(st, q), args...)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("%s: %d rows, want 1", q, n)
	}
}

// rebind turns ? placeholders into $n on PostgreSQL.
func rebind(st *store.Store, q string) string {
	if st.Dialect == "sqlite3" {
		return q
	}
	var b strings.Builder
	n := 0
	for _, c := range q {
		if c == '?' {
			n++
			fmt.Fprintf(&b, "$%d", n)
			continue
		}
		b.WriteRune(c)
	}
	return b.String()
}
