package service

import (
	"context"
	"fmt"
)

// ClaimImportOwner gives this server, on PostgreSQL, an owner key for the
// import jobs it starts: it holds the session advisory lock
// (importOwnerLocks, key) on a connection of its own until
// ReleaseImportOwner or until the process dies (PostgreSQL ends a dead
// client's session, and its locks, when the connection drops). A job
// whose owner's lock nobody holds belongs to a dead server: FailStaleImports
// fails it at once, without waiting for its heartbeat to age. On SQLite,
// where one server serves a file (store.LockForServer), it does nothing.
func (s *Service) ClaimImportOwner(ctx context.Context) error {
	if s.ownerConn != nil {
		return nil
	}
	sq := s.sql
	conn, key, err := sq.claimImportOwner(ctx, s.db)
	if err != nil {
		return fmt.Errorf("service.ClaimImportOwner: %w", err)
	}
	s.ownerConn, s.ownerKey = conn, key // nil conn: the store needs no owner
	return nil
}

// ReleaseImportOwner gives the owner key up (at shutdown, after the
// imports ended).
func (s *Service) ReleaseImportOwner() {
	if s.ownerConn != nil {
		_ = s.ownerConn.Close() // the session's locks go with it
		s.ownerConn = nil
	}
}

// setImportOwner records the owner of a new job. Without an owner (a
// store that needs none, or a server that claimed none) there is nothing
// to record.
func (s *Service) setImportOwner(ctx context.Context, job string) error {
	if s.ownerConn == nil {
		return nil
	}
	sq := s.sql
	_, err := s.client.ExecContext(ctx, sq.rebind(`UPDATE import_jobs SET owner_key = ? WHERE id = ?`), s.ownerKey, job)
	return err
}
