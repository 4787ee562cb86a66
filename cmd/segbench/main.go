// Command segbench measures segmentd under load. Scenario "live" measures
// the time from an event's acknowledgement to the membershipChanged message
// at a subscriber, at a fixed event rate, and the server's memory per open
// subscription.
//
//	go run ./cmd/segbench -scenario live                 # starts its own segmentd on SQLite
//	go run ./cmd/segbench -scenario live -database-url postgres://postgres@127.0.0.1/test
//
// Without -url it builds cmd/segmentd, starts it on a fresh database on a
// loopback port, and stops it at the end, so that the server's memory can be
// read from /proc. It stops by itself after -duration.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

type config struct {
	url, key, databaseURL, scenario string
	pprof                           string
	rate, subs, batch, perConn      int
	duration                        time.Duration
}

func main() {
	var c config
	flag.StringVar(&c.url, "url", "", "a running segmentd (http://127.0.0.1:8080); empty: start one")
	flag.StringVar(&c.key, "key", "", "ADMIN key of the running segmentd")
	flag.StringVar(&c.databaseURL, "database-url", "", "database of the segmentd segbench starts (default: a temp SQLite file)")
	flag.StringVar(&c.scenario, "scenario", "live", "live")
	flag.IntVar(&c.rate, "rate", 1000, "events per second")
	flag.IntVar(&c.batch, "batch", 10, "events per trackEvents call")
	flag.IntVar(&c.subs, "subs", 5000, "idle subscriptions to open for the memory figure")
	flag.IntVar(&c.perConn, "subs-per-conn", 1, "idle subscriptions per websocket connection")
	flag.DurationVar(&c.duration, "duration", 10*time.Second, "how long to send events")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, c); err != nil {
		fmt.Fprintln(os.Stderr, "segbench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, c config) error {
	if c.scenario != "live" {
		return fmt.Errorf("unknown scenario %q", c.scenario)
	}
	pid := 0
	if c.url == "" {
		srv, err := startServer(ctx, c.databaseURL)
		if err != nil {
			return err
		}
		defer srv.stop()
		c.url, c.key, pid = srv.url, srv.key, srv.cmd.Process.Pid
		c.pprof = srv.pprof
	}
	return live(ctx, c, pid)
}

type server struct {
	cmd   *exec.Cmd
	pprof string // the server's profiling address
	url   string
	key   string
	dir   string
	stop  func()
}

func startServer(ctx context.Context, databaseURL string) (*server, error) {
	dir, err := os.MkdirTemp("", "segbench")
	if err != nil {
		return nil, err
	}
	bin := filepath.Join(dir, "segmentd")
	fmt.Println("building cmd/segmentd ...")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/segmentd")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return nil, fmt.Errorf("build segmentd (run segbench from the repository root): %w", err)
	}
	if databaseURL == "" {
		databaseURL = filepath.Join(dir, "bench.db")
	}
	key := "sgd_segbench_admin_key_0123456789"
	cmd := exec.Command(bin, "--addr", "127.0.0.1:0", "--database-url", databaseURL, "--log-level", "warn")
	pprofAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	cmd.Env = append(os.Environ(), "SEGMENTD_ADMIN_KEY="+key, "SEGMENTD_PPROF_ADDR="+pprofAddr)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &server{cmd: cmd, key: key, dir: dir, pprof: pprofAddr}
	s.stop = func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
		os.RemoveAll(dir)
	}
	re := regexp.MustCompile(`GraphiQL: (http://[0-9.:]+)/`)
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			s.url = m[1]
			go func() {
				for sc.Scan() {
				}
			}()
			return s, nil
		}
	}
	s.stop()
	return nil, errors.New("segmentd did not start")
}

func gql(c config, query string, vars map[string]any, out any) error {
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, _ := http.NewRequest(http.MethodPost, c.url+"/graphql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+c.key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var r struct {
		Data   json.RawMessage
		Errors []struct{ Message string }
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return err
	}
	if len(r.Errors) > 0 {
		return fmt.Errorf("graphql: %s", r.Errors[0].Message)
	}
	if out != nil {
		return json.Unmarshal(r.Data, out)
	}
	return nil
}

