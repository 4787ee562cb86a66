package pubsub_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/segmentd/segmentd/internal/testenv"
	"github.com/segmentd/segmentd/pubsub"
	"github.com/segmentd/segmentd/store"
)

func waitWake(t *testing.T, ch <-chan struct{}, d time.Duration) bool {
	t.Helper()
	select {
	case <-ch:
		return true
	case <-time.After(d):
		return false
	}
}

func TestMemoryWakesSubscribersOfTheTopicOnly(t *testing.T) {
	t.Parallel()
	m := pubsub.NewMemory()
	a, cancelA := m.Subscribe("changes")
	b, cancelB := m.Subscribe("events")
	defer cancelB()
	m.Notify("changes")
	if !waitWake(t, a, time.Second) {
		t.Fatal("subscriber of the topic was not woken")
	}
	if waitWake(t, b, 50*time.Millisecond) {
		t.Fatal("subscriber of another topic was woken")
	}
	// Signals coalesce: many notifies while one is pending make one wake-up,
	// and Notify never blocks on a subscriber that does not read.
	for i := 0; i < 1000; i++ {
		m.Notify("changes")
	}
	if !waitWake(t, a, time.Second) {
		t.Fatal("no wake-up after a burst")
	}
	if waitWake(t, a, 50*time.Millisecond) {
		t.Fatal("a burst made more than one pending wake-up")
	}
	cancelA()
	cancelA() // safe twice
	m.Notify("changes")
	if waitWake(t, a, 50*time.Millisecond) {
		t.Fatal("woken after cancel")
	}
	if got := m.Topics(); len(got) != 1 || got[0] != "events" {
		t.Fatalf("topics = %v, want [events]", got)
	}
}

// TestPostgresWakesOtherReplicas: a Notify on one broker wakes the
// subscribers of another broker on the same database, through NOTIFY.
func TestPostgresWakesOtherReplicas(t *testing.T) {
	t.Parallel()
	url := testenv.DatabaseURL(t, "postgres")
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	open := func() *pubsub.Postgres {
		st, err := store.Open(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		b, err := pubsub.NewPostgres(st.DB, st.DSN, log)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		return b
	}
	a, b := open(), open()
	// NOTIFY channels are per database, not per schema: other tests' servers
	// signal "events" and the like here too, so this test uses topics of its
	// own.
	topic, otherTopic := t.Name()+"-changes", t.Name()+"-other"
	wake, cancel := b.Subscribe(topic)
	defer cancel()
	other, cancelOther := b.Subscribe(otherTopic)
	defer cancelOther()
	a.Notify(topic)
	if !waitWake(t, wake, 5*time.Second) {
		t.Fatal("the other replica was not woken")
	}
	if waitWake(t, other, 100*time.Millisecond) {
		t.Fatal("another topic was woken")
	}
}
