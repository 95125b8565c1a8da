//go:build linux

package netns

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestMoveLink moves a host from its first link to its second, changes its
// address there, and moves it back; it checks each time that it reaches another host from the new link's
// address (a UDP socket opened before the move, a new one and a new TCP
// connection), that the old device is down and the default route goes
// through the new one, and that the old address is gone. Close then
// removes both links with the namespaces.
func TestMoveLink(t *testing.T) {
	if err := Check(); err != nil {
		t.Skip(err)
	}
	if sysSetns == 0 {
		t.Skipf("setns(2) number unknown on %s", runtime.GOARCH)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n, err := New(ctx, Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close() })
	srv, err := n.AddHost(ctx, "srv")
	if err != nil {
		t.Fatal(err)
	}
	mob, err := n.AddHost(ctx, "mob")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := mob.MoveLink(ctx); err == nil {
		t.Fatal("MoveLink with one link: no error")
	}
	if err := mob.AddLink(ctx); err != nil {
		t.Fatal(err)
	}
	links := mob.Links()
	if len(links) != 2 || !links[0].Up || links[1].Up ||
		!n.cfg.Subnet.Contains(links[0].Addr) || !n.cfg.Cellular.Contains(links[1].Addr) {
		t.Fatalf("links after AddLink: %+v", links)
	}
	e := newEcho(t, srv)
	var sock *net.UDPConn // bound to any address, as a QUIC client's
	inNS(t, mob, func() (err error) {
		sock, err = net.ListenUDP("udp4", nil)
		return err
	})
	t.Cleanup(func() { sock.Close() })

	// reaches checks every way out of mob arrives at srv from want.
	reaches := func(want Link) {
		t.Helper()
		if got := e.udp(t, ctx, sock); got != want.Addr {
			t.Errorf("socket opened before the move: srv saw %s, want %s", got, want.Addr)
		}
		var fresh *net.UDPConn
		inNS(t, mob, func() (err error) {
			fresh, err = net.ListenUDP("udp4", nil)
			return err
		})
		defer fresh.Close()
		if got := e.udp(t, ctx, fresh); got != want.Addr {
			t.Errorf("new UDP socket: srv saw %s, want %s", got, want.Addr)
		}
		if got := e.tcp(t, ctx, mob); got != want.Addr {
			t.Errorf("new TCP connection: srv saw %s, want %s", got, want.Addr)
		}
		if up := linkUp(t, ctx, mob); len(up) != 1 || up[0] != want.Dev {
			t.Errorf("devices up: %v, want only %s", up, want.Dev)
		}
		if dev := defaultDev(t, ctx, mob); dev != want.Dev {
			t.Errorf("default route through %q, want %s", dev, want.Dev)
		}
	}
	// gone checks nothing in mob can use a as its address any more.
	gone := func(a netip.Addr) {
		t.Helper()
		inNS(t, mob, func() error {
			c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(a, 0)))
			if err == nil {
				c.Close()
				return fmt.Errorf("a socket could bind the old address %s", a)
			}
			return nil
		})
	}
	move := func(from, to Link) {
		t.Helper()
		old, cur, err := mob.MoveLink(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if old != from.Addr || cur != to.Addr || mob.Addr() != to.Addr {
			t.Fatalf("MoveLink %s -> %s, Addr %s; want %s -> %s", old, cur, mob.Addr(), from.Addr, to.Addr)
		}
		for _, l := range mob.Links() {
			if l.Up != (l.Dev == to.Dev) {
				t.Fatalf("after the move to %s: Links %+v", to.Dev, mob.Links())
			}
		}
		reaches(to)
		gone(from.Addr)
	}
	reaches(links[0])
	move(links[0], links[1]) // Wi-Fi to cellular
	// A new address on the cellular link, and back to Wi-Fi from there.
	old, cur, err := mob.ChangeAddr(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if old != links[1].Addr || !n.cfg.Cellular.Contains(cur) || cur == old {
		t.Fatalf("ChangeAddr on the cellular link: %s -> %s", old, cur)
	}
	links[1].Addr = cur
	reaches(links[1])
	gone(old)
	move(links[1], links[0])
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	names, err := list(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		if strings.HasPrefix(name, n.id+"-") {
			t.Errorf("namespace %s left after Close", name)
		}
	}
}

// echo is a UDP and a TCP server in a host's namespace that answer with
// the source address they saw.
type echo struct {
	udpAddr, tcpAddr netip.AddrPort
	mu               sync.Mutex
	n                int // payloads sent
}

func newEcho(t *testing.T, h *Host) *echo {
	t.Helper()
	var uc *net.UDPConn
	var ln net.Listener
	inNS(t, h, func() (err error) {
		if uc, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(h.Addr(), 0))); err != nil {
			return err
		}
		ln, err = net.Listen("tcp4", netip.AddrPortFrom(h.Addr(), 0).String())
		return err
	})
	e := &echo{udpAddr: uc.LocalAddr().(*net.UDPAddr).AddrPort(), tcpAddr: ln.Addr().(*net.TCPAddr).AddrPort()}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // ends when the cleanup closes uc
		defer wg.Done()
		buf := make([]byte, 1500)
		for {
			n, from, err := uc.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			_, _ = uc.WriteToUDPAddrPort([]byte(string(buf[:n])+" "+from.Addr().String()), from)
		}
	}()
	go func() { // ends when the cleanup closes ln
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = io.WriteString(c, c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr().String())
			c.Close()
		}
	}()
	t.Cleanup(func() { uc.Close(); ln.Close(); wg.Wait() })
	return e
}

