// Package quicport serves device sessions on one UDP port: raw QUIC for
// native clients (ALPN syncproto/streamframe.ALPN) and HTTP/3 with
// WebTransport for browsers (ALPN h3), told apart by ALPN. On both the
// client's first bidirectional stream is the session's control stream,
// carrying syncproto frames (streamframe); the session code is the same
// as over WebSocket. HTTP/3 requests other than the WebTransport path go
// to Config.HTTP (the /v1 API).
package quicport

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
	"github.com/quic-go/webtransport-go"

	"github.com/parley-chat/parley/edge/session"
	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/streamframe"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// Defaults for Config's zero values.
const (
	DefaultIdleTimeout = 60 * time.Second
	// DefaultStreamTimeout bounds the wait for a connection's control
	// stream, and the grace a closing session gives its last frame.
	DefaultStreamTimeout = 10 * time.Second
	// Defaults of the HTTP/3 timeouts, those of the edge's HTTP server
	// over TCP.
	DefaultHTTPIdleTimeout  = 2 * time.Minute
	DefaultHTTPReadTimeout  = 30 * time.Second
	DefaultHTTPWriteTimeout = 30 * time.Second
	// maxHeaderBytes bounds an HTTP/3 request's headers, as over TCP.
	maxHeaderBytes = 64 << 10
)

// Application error codes of closed raw-QUIC connections: 0 for a clean
// end, else the syncproto code of the error that ended the session.
func closeCode(err error) (quic.ApplicationErrorCode, string) {
	if err == nil {
		return 0, ""
	}
	e := syncproto.AsError(err)
	return quic.ApplicationErrorCode(e.Code), e.Message
}

// Config configures a Port.
type Config struct {
	// Addr is the UDP address to listen on ("127.0.0.1:0" picks a port).
	Addr string
	// PacketConn, when set, is used instead of listening on Addr (the Port
	// closes it).
	PacketConn net.PacketConn
	// TLS supplies the certificate (Certificates or GetCertificate);
	// NextProtos is set by the Port.
	TLS      *tls.Config
	Sessions *session.Server
	// HTTP serves HTTP/3 requests other than streamframe.WebTransportPath (optional).
	HTTP http.Handler
	// IdleTimeout closes a connection silent this long (default 60 s);
	// clients send keepalives at a third of it. KeepAlive makes the
	// server ping too (default off: idle phones cost nothing).
	IdleTimeout time.Duration
	KeepAlive   time.Duration
	// StreamTimeout: see DefaultStreamTimeout.
	StreamTimeout time.Duration
	// HTTPIdleTimeout closes an HTTP/3 connection on which no request has
	// run for this long (default 2 min). A WebTransport session is a
	// request for its whole life; a request counts from when its headers
	// are complete, so a client that trickles them is cut too.
	HTTPIdleTimeout time.Duration
	// HTTPReadTimeout and HTTPWriteTimeout bound reading the body of an
	// HTTP/3 request to Config.HTTP and writing its response, from when
	// its headers are complete (defaults 30 s).
	HTTPReadTimeout, HTTPWriteTimeout time.Duration
	Logger                            *slog.Logger
}

// Validate names the first bad field.
func (c Config) Validate() error {
	switch {
	case c.Addr == "" && c.PacketConn == nil:
		return errors.New("quicport: Config.Addr or PacketConn is required")
	case c.TLS == nil || (len(c.TLS.Certificates) == 0 && c.TLS.GetCertificate == nil && c.TLS.GetConfigForClient == nil):
		return errors.New("quicport: Config.TLS with a certificate is required")
	case c.Sessions == nil:
		return errors.New("quicport: Config.Sessions is required")
	case c.IdleTimeout < 0 || c.KeepAlive < 0 || c.StreamTimeout < 0 ||
		c.HTTPIdleTimeout < 0 || c.HTTPReadTimeout < 0 || c.HTTPWriteTimeout < 0:
		return errors.New("quicport: negative timeout")
	}
	return nil
}

// Port is a running UDP listener. New listens; Run serves; Close stops.
type Port struct {
	cfg  Config
	log  *slog.Logger
	tr   *quic.Transport
	ln   *quic.Listener
	wt   *webtransport.Server
	base context.Context
	stop context.CancelFunc
	wg   sync.WaitGroup
	once sync.Once
}

