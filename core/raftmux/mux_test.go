package raftmux

import (
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/parley-chat/parley/internal/poll"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"zero", Config{}, true},
		{"full", Config{AdvertiseAddr: "10.0.0.1:7000", HeaderTimeout: time.Second, AcceptBacklog: 4}, true},
		{"ipv6", Config{AdvertiseAddr: "[::1]:7000"}, true},
		{"no port", Config{AdvertiseAddr: "10.0.0.1"}, false},
		{"long", Config{AdvertiseAddr: strings.Repeat("a", 251) + ":7000"}, false},
		{"negative timeout", Config{HeaderTimeout: -1}, false},
		{"negative backlog", Config{AcceptBacklog: -1}, false},
	}
	for _, tt := range tests {
		if err := tt.cfg.Validate(); (err == nil) != tt.ok {
			t.Errorf("%s: Validate() = %v", tt.name, err)
		}
	}
}

func TestDialAccept(t *testing.T) {
	checkGoroutines(t)
	a := newTestMux(t, Config{})
	b := newTestMux(t, Config{AdvertiseAddr: "", HeaderTimeout: time.Second})
	la, lb := mustLayer(t, a, "s1"), mustLayer(t, b, "s1")
	other := mustLayer(t, b, "s2")
	if la.Addr().String() != a.ln.Addr().String() {
		t.Fatalf("Addr %v, listener %v", la.Addr(), a.ln.Addr())
	}

	c, err := la.Dial(raft.ServerAddress(b.Addr().String()), time.Second)
	must(t, err)
	defer c.Close()
	s, err := lb.Accept()
	must(t, err)
	defer s.Close()
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(s, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("read %q, %v", buf, err)
	}
	// The connection went to s1 only.
	select {
	case c := <-other.queue:
		t.Fatalf("s2 got a connection from %v", c.RemoteAddr())
	default:
	}
}

func TestAdvertiseAddr(t *testing.T) {
	checkGoroutines(t)
	a := newTestMux(t, Config{AdvertiseAddr: "node-a.example:7000"})
	b := newTestMux(t, Config{})
	la, lb := mustLayer(t, a, "dir"), mustLayer(t, b, "dir")
	if got := la.Addr().String(); got != "node-a.example:7000" || la.Addr().Network() != "tcp" {
		t.Fatalf("Addr = %v", got)
	}
	c, err := la.Dial(raft.ServerAddress(b.Addr().String()), time.Second)
	must(t, err)
	defer c.Close()
	s, err := lb.Accept()
	must(t, err)
	defer s.Close()
	// b knows the connection by a's advertise address: partitioning that
	// address cuts it.
	b.Partition("node-a.example:7000")
	closedByPeer(t, c, 10*time.Second)
}

func TestLayerRegistration(t *testing.T) {
	checkGoroutines(t)
	m := newTestMux(t, Config{})
	for _, g := range []string{"", "S0", "a/b", "dir ", strings.Repeat("a", MaxGroupLen+1)} {
		if _, err := m.Layer(g); !errors.Is(err, ErrBadGroup) {
			t.Errorf("Layer(%q) = %v, want ErrBadGroup", g, err)
		}
	}
	l := mustLayer(t, m, "s0")
	if _, err := m.Layer("s0"); !errors.Is(err, ErrDuplicateGroup) {
		t.Fatalf("second Layer(s0) = %v, want ErrDuplicateGroup", err)
	}
	must(t, l.Close())
	must(t, l.Close()) // idempotent
	l2 := mustLayer(t, m, "s0")
	// The old Layer's Close must not unregister the new one.
	must(t, l.Close())
	if _, err := m.Layer("s0"); !errors.Is(err, ErrDuplicateGroup) {
		t.Fatalf("Layer(s0) after closing the old layer again = %v", err)
	}
	must(t, m.Close())
	must(t, m.Close())
	if _, err := m.Layer("s9"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Layer after Close = %v, want ErrClosed", err)
	}
	if _, err := l2.Accept(); !errors.Is(err, ErrClosed) || !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Mux.Close = %v", err)
	}
	if _, err := l2.Dial("127.0.0.1:1", time.Second); !errors.Is(err, ErrClosed) {
		t.Fatalf("Dial after Mux.Close = %v", err)
	}
}

func TestLayerClose(t *testing.T) {
	checkGoroutines(t)
	m := newTestMux(t, Config{})
	peer := newTestMux(t, Config{})
	l, keep := mustLayer(t, m, "s0"), mustLayer(t, m, "s1")
	pl := mustLayer(t, peer, "s0")

	// An accepted and a dialed connection of s0.
	out, err := pl.Dial(raft.ServerAddress(m.Addr().String()), time.Second)
	must(t, err)
	in, err := l.Accept()
	must(t, err)
	dialed, err := l.Dial(raft.ServerAddress(peer.Addr().String()), time.Second)
	must(t, err)
	peerIn, err := pl.Accept()
	must(t, err)

	accepted := make(chan error, 1)
	go func() {
		_, err := l.Accept()
		accepted <- err
	}()
	must(t, l.Close())
	if err := <-accepted; !errors.Is(err, ErrClosed) {
		t.Fatalf("blocked Accept returned %v", err)
	}
	// Both of s0's connections are cut.
	closedByPeer(t, out, 10*time.Second)
	closedByPeer(t, peerIn, 10*time.Second)
	for _, c := range []net.Conn{in, dialed} {
		if _, err := c.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("write on a connection of a closed layer: %v", err)
		}
	}
	if _, err := l.Dial(raft.ServerAddress(peer.Addr().String()), time.Second); !errors.Is(err, ErrClosed) {
		t.Fatalf("Dial on closed layer = %v", err)
	}
	// The shared listener still serves s1.
	pk := mustLayer(t, peer, "s1")
	c, err := pk.Dial(raft.ServerAddress(m.Addr().String()), time.Second)
	must(t, err)
	defer c.Close()
	s, err := keep.Accept()
	must(t, err)
	s.Close()
}

