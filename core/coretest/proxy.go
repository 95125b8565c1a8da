package coretest

import (
	"io"
	"net"
	"sync"
	"testing"
)

// Proxy forwards TCP connections from its own loopback address to a
// target until it is cut: Cut closes every connection through it and
// makes it close new ones on accept, as a network that went away would
// look to both ends; Restore lets connections through again. A Region
// puts one between every ordered pair of nodes' NATS route ports; tests
// put one between an edge and a core, say.
//
// Its methods are safe for concurrent use. The listener and every
// connection are closed by the test's cleanup.
type Proxy struct {
	ln     net.Listener
	target string

	mu     sync.Mutex
	cut    bool
	closed bool
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
}

// NewProxy listens on 127.0.0.1:0 and forwards to target.
func NewProxy(tb testing.TB, target string) *Proxy {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	p := &Proxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	tb.Cleanup(p.close)
	return p
}

// Addr is where the proxy listens ("127.0.0.1:port").
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Cut closes every connection through the proxy and refuses new ones
// (they are accepted and closed at once) until Restore.
func (p *Proxy) Cut() { p.setCut(true) }

// Restore undoes Cut.
func (p *Proxy) Restore() { p.setCut(false) }

func (p *Proxy) setCut(cut bool) {
	p.mu.Lock()
	p.cut = cut
	var victims []net.Conn
	if cut {
		for c := range p.conns {
			victims = append(victims, c)
		}
	}
	p.mu.Unlock()
	for _, c := range victims {
		c.Close()
	}
}

func (p *Proxy) close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.ln.Close()
	p.setCut(true)
	p.wg.Wait()
}

// track registers c, or closes it and reports false while cut or closed.
func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cut || p.closed {
		c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	c.Close()
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		if !p.track(in) {
			continue
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			defer p.untrack(in)
			out, err := net.Dial("tcp", p.target)
			if err != nil {
				return
			}
			if !p.track(out) {
				return
			}
			defer p.untrack(out)
			var pipes sync.WaitGroup
			pipes.Go(func() { pipe(out, in) })
			pipes.Go(func() { pipe(in, out) })
			pipes.Wait()
		}()
	}
}

// pipe copies src to dst and then closes both, so the other direction
// ends too.
func pipe(dst, src net.Conn) {
	_, _ = io.Copy(dst, src)
	dst.Close()
	src.Close()
}
