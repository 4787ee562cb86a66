package service

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/segmentd/segmentd/ent"
	"github.com/segmentd/segmentd/ent/schema/pulid"
	"github.com/segmentd/segmentd/trigger"
)

// programCache keeps compiled condition trees by segment. An entry is valid
// for the segment's updated_at: every change to a segment's rules bumps it,
// also when the change comes from another replica.
type programCache struct {
	mu      sync.Mutex
	entries map[pulid.ID]programEntry
}

type programEntry struct {
	updatedAt time.Time
	program   *trigger.Program
}

func (c *programCache) get(ctx context.Context, client *ent.Client, seg *ent.Segment) (*trigger.Program, error) {
	c.mu.Lock()
	e, ok := c.entries[seg.ID]
	c.mu.Unlock()
	if ok && e.updatedAt.Equal(seg.UpdatedAt) {
		return e.program, nil
	}
	root, err := ConditionTree(ctx, client, seg.ID)
	if err != nil {
		return nil, err
	}
	prog, err := trigger.Compile(TriggerNode(root))
	if err != nil {
		return nil, fmt.Errorf("compile conditions of segment %s: %w", seg.ID, err)
	}
	c.mu.Lock()
	if c.entries == nil {
		c.entries = map[pulid.ID]programEntry{}
	}
	c.entries[seg.ID] = programEntry{updatedAt: seg.UpdatedAt, program: prog}
	c.mu.Unlock()
	return prog, nil
}
