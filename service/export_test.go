package service

import (
	"context"
	"time"

	"github.com/segmentd/segmentd/changelog"
	"github.com/segmentd/segmentd/ent/schema/pulid"

	"github.com/segmentd/segmentd/ent"
	"github.com/segmentd/segmentd/ledger"
)

// SetCountersOff switches the maintained counters' writes off (true) or on,
// for benchmarks that measure what they cost.
func SetCountersOff(off bool) { ledger.SetCountersOff(off) }

// BucketOf exposes bucketOf to the tests.
var BucketOf = bucketOf

// SetCounterShards sets how many shards PostgreSQL writers spread over (1 to
// counterShards); 0 restores the default.
func SetCounterShards(n int) { ledger.SetCounterShards(n) }

// ClockNow reads the service's clock (Config.Now).
func (s *Service) ClockNow() time.Time { return s.clock() }

// EntClient is the service's ent client (its store's).
func (s *Service) EntClient() *ent.Client { return s.client }

// StoreDialect is the service's store's dialect.
func (s *Service) StoreDialect() string { return s.dialect }

// EnterExpiring makes users (created if new) members of seg, source
// MANUAL, at the service's clock, expiring after `after`: the entry of a
// segment with exitRules.after, through the ledger, for tests of the
// sweeper that do not depend on how the rule is set.
func (s *Service) EnterExpiring(ctx context.Context, seg pulid.ID, userIDs []string, after time.Duration) error {
	now := s.now()
	var topics ledger.Topics
	err := s.inTx(ctx, func(tx *ent.Tx) error {
		users, err := s.lockUserIDs(ctx, tx, userIDs, now)
		if err != nil {
			return err
		}
		due := now.Add(after)
		entries := make([]ledger.Entry, len(users))
		for i, u := range users {
			entries[i] = ledger.Entry{Segment: seg, User: u.ID, Source: changelog.SourceManual,
				Reason: "added by hand", At: now, ExpiresAt: &due}
		}
		w := s.ledger().Writer(tx)
		if _, err := w.EnterMany(ctx, entries); err != nil {
			return err
		}
		topics, err = w.Flush(ctx)
		return err
	})
	if err != nil {
		return err
	}
	s.publish(topics)
	return nil
}

// SetUsersPerPage sets how many users a DYNAMIC fill or a behaviour build
// reads at a time (0: the default), so that a test sees several pages of
// a few users.
func (s *Service) SetUsersPerPage(n int) { s.userPage = n }