// New listens on cfg.Addr; nothing is served until Run.
func New(cfg Config) (*Port, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.StreamTimeout == 0 {
		cfg.StreamTimeout = DefaultStreamTimeout
	}
	if cfg.HTTPIdleTimeout == 0 {
		cfg.HTTPIdleTimeout = DefaultHTTPIdleTimeout
	}
	if cfg.HTTPReadTimeout == 0 {
		cfg.HTTPReadTimeout = DefaultHTTPReadTimeout
	}
	if cfg.HTTPWriteTimeout == 0 {
		cfg.HTTPWriteTimeout = DefaultHTTPWriteTimeout
	}
	p := &Port{cfg: cfg, log: cfg.Logger}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	pc := cfg.PacketConn
	if pc == nil {
		udp, err := net.ListenPacket("udp", cfg.Addr)
		if err != nil {
			return nil, fmt.Errorf("quicport: listen %s: %w", cfg.Addr, err)
		}
		pc = udp
	}
	// A peer that sends to a connection the port has closed and forgotten
	// (its CONNECTION_CLOSE was lost, say) is told at once with a
	// stateless reset rather than left to time out. The key is new for
	// each Port, so resets after a restart are not recognized.
	var resetKey quic.StatelessResetKey
	_, _ = rand.Read(resetKey[:])
	p.tr = &quic.Transport{Conn: pc, StatelessResetKey: &resetKey}
	tlsConf := cfg.TLS.Clone()
	tlsConf.NextProtos = []string{http3.NextProtoH3, streamframe.ALPN}
	tlsConf.MinVersion = tls.VersionTLS13
	qconf := &quic.Config{
		MaxIdleTimeout:                   cfg.IdleTimeout,
		KeepAlivePeriod:                  cfg.KeepAlive,
		HandshakeIdleTimeout:             cfg.StreamTimeout,
		EnableDatagrams:                  true,
		EnableStreamResetPartialDelivery: true,
		MaxIncomingStreams:               16,
		MaxIncomingUniStreams:            16,
	}
	var err error
	p.ln, err = p.tr.Listen(tlsConf, qconf)
	if err != nil {
		_ = p.tr.Close()
		_ = pc.Close()
		return nil, fmt.Errorf("quicport: %w", err)
	}
	p.base, p.stop = context.WithCancel(context.Background())
	mux := http.NewServeMux()
	mux.HandleFunc(streamframe.WebTransportPath, p.serveWebTransport)
	if cfg.HTTP != nil {
		mux.Handle("/", withDeadlines(cfg.HTTP, cfg.HTTPReadTimeout, cfg.HTTPWriteTimeout))
	}
	p.wt = &webtransport.Server{
		H3: &http3.Server{Handler: tracked(mux), QUICConfig: qconf, Logger: p.log, MaxHeaderBytes: maxHeaderBytes,
			ConnContext: p.watchIdle},
		// Sessions authenticate with the token in their Hello, never
		// with cookies, so any origin may connect.
		CheckOrigin: func(*http.Request) bool { return true },
	}
	return p, nil
}

// Addr is the UDP address the port listens on.
func (p *Port) Addr() net.Addr { return p.ln.Addr() }

// Run accepts connections until ctx ends or Close; then it closes the
// listener and every connection (sessions should be drained first), and
// returns nil.
func (p *Port) Run(ctx context.Context) error {
	stop := context.AfterFunc(ctx, p.stop)
	defer stop()
	for {
		conn, err := p.ln.Accept(p.base)
		if err != nil {
			if p.base.Err() != nil {
				p.shutdown()
				return nil
			}
			p.shutdown()
			return fmt.Errorf("quicport: accept: %w", err)
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.serve(conn)
		}()
	}
}

func (p *Port) serve(conn *quic.Conn) {
	switch proto := conn.ConnectionState().TLS.NegotiatedProtocol; proto {
	case streamframe.ALPN:
		p.serveRaw(conn)
	case http3.NextProtoH3:
		if err := p.wt.ServeQUICConn(conn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			p.log.Debug("http3 connection ended", "remote", conn.RemoteAddr(), "err", err)
		}
	default:
		_ = conn.CloseWithError(quic.ApplicationErrorCode(syncpb.Code_CODE_UNSUPPORTED_VERSION), "unknown ALPN")
	}
}

// serveRaw runs a session on a raw QUIC connection.
func (p *Port) serveRaw(conn *quic.Conn) {
	refuseUniStreams[quic.StreamErrorCode](conn.Context(), p, conn.AcceptUniStream)
	p.serveSession(func(ctx context.Context) (*streamframe.Conn, error) {
		str, err := conn.AcceptStream(ctx)
		if err != nil {
			return nil, err
		}
		return p.streamConn(str, func() { str.CancelRead(0) }), nil
	}, conn, conn.Context().Done(), func(err error) {
		code, msg := closeCode(err)
		_ = conn.CloseWithError(code, msg)
	}, "quic", conn.RemoteAddr())
}

