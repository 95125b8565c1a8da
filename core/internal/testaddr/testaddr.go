// Package testaddr picks loopback TCP addresses for tests that must know a
// server's address before the server binds it: cluster routes named up
// front, and a node that restarts on the addresses it had.
//
// A port picked by listening on ":0" comes from the kernel's ephemeral
// range, the same range the local end of every outgoing connection comes
// from, so any process on the machine may take it again before the server
// binds it. Free picks ports below that range instead, where only another
// explicit pick can land; each process starts at a random place in it.
package testaddr

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
)

const lowest = 10000

var (
	mu   sync.Mutex
	next int
	high int
)

// Free returns "127.0.0.1:port" for a TCP port below the ephemeral range
// that nothing listened on when it was picked.
func Free(tb testing.TB) string {
	tb.Helper()
	addr, err := pick()
	if err != nil {
		tb.Fatal(err)
	}
	return addr
}

func pick() (string, error) {
	mu.Lock()
	defer mu.Unlock()
	if high == 0 {
		high = ephemeralLow()
		next = lowest + rand.IntN(high-lowest)
	}
	for range high - lowest {
		port := next
		next++
		if next >= high {
			next = lowest
		}
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue
		}
		ln.Close()
		return ln.Addr().String(), nil
	}
	return "", fmt.Errorf("testaddr: no free port in %d-%d", lowest, high-1)
}

// ephemeralLow reads the first port of the kernel's ephemeral range
// (Linux's default when it cannot be read).
func ephemeralLow() int {
	low := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil && n > lowest+1000 {
				low = n
			}
		}
	}
	return low
}
