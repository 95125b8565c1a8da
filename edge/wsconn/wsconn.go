// Package wsconn serves syncproto sessions over WebSocket, the fallback
// for browsers and networks without HTTP/3 (framing: syncproto/wsframe).
package wsconn

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/parley-chat/parley/edge/session"
	"github.com/parley-chat/parley/syncproto/wsframe"
)

// Path is where the edge serves WebSocket sessions.
const Path = wsframe.Path

// DefaultCloseTimeout is Config.CloseTimeout's default.
const DefaultCloseTimeout = 2 * time.Second

// Config configures a Handler. Sessions is required.
type Config struct {
	Sessions *session.Server
	// CloseTimeout bounds closing a connection, whatever the peer does:
	// the close handshake (the peer may neither read the close frame nor
	// answer it), and any write still blocked on a peer that stopped
	// reading. The TCP connection is closed when it ends (default 2 s).
	CloseTimeout time.Duration
	Logger       *slog.Logger
}

// Validate names the first bad field.
func (c Config) Validate() error {
	switch {
	case c.Sessions == nil:
		return errors.New("wsconn: Config.Sessions is required")
	case c.CloseTimeout < 0:
		return fmt.Errorf("wsconn: CloseTimeout %v is negative", c.CloseTimeout)
	}
	return nil
}

// Handler upgrades requests to WebSocket and runs a session on each until
// base ends. Sessions authenticate with the token in their Hello (no
// cookies), so any origin may connect.
type Handler struct {
	base context.Context
	cfg  Config
	log  *slog.Logger

	mu      sync.Mutex
	closing bool
	conns   sync.WaitGroup // the requests being served, their WebSockets included
}

var _ http.Handler = (*Handler)(nil)

// New returns a Handler whose sessions end when base does.
func New(base context.Context, cfg Config) (*Handler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.CloseTimeout == 0 {
		cfg.CloseTimeout = DefaultCloseTimeout
	}
	h := &Handler{base: base, cfg: cfg, log: cfg.Logger}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	return h, nil
}

// ServeHTTP upgrades r and runs its session, then closes the WebSocket
// (within CloseTimeout). After Close it answers 503.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	if h.closing {
		h.mu.Unlock()
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	}
	h.conns.Add(1)
	h.mu.Unlock()
	defer h.conns.Done()
	srv := h.cfg.Sessions
	conn, err := accept(w, r, srv.MaxFrameSize())
	if err != nil {
		h.log.Debug("websocket upgrade failed", "remote", r.RemoteAddr, "err", err)
		return
	}
	err = srv.Serve(h.base, conn)
	if err != nil {
		h.log.Debug("websocket session ended", "remote", r.RemoteAddr, "err", err)
	}
	conn.finish(h.cfg.CloseTimeout)
}

// Close refuses new requests and waits until every WebSocket that
// ServeHTTP upgraded is closed: once base has ended, at most CloseTimeout
// after the last session ends. (An http.Server's Shutdown does not wait
// for the connections its handlers took over.) Idempotent.
func (h *Handler) Close() {
	h.mu.Lock()
	h.closing = true
	h.mu.Unlock()
	h.conns.Wait()
}

// accept upgrades the request and keeps the TCP connection underneath.
func accept(w http.ResponseWriter, r *http.Request, maxFrame int) (*conn, error) {
	hw := &hijacked{ResponseWriter: w}
	c, err := websocket.Accept(hw, r, &websocket.AcceptOptions{
		Subprotocols:       []string{wsframe.Subprotocol},
		InsecureSkipVerify: true, // origin: see Handler
	})
	if err != nil {
		return nil, err
	}
	return &conn{Conn: wsframe.NewConn(c, maxFrame), tcp: hw.conn}, nil
}

// conn is a session's WebSocket. The session's Close only ends the
// session's use of it, at once; the handler closes it (finish) once the
// session is over.
type conn struct {
	*wsframe.Conn
	tcp net.Conn

	mu     sync.Mutex
	closed bool
	err    error // Close's
}

// Transport names the session's transport (session.Transporter).
func (c *conn) Transport() string { return "ws" }

var _ session.Transporter = (*conn)(nil)

// Close makes the session's reads and writes in progress fail now and
// keeps err for the close frame; it never waits for the peer (a session
// is closed from the goroutine that sweeps idle sessions, among others).
func (c *conn) Close(err error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed {
		c.closed, c.err = true, err
		_ = c.tcp.SetDeadline(time.Unix(1, 0))
	}
	return nil
}

// finish closes the WebSocket: it sends the close frame with the code of
// Close's error and waits for the peer's, as the close handshake asks,
// but only until the deadline, whatever the peer does (it may neither
// read nor answer; it may have announced a frame it never sends, which
// the handshake would otherwise wait to discard). Then it closes the TCP
// connection.
func (c *conn) finish(timeout time.Duration) {
	c.mu.Lock()
	c.closed = true
	err := c.err
	c.mu.Unlock()
	_ = c.tcp.SetDeadline(time.Now().Add(timeout))
	_ = c.Conn.Close(err)
	_ = c.tcp.Close()
}

// hijacked keeps the connection that websocket.Accept hijacks, for its
// deadlines.
type hijacked struct {
	http.ResponseWriter
	conn net.Conn
}

func (h *hijacked) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, rw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	h.conn = c
	return c, rw, err
}

func (h *hijacked) Unwrap() http.ResponseWriter { return h.ResponseWriter }
