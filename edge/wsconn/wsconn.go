// Package wsconn serves syncproto sessions over WebSocket, the fallback
// for browsers and networks without HTTP/3 (framing: syncproto/wsframe).
package wsconn

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/coder/websocket"

	"github.com/parley-chat/parley/edge/session"
	"github.com/parley-chat/parley/syncproto/wsframe"
)

// Path is where the edge serves WebSocket sessions.
const Path = wsframe.Path

// Handler upgrades requests to WebSocket and runs a session on each until
// base ends. Sessions authenticate with the token in their Hello (no
// cookies), so any origin may connect.
func Handler(base context.Context, srv *session.Server, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{
			Subprotocols:       []string{wsframe.Subprotocol},
			InsecureSkipVerify: true, // origin: see above
		})
		if err != nil {
			log.Debug("websocket upgrade failed", "remote", r.RemoteAddr, "err", err)
			return
		}
		err = srv.Serve(base, wsframe.NewConn(c, srv.MaxFrameSize()))
		if err != nil {
			log.Debug("websocket session ended", "remote", r.RemoteAddr, "err", err)
		}
	})
}
