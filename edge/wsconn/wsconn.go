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
	"time"

	"github.com/coder/websocket"

	"github.com/parley-chat/parley/edge/session"
	"github.com/parley-chat/parley/syncproto/wsframe"
)

// Path is where the edge serves WebSocket sessions.
const Path = wsframe.Path

// DefaultCloseTimeout is Config.CloseTimeout's default.
const DefaultCloseTimeout = 2 * time.Second

// Config configures Handler. Sessions is required.
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
func Handler(base context.Context, cfg Config) (http.Handler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.CloseTimeout == 0 {
		cfg.CloseTimeout = DefaultCloseTimeout
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	srv := cfg.Sessions
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hw := &hijacked{ResponseWriter: w}
		c, err := websocket.Accept(hw, r, &websocket.AcceptOptions{
			Subprotocols:       []string{wsframe.Subprotocol},
			InsecureSkipVerify: true, // origin: see above
		})
		if err != nil {
			log.Debug("websocket upgrade failed", "remote", r.RemoteAddr, "err", err)
			return
		}
		// The handler owns the TCP connection from here: it is closed
		// when the session ends, whatever the WebSocket library did.
		defer hw.conn.Close()
		err = srv.Serve(base, &conn{Conn: wsframe.NewConn(c, srv.MaxFrameSize()), tcp: hw.conn, closeTimeout: cfg.CloseTimeout})
		if err != nil {
			log.Debug("websocket session ended", "remote", r.RemoteAddr, "err", err)
		}
	}), nil
}

// conn is a session's WebSocket whose Close is bounded by a deadline on
// the TCP connection underneath.
type conn struct {
	*wsframe.Conn
	tcp          net.Conn
	closeTimeout time.Duration
}

// Close sends the close frame and waits for the peer's, as the WebSocket
// close handshake asks, but only until the deadline: then every read and
// write on the connection fails (a write blocked on a peer that does not
// read, the wait for the peer's close frame, the discarding of a frame
// the peer announced and never sent) and the connection is closed.
func (c *conn) Close(err error) error {
	_ = c.tcp.SetDeadline(time.Now().Add(c.closeTimeout))
	return c.Conn.Close(err)
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
