// Package natsembed runs a NATS server (with JetStream) inside a core node,
// optionally clustered with the other core nodes of the region by routes.
package natsembed

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Config describes the embedded server. The zero value of every field but
// Name and StoreDir means "use the default".
type Config struct {
	// Name is this server's unique name in the cluster (the core node id).
	Name string
	// ClientAddr is where NATS clients (edges) connect, host:port. Port 0
	// picks a free port; empty means "127.0.0.1:0". "-" means no client
	// listener at all (in-process connections only).
	ClientAddr string
	// ClusterName and ClusterAddr enable routes to Routes (the other nodes'
	// ClusterAddr). Empty ClusterAddr means a standalone server.
	ClusterName string
	ClusterAddr string
	Routes      []string
	// ClusterAdvertise is the route address this server tells the others
	// of, which they dial when they learn of it through gossip rather than
	// from their own Routes; empty means the cluster listener's. A test
	// harness that routes every pair through its own proxies points it at
	// a closed port, so that no route bypasses them.
	ClusterAdvertise string
	// JetStream enables JetStream with its files under StoreDir.
	JetStream bool
	StoreDir  string
	// ReadyTimeout bounds the wait for the server to accept connections.
	ReadyTimeout time.Duration
	Logger       *slog.Logger
}

// Validate reports the first bad field.
func (c *Config) Validate() error {
	if c.Name == "" {
		return errors.New("natsembed: Config.Name is required")
	}
	if c.JetStream && c.StoreDir == "" {
		return errors.New("natsembed: Config.StoreDir is required with JetStream")
	}
	if len(c.Routes) > 0 && c.ClusterAddr == "" {
		return errors.New("natsembed: Config.Routes needs Config.ClusterAddr")
	}
	// nats-server starts routing only after its client listener: with none
	// it would never join the cluster (and Shutdown would then hang).
	if c.ClientAddr == "-" && c.ClusterAddr != "" {
		return errors.New(`natsembed: a clustered server needs a client listener (ClientAddr "-" with ClusterAddr)`)
	}
	if c.JetStream && c.ClusterAddr != "" && len(c.Routes) == 0 {
		return errors.New("natsembed: clustered JetStream needs Config.Routes")
	}
	if c.ClusterAdvertise != "" {
		if c.ClusterAddr == "" {
			return errors.New("natsembed: Config.ClusterAdvertise needs Config.ClusterAddr")
		}
		if _, _, err := net.SplitHostPort(c.ClusterAdvertise); err != nil {
			return fmt.Errorf("natsembed: Config.ClusterAdvertise: %q: %w", c.ClusterAdvertise, err)
		}
	}
	for _, r := range c.Routes {
		if _, _, err := net.SplitHostPort(r); err != nil {
			return fmt.Errorf("natsembed: Config.Routes: %q: %w", r, err)
		}
	}
	return nil
}

// ErrListen is returned (wrapped, with the server's message) by Start when
// a listener cannot bind its address.
var ErrListen = errors.New("natsembed: listen failed")

// Server is a running embedded NATS server.
type Server struct {
	srv *server.Server
	log *slog.Logger
}

