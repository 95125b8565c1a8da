// Package systest runs the whole of parley in one process for tests, on
// real sockets: one node (system.System: a core, its embedded NATS, an
// edge) or a region of core nodes (core/coretest) with edges, with the
// faults a test injects, and the users and devices it drives them with.
//
// One node:
//
//	s := systest.Start(t, systest.Options{})            // or Options{Dir, Config}
//	rc, sess := s.User(t, "acme", "ana")                 // client/rest, signed up and logged in
//	d := s.Device(t, "ws", rc, sess, nil)                // an SDK session ("ws", "quic", "wt")
//	msgs := d.Box.WaitFor(t, conv, 3, "ana")             // what OnMessage handed the app
//	b := s.StartEdge(t, systest.EdgeOptions{})           // a second edge on the same core
//	s.Stop()                                             // graceful, as on SIGTERM
//	s.Restart(t)                                         // same data dir, same ports
//
// A region: StartRegion(t, 3, RegionOptions{}) gives a coretest.Region
// (Node, Stop, Kill, Restart, Partition, Heal of core nodes; see its
// package doc) and edges on it (Region.StartEdge, Edge.Kill).
//
// The faults:
//
//   - System.Stop ends Run: the edge drains its sessions within its
//     ShutdownTimeout, then the core closes.
//   - System.Kill closes the core under the running edge, then the edge:
//     requests in flight fail, sessions end with no drain the core answers,
//     and the core's last words reach nobody (it has no peers).
//   - System.Restart starts the system again on its data dir, with the same
//     HTTP, UDP and Raft addresses, after a Stop or a Kill.
//   - Edge.Stop closes an extra edge gracefully; Edge.Kill closes its NATS
//     connection first, so the cores see it go silent, as when its process
//     dies, and its sessions then end with no goodbye.
//   - Between an edge and a core, put a coretest.Proxy on the NATS URL
//     (EdgeOptions.NATSURL) and Cut it.
//   - Core nodes of a region: coretest.Region's Stop, Kill, Restart,
//     Partition and Heal.
//
// Only tests import systest (deps_test.go checks it). Everything started
// is closed by t.Cleanup.
package systest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/parley-chat/parley/core"
	"github.com/parley-chat/parley/edge"
	"github.com/parley-chat/parley/edge/auth"
	"github.com/parley-chat/parley/edge/httpapi"
	"github.com/parley-chat/parley/edge/quicport"
	"github.com/parley-chat/parley/internal/poll"
	"github.com/parley-chat/parley/system"
	"github.com/parley-chat/parley/web"
)

// Options configure a one-node System.
type Options struct {
	// Dir is the data dir (default t.TempDir()); a System started on the
	// Dir of a stopped one starts on its data.
	Dir string
	// Config changes the test defaults (HTTP and QUIC on 127.0.0.1:0, NATS
	// in-process only, 4 shards, rate limits high enough for tests) before
	// Start.
	Config func(*system.Config)
}

// System is a running one-node system.
type System struct {
	*system.System
	dir string
	cfg system.Config

	mu   sync.Mutex
	stop func() error // ends Run and returns its error; nil when stopped
}

// Start starts a system, waits until its groups have leaders, serves it
// (Run) and registers its Stop with t.Cleanup. It fails the test on an
// error.
func Start(t testing.TB, opts Options) *System {
	t.Helper()
	dir := opts.Dir
	if dir == "" {
		dir = t.TempDir()
	}
	cfg := system.Config{
		DataDir: dir,
		Core:    core.Config{NATS: core.NATSConfig{ClientAddr: "-"}, RaftAddr: "127.0.0.1:0", ShardCount: 4},
		Edge: edge.Config{HTTPAddr: "127.0.0.1:0", QUIC: quicport.Config{Addr: "127.0.0.1:0"}, WebApp: web.App(),
			HTTP: httpapi.Config{UserRate: 10_000, UserBurst: 10_000, IPRate: 10_000, IPBurst: 10_000}},
	}
	if opts.Config != nil {
		opts.Config(&cfg)
	}
	s := &System{dir: dir, cfg: cfg}
	if err := s.start(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop() })
	return s
}