func dial(c config, segID string, id string) (*websocket.Conn, error) {
	d := websocket.Dialer{Subprotocols: []string{"graphql-transport-ws"}}
	conn, _, err := d.Dial("ws"+strings.TrimPrefix(c.url, "http")+"/graphql", nil)
	if err != nil {
		return nil, err
	}
	if err := conn.WriteJSON(map[string]any{"type": "connection_init", "payload": map[string]any{"Authorization": "Bearer " + c.key}}); err != nil {
		return nil, err
	}
	var ack struct{ Type string }
	if err := conn.ReadJSON(&ack); err != nil || ack.Type != "connection_ack" {
		return nil, fmt.Errorf("connection_init: %v %v", ack.Type, err)
	}
	return conn, subscribe(conn, segID, id)
}

func subscribe(conn *websocket.Conn, segID, id string) error {
	return conn.WriteJSON(map[string]any{"id": id, "type": "subscribe", "payload": map[string]any{
		"query":     `subscription($s: ID) { membershipChanged(segmentId: $s) { cursor user { userId } } }`,
		"variables": map[string]any{"s": segID},
	}})
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// liveMemory returns the server's heap and stack in use after a GC, read
// from its profiling endpoint: what its objects really hold, unlike RSS,
// which also counts garbage the collector has not returned yet.
func liveMemory(pprofAddr string) int64 {
	if pprofAddr == "" {
		return 0
	}
	resp, err := http.Get("http://" + pprofAddr + "/debug/pprof/heap?gc=1&debug=1")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	var total int64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		line := sc.Text()
		var n int64
		if _, err := fmt.Sscanf(line, "# HeapInuse = %d", &n); err == nil {
			total += n
		}
		if _, err := fmt.Sscanf(line, "# Stack = %d", &n); err == nil {
			total += n
		}
	}
	return total
}

func rss(pid int) int64 {
	if pid == 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			f := strings.Fields(line)
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb * 1024
		}
	}
	return 0
}

