// Package edge is the relay between clients and the regional core. An
// Edge serves the HTTP /v1 API (package edge/httpapi) and reaches the core
// only through protobuf requests over NATS (package edge/corerpc); it
// stores no history and decides no order.
package edge

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/parley-chat/parley/edge/auth"
	"github.com/parley-chat/parley/edge/corerpc"
	"github.com/parley-chat/parley/edge/devcert"
	"github.com/parley-chat/parley/edge/httpapi"
	"github.com/parley-chat/parley/edge/internal/edgemetrics"
	"github.com/parley-chat/parley/edge/internal/schedload"
	"github.com/parley-chat/parley/edge/presence"
	"github.com/parley-chat/parley/edge/quicport"
	"github.com/parley-chat/parley/edge/revoke"
	"github.com/parley-chat/parley/edge/session"
	"github.com/parley-chat/parley/edge/webapp"
	"github.com/parley-chat/parley/edge/wsconn"
	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// Defaults for Config's zero values.
const (
	DefaultHTTPAddr              = "127.0.0.1:8080"
	DefaultShutdownTimeout       = 10 * time.Second
	DefaultHTTPReadHeaderTimeout = 10 * time.Second
	DefaultHTTPReadTimeout       = 30 * time.Second
	DefaultHTTPIdleTimeout       = 2 * time.Minute
	// DefaultHTTPWriteSlack is added to RequestTimeout for the default
	// HTTPWriteTimeout.
	DefaultHTTPWriteSlack = 10 * time.Second
	// DefaultRevocationWait caps Run's wait for the first revocation
	// catch-up (the default is the smaller of this and RequestTimeout).
	DefaultRevocationWait = 5 * time.Second
	// DefaultNATSPingInterval, DefaultNATSMaxPingsOut and
	// DefaultNATSReconnectWait are for the connections the Edge opens: a
	// path that silently drops (a partition) is noticed within seconds
	// and the edge moves to another core's server, instead of queueing on
	// a dead TCP connection until the kernel gives up (nats.go pings every
	// 2 minutes by default).
	DefaultNATSPingInterval  = time.Second
	DefaultNATSMaxPingsOut   = 3
	DefaultNATSReconnectWait = 250 * time.Millisecond
)

// ErrClosed is returned by Run after Close, and by a second Run.
var ErrClosed = errors.New("edge: closed or already running")

