package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/parley-chat/parley/cmd/internal/observe"
	"github.com/parley-chat/parley/core"
	"github.com/parley-chat/parley/edge"
	"github.com/parley-chat/parley/edge/auth"
	"github.com/parley-chat/parley/edge/httpapi"
	"github.com/parley-chat/parley/web"
)

// serveConfig is one process running a single-node core and an edge.
type serveConfig struct {
	DataDir   string
	HTTPAddr  string
	UDPAddr   string // QUIC + WebTransport; "" for none
	CertFile  string // operator certificate for the UDP port; else a dev one
	KeyFile   string
	NATSAddr  string // "-" for in-process only
	RaftAddr  string
	Shards    int
	Large     int           // members above which a group uses its conversation subject (0: default)
	KeepAlive time.Duration // device ping interval announced by the edge (0: default)
	FrameRate float64       // frames per second per device session (0: default)
	// TypingRate and TypingBurst: typing indicators per device (0: default 2/s, burst 4).
	TypingRate  float64
	TypingBurst int
	// TypingShedWait: see edge.Config (0: default; negative: no CPU-based shedding).
	TypingShedWait time.Duration
	UserRate       float64
	UserBurst      int
	IPRate         float64 // unauthenticated calls per IP
	IPBurst        int
	// LoginThrottle and CORS: see edge.Config (zero: defaults).
	LoginThrottle auth.ThrottleConfig
	CORS          httpapi.CORSConfig
	// RefreshGrace: see edge.Config (0: default; negative: none).
	RefreshGrace time.Duration
	Logger       *slog.Logger
	// Presence: the edge's batch interval and lease (0: defaults) and the
	// workspace ids with presence off.
	PresenceInterval, PresenceLease time.Duration
	PresenceOff                     []string
	// AccessTTL is the access token lifetime (0: the default, 15 min).
	AccessTTL time.Duration
	// Metrics receives the core's and the edge's series (nil: none).
	Metrics prometheus.Registerer
}

// system is a running `parley serve`.
type system struct {
	node *core.Node
	nc   *nats.Conn
	edge *edge.Edge
}

