package server

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler/transport"

	"github.com/segmentd/segmentd"
	"github.com/segmentd/segmentd/auth"
	"github.com/segmentd/segmentd/ent/apikey"
	"github.com/segmentd/segmentd/ent/schema/pulid"
	"github.com/segmentd/segmentd/server/wsgorilla"
)

// KeyCheckInterval is how often a server checks the keys of its open
// websockets against the database, for changes that no signal announced
// (a `segmentd keys revoke` on SQLite, a lost NOTIFY).
const KeyCheckInterval = 2 * time.Second

// socket is one open websocket: its connection and, once connection_init
// authenticated it, its key.
type socket struct {
	mu   sync.Mutex
	conn transport.WebsocketConn
	p    *auth.Principal
}

type socketCtxKey struct{}

func socketFrom(ctx context.Context) *socket {
	s, _ := ctx.Value(socketCtxKey{}).(*socket)
	return s
}

// withSocket gives a websocket upgrade request the socket that Accept and
// websocketInit fill in.
func withSocket(r *http.Request) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), socketCtxKey{}, &socket{}))
}

// principal is the socket's key, nil before connection_init (or for a
// nil socket: a request that is no websocket).
func (s *socket) principal() *auth.Principal {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.p
}

// close closes the socket with code 4403 and reason, once.
func (s *socket) close(reason string) {
	s.mu.Lock()
	conn := s.conn
	s.mu.Unlock()
	if conn != nil {
		_ = conn.WriteClose(4403, reason)
	}
}

// socketAccepter is the gorilla implementation that records each accepted
// connection in its request's socket.
type socketAccepter struct{ wsgorilla.Implementation }

func (a socketAccepter) Accept(w http.ResponseWriter, r *http.Request, opts transport.WebsocketAcceptOptions) (transport.WebsocketConn, error) {
	conn, err := a.Implementation.Accept(w, r, opts)
	if err == nil {
		if s := socketFrom(r.Context()); s != nil {
			s.mu.Lock()
			s.conn = conn
			s.mu.Unlock()
		}
	}
	return conn, err
}

// sockets are the open, authenticated websockets by key.
type sockets struct {
	mu    sync.Mutex
	byKey map[pulid.ID]map[*socket]struct{}
}

func newSockets() *sockets { return &sockets{byKey: map[pulid.ID]map[*socket]struct{}{}} }

// add registers s under its key until ctx (the connection's) ends.
func (ss *sockets) add(ctx context.Context, s *socket, p *auth.Principal) {
	s.mu.Lock()
	s.p = p
	s.mu.Unlock()
	id := p.KeyID
	ss.mu.Lock()
	if ss.byKey[id] == nil {
		ss.byKey[id] = map[*socket]struct{}{}
	}
	ss.byKey[id][s] = struct{}{}
	ss.mu.Unlock()
	context.AfterFunc(ctx, func() { ss.remove(s) })
}

func (ss *sockets) remove(s *socket) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	id := s.principal().KeyID
	delete(ss.byKey[id], s)
	if len(ss.byKey[id]) == 0 {
		delete(ss.byKey, id)
	}
}

// roles returns the key of every open socket with the role it was opened
// with.
func (ss *sockets) roles() map[pulid.ID]auth.Role {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	out := make(map[pulid.ID]auth.Role, len(ss.byKey))
	for id, set := range ss.byKey {
		for s := range set {
			out[id] = s.principal().Role
			break
		}
	}
	return out
}

// closeKey closes every open socket of key id.
func (ss *sockets) closeKey(id pulid.ID, reason string) {
	ss.mu.Lock()
	var list []*socket
	for s := range ss.byKey[id] {
		list = append(list, s)
	}
	delete(ss.byKey, id)
	ss.mu.Unlock()
	for _, s := range list {
		s.close(reason)
	}
}

// watchKeys closes the websockets of keys that were revoked or changed
// role: at once on a signal on auth.KeysTopic (from this replica or,
// through NOTIFY, another), and at the latest after KeyCheckInterval.
func (s *Server) watchKeys(ctx context.Context) {
	wake, cancel := s.broker.Subscribe(auth.KeysTopic)
	defer cancel()
	tick := time.NewTicker(KeyCheckInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-wake:
		case <-tick.C:
		}
		if err := s.checkSocketKeys(ctx); err != nil && ctx.Err() == nil {
			s.log.WarnContext(ctx, "checking the keys of open websockets", "err", err)
		}
	}
}

func (s *Server) checkSocketKeys(ctx context.Context) error {
	open := s.sockets.roles()
	if len(open) == 0 {
		return nil
	}
	ids := make([]pulid.ID, 0, len(open))
	for id := range open {
		ids = append(ids, id)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	keys, err := s.store.Client.APIKey.Query().Where(apikey.IDIn(ids...)).All(ctx)
	if err != nil {
		return err
	}
	current := make(map[pulid.ID]auth.Role, len(keys))
	for _, k := range keys {
		if k.RevokedAt == nil {
			current[k.ID] = k.Role
		}
	}
	for id, role := range open {
		now, ok := current[id]
		switch {
		case !ok:
			s.sockets.closeKey(id, "Forbidden: the API key was revoked")
		case now != role:
			s.sockets.closeKey(id, "Forbidden: the API key's role changed")
		}
	}
	return nil
}

// socketOperations applies to every operation sent over a websocket what
// requireKey applies to HTTP requests: the key must still be valid, with
// the role the socket was opened with (checked in the database, so that a
// revoked key runs nothing more even before its socket is closed), and
// within its rate limit.
func (s *Server) socketOperations(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
	sock := socketFrom(ctx)
	opened := sock.principal()
	if opened == nil {
		return next(ctx)
	}
	p, err := s.keys.Current(ctx, opened.KeyID)
	if err != nil {
		if segmentd.ErrorCode(err) == segmentd.CodeInternal {
			s.log.ErrorContext(ctx, "websocket key check", "err", err)
			return errorResponse(ctx, segmentd.CodeInternal, "internal error")
		}
		// The watcher closes the key's sockets (here and on every replica)
		// once this answer is on its way.
		s.broker.Notify(auth.KeysTopic)
		return errorResponse(ctx, segmentd.CodeUnauthenticated, "the API key was revoked")
	}
	if p.Role != opened.Role {
		s.broker.Notify(auth.KeysTopic)
		return errorResponse(ctx, segmentd.CodeForbidden, "the API key's role changed to %s; reconnect", p.Role)
	}
	if d := s.limits.wait(p.KeyID); d > 0 {
		return errorResponse(ctx, segmentd.CodeRateLimited, "too many requests for this API key; retry after %s", d.Round(time.Millisecond))
	}
	return next(ctx)
}
