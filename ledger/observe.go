package ledger

import (
	"context"
	"sync"

	"github.com/segmentd/segmentd/changelog"
	"github.com/segmentd/segmentd/ent"
)

// Observer is told, after a transaction commits, what the ledger wrote in
// it: membership changes by kind and source, and activations. Nothing is
// reported for a transaction that rolls back. Its methods must be cheap and
// safe for concurrent use (they run in the committing goroutine); the
// server counts them for its metrics.
type Observer interface {
	MembershipChanges(kind changelog.Kind, source changelog.Source, n int)
	Activations(n int)
}

// WithObserver returns a ledger like l whose writers report to o after
// each commit.
func (l *Ledger) WithObserver(o Observer) *Ledger {
	c := *l
	c.obs = o
	return &c
}

type changeKey struct {
	kind   changelog.Kind
	source changelog.Source
}

// tally is what one Writer wrote, reported to the ledger's Observer when
// its transaction commits.
type tally struct {
	mu          sync.Mutex
	changes     map[changeKey]int
	activations int
	hooked      bool
}

// changed counts n changes of kind from source.
func (w *Writer) changed(kind changelog.Kind, source changelog.Source, n int) {
	if w.l.obs == nil || n <= 0 {
		return
	}
	w.hook()
	w.tally.mu.Lock()
	if w.tally.changes == nil {
		w.tally.changes = map[changeKey]int{}
	}
	w.tally.changes[changeKey{kind, source}] += n
	w.tally.mu.Unlock()
}

// activated counts n activations.
func (w *Writer) activated(n int) {
	if w.l.obs == nil || n <= 0 {
		return
	}
	w.hook()
	w.tally.mu.Lock()
	w.tally.activations += n
	w.tally.mu.Unlock()
}

// hook registers, once per Writer, the report of its tally on the
// transaction's commit.
func (w *Writer) hook() {
	if w.tally.hooked {
		return
	}
	w.tally.hooked = true
	obs, t := w.l.obs, &w.tally
	w.tx.OnCommit(func(next ent.Committer) ent.Committer {
		return ent.CommitFunc(func(ctx context.Context, tx *ent.Tx) error {
			if err := next.Commit(ctx, tx); err != nil {
				return err
			}
			t.mu.Lock()
			defer t.mu.Unlock()
			for k, n := range t.changes {
				obs.MembershipChanges(k.kind, k.source, n)
			}
			if t.activations > 0 {
				obs.Activations(t.activations)
			}
			return nil
		})
	})
}