// serveWebTransport upgrades a CONNECT request and runs a session on the
// WebTransport session.
func (p *Port) serveWebTransport(w http.ResponseWriter, r *http.Request) {
	sess, err := p.wt.Upgrade(w, r)
	if err != nil {
		p.log.Debug("webtransport upgrade failed", "remote", r.RemoteAddr, "err", err)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	refuseUniStreams[webtransport.StreamErrorCode](sess.Context(), p, sess.AcceptUniStream)
	p.serveSession(func(ctx context.Context) (*streamframe.Conn, error) {
		str, err := sess.AcceptStream(ctx)
		if err != nil {
			return nil, err
		}
		return p.streamConn(str, func() { str.CancelRead(0) }), nil
	}, sess, sess.Context().Done(), func(err error) {
		code, msg := closeCode(err)
		_ = sess.CloseWithError(webtransport.SessionErrorCode(code), msg)
	}, "webtransport", sess.RemoteAddr())
}

// refuseUniStreams stops, on one goroutine for the life of a connection
// (raw QUIC) or WebTransport session, every unidirectional stream its
// client opens, with STOP_SENDING and code MALFORMED: the protocol has
// none, and until a stream is accepted QUIC keeps the bytes sent on it,
// up to the connection's flow-control window (some 768 KiB), for as
// long as the session lives. accept fails once ctx, the connection's or
// the session's, ends.
func refuseUniStreams[C quic.StreamErrorCode | webtransport.StreamErrorCode, S interface{ CancelRead(C) }](
	ctx context.Context, p *Port, accept func(context.Context) (S, error)) {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			s, err := accept(ctx)
			if err != nil {
				return
			}
			s.CancelRead(C(syncpb.Code_CODE_MALFORMED))
		}
	}()
}

// streamConn frames one of the client's streams; closing it finishes the
// send side and abandons the receive side.
func (p *Port) streamConn(s streamframe.Stream, cancelRead func()) *streamframe.Conn {
	c := streamframe.NewConn(s, p.cfg.Sessions.MaxFrameSize())
	c.OnClose = func(error) error {
		err := s.Close()
		cancelRead()
		return err
	}
	return c
}

// serveSession runs a session on the client's first stream (accept gives
// the client's streams in order; the later ones are request streams).
// dg carries the connection's datagrams (typing); gone is closed when the
// connection ends; closeAll ends it with err's code.
func (p *Port) serveSession(accept func(context.Context) (*streamframe.Conn, error), dg session.Datagrams, gone <-chan struct{},
	closeAll func(err error), kind string, remote net.Addr) {
	ctx, cancel := context.WithTimeout(p.base, p.cfg.StreamTimeout)
	control, err := accept(ctx)
	cancel()
	if err != nil {
		closeAll(syncproto.Errorf(syncpb.Code_CODE_TIMEOUT, "no control stream"))
		return
	}
	finish := control.OnClose
	control.OnClose = func(err error) error {
		// Finish the stream so the last frame (an error, say) arrives,
		// then close the connection once the client has gone or after a
		// grace period.
		_ = finish(err)
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			t := time.NewTimer(p.cfg.StreamTimeout)
			defer t.Stop()
			select {
			case <-gone:
			case <-t.C:
			case <-p.base.Done():
			}
			closeAll(err)
		}()
		return nil
	}
	transport := kind // the metrics label: quic or wt
	if kind == "webtransport" {
		transport = "wt"
	}
	if err := p.cfg.Sessions.Serve(p.base, &streamsConn{Conn: control, accept: accept, dg: dg, transport: transport}); err != nil {
		p.log.Debug("session ended", "transport", kind, "remote", remote, "err", err)
	}
}

// streamsConn is a session's control stream that can also accept the
// device's request streams (session.RequestStreams) and carry datagrams
// (session.Datagrams: *quic.Conn and *webtransport.Session both do).
type streamsConn struct {
	*streamframe.Conn
	accept    func(ctx context.Context) (*streamframe.Conn, error)
	dg        session.Datagrams
	transport string // "quic" or "wt"
}

// Transport names the session's transport (session.Transporter).
func (c *streamsConn) Transport() string { return c.transport }

var (
	_ session.RequestStreams = (*streamsConn)(nil)
	_ session.Transporter    = (*streamsConn)(nil)
	_ session.Datagrams      = (*streamsConn)(nil)
	_ session.Datagrams      = (*quic.Conn)(nil)
	_ session.Datagrams      = (*webtransport.Session)(nil)
)

func (c *streamsConn) ReceiveDatagram(ctx context.Context) ([]byte, error) {
	return c.dg.ReceiveDatagram(ctx)
}

func (c *streamsConn) SendDatagram(b []byte) error { return c.dg.SendDatagram(b) }

func (c *streamsConn) AcceptRequest(ctx context.Context) (session.Conn, error) {
	return c.accept(ctx)
}

func (p *Port) shutdown() {
	p.once.Do(func() {
		p.stop()
		_ = p.wt.Close()
		_ = p.ln.Close()
		p.wg.Wait()
		_ = p.tr.Close()
		_ = p.tr.Conn.Close()
	})
}

// Close stops Run (or releases the listener if Run never ran) and waits
// for connections to end. Idempotent.
func (p *Port) Close() error {
	p.shutdown()
	return nil
}