// Start starts the server and waits until it accepts connections.
func Start(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.ReadyTimeout == 0 {
		cfg.ReadyTimeout = 30 * time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	opts := &server.Options{
		ServerName: cfg.Name,
		NoSigs:     true,
		NoLog:      true,
		JetStream:  cfg.JetStream,
		StoreDir:   cfg.StoreDir,
		// Edge and core payloads are small; a history page is the largest.
		MaxPayload: 8 << 20,
		// Routes and clients that stop answering (a partition that drops
		// silently) are cut after 3 missed pings, 2 s apart, and routes
		// are dialled again: after a heal the region talks on fresh
		// connections instead of waiting out TCP's backed-off
		// retransmissions (the default ping is every 2 minutes).
		PingInterval: 2 * time.Second,
		MaxPingsOut:  3,
	}
	switch cfg.ClientAddr {
	case "-":
		opts.DontListen = true
	case "":
		opts.Host, opts.Port = "127.0.0.1", server.RANDOM_PORT
	default:
		host, port, err := splitHostPort(cfg.ClientAddr)
		if err != nil {
			return nil, fmt.Errorf("natsembed: client address: %w", err)
		}
		opts.Host, opts.Port = host, port
	}
	if cfg.ClusterAddr != "" {
		host, port, err := splitHostPort(cfg.ClusterAddr)
		if err != nil {
			return nil, fmt.Errorf("natsembed: cluster address: %w", err)
		}
		name := cfg.ClusterName
		if name == "" {
			name = "parley"
		}
		opts.Cluster = server.ClusterOpts{Name: name, Host: host, Port: port, Advertise: cfg.ClusterAdvertise}
		for _, r := range cfg.Routes {
			opts.Routes = append(opts.Routes, &url.URL{Scheme: "nats-route", Host: r})
		}
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("natsembed: new server: %w", err)
	}
	logs := &logAdapter{log: log.With("component", "nats")}
	srv.SetLoggerV2(logs, false, false, false)
	go srv.Start()
	// A listener that cannot bind (the port is taken) fails at once: the
	// server logs it as fatal and would otherwise be waited on in vain.
	deadline := time.Now().Add(cfg.ReadyTimeout)
	for !srv.ReadyForConnections(min(100*time.Millisecond, cfg.ReadyTimeout)) {
		if msg := logs.fatal.Load(); msg != nil {
			srv.Shutdown()
			return nil, fmt.Errorf("natsembed: server %s: %w: %s", cfg.Name, ErrListen, *msg)
		}
		if time.Now().After(deadline) {
			srv.Shutdown()
			return nil, fmt.Errorf("natsembed: server %s not ready within %s", cfg.Name, cfg.ReadyTimeout)
		}
	}
	return &Server{srv: srv, log: log}, nil
}

// ClientURL is the URL edges connect to ("" when there is no listener).
func (s *Server) ClientURL() string {
	if s.srv.Addr() == nil {
		return ""
	}
	return s.srv.ClientURL()
}

// ClusterAddr is the address routes connect to (nil when standalone).
func (s *Server) ClusterAddr() *net.TCPAddr { return s.srv.ClusterAddr() }

// NumRoutes is the number of routes to other servers.
func (s *Server) NumRoutes() int { return s.srv.NumRoutes() }

// Connect returns an in-process client connection to this server.
func (s *Server) Connect(name string, opts ...nats.Option) (*nats.Conn, error) {
	opts = append([]nats.Option{nats.Name(name), nats.InProcessServer(s.srv), nats.MaxReconnects(-1)}, opts...)
	nc, err := nats.Connect("", opts...)
	if err != nil {
		return nil, fmt.Errorf("natsembed: connect in-process: %w", err)
	}
	return nc, nil
}

// Close shuts the server down and waits for it. Idempotent.
func (s *Server) Close() {
	s.srv.Shutdown()
	s.srv.WaitForShutdown()
}

func splitHostPort(hp string) (string, int, error) {
	host, p, err := net.SplitHostPort(hp)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("bad port in %q", hp)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	return host, port, nil
}

// logAdapter routes the NATS server's log into slog (notices are frequent
// and routine, so they go to Debug) and keeps the first fatal message (a
// listener that could not bind).
type logAdapter struct {
	log   *slog.Logger
	fatal atomic.Pointer[string]
}

func (l *logAdapter) Noticef(format string, v ...any) { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l *logAdapter) Warnf(format string, v ...any)   { l.log.Warn(fmt.Sprintf(format, v...)) }
func (l *logAdapter) Fatalf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	l.fatal.CompareAndSwap(nil, &msg)
	l.log.Error(msg)
}
func (l *logAdapter) Errorf(format string, v ...any) { l.log.Error(fmt.Sprintf(format, v...)) }
func (l *logAdapter) Debugf(format string, v ...any) { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l *logAdapter) Tracef(format string, v ...any) {}
