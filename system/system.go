// Package system runs the whole of parley in one process: a single-node
// core with its embedded NATS server, and an edge connected to it over an
// in-process NATS connection. It is what `parley serve` runs and what the
// end-to-end tests start.
//
//	s, err := system.Start(ctx, system.Config{DataDir: dir})
//	...
//	err = s.Run(ctx) // serves until ctx ends, then closes everything
package system

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/parley-chat/parley/blob/disk"
	"github.com/parley-chat/parley/core"
	"github.com/parley-chat/parley/edge"
	"github.com/parley-chat/parley/edge/attach"
	"github.com/parley-chat/parley/edge/auth"
)

// DefaultReadyTimeout is Config.ReadyTimeout's default.
const DefaultReadyTimeout = 30 * time.Second

// Config configures a System. Zero values mean the defaults; DataDir is
// required.
type Config struct {
	// DataDir holds the core's data (DataDir/core), the edge's token keys
	// (DataDir/edge/token.keys, created when missing) and the edge's dev
	// certificate (DataDir/edge/cert).
	DataDir string
	// Core configures the node. Start sets DataDir, Metrics and Logger,
	// and NodeID when it is empty ("n1"); Peers must be empty (one node).
	Core core.Config
	// Edge configures the edge. Start sets NATS (a connection to the
	// node's NATS server), Metrics and Logger; Auth.Keys when empty (from
	// the key file); and Cert.Dir when the edge has a UDP port (QUIC.Addr)
	// and neither Cert.CertFile nor Cert.Dir. NATSURL must be empty.
	Edge edge.Config
	// Attach configures uploads and attachments. Start sets Store (a
	// blob/disk store in DataDir/blobs) when nil, Dir (DataDir/edge/uploads)
	// and SignKey (DataDir/edge/blob.key, created when missing) when
	// empty, and Logger; the edge gets the Service as HTTP.Attach.
	Attach attach.Config
	// ReadyTimeout bounds Start's wait for every group of the node to
	// elect a leader (default DefaultReadyTimeout).
	ReadyTimeout time.Duration
	// Metrics receives the core's and the edge's series (nil: none are
	// read).
	Metrics prometheus.Registerer
	// Logger (default: discard). The core logs with part=core, the edge
	// with part=edge.
	Logger *slog.Logger
}

// TokenKeyFile is the path of the edge's token key file under DataDir.
func (c Config) TokenKeyFile() string { return filepath.Join(c.DataDir, "edge", "token.keys") }

// Validate names the first bad field: the ones Start reads itself, and
// the node's configuration as Start completes it. The edge's is checked
// by edge.New during Start.
func (c Config) Validate() error {
	switch {
	case c.DataDir == "":
		return errors.New("system: Config.DataDir is required")
	case c.ReadyTimeout < 0:
		return fmt.Errorf("system: Config.ReadyTimeout %v is negative", c.ReadyTimeout)
	case c.Core.DataDir != "":
		return errors.New("system: Config.Core.DataDir is set by Start (DataDir/core)")
	case len(c.Core.Peers) > 0:
		return errors.New("system: Config.Core.Peers must be empty: a system is one node")
	case c.Edge.NATS != nil || c.Edge.NATSURL != "":
		return errors.New("system: Config.Edge.NATS and NATSURL are set by Start")
	}
	cc := c.coreConfig()
	if err := cc.Validate(); err != nil {
		return fmt.Errorf("system: %w", err)
	}
	return nil
}

// coreConfig is Core as Start completes it.
func (c Config) coreConfig() core.Config {
	cc := c.Core
	if cc.NodeID == "" {
		cc.NodeID = "n1"
	}
	cc.DataDir = filepath.Join(c.DataDir, "core")
	cc.Metrics = c.Metrics
	cc.Logger = c.logger().With("part", "core")
	return cc
}

func (c Config) logger() *slog.Logger {
	if c.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return c.Logger
}

// System is a running core node and edge. Start builds one; Run serves;
// Close releases.
type System struct {
	node   *core.Node
	attach *attach.Service
	nc     *nats.Conn
	edge   *edge.Edge
}

