package service

import (
	"context"
	"fmt"
	"math/rand/v2"

	"entgo.io/ent/dialect"
)

// importOwnerLocks is the first key of the PostgreSQL advisory locks that
// say a server is alive (pg_advisory_lock(importOwnerLocks, owner)).
const importOwnerLocks = 0x5e6d

// ClaimImportOwner gives this server, on PostgreSQL, an owner key for the
// import jobs it starts: it holds the session advisory lock
// (importOwnerLocks, key) on a connection of its own until
// ReleaseImportOwner or until the process dies (PostgreSQL ends a dead
// client's session, and its locks, when the connection drops). A job
// whose owner's lock nobody holds belongs to a dead server: FailStaleImports
// fails it at once, without waiting for its heartbeat to age. On SQLite,
// where one server serves a file (store.LockForServer), it does nothing.
func (s *Service) ClaimImportOwner(ctx context.Context) error {
	if s.Dialect != dialect.Postgres || s.ownerConn != nil {
		return nil
	}
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("service.ClaimImportOwner: %w", err)
	}
	for range 100 {
		key := rand.Int64N(1 << 31)
		var got bool
		if err := conn.QueryRowContext(ctx, `SELECT pg_try_advisory_lock($1, $2)`, importOwnerLocks, key).Scan(&got); err != nil {
			conn.Close()
			return fmt.Errorf("service.ClaimImportOwner: %w", err)
		}
		if got {
			s.ownerConn, s.ownerKey = conn, key
			return nil
		}
	}
	conn.Close()
	return fmt.Errorf("service.ClaimImportOwner: no free owner key")
}

// ReleaseImportOwner gives the owner key up (at shutdown, after the
// imports ended).
func (s *Service) ReleaseImportOwner() {
	if s.ownerConn != nil {
		_ = s.ownerConn.Close() // the session's locks go with it
		s.ownerConn = nil
	}
}

// setImportOwner records the owner of a new job (PostgreSQL).
func (s *Service) setImportOwner(ctx context.Context, job string) error {
	if s.Dialect != dialect.Postgres || s.ownerConn == nil {
		return nil
	}
	_, err := s.Client.ExecContext(ctx, `UPDATE import_jobs SET owner_key = $1 WHERE id = $2`, s.ownerKey, job)
	return err
}

// ownerDead is the SQL condition (PostgreSQL) that the job's owner holds
// its lock no longer: it is not among the granted advisory locks of this
// database.
var ownerDead = fmt.Sprintf(`owner_key IS NOT NULL AND NOT EXISTS (
  SELECT 1 FROM pg_locks l
  WHERE l.locktype = 'advisory' AND l.granted AND l.classid = %d AND l.objsubid = 2
    AND l.objid::text::bigint = import_jobs.owner_key
    AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()))`, importOwnerLocks)
