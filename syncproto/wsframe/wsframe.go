// Package wsframe binds syncproto frames to WebSocket, for both ends: each
// binary message is exactly one length-prefixed frame (DecodeFrame); text
// messages are MALFORMED. See syncproto/README.md, Transports.
package wsframe

import (
	"context"
	"errors"
	"io"

	"github.com/coder/websocket"

	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// Path is where edges serve WebSocket sessions.
const Path = "/v1/ws"

// Subprotocol names the frame protocol in Sec-WebSocket-Protocol. Clients
// may offer it; servers accept connections without one too.
const Subprotocol = "parley.v1"

// Conn reads and writes frames on a WebSocket connection.
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
		if errors.Is(err, websocket.ErrMessageTooBig) {
			// The library has sent close 1009 and reads no further.
			return nil, syncproto.Errorf(syncpb.Code_CODE_TOO_LARGE, "frame over %d bytes", c.max)
		}
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