// udp sends a datagram from c, again each second until the answer comes
// (the first may be lost while a link just up resolves its neighbours),
// and returns the address the server saw.
func (e *echo) udp(t *testing.T, ctx context.Context, c *net.UDPConn) netip.Addr {
	t.Helper()
	e.mu.Lock()
	e.n++
	payload := "echo-" + strconv.Itoa(e.n)
	e.mu.Unlock()
	buf := make([]byte, 1500)
	for ctx.Err() == nil {
		if _, err := c.WriteToUDPAddrPort([]byte(payload), e.udpAddr); err != nil {
			t.Fatalf("udp send from %s: %v", c.LocalAddr(), err)
		}
		_ = c.SetReadDeadline(time.Now().Add(time.Second))
		for {
			n, err := c.Read(buf)
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				break // send again
			}
			if err != nil {
				t.Fatalf("udp read: %v", err)
			}
			p, src, _ := strings.Cut(string(buf[:n]), " ")
			if p != payload {
				continue // a late answer to an earlier send
			}
			a, err := netip.ParseAddr(src)
			if err != nil {
				t.Fatalf("udp answer %q: %v", buf[:n], err)
			}
			return a
		}
	}
	t.Fatalf("udp echo from %s: no answer: %v", c.LocalAddr(), ctx.Err())
	return netip.Addr{}
}

// tcp connects from h's namespace and returns the address the server saw.
func (e *echo) tcp(t *testing.T, ctx context.Context, h *Host) netip.Addr {
	t.Helper()
	var c net.Conn
	inNS(t, h, func() (err error) {
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		c, err = (&net.Dialer{}).DialContext(dctx, "tcp4", e.tcpAddr.String())
		return err
	})
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("tcp read: %v", err)
	}
	a, err := netip.ParseAddr(string(b))
	if err != nil {
		t.Fatalf("tcp answer %q: %v", b, err)
	}
	return a
}

// inNS runs f on an OS thread inside h's network namespace: the sockets it
// opens belong to h's network and can be used from any goroutine after.
func inNS(t *testing.T, h *Host, f func() error) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // not unlocked if the way back fails: the thread ends with this goroutine
		target, err := os.Open("/run/netns/" + h.NS)
		if err != nil {
			done <- err
			return
		}
		defer target.Close()
		self, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			done <- err
			return
		}
		defer self.Close()
		if err := setns(target); err != nil {
			done <- err
			return
		}
		ferr := f()
		if err := setns(self); err != nil {
			done <- errors.Join(ferr, err)
			return
		}
		runtime.UnlockOSThread()
		done <- ferr
	}()
	if err := <-done; err != nil {
		t.Fatalf("in %s: %v", h.NS, err)
	}
}

// sysSetns is setns(2)'s number here (package syscall does not name it;
// golang.org/x/sys/unix does, but is no direct dependency); 0: unknown.
var sysSetns = map[string]uintptr{"amd64": 308, "arm64": 268, "riscv64": 268, "loong64": 268,
	"386": 346, "arm": 375, "ppc64le": 350, "s390x": 339}[runtime.GOARCH]

func setns(f *os.File) error {
	if _, _, errno := syscall.RawSyscall(sysSetns, f.Fd(), syscall.CLONE_NEWNET, 0); errno != 0 {
		return errno
	}
	return nil
}

// linkUp lists h's devices that are administratively up, but lo.
func linkUp(t *testing.T, ctx context.Context, h *Host) []string {
	t.Helper()
	var links []struct {
		Name  string   `json:"ifname"`
		Flags []string `json:"flags"`
	}
	ipJSON(t, ctx, &links, "-n", h.NS, "-j", "link", "show")
	var up []string
	for _, l := range links {
		if l.Name != "lo" && slices.Contains(l.Flags, "UP") {
			up = append(up, l.Name)
		}
	}
	return up
}

// defaultDev is the device of h's default route ("" for none).
func defaultDev(t *testing.T, ctx context.Context, h *Host) string {
	t.Helper()
	var routes []struct {
		Dev string `json:"dev"`
	}
	ipJSON(t, ctx, &routes, "-n", h.NS, "-j", "route", "show", "default")
	if len(routes) != 1 {
		return ""
	}
	return routes[0].Dev
}

func ipJSON(t *testing.T, ctx context.Context, v any, args ...string) {
	t.Helper()
	out, err := exec.CommandContext(ctx, "ip", args...).Output()
	if err != nil {
		t.Fatalf("ip %s: %v", strings.Join(args, " "), err)
	}
	if err := json.Unmarshal(out, v); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}
