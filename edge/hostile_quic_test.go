package edge

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/parley-chat/parley/internal/poll"
	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/streamframe"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// quicTimeouts are the edge's timeouts in the QUIC and WebTransport
// tests: a connection silent for 4 s is dropped by QUIC (the client pings
// every 1.5 s until it vanishes), a session that reads no whole frame for
// 9 s is ended by the edge, and the rest are between 5 and 8 s. They are
// longer than the cut of each connection needs, so that what is opened
// first is still held when the last is open (some 10 s for 1,000 under
// the race detector on 2 cores): the kinds are opened longest-lived
// first.
func quicTimeouts(c *Config) {
	c.QUIC.IdleTimeout = 4 * time.Second
	c.QUIC.StreamTimeout = 5 * time.Second
	c.Session.RequestStreamTimeout = 5 * time.Second
	c.Session.HelloTimeout = 6 * time.Second
	c.Session.KeepAlive = 3 * time.Second
	c.Session.WriteTimeout = 6 * time.Second
	c.HTTPIdleTimeout = 5 * time.Second
	c.HTTPReadTimeout = 8 * time.Second
	c.HTTPWriteTimeout = 8 * time.Second
}

// quicClient is the attacker's side: QUIC connections from one UDP
// socket, more from a second one whose packets can be dropped both ways
// (a client that vanishes without a word: no acks, nothing), and
// handshakes from a third that hears nothing.
type quicClient struct {
	t              *testing.T
	addr           net.Addr
	tr, gone, deaf *quic.Transport
	drop           *blackhole

	ctx  context.Context // of the handshakes that never finish
	stop context.CancelFunc
	wg   sync.WaitGroup
}

func newQUICClient(t *testing.T, addr net.Addr) *quicClient {
	t.Helper()
	c := &quicClient{t: t, addr: addr}
	c.ctx, c.stop = context.WithCancel(context.Background())
	var err error
	hostile(func() {
		var pcs [3]net.PacketConn
		for i := range pcs {
			if pcs[i], err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
				for _, pc := range pcs[:i] {
					pc.Close()
				}
				return
			}
		}
		c.drop = &blackhole{PacketConn: pcs[1]}
		c.tr, c.gone, c.deaf = &quic.Transport{Conn: pcs[0]}, &quic.Transport{Conn: c.drop}, &quic.Transport{Conn: deaf{pcs[2]}}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.close)
	return c
}

func (c *quicClient) close() {
	c.stop()
	for _, tr := range []*quic.Transport{c.tr, c.gone, c.deaf} {
		_ = tr.Close()
		_ = tr.Conn.Close()
	}
	c.wg.Wait()
}

// halfOpen starts a handshake with alpn that never finishes: the client's
// Initial packets reach the edge, the edge's answers are lost, and the
// client retransmits them for d. (Not longer: a retransmission after the
// edge has given up starts a new handshake there.)
func (c *quicClient) halfOpen(alpn string, d time.Duration) {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		ctx, cancel := context.WithTimeout(c.ctx, d)
		defer cancel()
		tlsConf := &tls.Config{InsecureSkipVerify: true, NextProtos: []string{alpn}, CurvePreferences: []tls.CurveID{tls.X25519}}
		_, _ = c.deaf.Dial(ctx, c.addr, tlsConf, &quic.Config{HandshakeIdleTimeout: time.Minute})
	}()
}

// deaf is a PacketConn that drops every packet it receives.
type deaf struct{ net.PacketConn }

func (d deaf) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		if _, _, err := d.PacketConn.ReadFrom(p); err != nil {
			return 0, nil, err
		}
	}
}

// dial connects with alpn. The client pings, so that QUIC never finds it
// idle: only the edge's own timeouts can cut it.
func (c *quicClient) dial(ctx context.Context, alpn string, gone bool) (*quic.Conn, error) {
	tr := c.tr
	if gone {
		tr = c.gone
	}
	// The dev cert; X25519 alone is cheaper than the default hybrid.
	tlsConf := &tls.Config{InsecureSkipVerify: true, NextProtos: []string{alpn}, CurvePreferences: []tls.CurveID{tls.X25519}}
	return tr.Dial(ctx, c.addr, tlsConf, &quic.Config{
		MaxIdleTimeout: 5 * time.Minute, KeepAlivePeriod: 1500 * time.Millisecond,
		EnableDatagrams: true, EnableStreamResetPartialDelivery: true,
	})
}