// Config configures an Edge. Zero values mean the defaults; Auth.Keys and
// one of NATS or NATSURL are required.
//
// The parts' own configurations are nested whole, with their defaults
// and Validate: New fills in the fields that wire a part to the others
// (connections, clients, handlers, clocks, loggers, metrics), whatever
// they hold, and each part's New validates the rest.
type Config struct {
	// HTTPAddr is where the HTTP API listens (default 127.0.0.1:8080;
	// port 0 picks a free port, see Edge.Addr).
	HTTPAddr string
	// NATS is an existing connection to the region's NATS, which the Edge
	// uses but does not close. Otherwise the Edge connects to NATSURL
	// (retrying in the background while it is down) and closes it.
	// With several URLs in NATSURL (comma-separated, one per core node's
	// server), the Edge also holds a connection to each, for requests that
	// go straight to the server of a shard's leader (see corerpc).
	NATS    *nats.Conn
	NATSURL string
	// NATSPingInterval, NATSMaxPingsOut and NATSReconnectWait configure
	// the connections the Edge opens to NATSURL (defaults 1 s, 3, 250 ms).
	NATSPingInterval  time.Duration
	NATSMaxPingsOut   int
	NATSReconnectWait time.Duration
	// Region names the NATS subjects (default syncproto.DefaultRegion).
	Region string
	// Auth: the token keys (Keys: the first signs, all verify), token
	// lifetimes, the refresh grace and password hashing costs. New sets
	// Revocations and Now. AccessTTL is at most
	// syncproto.RevocationRetention, the time the directory keeps
	// revocations for edges that missed them.
	Auth auth.Config
	// Revocations bounds the revoked devices the edge remembers
	// (MaxEntries). New sets TTL (the access token lifetime), Logger and Now.
	Revocations auth.RevocationsConfig
	// HTTP: the /v1 API's body limit, rate limits, CORS, log-in throttle
	// and readiness checks. New sets Core, Auth, Revoked, RequestTimeout,
	// Metrics, Logger and Now.
	HTTP httpapi.Config
	// Session: device sessions' queues, keepalive, timeouts and frame and
	// typing limits. New sets Core, Auth, Hub, Presence, RequestTimeout,
	// Overloaded, Metrics, Shared, Logger and Now. A session that reads no
	// whole frame for 3 KeepAlives ends.
	Session session.Config
	// Hub: live delivery's subscriptions (FlushTimeout). New sets Conn,
	// Region and Logger.
	Hub session.HubConfig
	// Presence times the presence batches to the cores (Interval, Lease,
	// Linger). New sets Conn, Core, Region, Logger and Now.
	Presence presence.Config
	// CoreRPC: the retries of calls to the core (AttemptTimeout,
	// MinBackoff, MaxBackoff). New sets Conn, Direct, Region, Timeout
	// (RequestTimeout), Metrics, Logger and Now.
	CoreRPC corerpc.Config
	// QUIC, when QUIC.Addr is set, serves raw QUIC and HTTP/3 +
	// WebTransport on that UDP address (port 0 picks one, see
	// Edge.UDPAddr), with its IdleTimeout and StreamTimeout. New sets
	// PacketConn (nil), TLS, Sessions, HTTP, the HTTP/3 timeouts (the
	// edge's HTTP timeouts below) and Logger.
	QUIC quicport.Config
	// Cert is the UDP port's certificate: CertFile/KeyFile (PEM, reloaded
	// when they change) or else a self-signed dev certificate kept in Dir
	// (see edge/devcert), whose hashes the HTTP port publishes for
	// browsers. New sets Logger and Now. Unused without QUIC.Addr.
	Cert devcert.Config
	// WebSocket bounds closing a WebSocket connection, whatever the peer
	// does (CloseTimeout). New sets Sessions and Logger.
	WebSocket wsconn.Config
	// RequestTimeout bounds each request, core calls included (default
	// 10 s): the HTTP API's, the device sessions' and the core client's.
	RequestTimeout time.Duration
	// RevocationWait bounds Run's wait for the first revocation catch-up
	// before it serves (default: the smaller of RequestTimeout and 5 s);
	// tokens are refused until it is done.
	RevocationWait time.Duration
	// ShutdownTimeout bounds the graceful shutdown when Run's ctx ends
	// (default 10 s); requests still running then are cut off, and
	// WebSockets still open are closed within WebSocket.CloseTimeout.
	ShutdownTimeout time.Duration
	// TypingShedWait is the goroutine scheduling wait at which the edge
	// counts itself short of CPU and sheds typing, when at least 10% of
	// wake-ups in 100 ms wait this long (default 5 ms; negative: never
	// shed for CPU, only for backlogs and full device queues).
	TypingShedWait time.Duration
	// The HTTP timeouts, over TCP and HTTP/3 alike: HTTPReadHeaderTimeout
	// bounds reading a request's headers and HTTPReadTimeout the whole
	// request with its body (defaults 10 s, 30 s); HTTPWriteTimeout
	// bounds writing the response (default RequestTimeout + 10 s);
	// HTTPIdleTimeout closes a connection with no request for this long
	// (default 2 min). (Over HTTP/3 the read and write bounds start when
	// the headers are complete, and a trickled header counts as idle.)
	HTTPReadHeaderTimeout, HTTPReadTimeout, HTTPWriteTimeout, HTTPIdleTimeout time.Duration
	// Metrics receives the edge's Prometheus series (sessions, sends,
	// deliveries, core calls, rate limits, typing; see docs/metrics.md);
	// nil: a private registry that nothing reads. Register one Edge per
	// registry.
	Metrics prometheus.Registerer
	// WebApp, when set, is a browser app's static files (index.html and
	// its assets), served at / in front of the API (see edge/webapp).
	WebApp fs.FS
	// Logger (default: discard).
	Logger *slog.Logger
	// Now is the clock for tokens and limits (default time.Now).
	Now func() time.Time
}

