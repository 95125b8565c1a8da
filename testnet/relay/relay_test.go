package relay

import (
	"context"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// echo serves a TCP and a UDP echo on loopback.
func echo(t *testing.T) (tcp, udp string) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); pc.Close(); wg.Wait() })
	wg.Add(2)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() { defer wg.Done(); defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	go func() {
		defer wg.Done()
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo(buf[:n], from)
		}
	}()
	return ln.Addr().String(), pc.LocalAddr().String()
}

func freePort(t *testing.T, proto string) string {
	if proto == "tcp" {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		return ln.Addr().String()
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	return pc.LocalAddr().String()
}

func TestRelayDelaysBothWays(t *testing.T) {
	tcpT, udpT := echo(t)
	tcpL, udpL := freePort(t, "tcp"), freePort(t, "udp")
	r, err := New(Config{Maps: []Map{{"tcp", tcpL, tcpT}, {"udp", udpL, udpT}}})
	if err != nil {
		t.Fatal(err)
	}
	const d = 30 * time.Millisecond
	r.SetDelay(Up, d, 0)
	r.SetDelay(Down, d, 0)
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx, func() { close(ready) }) }()
	defer func() { cancel(); <-done }()
	<-ready
	for _, proto := range []string{"tcp", "udp"} {
		addr := tcpL
		if proto == "udp" {
			addr = udpL
		}
		c, err := net.DialTimeout(proto, addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		start := time.Now()
		if _, err := c.Write([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 4)
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
			t.Fatalf("%s: got %q, %v", proto, buf, err)
		}
		// A lower bound only: the relay must not deliver early.
		if rtt := time.Since(start); rtt < 2*d {
			t.Errorf("%s: round trip %s through a relay delaying %s each way", proto, rtt, d)
		}
		c.Close()
	}
}

func TestParseMap(t *testing.T) {
	m, err := ParseMap("udp:10.0.0.1:9000=10.0.0.2:8443")
	if err != nil || m.Proto != "udp" || m.Listen != "10.0.0.1:9000" || m.Target != "10.0.0.2:8443" {
		t.Fatalf("%+v %v", m, err)
	}
	if _, err := ParseMap("sctp:a=b"); err == nil {
		t.Fatal("sctp accepted")
	}
}
