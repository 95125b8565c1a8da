package quicport

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
)

// h3Idle closes an HTTP/3 connection once no request has run on it for
// the idle time. (http3.Server's own IdleTimeout stops counting as soon as
// a request stream opens, so a client that trickles a request's headers,
// or leaves them unfinished, would hold the connection forever; here a
// request counts only while its handler runs.)
type h3Idle struct {
	idle   time.Duration
	mu     sync.Mutex
	active int
	timer  *time.Timer
	gone   bool // the connection ended
}

type h3IdleKey struct{}

// watchIdle is the HTTP/3 server's ConnContext: it starts the idle timer
// of a new connection, stopped when the connection ends.
func (p *Port) watchIdle(ctx context.Context, conn *quic.Conn) context.Context {
	w := &h3Idle{idle: p.cfg.HTTPIdleTimeout}
	w.timer = time.AfterFunc(w.idle, func() {
		_ = conn.CloseWithError(quic.ApplicationErrorCode(http3.ErrCodeNoError), "idle")
	})
	context.AfterFunc(conn.Context(), func() {
		w.mu.Lock()
		w.gone = true
		w.timer.Stop()
		w.mu.Unlock()
	})
	return context.WithValue(ctx, h3IdleKey{}, w)
}

func (w *h3Idle) begin() {
	w.mu.Lock()
	w.active++
	w.timer.Stop()
	w.mu.Unlock()
}

func (w *h3Idle) end() {
	w.mu.Lock()
	w.active--
	if w.active == 0 && !w.gone {
		w.timer.Reset(w.idle)
	}
	w.mu.Unlock()
}

// tracked counts h's requests as activity of their connection.
func tracked(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if idle, ok := r.Context().Value(h3IdleKey{}).(*h3Idle); ok {
			idle.begin()
			defer idle.end()
		}
		h.ServeHTTP(w, r)
	})
}

// withDeadlines bounds reading a request's body and writing its response
// (net/http's Server does this over TCP; http3.Server does not).
func withDeadlines(h http.Handler, read, write time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		now := time.Now()
		_ = rc.SetReadDeadline(now.Add(read))
		_ = rc.SetWriteDeadline(now.Add(write))
		h.ServeHTTP(w, r)
	})
}