// Validate names the first bad field of the edge's own and of the parts'
// configurations that need no wiring (Auth, HTTP's CORS and log-in
// throttle, Cert); the other parts' New check theirs.
func (c Config) Validate() error {
	switch {
	case c.NATS == nil && c.NATSURL == "":
		return errors.New("edge: NATS or NATSURL is required")
	case c.NATS != nil && c.NATSURL != "":
		return errors.New("edge: set NATS or NATSURL, not both")
	case c.Region != "" && !syncproto.ValidID(c.Region):
		return fmt.Errorf("edge: Region %q: want 1..%d characters of [a-z0-9_-]", c.Region, syncproto.MaxIDLen)
	case c.ShutdownTimeout < 0:
		return fmt.Errorf("edge: ShutdownTimeout %v is negative", c.ShutdownTimeout)
	case c.RequestTimeout < 0:
		return fmt.Errorf("edge: RequestTimeout %v is negative", c.RequestTimeout)
	case c.RevocationWait < 0:
		return fmt.Errorf("edge: RevocationWait %v is negative", c.RevocationWait)
	case c.NATSPingInterval < 0 || c.NATSMaxPingsOut < 0 || c.NATSReconnectWait < 0:
		return errors.New("edge: NATSPingInterval, NATSMaxPingsOut and NATSReconnectWait must not be negative")
	case c.Auth.AccessTTL > syncproto.RevocationRetention:
		return fmt.Errorf("edge: Auth.AccessTTL %v is longer than the %v revocations are kept", c.Auth.AccessTTL, syncproto.RevocationRetention)
	case c.Revocations.MaxEntries < 0:
		return fmt.Errorf("edge: Revocations.MaxEntries %d is negative", c.Revocations.MaxEntries)
	case c.WebSocket.CloseTimeout < 0 || c.QUIC.StreamTimeout < 0 || c.Session.RequestStreamTimeout < 0 ||
		c.Session.HelloTimeout < 0 || c.Session.WriteTimeout < 0 || c.QUIC.IdleTimeout < 0:
		return errors.New("edge: WebSocket.CloseTimeout, QUIC.StreamTimeout, QUIC.IdleTimeout, " +
			"Session.RequestStreamTimeout, Session.HelloTimeout and Session.WriteTimeout must not be negative")
	case c.HTTPReadHeaderTimeout < 0 || c.HTTPReadTimeout < 0 || c.HTTPWriteTimeout < 0 || c.HTTPIdleTimeout < 0:
		return errors.New("edge: the HTTP timeouts must not be negative")
	case c.HTTPReadHeaderTimeout > 0 && c.HTTPReadTimeout > 0 && c.HTTPReadHeaderTimeout > c.HTTPReadTimeout:
		return fmt.Errorf("edge: HTTPReadHeaderTimeout %v exceeds HTTPReadTimeout %v", c.HTTPReadHeaderTimeout, c.HTTPReadTimeout)
	}
	if err := c.Auth.Validate(); err != nil {
		return fmt.Errorf("edge: %w", err)
	}
	if err := c.HTTP.LoginThrottle.Validate(); err != nil {
		return fmt.Errorf("edge: HTTP.LoginThrottle: %w", err)
	}
	if err := c.HTTP.CORS.Validate(); err != nil {
		return fmt.Errorf("edge: %w", err)
	}
	if c.QUIC.Addr != "" {
		if err := c.Cert.Validate(); err != nil {
			return fmt.Errorf("edge: %w", err)
		}
	}
	return nil
}

// Edge is one edge relay. New listens; Run serves; Close releases.
type Edge struct {
	log      *slog.Logger
	ln       net.Listener
	srv      *http.Server
	revoked  *revoke.Follower
	readyBy  time.Duration // how long Run waits for the first revocation catch-up
	nc       *nats.Conn
	ownNC    bool
	direct   []*nats.Conn // pinned to one server each; owned
	rpc      *corerpc.Client
	hub      *session.Hub
	pres     *presence.Service
	sessions *session.Server
	ws       *wsconn.Handler
	certs    *devcert.Manager // nil without a UDP port
	udp      *quicport.Port
	shutdown time.Duration
	// base lives as long as the Edge; sessions run under it.
	base       context.Context
	baseCancel context.CancelFunc

	mu      sync.Mutex
	started bool
	closing chan struct{}
	runDone chan struct{}
	once    sync.Once
}

