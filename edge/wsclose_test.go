package edge

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/parley-chat/parley/edge/auth"
	"github.com/parley-chat/parley/edge/internal/natstest"
	"github.com/parley-chat/parley/edge/wsconn"
	"github.com/parley-chat/parley/internal/poll"
	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
	"github.com/parley-chat/parley/syncproto/wsframe"
)

// rawWS is the client end of a WebSocket, written by hand so that a test
// can send what no well-behaved client library would (a frame that
// announces 2 GiB, a frame one byte at a time) and hold the TCP connection
// open without a goroutine.
type rawWS struct {
	net.Conn
	br *bufio.Reader
}

// wsHandshake is the upgrade request of a rawWS.
const wsHandshake = "GET " + wsframe.Path + " HTTP/1.1\r\nHost: parley\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
	"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"

// dialTestWS is dialRawWS within 10 s, closed when the test ends; it
// fails the test if the dial does.
func dialTestWS(t *testing.T, addr string) *rawWS {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	c, err := dialRawWS(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// dialRawWS connects to addr and upgrades to WebSocket.
func dialRawWS(ctx context.Context, addr string) (*rawWS, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	return upgradeWS(ctx, nc)
}

func newReader(nc net.Conn) *bufio.Reader { return bufio.NewReaderSize(nc, 512) }

// upgradeWS sends the upgrade request on nc and reads the answer.
func upgradeWS(ctx context.Context, nc net.Conn) (*rawWS, error) {
	c := &rawWS{Conn: nc, br: newReader(nc)}
	if dl, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	}
	if _, err := io.WriteString(nc, wsHandshake); err != nil {
		nc.Close()
		return nil, err
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("upgrade: %w", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		nc.Close()
		return nil, fmt.Errorf("upgrade: %s", resp.Status)
	}
	_ = nc.SetDeadline(time.Time{})
	return c, nil
}

// writeHeader writes the header of a masked binary message of n bytes
// (mask key 0, so the payload goes as it is).
func (c *rawWS) writeHeader(n uint64) error {
	h := []byte{0x82, 0x80 | 127}
	h = binary.BigEndian.AppendUint64(h, n)
	h = append(h, 0, 0, 0, 0)
	_, err := c.Write(h)
	return err
}

// writeMessage writes b as one binary message.
func (c *rawWS) writeMessage(b []byte) error {
	if err := c.writeHeader(uint64(len(b))); err != nil {
		return err
	}
	_, err := c.Write(b)
	return err
}

// readMessage reads the next message from the edge (unmasked): its opcode
// and payload.
func (c *rawWS) readMessage() (byte, []byte, error) {
	var h [2]byte
	if _, err := io.ReadFull(c.br, h[:]); err != nil {
		return 0, nil, err
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		if _, err := io.ReadFull(c.br, b[:]); err != nil {
			return 0, nil, err
		}
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err := io.ReadFull(c.br, b[:]); err != nil {
			return 0, nil, err
		}
		n = binary.BigEndian.Uint64(b[:])
	}
	if n > 16<<20 {
		return 0, nil, fmt.Errorf("edge sent a %d-byte message", n)
	}
	p := make([]byte, n)
	_, err := io.ReadFull(c.br, p)
	return h[0] & 0x0f, p, err
}

// hello sends a Hello with token and reads the Welcome.
func (c *rawWS) hello(token string) error {
	b, err := syncproto.AppendFrame(nil, &syncpb.Frame{Id: 1, Body: &syncpb.Frame_Hello{Hello: syncproto.NewHello(token, "")}})
	if err != nil {
		return err
	}
	if err := c.writeMessage(b); err != nil {
		return err
	}
	for {
		op, p, err := c.readMessage()
		if err != nil {
			return fmt.Errorf("hello: %w", err)
		}
		if op != 2 {
			return fmt.Errorf("hello: opcode %d", op)
		}
		f, _, err := syncproto.DecodeFrame(p, syncproto.MaxFrameSize)
		if err != nil {
			return err
		}
		if f.GetWelcome() != nil {
			return nil
		}
		if e := f.GetError(); e != nil {
			return fmt.Errorf("hello: %v", e)
		}
	}
}

// waitClosed reads until the edge closes the connection (EOF or a reset)
// or the deadline passes. It returns the close code the edge sent (0 for
// none).
func (c *rawWS) waitClosed(deadline time.Time) (code int, err error) {
	_ = c.SetReadDeadline(deadline)
	for {
		op, p, err := c.readMessage()
		var ne net.Error
		switch {
		case err == nil:
		case errors.As(err, &ne) && ne.Timeout():
			return code, fmt.Errorf("the edge kept the connection open (close code %d)", code)
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed),
			strings.Contains(err.Error(), "connection reset"):
			return code, nil
		default:
			return code, err
		}
		if op == 8 && len(p) >= 2 {
			code = int(binary.BigEndian.Uint16(p))
		}
	}
}

// A WebSocket that announces a 2 GiB frame is told 1009 and then closed,
// even though the client neither sends the rest nor closes its end: the
// edge's goroutines for these connections end (both before and after the
// hello).
func TestWebSocketOversizedFrameIsClosed(t *testing.T) {
	ns := natstest.Server(t)
	coreDouble(t, natstest.Conn(t, ns), nil, nil)
	e, err := New(Config{HTTPAddr: "127.0.0.1:0", NATSURL: ns.ClientURL(),
		Auth: auth.Config{Keys: []auth.Key{testKey}, Argon2: auth.Argon2Params{Memory: 64, Time: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	runEdge(t, e)
	tok := testToken(t, "d_1")
	addr := e.Addr().String()
	base := settled(numGoroutine, 10)

	const n = 50
	// More than the edge reads of a message before it gives up on it.
	junk := make([]byte, syncproto.DefaultMaxFrameSize+64)
	conns := make([]*rawWS, 0, n)
	for i := range n {
		c := dialTestWS(t, addr)
		if i%2 == 1 {
			if err := c.hello(tok); err != nil {
				t.Fatal(err)
			}
		}
		if err := c.writeHeader(2 << 30); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write(junk); err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	deadline := time.Now().Add(20 * time.Second)
	for i, c := range conns {
		code, err := c.waitClosed(deadline)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		if code != 1009 {
			t.Errorf("connection %d: close code %d, want 1009", i, code)
		}
	}
	waitGoroutines(t, base, 20*time.Second)
}

// waitGoroutines waits until at most base (+ a few for timers and NATS's
// housekeeping) goroutines run.
func waitGoroutines(t *testing.T, base int, d time.Duration) {
	t.Helper()
	const slack = 5
	poll.NoError(t, d, "goroutines back at the baseline", func() error {
		if n := numGoroutine(); n > base+slack {
			return fmt.Errorf("%d goroutines, baseline %d", n, base)
		}
		return nil
	})
}

func numGoroutine() int { return runtime.NumGoroutine() }

// Run returns only once the WebSockets it served are closed, even those
// whose client neither leaves nor answers the close handshake: their TCP
// connections are closed by then.
func TestRunReturnsOnceItsWebSocketsAreClosed(t *testing.T) {
	ns := natstest.Server(t)
	coreDouble(t, natstest.Conn(t, ns), nil, nil)
	// A close handshake that waits longer than the drain, so that a Run
	// that did not wait for it would return first.
	e, err := New(Config{HTTPAddr: "127.0.0.1:0", NATSURL: ns.ClientURL(),
		Auth:            auth.Config{Keys: []auth.Key{testKey}, Argon2: auth.Argon2Params{Memory: 64, Time: 1}},
		ShutdownTimeout: 100 * time.Millisecond, WebSocket: wsconn.Config{CloseTimeout: 3 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	ran := make(chan error, 1)
	go func() { ran <- e.Run(context.Background()) }()
	addr := e.Addr().String()
	poll.Until(t, 10*time.Second, "healthz", func() bool {
		code, err := get(t, "http://"+addr+"/healthz", "")
		return err == nil && code == 200
	})
	var conns []*rawWS
	for i := range 3 {
		tok := testToken(t, fmt.Sprintf("d_%d", i))
		c := dialTestWS(t, addr)
		if err := c.hello(tok); err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	_ = e.Close()
	if err := <-ran; err != nil {
		t.Fatalf("Run: %v", err)
	}
	for i, c := range conns {
		if !closedByPeer(t, c.Conn) {
			t.Errorf("connection %d: still open when Run returned", i)
		}
	}
}

// closedByPeer reports whether the end of c's stream has arrived, reading
// what is pending without waiting.
func closedByPeer(t *testing.T, c net.Conn) bool {
	t.Helper()
	sc, err := c.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	_ = sc.Read(func(fd uintptr) bool {
		var b [4096]byte
		for {
			n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_DONTWAIT)
			switch {
			case n > 0:
				continue
			case err == nil || errors.Is(err, syscall.ECONNRESET):
				closed = true
			}
			return true
		}
	})
	return closed
}