func (s *System) start(ctx context.Context, cfg system.Config) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	sys, err := system.Start(ctx, cfg)
	if err != nil {
		return fmt.Errorf("systest: %w", err)
	}
	rctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sys.Run(rctx) }()
	s.mu.Lock()
	s.System = sys
	s.stop = func() error {
		stop()
		return <-done
	}
	s.mu.Unlock()
	return nil
}

// URL is the edge's base URL ("http://127.0.0.1:port").
func (s *System) URL() string { return "http://" + s.HTTPAddr() }

// Dir is the system's data dir.
func (s *System) Dir() string { return s.dir }

// Keys are the edge's token keys (from Dir's key file), for further
// edges and for minting tokens.
func (s *System) Keys(t testing.TB) []auth.Key {
	t.Helper()
	keys, err := auth.LoadOrCreateKeyFile(s.cfg.TokenKeyFile())
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// Stop ends Run gracefully and returns its error; later calls, and calls
// after Kill, return nil.
func (s *System) Stop() error {
	s.mu.Lock()
	stop := s.stop
	s.stop = nil
	s.mu.Unlock()
	if stop == nil {
		return nil
	}
	return stop()
}

// Kill closes the core under the serving edge, then the rest; see the
// package doc. It fails the test when the system is not running.
func (s *System) Kill(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	stop := s.stop
	s.stop = nil
	s.mu.Unlock()
	if stop == nil {
		t.Fatal("systest: Kill: the system is not running")
	}
	if err := s.Node().Close(); err != nil {
		t.Logf("systest: kill: close the core: %v", err)
	}
	if err := stop(); err != nil {
		t.Logf("systest: kill: %v", err)
	}
}

// Restart starts the system again, after Stop or Kill, on its data dir
// and with the HTTP, UDP and Raft addresses it had; it returns once the
// system serves. It fails the test when the system is running.
func (s *System) Restart(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	running := s.stop != nil
	s.mu.Unlock()
	if running {
		t.Fatal("systest: Restart: the system is running")
	}
	cfg := s.cfg
	cfg.Edge.HTTPAddr = s.HTTPAddr()
	if a := s.UDPAddr(); a != nil {
		cfg.Edge.QUIC.Addr = a.String()
	}
	cfg.Core.RaftAddr = s.Node().RaftAddr()
	var err error
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	// A socket of the old system may hold an address for a moment.
	_ = poll.Wait(ctx, func(ctx context.Context) error {
		err = s.start(ctx, cfg)
		if errors.Is(err, syscall.EADDRINUSE) {
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// EdgeOptions configure an extra edge.
type EdgeOptions struct {
	// NATSURL is where the edge connects (it dials, with its own
	// reconnects): a core's NATS URL, or a coretest.Proxy in front of one.
	// Empty: the harness opens the connection, to the System's node
	// in-process or to the Region's node 0, and Edge.Kill can cut it.
	NATSURL string
	// Config changes the defaults (HTTP and QUIC on 127.0.0.1:0, no rate
	// limits, the system's token keys) before edge.New.
	Config func(*edge.Config)
}

// StartEdge starts another edge on the system's core (as `parley edge`
// would), sharing its token keys, and registers its Stop with t.Cleanup.
func (s *System) StartEdge(t testing.TB, opts EdgeOptions) *Edge {
	t.Helper()
	return startEdge(t, s.Keys(t), opts, func() (natsConn, error) { return s.Node().ConnectNATS("edge-extra") })
}

// edgeDefaults are an extra edge's settings before EdgeOptions.Config.
func edgeDefaults(keys []auth.Key) edge.Config {
	return edge.Config{HTTPAddr: "127.0.0.1:0", QUIC: quicport.Config{Addr: "127.0.0.1:0"}, Auth: auth.Config{Keys: keys},
		HTTP: httpapi.Config{UserRate: rate.Inf, UserBurst: 1e6, IPRate: rate.Inf, IPBurst: 1e6}}
}