// New builds an Edge and starts listening on cfg.HTTPAddr, so Addr is
// known at once; nothing is served until Run.
func New(cfg Config) (*Edge, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	e := &Edge{log: cfg.Logger, shutdown: cfg.ShutdownTimeout, closing: make(chan struct{}), runDone: make(chan struct{})}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	if e.shutdown == 0 {
		e.shutdown = DefaultShutdownTimeout
	}
	timeout := cfg.RequestTimeout
	if timeout == 0 {
		timeout = httpapi.DefaultRequestTimeout
	}
	rcfg := cfg.Revocations
	rcfg.TTL, rcfg.Logger, rcfg.Now = cfg.Auth.AccessTTL, e.log.With("part", "revoke"), cfg.Now
	revs, err := auth.NewRevocations(rcfg)
	if err != nil {
		return nil, fmt.Errorf("edge: %w", err)
	}
	acfg := cfg.Auth
	acfg.Revocations, acfg.Now = revs, cfg.Now
	au, err := auth.New(acfg)
	if err != nil {
		return nil, fmt.Errorf("edge: %w", err)
	}
	e.readyBy = cfg.RevocationWait
	if e.readyBy == 0 {
		e.readyBy = min(timeout, DefaultRevocationWait)
	}
	e.nc = cfg.NATS
	if e.nc == nil {
		if err := e.connectNATS(cfg); err != nil {
			return nil, err
		}
	}
	fail := func(err error) (*Edge, error) {
		e.closeNATS()
		return nil, err
	}
	reg := cfg.Metrics
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	shared, err := edgemetrics.New(reg)
	if err != nil {
		return fail(fmt.Errorf("edge: metrics: %w", err))
	}
	ccfg := cfg.CoreRPC
	ccfg.Conn, ccfg.Direct, ccfg.Region, ccfg.Timeout = e.nc, e.direct, cfg.Region, timeout
	ccfg.Metrics, ccfg.Logger, ccfg.Now = reg, e.log.With("part", "corerpc"), cfg.Now
	if e.rpc, err = corerpc.New(ccfg); err != nil {
		return fail(fmt.Errorf("edge: %w", err))
	}
	e.revoked, err = revoke.New(revoke.Config{Conn: e.nc, Core: e.rpc, Region: e.rpc.Region(), Set: revs, TTL: au.AccessTTL(),
		// Sessions exist by the time the first revocation arrives (Run).
		OnRevoke: func(rv *syncpb.Revocation) { e.sessions.Revoke(rv) },
		Logger:   e.log.With("part", "revoke"), Now: cfg.Now})
	if err != nil {
		return fail(fmt.Errorf("edge: %w", err))
	}
	hcfg := cfg.HTTP
	hcfg.Core, hcfg.Auth, hcfg.Revoked, hcfg.RequestTimeout = e.rpc, au, e.revoked.Apply, timeout
	hcfg.Metrics, hcfg.Logger, hcfg.Now = shared, e.log.With("part", "httpapi"), cfg.Now
	api, err := httpapi.New(hcfg)
	if err != nil {
		return fail(fmt.Errorf("edge: %w", err))
	}
	ucfg := cfg.Hub
	ucfg.Conn, ucfg.Region, ucfg.Logger = e.nc, e.rpc.Region(), e.log.With("part", "hub")
	if e.hub, err = session.NewHub(ucfg); err != nil {
		return fail(fmt.Errorf("edge: %w", err))
	}
	pcfg := cfg.Presence
	pcfg.Conn, pcfg.Core, pcfg.Region, pcfg.Logger, pcfg.Now = e.nc, e.rpc, e.rpc.Region(), e.log.With("part", "presence"), cfg.Now
	if e.pres, err = presence.New(pcfg); err != nil {
		return fail(fmt.Errorf("edge: %w", err))
	}
	if e.ownNC {
		// Deliveries and presence updates published while the connection
		// was down reached nobody here: sessions resync, watched users are
		// looked up again.
		e.nc.SetReconnectHandler(func(*nats.Conn) {
			e.log.Info("NATS connection restored: sessions resync, presence and revocations are looked up again")
			e.revoked.Reconnected()
			e.hub.Reconnected()
			e.pres.Reconnected()
		})
		// Revocations published while it is down reach nobody here: tokens
		// wait for the catch-up after it comes back.
		e.nc.SetDisconnectErrHandler(func(*nats.Conn, error) { e.revoked.Disconnected() })
	}
	scfg := cfg.Session
	scfg.Core, scfg.Auth, scfg.Hub, scfg.Presence, scfg.RequestTimeout = e.rpc, au, e.hub, presenceAdapter{e.pres}, timeout
	scfg.Overloaded, scfg.Metrics, scfg.Shared = overloaded(cfg.TypingShedWait), reg, shared
	scfg.Logger, scfg.Now = e.log.With("part", "session"), cfg.Now
	if e.sessions, err = session.New(scfg); err != nil {
		return fail(fmt.Errorf("edge: %w", err))
	}
	ht := httpTimeouts{header: cfg.HTTPReadHeaderTimeout, read: cfg.HTTPReadTimeout, write: cfg.HTTPWriteTimeout, idle: cfg.HTTPIdleTimeout}
	ht = ht.withDefaults(timeout)
	e.base, e.baseCancel = context.WithCancel(context.Background())
	wcfg := cfg.WebSocket
	wcfg.Sessions, wcfg.Logger = e.sessions, e.log.With("part", "ws")
	if e.ws, err = wsconn.New(e.base, wcfg); err != nil {
		e.baseCancel()
		return fail(fmt.Errorf("edge: %w", err))
	}
	mux := http.NewServeMux()
	mux.Handle("GET "+wsconn.Path, e.ws)
	if cfg.WebApp == nil {
		mux.Handle("/", api)
	}
	if cfg.QUIC.Addr != "" {
		dcfg := cfg.Cert
		dcfg.Logger, dcfg.Now = e.log.With("part", "cert"), cfg.Now
		if e.certs, err = devcert.New(dcfg); err != nil {
			e.baseCancel()
			return fail(fmt.Errorf("edge: %w", err))
		}
		mux.Handle(syncproto.CertHashPath, e.certs.HashHandler())
		qcfg := cfg.QUIC
		qcfg.PacketConn, qcfg.TLS, qcfg.Sessions, qcfg.HTTP = nil, e.certs.TLSConfig(), e.sessions, withSecurityHeaders(api)
		qcfg.HTTPIdleTimeout, qcfg.HTTPReadTimeout, qcfg.HTTPWriteTimeout = ht.idle, ht.read, ht.write
		qcfg.Logger = e.log.With("part", "quic")
		if e.udp, err = quicport.New(qcfg); err != nil {
			_ = e.certs.Close()
			e.baseCancel()
			return fail(fmt.Errorf("edge: %w", err))
		}
	}
	if cfg.WebApp != nil {
		app, err := webapp.New(webapp.Config{Files: cfg.WebApp, Next: api, UDPPort: e.udpPort})
		if err != nil {
			e.closeUDP()
			e.baseCancel()
			return fail(fmt.Errorf("edge: %w", err))
		}
		mux.Handle("/", app)
	}
	addr := cfg.HTTPAddr
	if addr == "" {
		addr = DefaultHTTPAddr
	}
	e.ln, err = net.Listen("tcp", addr)
	if err != nil {
		e.closeUDP()
		e.baseCancel()
		return fail(fmt.Errorf("edge: listen %s: %w", addr, err))
	}
	e.srv = &http.Server{
		Handler:           withSecurityHeaders(mux),
		ReadHeaderTimeout: ht.header,
		ReadTimeout:       ht.read,
		WriteTimeout:      ht.write,
		IdleTimeout:       ht.idle,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(e.log.Handler(), slog.LevelDebug),
	}
	return e, nil
}