// blackhole is a PacketConn that drops every packet both ways once
// dropping is set.
type blackhole struct {
	net.PacketConn
	dropping atomic.Bool
}

func (b *blackhole) WriteTo(p []byte, addr net.Addr) (int, error) {
	if b.dropping.Load() {
		return len(p), nil
	}
	return b.PacketConn.WriteTo(p, addr)
}

func (b *blackhole) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		n, addr, err := b.PacketConn.ReadFrom(p)
		if err != nil || !b.dropping.Load() {
			return n, addr, err
		}
	}
}

// warmUp says hello as u_warm on the stream open gives and waits until
// one message is delivered to it.
func warmUp(ctx context.Context, t *testing.T, he *hostileEdge, open func(context.Context) (streamframe.Stream, error)) {
	t.Helper()
	_, c, err := helloOn(ctx, he, t, open, "u_warm", "d_warm")
	if err != nil {
		t.Fatal(err)
	}
	he.deliver(t, "u_warm", 1)
	for {
		f, err := c.ReadFrame(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if f.GetDeliver() != nil {
			break
		}
	}
}

// helloOn opens the control stream on conn and says hello as user's
// device; it returns the stream after the Welcome.
func helloOn(ctx context.Context, he *hostileEdge, t *testing.T, open func(context.Context) (streamframe.Stream, error), user, device string) (streamframe.Stream, *streamframe.Conn, error) {
	str, err := open(ctx)
	if err != nil {
		return nil, nil, err
	}
	c := streamframe.NewConn(str, syncproto.MaxFrameSize)
	if err := c.WriteFrame(ctx, &syncpb.Frame{Id: 1, Body: &syncpb.Frame_Hello{Hello: syncproto.NewHello(he.token(t, user, device), device)}}); err != nil {
		return str, nil, err
	}
	for {
		f, err := c.ReadFrame(ctx)
		if err != nil {
			return str, nil, fmt.Errorf("hello: %w", err)
		}
		if f.GetWelcome() != nil {
			return str, c, nil
		}
		if e := f.GetError(); e != nil {
			return str, nil, fmt.Errorf("hello: %v", e)
		}
	}
}

// bigFrameHeader is the length prefix of a 2 GiB frame.
func bigFrameHeader() []byte { return binary.AppendUvarint(nil, 2<<30) }

// hostileQUICKind is one hostile behaviour of a test over QUIC: open makes
// one connection of it (nil for one the client never sees established).
type hostileQUICKind struct {
	name string
	n    int
	gone bool // on the socket whose packets are dropped after opening
	open func(ctx context.Context, i int) (*quic.Conn, error)
}

// atOpen holds what connections do once all are open: those that the
// edge would cut at once are cut from then on, not while the rest open.
type atOpen struct {
	mu sync.Mutex
	fs []func()
}

func (a *atOpen) add(f func()) {
	a.mu.Lock()
	a.fs = append(a.fs, f)
	a.mu.Unlock()
}

func (a *atOpen) run() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, f := range a.fs {
		f()
	}
	a.fs = nil
}