// Start starts the node, waits for its groups to elect leaders (within
// ReadyTimeout, and while ctx lasts) and builds the edge, which listens
// at once (see HTTPAddr); nothing is served until Run. On an error
// whatever was started is closed again.
func Start(ctx context.Context, cfg Config) (s *System, err error) {
	cfg.Logger = cfg.logger()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ec := cfg.Edge
	if len(ec.Auth.Keys) == 0 {
		if ec.Auth.Keys, err = auth.LoadOrCreateKeyFile(cfg.TokenKeyFile()); err != nil {
			return nil, fmt.Errorf("system: token keys: %w", err)
		}
	}
	if ec.QUIC.Addr != "" && ec.Cert.CertFile == "" && ec.Cert.Dir == "" {
		ec.Cert.Dir = filepath.Join(cfg.DataDir, "edge", "cert")
	}
	s = &System{}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if s.node, err = core.New(cfg.coreConfig()); err != nil {
		return nil, err
	}
	wait := cfg.ReadyTimeout
	if wait == 0 {
		wait = DefaultReadyTimeout
	}
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	if err := s.node.WaitReady(wctx); err != nil {
		return nil, err
	}
	if s.nc, err = s.node.ConnectNATS("parley-edge"); err != nil {
		return nil, err
	}
	ec.NATS = s.nc
	if s.attach, err = startAttach(cfg); err != nil {
		return nil, err
	}
	ec.HTTP.Attach = s.attach
	ec.Metrics = cfg.Metrics
	ec.Logger = cfg.Logger.With("part", "edge")
	if s.edge, err = edge.New(ec); err != nil {
		return nil, err
	}
	return s, nil
}

// startAttach builds the attachment service as Config.Attach says.
func startAttach(cfg Config) (*attach.Service, error) {
	ac := cfg.Attach
	if ac.Store == nil {
		st, err := disk.New(disk.Config{Dir: filepath.Join(cfg.DataDir, "blobs")})
		if err != nil {
			return nil, fmt.Errorf("system: blobs: %w", err)
		}
		ac.Store = st
	}
	if ac.Dir == "" {
		ac.Dir = filepath.Join(cfg.DataDir, "edge", "uploads")
	}
	if len(ac.SignKey) == 0 {
		k, err := loadOrCreateKey(filepath.Join(cfg.DataDir, "edge", "blob.key"))
		if err != nil {
			return nil, fmt.Errorf("system: blob signing key: %w", err)
		}
		ac.SignKey = k
	}
	ac.Logger = cfg.Logger.With("part", "attach")
	s, err := attach.New(ac)
	if err != nil {
		return nil, fmt.Errorf("system: %w", err)
	}
	return s, nil
}

// loadOrCreateKey reads the 32-byte key at path, writing a random one
// first when the file is missing.
func loadOrCreateKey(path string) ([]byte, error) {
	k, err := os.ReadFile(path)
	if err == nil {
		if len(k) < 32 {
			return nil, fmt.Errorf("%s holds %d bytes, want 32", path, len(k))
		}
		return k, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	k = make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	return k, os.WriteFile(path, k, 0o600)
}

// HTTPAddr is where the /v1 API (and WebSocket sessions) listen.
func (s *System) HTTPAddr() string { return s.edge.Addr().String() }

// UDPAddr is the edge's QUIC and WebTransport port, nil without one.
func (s *System) UDPAddr() net.Addr { return s.edge.UDPAddr() }

// NATSURL is where further edges reach the node's NATS server; "" when it
// serves in-process connections only.
func (s *System) NATSURL() string { return s.node.NATSURL() }

// Ready reports whether every group of the node knows a leader (nil) or
// why not.
func (s *System) Ready() error { return s.node.Ready() }

// Node is the core node, for tests and stats.
func (s *System) Node() *core.Node { return s.node }

// Attach is the attachment service, for tests (Sweep).
func (s *System) Attach() *attach.Service { return s.attach }

// Edge is the edge, for tests and stats.
func (s *System) Edge() *edge.Edge { return s.edge }

// Run serves until ctx ends, then shuts the edge down gracefully and
// closes everything (see Close).
func (s *System) Run(ctx context.Context) error {
	err := s.edge.Run(ctx)
	return errors.Join(err, s.Close())
}

// Close stops the edge, then the core. It is safe to call more than once.
func (s *System) Close() error {
	var errs []error
	if s.edge != nil {
		if err := s.edge.Close(); err != nil && !errors.Is(err, edge.ErrClosed) {
			errs = append(errs, err)
		}
	}
	if s.attach != nil {
		errs = append(errs, s.attach.Close())
	}
	if s.nc != nil {
		s.nc.Close()
	}
	if s.node != nil {
		errs = append(errs, s.node.Close())
	}
	return errors.Join(errs...)
}
