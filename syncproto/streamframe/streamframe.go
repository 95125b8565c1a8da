// Package streamframe binds syncproto frames to a byte stream with
// deadlines: a raw QUIC stream, a WebTransport stream, or a net.Conn. It
// serves both ends (edge and client). See syncproto/README.md, Transports.
package streamframe

import (
	"context"
	"errors"
	"io"
	"os"
	"sync"
	"time"

	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// ALPN is the TLS application protocol of raw-QUIC parley connections; an
// edge's UDP port tells them from HTTP/3 ("h3") by it.
const ALPN = "parley/1"

// WebTransportPath is where an edge's UDP port accepts WebTransport
// sessions (HTTP/3 extended CONNECT).
const WebTransportPath = "/v1/wt"

// Stream is a bidirectional byte stream with deadlines (*quic.Stream,
// webtransport's Stream and net.Conn are).
type Stream interface {
	io.ReadWriteCloser
	SetReadDeadline(t time.Time) error
	SetWriteDeadline(t time.Time) error
}

// Conn reads and writes frames on a Stream. ReadFrame and WriteFrame may
// run concurrently with each other, each from one goroutine at a time.
type Conn struct {
	s   Stream
	r   *syncproto.FrameReader
	max int
	// OnClose, when set, is called by Close instead of closing the stream
	// (to close the whole QUIC connection with an error code, say).
	OnClose func(err error) error

	once sync.Once
}

// NewConn wraps s; maxFrame bounds incoming frame payloads.
func NewConn(s Stream, maxFrame int) *Conn {
	return &Conn{s: s, r: syncproto.NewFrameReader(s, maxFrame), max: maxFrame}
}

// ReadFrame reads the next frame: io.EOF at a clean end between frames,
// a *syncproto.Error for bad bytes, ctx's error when it ends first.
func (c *Conn) ReadFrame(ctx context.Context) (*syncpb.Frame, error) {
	stop := watch(ctx, c.s.SetReadDeadline)
	f, err := c.r.ReadFrame()
	stop()
	return f, ctxErr(ctx, err)
}

// WriteFrame writes one frame.
func (c *Conn) WriteFrame(ctx context.Context, f *syncpb.Frame) error {
	stop := watch(ctx, c.s.SetWriteDeadline)
	err := syncproto.WriteFrame(c.s, f)
	stop()
	return ctxErr(ctx, err)
}

// Close closes the stream (or calls OnClose) once.
func (c *Conn) Close(err error) error {
	var cerr error
	c.once.Do(func() {
		if c.OnClose != nil {
			cerr = c.OnClose(err)
			return
		}
		cerr = c.s.Close()
	})
	return cerr
}

// watch applies ctx's deadline (or none) to an I/O call through set, and
// cuts the call short when ctx is cancelled; stop ends the watch.
func watch(ctx context.Context, set func(time.Time) error) (stop func()) {
	d, _ := ctx.Deadline() // zero: no deadline
	_ = set(d)
	var mu sync.Mutex
	stopped := false
	after := context.AfterFunc(ctx, func() {
		mu.Lock()
		defer mu.Unlock()
		if !stopped {
			_ = set(time.Unix(1, 0))
		}
	})
	return func() {
		after()
		mu.Lock()
		stopped = true
		mu.Unlock()
	}
}

// ctxErr reports ctx's error for I/O cut short by it.
func ctxErr(ctx context.Context, err error) error {
	if err == nil || !(errors.Is(err, os.ErrDeadlineExceeded) || isTimeout(err)) {
		return err
	}
	if e := ctx.Err(); e != nil {
		return e
	}
	// The stream's deadline can fire a moment before ctx's timer.
	if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
		return context.DeadlineExceeded
	}
	return err
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}
