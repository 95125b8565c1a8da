package wsconn

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// A peer that stops reading blocks the edge's writes; closing the
// connection must not wait for them, nor for the peer's close frame: the
// session's Close returns at once and finish within its timeout (the
// WebSocket library's own bounds are 5 s for each of the two).
func TestCloseDoesNotWaitForAPeerThatDoesNotRead(t *testing.T) {
	const closeTimeout = 200 * time.Millisecond
	type result struct {
		writeErr error
		closed   time.Duration // how long Close and finish took
	}
	blocked, done := make(chan struct{}), make(chan result, 1)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := accept(w, r, syncproto.DefaultMaxFrameSize)
		if err != nil {
			t.Error(err)
			return
		}
		// Frames until the peer's buffers and ours are full and a write
		// blocks (it has no deadline of its own).
		written := make(chan int, 64)
		wrote := make(chan error, 1)
		go func() {
			f := &syncpb.Frame{Body: &syncpb.Frame_Deliver{Deliver: &syncpb.Deliver{Messages: []*syncpb.Message{{Body: make([]byte, 256<<10)}}}}}
			for i := 0; ; i++ {
				if err := c.WriteFrame(context.Background(), f); err != nil {
					wrote <- err
					return
				}
				written <- i
			}
		}()
		stalled := time.NewTimer(time.Hour)
		for waiting := true; waiting; {
			select {
			case <-written:
				stalled.Reset(200 * time.Millisecond)
			case <-stalled.C:
				waiting = false // no write has finished for a while: one is blocked
			case err := <-wrote:
				t.Errorf("a write failed before the close: %v", err)
				return
			}
		}
		close(blocked)
		start := time.Now()
		_ = c.Close(syncproto.Errorf(syncpb.Code_CODE_TIMEOUT, "idle"))
		c.finish(closeTimeout)
		took := time.Since(start)
		done <- result{<-wrote, took}
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })

	// The peer has a small receive buffer and never reads.
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		return c.Control(func(fd uintptr) { _ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	}}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	nc, err := d.DialContext(ctx, "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_, err = io.WriteString(nc, "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-blocked:
	case <-time.After(10 * time.Second):
		t.Fatal("the edge's writes never blocked")
	}
	select {
	case r := <-done:
		if r.writeErr == nil {
			t.Fatal("the blocked write succeeded")
		}
		if r.closed > 4*time.Second {
			t.Fatalf("closing took %v with a %v close timeout: it waited for the peer", r.closed, closeTimeout)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("closing a connection whose peer does not read hangs")
	}
}

// The peer is told why the session ended, and a clean close handshake
// with a peer that answers completes.
func TestCloseSendsTheCode(t *testing.T) {
	ended := make(chan error, 1)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := accept(w, r, syncproto.DefaultMaxFrameSize)
		if err != nil {
			t.Error(err)
			return
		}
		_ = c.Close(syncproto.Errorf(syncpb.Code_CODE_TIMEOUT, "idle"))
		c.finish(5 * time.Second)
		ended <- nil
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws://"+ln.Addr().String()+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	_, _, err = c.Read(ctx)
	var ce websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.StatusCode(4000+int(syncpb.Code_CODE_TIMEOUT)) {
		t.Fatalf("read: %v, want close %d", err, 4000+int(syncpb.Code_CODE_TIMEOUT))
	}
	select {
	case <-ended:
	case <-ctx.Done():
		t.Fatal("the close handshake did not complete")
	}
}