// connectNATS opens the Edge's connections to cfg.NATSURL: one that
// follows the cluster, and with several URLs one pinned to each server.
func (e *Edge) connectNATS(cfg Config) error {
	ping, pings, wait := cfg.NATSPingInterval, cfg.NATSMaxPingsOut, cfg.NATSReconnectWait
	if ping == 0 {
		ping = DefaultNATSPingInterval
	}
	if pings == 0 {
		pings = DefaultNATSMaxPingsOut
	}
	if wait == 0 {
		wait = DefaultNATSReconnectWait
	}
	opts := []nats.Option{nats.MaxReconnects(-1), nats.RetryOnFailedConnect(true),
		nats.PingInterval(ping), nats.MaxPingsOutstanding(pings), nats.ReconnectWait(wait)}
	var err error
	e.nc, err = nats.Connect(cfg.NATSURL, append(opts, nats.Name("parley-edge"))...)
	if err != nil {
		return fmt.Errorf("edge: connect to NATS %s: %w", cfg.NATSURL, err)
	}
	e.ownNC = true
	if urls := strings.Split(cfg.NATSURL, ","); len(urls) > 1 {
		for _, u := range urls {
			d, err := nats.Connect(strings.TrimSpace(u), append(opts, nats.Name("parley-edge-direct"), nats.IgnoreDiscoveredServers())...)
			if err != nil {
				e.closeNATS()
				return fmt.Errorf("edge: connect to NATS %s: %w", u, err)
			}
			e.direct = append(e.direct, d)
		}
	}
	return nil
}

