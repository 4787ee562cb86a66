// Package pubsub carries wake-up signals from the transactions that write
// segmentd's logs (membership changes, events, campaign activations) to the
// readers that stream them to subscribers. A signal carries no data: it says
// "something was committed on this topic; read the log". The log in the
// database is the truth, so a lost, late or repeated signal costs latency,
// never a change.
//
// Memory is the broker of one process (and of SQLite, which has one). The
// PostgreSQL broker adds LISTEN/NOTIFY so that replicas wake each other,
// batching signals into few small NOTIFYs.
package pubsub

import "sync"

// Broker delivers wake-up signals by topic.
type Broker interface {
	// Notify signals a topic. It never blocks.
	Notify(topic string)
	// Subscribe returns a channel that receives a value after each signal
	// on topic; signals that arrive while one is pending coalesce. cancel
	// releases the subscription; it is safe to call more than once.
	Subscribe(topic string) (wake <-chan struct{}, cancel func())
	// Close releases the broker's resources.
	Close() error
}

// Memory is an in-process Broker.
type Memory struct {
	mu   sync.Mutex
	subs map[string]map[*subscription]struct{}
}

type subscription struct {
	ch   chan struct{}
	once sync.Once
}

// NewMemory returns an in-process broker.
func NewMemory() *Memory {
	return &Memory{subs: map[string]map[*subscription]struct{}{}}
}

// Notify implements Broker.
func (m *Memory) Notify(topic string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for s := range m.subs[topic] {
		select {
		case s.ch <- struct{}{}:
		default: // a wake-up is already pending: it covers this one
		}
	}
}

// Subscribe implements Broker.
func (m *Memory) Subscribe(topic string) (<-chan struct{}, func()) {
	s := &subscription{ch: make(chan struct{}, 1)}
	m.mu.Lock()
	if m.subs[topic] == nil {
		m.subs[topic] = map[*subscription]struct{}{}
	}
	m.subs[topic][s] = struct{}{}
	m.mu.Unlock()
	return s.ch, func() {
		s.once.Do(func() {
			m.mu.Lock()
			delete(m.subs[topic], s)
			if len(m.subs[topic]) == 0 {
				delete(m.subs, topic)
			}
			m.mu.Unlock()
		})
	}
}

// Topics returns the topics that have subscribers.
func (m *Memory) Topics() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]string, 0, len(m.subs))
	for t := range m.subs {
		out = append(out, t)
	}
	return out
}

// Close implements Broker.
func (m *Memory) Close() error { return nil }
