package systest

import (
	"context"
	"sync"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/parley-chat/parley/edge"
	"github.com/parley-chat/parley/edge/auth"
)

type natsConn = *nats.Conn

// Edge is a running extra edge.
type Edge struct {
	*edge.Edge
	nc   *nats.Conn // nil when the edge dialled NATS itself
	once sync.Once
	stop func()
}

// startEdge builds and runs an edge; dial opens its NATS connection when
// opts.NATSURL is empty.
func startEdge(t testing.TB, keys []auth.Key, opts EdgeOptions, dial func() (natsConn, error)) *Edge {
	t.Helper()
	cfg := edgeDefaults(keys)
	te := &Edge{}
	if opts.NATSURL != "" {
		cfg.NATSURL = opts.NATSURL
	} else {
		nc, err := dial()
		if err != nil {
			t.Fatal(err)
		}
		te.nc, cfg.NATS = nc, nc
	}
	if opts.Config != nil {
		opts.Config(&cfg)
	}
	e, err := edge.New(cfg)
	if err != nil {
		if te.nc != nil {
			te.nc.Close()
		}
		t.Fatal(err)
	}
	te.Edge = e
	done := make(chan error, 1)
	go func() { done <- e.Run(context.Background()) }()
	te.stop = func() {
		_ = e.Close()
		if err := <-done; err != nil {
			t.Errorf("systest: edge %s: %v", e.Addr(), err)
		}
		if te.nc != nil {
			te.nc.Close()
		}
	}
	t.Cleanup(te.Stop)
	return te
}

// URL is the edge's base URL ("http://127.0.0.1:port").
func (e *Edge) URL() string { return "http://" + e.Addr().String() }

// Stop closes the edge (gracefully, within its ShutdownTimeout) and waits
// for Run. Idempotent.
func (e *Edge) Stop() { e.once.Do(e.stop) }

// Kill closes the edge's NATS connection, so that to the cores the edge
// goes silent with no closing batch, as when its process dies, and then
// stops it. It fails the test for an edge that dialled NATS itself
// (EdgeOptions.NATSURL).
func (e *Edge) Kill(t testing.TB) {
	t.Helper()
	if e.nc == nil {
		t.Fatal("systest: Kill: the edge holds its own NATS connection (EdgeOptions.NATSURL)")
	}
	e.nc.Close()
	e.Stop()
}