// holdQUIC opens the connections of kinds (from the attacker's side),
// calls opened once all are open, checks that the edge holds them, then
// that the edge cuts every one and its goroutines and heap return to the
// baseline l took; released lets go of what the client holds besides
// its connections, before the heap is checked.
func holdQUIC(t *testing.T, he *hostileEdge, qc *quicClient, tr *trickler, l *leakCheck, what string, kinds []hostileQUICKind, opened, released func()) {
	type conn struct {
		kind string
		c    *quic.Conn
		gone bool
	}
	var conns []conn
	t.Cleanup(func() {
		for _, c := range conns {
			_ = c.c.CloseWithError(0, "")
		}
	})
	total := 0
	start := time.Now()
	for _, k := range kinds {
		// Fewer handshakes at once than the 32 that quic-go's server
		// queues for Accept (it refuses connections past it).
		openHostile(t, k.name, k.n, 16, k.open, func(c *quic.Conn) { conns = append(conns, conn{k.name, c, k.gone}) })
		total += k.n
	}
	qc.drop.dropping.Store(true)
	if opened != nil {
		opened()
	}
	t.Logf("%d connections opened in %v (%d handshakes among them that never finish, not counted as held below); %d sessions",
		total, time.Since(start).Round(time.Millisecond), total-len(conns), he.Sessions())
	// Those the edge has cut already (the client heard it: the gone
	// ones were not dropping packets until now), by kind.
	open, cut := 0, map[string]int{}
	for _, c := range conns {
		if c.c.Context().Err() == nil {
			open++
		} else {
			cut[c.kind]++
		}
	}
	if len(cut) > 0 {
		t.Logf("cut before the last was open: %v", cut)
	}
	l.held(open)

	l.waitGoroutines(30 * time.Second)
	// A generous deadline: closing a thousand connections on a loaded
	// 2-core machine takes seconds; an edge that keeps one never does.
	deadline := time.After(30 * time.Second)
	for _, c := range conns {
		if c.gone {
			continue // it hears nothing; the edge's goroutines say it was cut
		}
		select {
		case <-c.c.Context().Done():
		case <-deadline:
			t.Fatalf("%s: the edge kept the connection open", c.kind)
		}
		// The edge's close; or, when that packet was lost under this
		// load, the reset the edge answers with once it has forgotten
		// the connection, or the client's idle timeout: the client
		// pings every 1.5 s, so it times out only when the edge has
		// stopped answering.
		var (
			ae *quic.ApplicationError
			re *quic.StatelessResetError
			ie *quic.IdleTimeoutError
		)
		if cause := context.Cause(c.c.Context()); !(errors.As(cause, &ae) && ae.Remote) && !errors.As(cause, &re) && !errors.As(cause, &ie) {
			t.Fatalf("%s: connection ended with %v, want the edge's close", c.kind, cause)
		}
	}
	if n := he.Sessions(); n != 0 {
		t.Errorf("%d sessions left", n)
	}
	tr.close()
	for _, c := range conns {
		_ = c.c.CloseWithError(0, "")
	}
	conns = nil // the client's memory is not the edge's
	qc.close()
	if released != nil {
		released()
	}
	l.waitHeap(20 * time.Second)
	l.report(fmt.Sprintf("%d hostile %s connections", total, what))
}