func TestBadHeaders(t *testing.T) {
	checkGoroutines(t)
	m := newTestMux(t, Config{HeaderTimeout: time.Second})
	l := mustLayer(t, m, "s0")
	tests := []struct {
		name string
		send []byte
	}{
		{"garbage", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")},
		{"unknown group", header{group: "nope", from: "x:1"}.appendTo(nil)},
		{"bad version", append([]byte("PRMX\x09\x02s0\x00"), "payload"...)},
		{"slow header", []byte("PRMX")},
		{"silent", nil},
	}
	// The group returns once its parallel subtests have.
	t.Run("bad", func(t *testing.T) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				c := dialRaw(t, m.Addr())
				if _, err := c.Write(tt.send); err != nil {
					t.Fatal(err)
				}
				closedByPeer(t, c, 10*time.Second)
			})
		}
	})
	// A good connection still gets through, and none of the bad ones did.
	c := dialRaw(t, m.Addr())
	if _, err := c.Write(header{group: "s0", from: "x:1"}.appendTo(nil)); err != nil {
		t.Fatal(err)
	}
	s, err := l.Accept()
	must(t, err)
	defer s.Close()
	if len(l.queue) != 0 {
		t.Fatalf("%d more connections queued", len(l.queue))
	}
}

func TestAcceptBacklog(t *testing.T) {
	checkGoroutines(t)
	m := newTestMux(t, Config{HeaderTimeout: time.Second, AcceptBacklog: 1})
	l := mustLayer(t, m, "s0")
	hdr := header{group: "s0", from: "x:1"}.appendTo(nil)
	first := dialRaw(t, m.Addr())
	_, err := first.Write(hdr)
	must(t, err)
	poll.NoError(t, 10*time.Second, "", func() error {
		if len(l.queue) != 1 {
			return errors.New("first connection not queued")
		}
		return nil
	})
	// Nobody accepts: the next connection finds the queue full and is
	// dropped after HeaderTimeout.
	second := dialRaw(t, m.Addr())
	_, err = second.Write(hdr)
	must(t, err)
	closedByPeer(t, second, 10*time.Second)
	stillOpen(t, first)
	s, err := l.Accept()
	must(t, err)
	s.Close()
}

func TestPartitionConns(t *testing.T) {
	checkGoroutines(t)
	a, b := newTestMux(t, Config{}), newTestMux(t, Config{})
	la, lb := mustLayer(t, a, "s0"), mustLayer(t, b, "s0")
	baddr, aaddr := raft.ServerAddress(b.Addr().String()), raft.ServerAddress(a.Addr().String())

	ab, err := la.Dial(baddr, time.Second) // a dialed b
	must(t, err)
	abIn, err := lb.Accept()
	must(t, err)
	ba, err := lb.Dial(aaddr, time.Second) // b dialed a
	must(t, err)
	baIn, err := la.Accept()
	must(t, err)

	a.Partition(string(baddr))
	// Both connections are cut, whichever side dialed.
	closedByPeer(t, abIn, 10*time.Second)
	closedByPeer(t, ba, 10*time.Second)
	for _, c := range []net.Conn{ab, baIn} {
		if _, err := c.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("write on a partitioned connection: %v", err)
		}
	}

	if _, err := la.Dial(baddr, 5*time.Second); !errors.Is(err, ErrPartitioned) {
		t.Fatalf("Dial to a partitioned peer = %v", err)
	}
	// b's new connections to a are dropped by a.
	c, err := lb.Dial(aaddr, time.Second)
	must(t, err)
	closedByPeer(t, c, 10*time.Second)

	a.Heal()
	c, err = lb.Dial(aaddr, time.Second)
	must(t, err)
	defer c.Close()
	s, err := la.Accept()
	must(t, err)
	defer s.Close()
	c2, err := la.Dial(baddr, time.Second)
	must(t, err)
	defer c2.Close()
}

func TestCloseUnblocksHandshakes(t *testing.T) {
	checkGoroutines(t)
	m := newTestMux(t, Config{HeaderTimeout: time.Minute})
	mustLayer(t, m, "s0")
	// Connections that never send a header hold handshake goroutines.
	var conns []net.Conn
	for i := 0; i < 5; i++ {
		conns = append(conns, dialRaw(t, m.Addr()))
	}
	poll.NoError(t, 10*time.Second, "", func() error {
		if len(m.handshake) != 5 {
			return errors.New("handshakes not started")
		}
		return nil
	})
	done := make(chan error, 1)
	go func() { done <- m.Close() }()
	select {
	case err := <-done:
		must(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("Close blocked on pending handshakes")
	}
	for _, c := range conns {
		closedByPeer(t, c, 10*time.Second)
	}
}
