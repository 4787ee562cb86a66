package server

import (
	"context"
	"fmt"
	"strings"
	"testing"
)

// The persisted-query cache keeps at most its bound in bytes, dropping the
// least recently used queries first, and never stores a query larger than
// the whole bound.
func TestQueryCacheBoundedBytes(t *testing.T) {
	ctx := context.Background()
	const query = 1000
	c := newQueryCache(10 * (query + 64 + entryOverhead))
	hash := func(i int) string { return fmt.Sprintf("%064d", i) }
	for i := range 10 {
		c.Add(ctx, hash(i), strings.Repeat("q", query))
	}
	if _, ok := c.Get(ctx, hash(0)); !ok { // 0 is now the most recently used
		t.Fatal("query 0 was dropped while the cache had room")
	}
	c.Add(ctx, hash(10), strings.Repeat("q", query))
	if _, ok := c.Get(ctx, hash(1)); ok {
		t.Error("query 1, the least recently used, was kept past the bound")
	}
	for _, i := range []int{0, 2, 9, 10} {
		if q, ok := c.Get(ctx, hash(i)); !ok || len(q) != query {
			t.Errorf("query %d: %d bytes, %v", i, len(q), ok)
		}
	}
	if c.size > c.max || len(c.byHash) != 10 || c.order.Len() != 10 {
		t.Errorf("size %d of %d, %d entries", c.size, c.max, len(c.byHash))
	}

	// Replacing an entry keeps the size exact.
	c.Add(ctx, hash(10), "short")
	if q, _ := c.Get(ctx, hash(10)); q != "short" {
		t.Errorf("replaced query reads %q", q)
	}
	want := 9*(query+64+entryOverhead) + len("short") + 64 + entryOverhead
	if c.size != want {
		t.Errorf("size %d after a replacement, want %d", c.size, want)
	}

	// Too large for the whole cache: not stored, nothing dropped.
	c.Add(ctx, hash(99), strings.Repeat("q", c.max))
	if _, ok := c.Get(ctx, hash(99)); ok || len(c.byHash) != 10 {
		t.Errorf("a query over the bound was stored (%d entries)", len(c.byHash))
	}
}
