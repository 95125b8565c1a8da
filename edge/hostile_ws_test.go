package edge

import (
	"context"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/poll"
	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// 1,000 hostile WebSocket connections, held open by the client whatever
// the edge does, are all cut within bounds set by the edge's Config, and
// the edge's goroutines and heap return to their baseline.
func TestHostileWebSocket(t *testing.T) {
	he := newHostileEdge(t, func(c *Config) {
		c.Session.HelloTimeout = 3 * time.Second
		c.Session.KeepAlive = time.Second // no whole frame for 3 s: cut
		c.Session.WriteTimeout = 3 * time.Second
		c.WebSocket.CloseTimeout = time.Second
		c.HTTPReadHeaderTimeout = 2 * time.Second
		c.HTTPReadTimeout = 3 * time.Second
	})
	addr := he.Addr().String()
	tr := newTrickler(t)
	warmUpWS(t, he)
	l := newLeakCheck(t)

	hello := func(user string, i int) []byte {
		b, err := syncproto.AppendFrame(nil, &syncpb.Frame{Id: 1, Body: &syncpb.Frame_Hello{Hello: syncproto.NewHello(he.token(t, user, fmt.Sprintf("d_%d", i)), "")}})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	ping, err := syncproto.AppendFrame(nil, &syncpb.Frame{Body: &syncpb.Frame_Ping{Ping: &syncpb.Ping{}}})
	if err != nil {
		t.Fatal(err)
	}

	type conn struct {
		kind string
		c    *rawWS
		want int // the close code the edge must send, 0: any
	}
	kinds := []struct {
		name string
		n    int
		open func(ctx context.Context, i int) (*rawWS, error)
		want int
	}{
		{"a 2 GiB frame, more than the limit sent", 20, func(ctx context.Context, i int) (*rawWS, error) {
			c, err := dialRawWS(ctx, addr)
			if err != nil {
				return nil, err
			}
			if err := c.writeHeader(2 << 30); err != nil {
				return c, err
			}
			_, err = c.Write(make([]byte, syncproto.DefaultMaxFrameSize+64))
			return c, err
		}, 1009},
		{"a 2 GiB frame announced after the hello", 130, func(ctx context.Context, i int) (*rawWS, error) {
			c, err := dialRawWS(ctx, addr)
			if err != nil {
				return nil, err
			}
			if err := c.hello(he.token(t, "u_1", fmt.Sprintf("d_big%d", i))); err != nil {
				return c, err
			}
			if err := c.writeHeader(2 << 30); err != nil {
				return c, err
			}
			_, err = c.Write(make([]byte, 100))
			return c, err
		}, 0},
		{"no hello", 150, func(ctx context.Context, i int) (*rawWS, error) {
			return dialRawWS(ctx, addr)
		}, 0},
		{"a hello one byte at a time", 150, func(ctx context.Context, i int) (*rawWS, error) {
			c, err := dialRawWS(ctx, addr)
			if err != nil {
				return nil, err
			}
			b := hello("u_1", i)
			if err := c.writeHeader(uint64(len(b))); err != nil {
				return c, err
			}
			tr.add(c, oneByte(b))
			return c, nil
		}, 0},
		{"the upgrade request one byte at a time", 150, func(ctx context.Context, i int) (*rawWS, error) {
			var d net.Dialer
			nc, err := d.DialContext(ctx, "tcp", addr)
			if err != nil {
				return nil, err
			}
			tr.add(nc, oneByte([]byte(wsHandshake)))
			return &rawWS{Conn: nc, br: newReader(nc)}, nil
		}, 0},
		{"silent after the hello", 350, func(ctx context.Context, i int) (*rawWS, error) {
			c, err := dialRawWS(ctx, addr)
			if err != nil {
				return nil, err
			}
			return c, c.hello(he.token(t, "u_1", fmt.Sprintf("d_quiet%d", i)))
		}, 0},
		// These two do not read: deliveries fill their buffers and the
		// edge's writes block. The first is cut for silence while a
		// write is blocked, so the close must not wait for the write;
		// the second pings, so only the write timeout can cut it.
		{"not reading, silent", 25, func(ctx context.Context, i int) (*rawWS, error) {
			c, err := dialSmallWS(ctx, addr)
			if err != nil {
				return nil, err
			}
			return c, c.hello(he.token(t, "u_flood", fmt.Sprintf("d_s%d", i)))
		}, 0},
		{"not reading, pinging", 25, func(ctx context.Context, i int) (*rawWS, error) {
			c, err := dialSmallWS(ctx, addr)
			if err != nil {
				return nil, err
			}
			if err := c.hello(he.token(t, "u_flood", fmt.Sprintf("d_p%d", i))); err != nil {
				return c, err
			}
			var msg []byte
			msg = append(msg, 0x82, 0x80|byte(len(ping)), 0, 0, 0, 0)
			msg = append(msg, ping...)
			tr.add(c, forever(msg))
			return c, nil
		}, 0},
	}

	var conns []conn
	t.Cleanup(func() {
		for _, c := range conns {
			c.c.Close()
		}
	})
	total := 0
	opened := time.Now()
	for _, k := range kinds {
		openHostile(t, k.name, k.n, 8, k.open, func(c *rawWS) { conns = append(conns, conn{k.name, c, k.want}) })
		total += k.n
	}
	he.deliver(t, "u_flood", 5)
	t.Logf("%d connections opened in %v; %d sessions", total, time.Since(opened).Round(time.Millisecond), he.Sessions())
	l.held(count(conns, func(c conn) bool { return tcpOpen(c.c.Conn) }))

	// Every connection is cut within its bound (3 s of silence or of a
	// blocked write, then 1 s to close) while the client holds its end.
	l.waitGoroutines(30 * time.Second)
	deadline := time.Now().Add(10 * time.Second)
	for _, c := range conns {
		code, err := c.c.waitClosed(deadline)
		if err != nil {
			t.Fatalf("%s: %v", c.kind, err)
		}
		if c.want != 0 && code != c.want {
			t.Errorf("%s: close code %d, want %d", c.kind, code, c.want)
		}
	}
	if n := he.Sessions(); n != 0 {
		t.Errorf("%d sessions left", n)
	}
	tr.close()
	for _, c := range conns {
		c.c.Close()
	}
	conns = nil // the client's memory is not the edge's
	l.waitHeap(20 * time.Second)
	l.report(fmt.Sprintf("%d hostile WebSockets", total))
}

// dialSmallWS is dialRawWS with a small receive buffer, so that a client
// that does not read stops the edge's writes sooner.
func dialSmallWS(ctx context.Context, addr string) (*rawWS, error) {
	nc, err := dialTCP(ctx, addr, true)
	if err != nil {
		return nil, err
	}
	return upgradeWS(ctx, nc)
}

var _ io.Writer = (*rawWS)(nil)

// warmUpWS runs one session through a delivery and its end, so that what
// the edge and the libraries allocate once (pools, lazily built tables)
// is in the baseline.
func warmUpWS(t *testing.T, he *hostileEdge) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	c, err := dialRawWS(ctx, he.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.hello(he.token(t, "u_warm", "d_warm")); err != nil {
		t.Fatal(err)
	}
	he.deliver(t, "u_warm", 1)
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		_, p, err := c.readMessage()
		if err != nil {
			t.Fatal(err)
		}
		if f, _, err := syncproto.DecodeFrame(p, syncproto.MaxFrameSize); err == nil && f.GetDeliver() != nil {
			break
		}
	}
	if err := c.writeMessage(nil); err != nil { // an empty message is MALFORMED: the edge closes
		t.Fatal(err)
	}
	if _, err := c.waitClosed(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 10*time.Second, "the warm-up session to end", func() bool { return he.Sessions() == 0 })
}
