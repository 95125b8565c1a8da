package edge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"
)

// 1,000 hostile connections to the HTTP /v1 API, held open by the client
// whatever the edge does, are all cut within bounds set by the edge's
// Config, and the edge's goroutines and heap return to their baseline.
func TestHostileHTTP(t *testing.T) {
	he := newHostileEdge(t, func(c *Config) {
		c.HTTPReadHeaderTimeout = 2 * time.Second
		c.HTTPReadTimeout = 3 * time.Second
		c.HTTPWriteTimeout = 3 * time.Second
		c.HTTPIdleTimeout = 3 * time.Second
	})
	addr := he.Addr().String()
	tr := newTrickler(t)
	tok := he.token(t, "u_1", "d_1")
	warmUpHTTP(t, addr)
	l := newLeakCheck(t)

	post := func(length int) string {
		return fmt.Sprintf("POST /v1/messages HTTP/1.1\r\nHost: parley\r\nAuthorization: Bearer %s\r\n"+
			"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n", tok, length)
	}
	const openapi = "GET /v1/openapi.json HTTP/1.1\r\nHost: parley\r\n\r\n"
	kinds := []struct {
		name string
		n    int
		open func(ctx context.Context) (net.Conn, error)
	}{
		{"nothing sent", 250, func(ctx context.Context) (net.Conn, error) {
			return dialTCP(ctx, addr, false)
		}},
		{"headers one byte at a time", 200, func(ctx context.Context) (net.Conn, error) {
			c, err := dialTCP(ctx, addr, false)
			if err == nil {
				tr.add(c, oneByte([]byte("GET /healthz HTTP/1.1\r\nHost: parley\r\nX-Slow: "+strings.Repeat("z", 200)+"\r\n\r\n")))
			}
			return c, err
		}},
		{"a 2 GiB body announced", 150, func(ctx context.Context) (net.Conn, error) {
			c, err := dialTCP(ctx, addr, false)
			if err == nil {
				_, err = io.WriteString(c, post(2<<30)+`{"conv_id":`)
			}
			return c, err
		}},
		{"a body one byte at a time", 150, func(ctx context.Context) (net.Conn, error) {
			c, err := dialTCP(ctx, addr, false)
			if err == nil {
				_, err = io.WriteString(c, post(1000))
				tr.add(c, oneByte([]byte(`{"conv_id":"c_1","client_msg_id":"` + strings.Repeat("x", 1000) + `"}`)[:1000]))
			}
			return c, err
		}},
		{"idle after a request, the response unread", 200, func(ctx context.Context) (net.Conn, error) {
			c, err := dialTCP(ctx, addr, false)
			if err == nil {
				_, err = io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: parley\r\n\r\n")
			}
			return c, err
		}},
		// Responses fill the buffers of a client that does not read, and
		// the edge's write blocks.
		{"80 requests pipelined, no response read", 50, func(ctx context.Context) (net.Conn, error) {
			c, err := dialTCP(ctx, addr, true)
			if err == nil {
				_, err = io.WriteString(c, strings.Repeat(openapi, 80))
			}
			return c, err
		}},
	}
	type conn struct {
		kind string
		c    net.Conn
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
		open := func(ctx context.Context, _ int) (net.Conn, error) { return k.open(ctx) }
		openHostile(t, k.name, k.n, 8, open, func(c net.Conn) { conns = append(conns, conn{k.name, c}) })
		total += k.n
	}
	t.Logf("%d connections opened in %v", total, time.Since(opened).Round(time.Millisecond))
	l.held(count(conns, func(c conn) bool { return tcpOpen(c.c) }))

	// Every connection is cut within its bound (2 s for the headers, 3 s
	// for the body, for a blocked write, or idle) while the client holds
	// its end.
	l.waitGoroutines(30 * time.Second)
	deadline := time.Now().Add(10 * time.Second)
	for _, c := range conns {
		if err := waitEOF(c.c, deadline); err != nil {
			t.Fatalf("%s: %v", c.kind, err)
		}
	}
	tr.close()
	for _, c := range conns {
		c.c.Close()
	}
	conns = nil // the client's memory is not the edge's
	l.waitHeap(20 * time.Second)
	l.report(fmt.Sprintf("%d hostile HTTP connections", total))
}

// dialTCP connects to addr, with a small receive buffer if small (so that
// a client that does not read stops the edge's writes sooner).
func dialTCP(ctx context.Context, addr string, small bool) (net.Conn, error) {
	var d net.Dialer
	if small {
		d.Control = func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
			})
			if err != nil {
				return err
			}
			return serr
		}
	}
	return d.DialContext(ctx, "tcp", addr)
}

// waitEOF reads (and drops) what c receives until the edge closes it or
// the deadline passes.
func waitEOF(c net.Conn, deadline time.Time) error {
	_ = c.SetReadDeadline(deadline)
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	switch {
	case err == nil, errors.Is(err, syscall.ECONNRESET):
		return nil
	case errors.As(err, &ne) && ne.Timeout():
		return errors.New("the edge kept the connection open")
	}
	return err
}

// warmUpHTTP makes one request of each kind the test sends, so that what
// the edge and the libraries allocate once is in the baseline.
func warmUpHTTP(t *testing.T, addr string) {
	t.Helper()
	for _, path := range []string{"/healthz", "/v1/openapi.json"} {
		if code, err := get(t, "http://"+addr+path, ""); err != nil || code != 200 {
			t.Fatalf("GET %s: %d %v", path, code, err)
		}
	}
}
