package graph_test

import (
	"io"
	"log/slog"
	"testing"

	"github.com/segmentd/segmentd/service"
	"github.com/segmentd/segmentd/store"
)

// newService returns a Service on a test server's store, logging nowhere,
// for what the API does not offer (verify).
func newService(t testing.TB, st *store.Store) *service.Service {
	t.Helper()
	svc, err := service.New(st, service.Config{Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	return svc
}