func startSystem(ctx context.Context, cfg serveConfig) (s *system, err error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	keys, err := loadOrCreateKeyFile(filepath.Join(cfg.DataDir, "edge", "token.keys"))
	if err != nil {
		return nil, fmt.Errorf("token keys: %w", err)
	}
	s = &system{}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	s.node, err = core.New(core.Config{
		NodeID:     "n1",
		DataDir:    filepath.Join(cfg.DataDir, "core"),
		RaftAddr:   cfg.RaftAddr,
		ShardCount: cfg.Shards,
		LargeGroup: cfg.Large,
		Presence:   core.PresenceConfig{Off: cfg.PresenceOff},
		NATS:       core.NATSConfig{ClientAddr: cfg.NATSAddr},
		Metrics:    cfg.Metrics,
		Logger:     cfg.Logger.With("part", "core"),
	})
	if err != nil {
		return nil, err
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := s.node.WaitReady(wctx); err != nil {
		return nil, err
	}
	s.nc, err = s.node.ConnectNATS("parley-edge")
	if err != nil {
		return nil, err
	}
	devDir := ""
	if cfg.UDPAddr != "" && cfg.CertFile == "" {
		devDir = filepath.Join(cfg.DataDir, "edge", "cert")
	}
	s.edge, err = edge.New(edge.Config{
		DevCertDir:     devDir,
		HTTPAddr:       cfg.HTTPAddr,
		NATS:           s.nc,
		TokenKeys:      keys,
		RefreshGrace:   cfg.RefreshGrace,
		AccessTTL:      cfg.AccessTTL,
		UserRate:       rate.Limit(cfg.UserRate),
		UserBurst:      cfg.UserBurst,
		IPRate:         rate.Limit(cfg.IPRate),
		IPBurst:        cfg.IPBurst,
		LoginThrottle:  cfg.LoginThrottle,
		CORS:           cfg.CORS,
		UDPAddr:        cfg.UDPAddr,
		KeepAlive:      cfg.KeepAlive,
		FrameRate:      rate.Limit(cfg.FrameRate),
		FrameBurst:     int(2 * cfg.FrameRate),
		TypingRate:     rate.Limit(cfg.TypingRate),
		TypingBurst:    cfg.TypingBurst,
		TypingShedWait: cfg.TypingShedWait,
		CertFile:       cfg.CertFile,
		KeyFile:        cfg.KeyFile,
		Metrics:        cfg.Metrics,
		WebApp:         web.App(),
		Logger:         cfg.Logger.With("part", "edge"),

		PresenceInterval: cfg.PresenceInterval,
		PresenceLease:    cfg.PresenceLease,
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// HTTPAddr is where the /v1 API listens.
func (s *system) HTTPAddr() string { return s.edge.Addr().String() }

// Run serves until ctx ends, then shuts everything down.
func (s *system) Run(ctx context.Context) error {
	err := s.edge.Run(ctx)
	return errors.Join(err, s.Close())
}

// Close stops the edge, then the core. Safe to call more than once.
func (s *system) Close() error {
	var errs []error
	if s.edge != nil {
		if err := s.edge.Close(); err != nil && !errors.Is(err, edge.ErrClosed) {
			errs = append(errs, err)
		}
	}
	if s.nc != nil {
		s.nc.Close()
	}
	if s.node != nil {
		errs = append(errs, s.node.Close())
	}
	return errors.Join(errs...)
}

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("parley serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg serveConfig
	fs.StringVar(&cfg.DataDir, "data", "./data", "data directory")
	fs.StringVar(&cfg.HTTPAddr, "http", edge.DefaultHTTPAddr, "HTTP API listen address")
	fs.StringVar(&cfg.UDPAddr, "udp", "127.0.0.1:8443", "QUIC and WebTransport (HTTP/3) UDP listen address (\"\": none)")
	fs.StringVar(&cfg.CertFile, "cert", "", "TLS certificate (PEM) for the UDP port (default: a self-signed dev certificate under -data)")
	fs.StringVar(&cfg.KeyFile, "key", "", "TLS key (PEM) for -cert")
	fs.StringVar(&cfg.NATSAddr, "nats", "127.0.0.1:4222", "NATS listen address for extra edges (\"-\": in-process only)")
	fs.StringVar(&cfg.RaftAddr, "raft", "127.0.0.1:0", "Raft listen address (unused by peers in one process)")
	fs.IntVar(&cfg.Shards, "shards", 0, "number of shard groups (default 16; fixed once data exists)")
	fs.IntVar(&cfg.Large, "large-group", 0, "member count above which a group's deliveries go once per edge on its conversation subject (default 100; -1: never)")
	fs.DurationVar(&cfg.KeepAlive, "keepalive", 0, "how often idle devices ping (announced in Welcome; 3 missed pings end a session; default 25s)")
	fs.Float64Var(&cfg.IPRate, "ip-rate", 0, "unauthenticated calls (sign-up, log-in) per second per client IP (default 5)")
	fs.IntVar(&cfg.IPBurst, "ip-burst", 0, "unauthenticated call burst per client IP (default 20)")
	fs.Float64Var(&cfg.FrameRate, "device-rate", 0, "frames per second per device session, burst twice that (default 100)")
	fs.Float64Var(&cfg.UserRate, "user-rate", 0, "API calls per second per user (default 20)")
	fs.IntVar(&cfg.UserBurst, "user-burst", 0, "API call burst per user (default 40)")
	fs.Float64Var(&cfg.TypingRate, "typing-rate", 0, "typing indicators per second per device; more are dropped (default 2)")
	fs.IntVar(&cfg.TypingBurst, "typing-burst", 0, "typing indicator burst per device (default 4)")
	fs.DurationVar(&cfg.TypingShedWait, "typing-shed-wait", 0, "shed typing while 10% of the edge's goroutine wake-ups wait this long for a CPU (default 5ms; negative: never)")
	accessFlags(fs, &cfg.LoginThrottle, &cfg.CORS)
	fs.DurationVar(&cfg.RefreshGrace, "refresh-grace", 0, "how long after a refresh the refresh token it replaced still gets the same new one, for a client whose answer was lost (default 30s, at most 5m; negative: none, so a second use revokes the device)")
	presenceFlags(fs, &cfg.PresenceInterval, &cfg.PresenceLease)
	presenceOff := fs.String("presence-off", "", "workspace ids whose presence is not shown: id,...")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	logJSON := fs.Bool("log-json", false, "log as JSON")
	debugAddr := fs.String("debug", "", debugFlagUsage)
	metricsAddr := fs.String("metrics", "", metricsFlagUsage)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg.PresenceOff = splitList(*presenceOff)
	var err error
	if cfg.Logger, err = newLogger(stderr, *logLevel, *logJSON); err != nil {
		return err
	}
	var started func()
	cfg.Logger, started = quietStart(cfg.Logger)
	reg, err := observe.NewRegistry()
	if err != nil {
		return err
	}
	cfg.Metrics = reg
	if err := observe.ServeDebug(ctx, *debugAddr, reg, cfg.Logger); err != nil {
		return err
	}
	s, err := startSystem(ctx, cfg)
	if err != nil {
		return err
	}
	maddr, err := observe.ServeMetrics(ctx, *metricsAddr, reg, s.node.Ready, cfg.Logger)
	if err != nil {
		s.Close()
		return err
	}
	base := "http://" + s.HTTPAddr()
	fmt.Fprintf(stdout, "parley serve: data in %s\n", cfg.DataDir)
	fmt.Fprintf(stdout, "  HTTP API  %s/v1   (OpenAPI: %s/v1/openapi.json, health: %s/healthz)\n", base, base, base)
	if a := s.edge.UDPAddr(); a != nil {
		fmt.Fprintf(stdout, "  QUIC      %s (ALPN parley/1)   WebTransport https://%s/v1/wt   WebSocket ws://%s/v1/ws\n", a, a, s.HTTPAddr())
		fmt.Fprintf(stdout, "  cert      SHA-256 hashes for serverCertificateHashes: %s/.well-known/parley/cert-hashes\n", base)
	}
	if u := s.node.NATSURL(); u != "" {
		fmt.Fprintf(stdout, "  NATS      %s   (more edges: parley edge --nats %s --token-keys %s)\n",
			u, u, filepath.Join(cfg.DataDir, "edge", "token.keys"))
	}
	if maddr != nil {
		fmt.Fprintf(stdout, "  metrics   http://%s/metrics   (readiness: http://%s/readyz)\n", maddr, maddr)
	}
	fmt.Fprintf(stdout, "  try       curl -s %s/v1/accounts -d '{\"workspace\":\"acme\",\"username\":\"ana\",\"password\":\"correct horse battery\"}'\n", base)
	fmt.Fprintln(stdout, "Ctrl-C stops.")
	started()
	err = s.Run(ctx)
	fmt.Fprintln(stdout, "parley serve: stopped")
	return err
}