// 1,000 hostile raw QUIC connections, held open by the client whatever
// the edge does, are all cut within bounds set by the edge's Config, and
// the edge's goroutines and heap return to their baseline.
func TestHostileRawQUIC(t *testing.T) {
	he := newHostileEdge(t, quicTimeouts)
	qc := newQUICClient(t, he.UDPAddr())
	tr := newTrickler(t)
	warmUpQUIC(t, he, qc)
	l := newLeakCheck(t)

	dial := func(ctx context.Context, gone bool) (*quic.Conn, error) {
		return qc.dial(ctx, streamframe.ALPN, gone)
	}
	session := func(ctx context.Context, user string, i int, gone bool) (*quic.Conn, *quic.Stream, error) {
		c, err := dial(ctx, gone)
		if err != nil {
			return nil, nil, err
		}
		var str *quic.Stream
		_, _, err = helloOn(ctx, he, t, func(ctx context.Context) (streamframe.Stream, error) {
			s, err := c.OpenStreamSync(ctx)
			str = s
			return s, err
		}, user, fmt.Sprintf("d_%d", i))
		return c, str, err
	}
	helloBytes := func(i int) []byte {
		b, err := syncproto.AppendFrame(nil, &syncpb.Frame{Id: 1, Body: &syncpb.Frame_Hello{Hello: syncproto.NewHello(he.token(t, "u_1", fmt.Sprintf("d_t%d", i)), "")}})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	// Those that take longest to open first, those cut soonest last, so
	// that as many as the machine's speed allows are held at once.
	var later atOpen
	kinds := []hostileQUICKind{
		// Cut by QUIC's handshake timeouts (StreamTimeout, twice that in
		// all) while the client still sends; the client does not see it,
		// the edge's goroutines do.
		{name: "a handshake that never finishes", n: 50, open: func(ctx context.Context, i int) (*quic.Conn, error) {
			qc.halfOpen(streamframe.ALPN, 12*time.Second)
			return nil, nil
		}},
		// Deliveries fill the stream's flow-control window of a client
		// that does not read, and the edge's writes block.
		{name: "not reading, deliveries", n: 50, open: func(ctx context.Context, i int) (*quic.Conn, error) {
			c, _, err := session(ctx, "u_flood", 6000+i, false)
			return c, err
		}},
		// Request streams that never bring their request: the edge
		// closes each after StreamTimeout, and the session for silence.
		{name: "15 streams opened and left unused after the hello", n: 100, open: func(ctx context.Context, i int) (*quic.Conn, error) {
			c, _, err := session(ctx, "u_1", 4000+i, false)
			if err != nil {
				return c, err
			}
			for range 15 {
				// The first byte of a length, never finished.
				if _, err := openWriting(ctx, c.OpenStreamSync, []byte{0x80}); err != nil {
					return c, err
				}
			}
			return c, nil
		}},
		{name: "a frame one byte at a time after the hello", n: 50, open: func(ctx context.Context, i int) (*quic.Conn, error) {
			c, str, err := session(ctx, "u_1", 5000+i, false)
			if err != nil {
				return c, err
			}
			tr.add(str, oneByte(append(binary.AppendUvarint(nil, 100<<10), make([]byte, 100)...)))
			return c, nil
		}},
		{name: "silent after the hello", n: 150, open: func(ctx context.Context, i int) (*quic.Conn, error) {
			c, _, err := session(ctx, "u_1", 2000+i, false)
			return c, err
		}},
		{name: "gone after the hello", n: 150, gone: true, open: func(ctx context.Context, i int) (*quic.Conn, error) {
			c, _, err := session(ctx, "u_1", 3000+i, true)
			return c, err
		}},
		{name: "a hello one byte at a time", n: 150, open: func(ctx context.Context, i int) (*quic.Conn, error) {
			c, err := dial(ctx, false)
			if err != nil {
				return nil, err
			}
			b := helloBytes(i)
			str, err := openWriting(ctx, c.OpenStreamSync, b[:1])
			if err != nil {
				return c, err
			}
			tr.add(str, oneByte(b[1:]))
			return c, nil
		}},
		// The edge ends these sessions at once (and their connections
		// StreamTimeout later): they announce their frame once all are
		// open, the second after the first byte of its length.
		{name: "a 2 GiB frame announced after the hello", n: 100, open: func(ctx context.Context, i int) (*quic.Conn, error) {
			c, str, err := session(ctx, "u_1", 1000+i, false)
			if err == nil {
				later.add(func() { _, _ = str.Write(bigFrameHeader()) })
			}
			return c, err
		}},
		{name: "a 2 GiB frame announced first", n: 100, open: func(ctx context.Context, i int) (*quic.Conn, error) {
			c, err := dial(ctx, false)
			if err != nil {
				return nil, err
			}
			// The first byte of the length, so that the edge sees the
			// stream; the rest once all are open.
			h := bigFrameHeader()
			str, err := openWriting(ctx, c.OpenStreamSync, h[:1])
			if err != nil {
				return c, err
			}
			later.add(func() { _, _ = str.Write(h[1:]) })
			return c, nil
		}},
		{name: "no control stream", n: 100, open: func(ctx context.Context, i int) (*quic.Conn, error) {
			return dial(ctx, false)
		}},
	}
	holdQUIC(t, he, qc, tr, l, "raw QUIC", kinds, func() {
		later.run()
		he.deliver(t, "u_flood", 2)
	}, nil)
}

// warmUpQUIC runs one raw QUIC session through a delivery and its end, so
// that what the edge and the libraries allocate once is in the baseline.
func warmUpQUIC(t *testing.T, he *hostileEdge, qc *quicClient) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	var (
		conn *quic.Conn
		err  error
	)
	hostile(func() { conn, err = qc.dial(ctx, streamframe.ALPN, false) })
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseWithError(0, "")
	warmUp(ctx, t, he, func(ctx context.Context) (streamframe.Stream, error) { return conn.OpenStreamSync(ctx) })
	_ = conn.CloseWithError(0, "")
	poll.Until(t, 10*time.Second, "the warm-up session to end", func() bool { return he.Sessions() == 0 })
}