// Addr is the address the HTTP API listens on.
func (e *Edge) Addr() net.Addr { return e.ln.Addr() }

// UDPAddr is the address of the QUIC/WebTransport port, nil without one.
func (e *Edge) UDPAddr() net.Addr {
	if e.udp == nil {
		return nil
	}
	return e.udp.Addr()
}

// udpPort is the UDP port's number, 0 without one.
func (e *Edge) udpPort() int {
	if a, ok := e.UDPAddr().(*net.UDPAddr); ok {
		return a.Port
	}
	return 0
}

// CertHashes are the SHA-256 hashes of the certificates the UDP port
// serves that browsers may pin (see devcert); none without a UDP port.
func (e *Edge) CertHashes() [][32]byte {
	if e.certs == nil {
		return nil
	}
	return e.certs.Hashes()
}

func (e *Edge) closeUDP() {
	if e.udp != nil {
		_ = e.udp.Close()
	}
	if e.certs != nil {
		_ = e.certs.Close()
	}
}

// Run serves until ctx ends or Close is called, then shuts down
// gracefully: it stops accepting, lets running requests finish within
// ShutdownTimeout, closes the WebSockets left (within
// WebSocket.CloseTimeout), and returns nil. It returns an error if serving
// fails, and ErrClosed if the Edge was closed or is already running.
func (e *Edge) Run(ctx context.Context) error {
	e.mu.Lock()
	if e.started {
		e.mu.Unlock()
		return ErrClosed
	}
	e.started = true
	e.mu.Unlock()
	defer close(e.runDone)

	var wg sync.WaitGroup
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stopPresence := e.runPresence()
	wg.Add(2)
	go func() {
		defer wg.Done()
		e.learnRegion(wctx)
	}()
	go func() {
		defer wg.Done()
		if err := e.revoked.Run(wctx); err != nil {
			e.log.Error("revocations are not followed: every token is refused", "err", err)
		}
	}()
	// Tokens are refused (UNAVAILABLE) until the edge knows what was
	// revoked; give the first catch-up a moment before serving.
	rctx, rcancel := context.WithTimeout(wctx, e.readyBy)
	if err := e.revoked.WaitReady(rctx); err != nil && wctx.Err() == nil {
		e.log.Warn("revocations not caught up yet: tokens are refused until they are", "err", err)
	}
	rcancel()

	served := make(chan error, 1)
	go func() { served <- e.srv.Serve(e.ln) }()
	// The UDP port outlives the drain below, so its sessions get GoAway.
	uctx, ucancel := context.WithCancel(context.Background())
	defer ucancel()
	if e.udp != nil {
		wg.Add(2)
		go func() {
			defer wg.Done()
			if err := e.certs.Run(uctx); err != nil {
				e.log.Error("certificate manager stopped", "err", err)
			}
		}()
		go func() {
			defer wg.Done()
			if err := e.udp.Run(uctx); err != nil {
				e.log.Error("UDP port stopped", "err", err)
			}
		}()
		e.log.Info("edge listening", "addr", e.Addr().String(), "udp", e.UDPAddr().String(), "region", e.rpc.Region())
	} else {
		e.log.Info("edge listening", "addr", e.Addr().String(), "region", e.rpc.Region())
	}

	var err error
	select {
	case <-ctx.Done():
	case <-e.closing:
	case err = <-served:
	}
	cancel()
	sctx, scancel := context.WithTimeout(context.Background(), e.shutdown)
	defer scancel()
	// Sessions are told to move (GoAway) and given the shutdown time to go.
	if derr := e.sessions.Drain(sctx, "the edge is shutting down"); derr != nil {
		e.log.Warn("sessions still open at shutdown were closed", "err", derr)
	}
	stopPresence()
	ucancel()
	e.baseCancel()
	e.hub.Close()
	if serr := e.srv.Shutdown(sctx); serr != nil {
		e.log.Warn("graceful shutdown timed out; closing connections", "err", serr)
		_ = e.srv.Close()
	}
	// The WebSockets, which the HTTP server no longer tracks, close
	// within WebSocket.CloseTimeout of their sessions' end.
	e.ws.Close()
	if err == nil {
		err = <-served
	}
	wg.Wait()
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	if err != nil {
		return fmt.Errorf("edge: serve: %w", err)
	}
	return nil
}

