package testaddr

import (
	"net"
	"strconv"
	"testing"
)

func TestFreePicksBindablePortsBelowTheEphemeralRange(t *testing.T) {
	low := ephemeralLow()
	seen := map[string]bool{}
	for range 50 {
		a := Free(t)
		if seen[a] {
			t.Fatalf("%s picked twice", a)
		}
		seen[a] = true
		_, p, err := net.SplitHostPort(a)
		if err != nil {
			t.Fatal(err)
		}
		port, _ := strconv.Atoi(p)
		if port < lowest || port >= low {
			t.Fatalf("%s: outside %d-%d", a, lowest, low-1)
		}
		ln, err := net.Listen("tcp", a)
		if err != nil {
			t.Fatalf("%s not bindable: %v", a, err)
		}
		ln.Close()
	}
}

func TestFreeSkipsAPortInUse(t *testing.T) {
	a := Free(t)
	ln, err := net.Listen("tcp", a)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	// Wind the picker back onto the held port: it must step over it.
	mu.Lock()
	_, p, _ := net.SplitHostPort(a)
	next, _ = strconv.Atoi(p)
	mu.Unlock()
	if b := Free(t); b == a {
		t.Fatalf("picked %s, which is in use", b)
	}
}
