// Package wsconn carries syncproto sessions over WebSocket, the fallback
// for browsers and networks without HTTP/3: each binary message is exactly
// one length-prefixed frame (syncproto.DecodeFrame); text messages are
// MALFORMED.
package wsconn

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"

	"github.com/coder/websocket"

	"github.com/parley-chat/parley/edge/session"
	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// Path is where the edge serves WebSocket sessions.
const Path = "/v1/ws"

// Subprotocol names the frame protocol in Sec-WebSocket-Protocol. Clients
// may offer it; the server accepts connections without one too.
const Subprotocol = "parley.v1"

// Handler upgrades requests to WebSocket and runs a session on each until
// base ends. Sessions authenticate with the token in their Hello (no
// cookies), so any origin may connect.
func Handler(base context.Context, srv *session.Server, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{
			Subprotocols:       []string{Subprotocol},
			InsecureSkipVerify: true, // origin: see above
		})
		if err != nil {
			log.Debug("websocket upgrade failed", "remote", r.RemoteAddr, "err", err)
			return
		}
		err = srv.Serve(base, NewConn(c, srv.MaxFrameSize()))
		if err != nil {
			log.Debug("websocket session ended", "remote", r.RemoteAddr, "err", err)
		}
	})
}

// Conn adapts a WebSocket connection to session.Conn (and, for clients,
// to any frame reader/writer).
type Conn struct {
	c   *websocket.Conn
	max int
}

// NewConn wraps c; maxFrame bounds incoming frame payloads.
func NewConn(c *websocket.Conn, maxFrame int) *Conn {
	// The length prefix adds at most 10 bytes to a payload.
	c.SetReadLimit(int64(maxFrame) + 10)
	return &Conn{c: c, max: maxFrame}
}

// ReadFrame reads one message as one frame.
func (c *Conn) ReadFrame(ctx context.Context) (*syncpb.Frame, error) {
	typ, b, err := c.c.Read(ctx)
	if err != nil {
		switch websocket.CloseStatus(err) {
		case websocket.StatusNormalClosure, websocket.StatusGoingAway:
			return nil, io.EOF
		case websocket.StatusMessageTooBig:
			return nil, syncproto.Errorf(syncpb.Code_CODE_TOO_LARGE, "frame over %d bytes", c.max)
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	if typ != websocket.MessageBinary {
		return nil, syncproto.Errorf(syncpb.Code_CODE_MALFORMED, "text messages are not frames; send binary")
	}
	f, _, err := syncproto.DecodeFrame(b, c.max)
	return f, err
}

// WriteFrame writes f as one binary message.
func (c *Conn) WriteFrame(ctx context.Context, f *syncpb.Frame) error {
	b, err := syncproto.AppendFrame(nil, f)
	if err != nil {
		return err
	}
	return c.c.Write(ctx, websocket.MessageBinary, b)
}

// Close closes the connection with a status that reflects err.
func (c *Conn) Close(err error) error {
	code, reason := websocket.StatusNormalClosure, ""
	var pe *syncproto.Error
	switch {
	case err == nil:
	case errors.As(err, &pe):
		code, reason = closeCode(pe.Code), syncproto.CodeName(pe.Code)
	default:
		code, reason = websocket.StatusInternalError, "internal"
	}
	return c.c.Close(code, reason)
}

// closeCode maps wire codes to WebSocket close codes (4000+code for ours).
func closeCode(c syncpb.Code) websocket.StatusCode {
	switch c {
	case syncpb.Code_CODE_MALFORMED:
		return websocket.StatusPolicyViolation
	case syncpb.Code_CODE_TOO_LARGE:
		return websocket.StatusMessageTooBig
	case syncpb.Code_CODE_UNAVAILABLE:
		return websocket.StatusTryAgainLater
	}
	return websocket.StatusCode(4000 + int(c))
}
