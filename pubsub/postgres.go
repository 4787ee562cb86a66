package pubsub

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/lib/pq"
)

// Channel is the PostgreSQL NOTIFY channel segmentd uses.
const Channel = "segmentd"

// Postgres is a Broker for several replicas on one PostgreSQL: a signal wakes
// this process's subscribers at once, and is sent to the other replicas by a
// NOTIFY. NOTIFYs are batched: at most one every FlushInterval, naming the
// topics signalled since the last one. A replica that reconnects its LISTEN
// connection wakes every topic, so that its readers catch up from the log.
type Postgres struct {
	*Memory
	db       *sql.DB
	listener *pq.Listener
	log      *slog.Logger

	mu      sync.Mutex
	pending map[string]bool
	kick    chan struct{}
	done    chan struct{}
	wg      sync.WaitGroup
}

// FlushInterval is the longest a signal waits to be batched into a NOTIFY.
const FlushInterval = 2 * time.Millisecond

// NewPostgres returns a broker that sends NOTIFYs through db and listens on
// a connection of its own to dsn.
func NewPostgres(db *sql.DB, dsn string, log *slog.Logger) (*Postgres, error) {
	p := &Postgres{
		Memory:  NewMemory(),
		db:      db,
		log:     log,
		pending: map[string]bool{},
		kick:    make(chan struct{}, 1),
		done:    make(chan struct{}),
	}
	p.listener = pq.NewListener(dsn, 100*time.Millisecond, 5*time.Second, func(ev pq.ListenerEventType, err error) {
		if err != nil {
			log.Warn("pubsub: listen connection", "event", ev, "err", err)
		}
	})
	if err := p.listener.Listen(Channel); err != nil {
		p.listener.Close()
		return nil, fmt.Errorf("pubsub.NewPostgres: listen: %w", err)
	}
	p.wg.Add(2)
	go p.receive()
	go p.flush()
	return p, nil
}

// Notify implements Broker.
func (p *Postgres) Notify(topic string) {
	p.Memory.Notify(topic)
	p.mu.Lock()
	p.pending[topic] = true
	p.mu.Unlock()
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

func (p *Postgres) flush() {
	defer p.wg.Done()
	for {
		select {
		case <-p.done:
			return
		case <-p.kick:
		}
		p.mu.Lock()
		topics := make([]string, 0, len(p.pending))
		for t := range p.pending {
			topics = append(topics, t)
		}
		p.pending = map[string]bool{}
		p.mu.Unlock()
		if len(topics) == 0 {
			continue
		}
		sort.Strings(topics)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := p.db.ExecContext(ctx, "SELECT pg_notify($1, $2)", Channel, strings.Join(topics, ","))
		cancel()
		if err != nil {
			// The other replicas catch up at their next poll.
			p.log.Warn("pubsub: notify", "err", err)
		}
		select {
		case <-p.done:
			return
		case <-time.After(FlushInterval):
		}
	}
}

func (p *Postgres) receive() {
	defer p.wg.Done()
	for {
		select {
		case <-p.done:
			return
		case n, ok := <-p.listener.Notify:
			if !ok {
				return
			}
			if n == nil {
				// Reconnected: notifications may have been lost.
				for _, t := range p.Memory.Topics() {
					p.Memory.Notify(t)
				}
				continue
			}
			for _, t := range strings.Split(n.Extra, ",") {
				if t != "" {
					p.Memory.Notify(t)
				}
			}
		}
	}
}

// Close implements Broker.
func (p *Postgres) Close() error {
	close(p.done)
	err := p.listener.Close()
	p.wg.Wait()
	return err
}

// NotifyPostgres sends one signal on topic to every replica listening on
// the PostgreSQL that db reaches, from a process that runs no broker (such
// as `segmentd keys revoke`).
func NotifyPostgres(ctx context.Context, db *sql.DB, topic string) error {
	if _, err := db.ExecContext(ctx, "SELECT pg_notify($1, $2)", Channel, topic); err != nil {
		return fmt.Errorf("pubsub.NotifyPostgres: %w", err)
	}
	return nil
}