// httpTimeouts are the HTTP server's timeouts (see Config).
type httpTimeouts struct{ header, read, write, idle time.Duration }

func (t httpTimeouts) withDefaults(requestTimeout time.Duration) httpTimeouts {
	if t.read == 0 {
		t.read = DefaultHTTPReadTimeout
	}
	if t.header == 0 {
		t.header = min(DefaultHTTPReadHeaderTimeout, t.read)
	}
	if t.write == 0 {
		t.write = requestTimeout + DefaultHTTPWriteSlack
	}
	if t.idle == 0 {
		t.idle = DefaultHTTPIdleTimeout
	}
	return t
}

// learnRegion asks the core for the shard count until it answers, so the
// first requests need not wait for it.
func (e *Edge) learnRegion(ctx context.Context) {
	info, err := e.rpc.RegionInfo(ctx)
	if err != nil {
		if ctx.Err() == nil {
			e.log.Warn("could not learn the region from the core", "err", err)
		}
		return
	}
	e.log.Info("core reachable", "region", info.Region, "shards", info.ShardCount, "nodes", len(info.Nodes))
}

// overloaded is the edge's load signal for shedding typing: its
// goroutines wait for a CPU (nil for a negative wait: never).
func overloaded(wait time.Duration) func() bool {
	if wait < 0 {
		return nil
	}
	return schedload.New(schedload.Config{Threshold: wait}).Overloaded
}

// Hub is the edge's live-delivery hub (for stats and tests).
func (e *Edge) Hub() *session.Hub { return e.hub }

// Sessions is the number of live device sessions.
func (e *Edge) Sessions() int { return e.sessions.Sessions() }

// TypingStats counts typing indicators through this edge: received,
// dropped by reason, published, pushed, and shed under load.
func (e *Edge) TypingStats() session.TypingStats { return e.sessions.TypingStats() }

// Typing goes to the core without a reply.
var _ session.Publisher = (*corerpc.Client)(nil)

// Close stops a running Run and waits for it to return, releases the
// listener, and closes the NATS connection if the Edge opened it. It is
// idempotent.
func (e *Edge) Close() error {
	e.once.Do(func() {
		close(e.closing)
		e.mu.Lock()
		started := e.started
		e.started = true
		e.mu.Unlock()
		if started {
			<-e.runDone
		} else {
			_ = e.ln.Close()
			e.closeUDP()
			e.baseCancel()
			e.hub.Close()
		}
		e.closeNATS()
	})
	return nil
}

// closeNATS closes the NATS connections the Edge opened.
func (e *Edge) closeNATS() {
	if e.ownNC {
		e.nc.Close()
	}
	for _, d := range e.direct {
		d.Close()
	}
}