func live(ctx context.Context, c config, pid int) error {
	var seg struct{ CreateSegment struct{ ID string } }
	err := gql(c, `mutation($in: CreateSegmentInput!) { createSegment(input: $in) { id } }`, map[string]any{"in": map[string]any{
		"name": "segbench live", "kind": "EVENT_TRIGGERED", "triggerEvents": []string{"Sign Up"},
		"condition": map[string]any{"scope": "EVENT", "property": "Reward Amount", "operator": "GT", "value": 50},
	}}, &seg)
	if err != nil {
		return err
	}
	segID := seg.CreateSegment.ID

	// Memory per subscription: RSS before and after opening c.subs idle ones
	// (on another segment, so they receive nothing).
	var other struct{ CreateSegment struct{ ID string } }
	if err := gql(c, `mutation { createSegment(input: {name: "segbench idle", kind: STATIC}) { id } }`, nil, &other); err != nil {
		return err
	}
	before, liveBefore := rss(pid), liveMemory(c.pprof)
	var idle []*websocket.Conn
	perConn := max(c.perConn, 1)
	for i := 0; i < c.subs; i += perConn {
		conn, err := dial(c, other.CreateSegment.ID, "0")
		if err != nil {
			return fmt.Errorf("open subscription %d: %w", i, err)
		}
		for j := 1; j < perConn; j++ {
			if err := subscribe(conn, other.CreateSegment.ID, strconv.Itoa(j)); err != nil {
				return err
			}
		}
		idle = append(idle, conn)
		if (i+perConn)%1000 == 0 {
			fmt.Printf("opened %d subscriptions\n", i+perConn)
		}
	}
	time.Sleep(time.Second)
	after, liveAfter := rss(pid), liveMemory(c.pprof)
	defer func() {
		for _, c := range idle {
			c.Close()
		}
	}()

	conn, err := dial(c, segID, "lat")
	if err != nil {
		return err
	}
	defer conn.Close()
	time.Sleep(200 * time.Millisecond)

	var (
		mu      sync.Mutex
		acked   = map[string]time.Time{}
		lat     []time.Duration
		recvErr error
		done    = make(chan struct{})
	)
	total := c.rate * int(c.duration/time.Second)
	go func() {
		defer close(done)
		for len(lat) < total {
			var m struct {
				Type    string
				Payload struct {
					Data struct {
						MembershipChanged struct{ User struct{ UserID string } }
					}
				}
			}
			if err := conn.ReadJSON(&m); err != nil {
				recvErr = err
				return
			}
			if m.Type == "ping" {
				_ = conn.WriteJSON(map[string]any{"type": "pong"})
				continue
			}
			if m.Type != "next" {
				continue
			}
			now := time.Now()
			u := m.Payload.Data.MembershipChanged.User.UserID
			mu.Lock()
			if t, ok := acked[u]; ok {
				lat = append(lat, now.Sub(t))
			} else {
				acked[u] = now // arrived before the ack: latency 0, recorded at ack
			}
			mu.Unlock()
		}
	}()

	fmt.Printf("sending %d events at %d/s in batches of %d ...\n", total, c.rate, c.batch)
	interval := time.Second * time.Duration(c.batch) / time.Duration(c.rate)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	start := time.Now()
	var sendErrs int
	var wg sync.WaitGroup
	for sent := 0; sent < total; sent += c.batch {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		inputs := make([]map[string]any, c.batch)
		ids := make([]string, c.batch)
		for i := range inputs {
			ids[i] = fmt.Sprintf("u%d-%d", start.UnixNano(), sent+i)
			inputs[i] = map[string]any{"event": "Sign Up", "userId": ids[i], "properties": map[string]any{"Reward Amount": 80}}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := gql(c, `mutation($in: [TrackInput!]!) { trackEvents(inputs: $in) { accepted } }`, map[string]any{"in": inputs}, nil)
			now := time.Now()
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				sendErrs++
				return
			}
			for _, id := range ids {
				if _, ok := acked[id]; ok {
					lat = append(lat, 0) // the subscriber heard first
				} else {
					acked[id] = now
				}
			}
		}()
		if (sent/c.batch)%(c.rate/c.batch) == 0 {
			fmt.Printf("  %5.1fs sent %d received %d\n", time.Since(start).Seconds(), sent, len(lat))
		}
	}
	wg.Wait()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
	}
	mu.Lock()
	defer mu.Unlock()
	if recvErr != nil {
		return recvErr
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(float64(len(lat))*p))]
	}
	fmt.Printf("\n| figure | value |\n|---|---|\n")
	fmt.Printf("| events sent (rate %d/s, batches of %d) | %d in %.1fs |\n", c.rate, c.batch, total, time.Since(start).Seconds())
	fmt.Printf("| changes received | %d (errors sending: %d) |\n", len(lat), sendErrs)
	fmt.Printf("| ack → membershipChanged p50 | %s |\n", pct(0.50).Round(10*time.Microsecond))
	fmt.Printf("| ack → membershipChanged p95 | %s |\n", pct(0.95).Round(10*time.Microsecond))
	fmt.Printf("| ack → membershipChanged p99 | %s |\n", pct(0.99).Round(10*time.Microsecond))
	if pid != 0 {
		fmt.Printf("| server RSS before / after %d idle subscriptions (%d per connection) | %d MB / %d MB |\n", c.subs, perConn, before>>20, after>>20)
		if c.subs > 0 {
			fmt.Printf("| server RSS per open subscription | %.1f KB |\n", float64(after-before)/float64(c.subs)/1024)
			if liveAfter > 0 {
				fmt.Printf("| server heap+stack in use per open subscription (after GC) | %.1f KB |\n", float64(liveAfter-liveBefore)/float64(c.subs)/1024)
			}
		}
	}
	return nil
}
