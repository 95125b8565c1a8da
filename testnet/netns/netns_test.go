package netns

import (
	"context"
	"log/slog"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestNetLifecycle(t *testing.T) {
	if err := Check(); err != nil {
		t.Skip(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// A namespace left by a run whose process is gone (pid 1 is alive;
	// 999999999 is beyond pid_max) is removed; a live one's is kept.
	stale := Prefix + "999999999-x"
	if err := ip(ctx, "netns", "add", stale); err != nil {
		t.Fatal(err)
	}
	if err := CleanStale(ctx, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	if names, _ := list(ctx); contains(names, stale) {
		_ = ip(ctx, "netns", "del", stale)
		t.Fatalf("stale namespace %s not removed", stale)
	}
	n, err := New(ctx, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	a, err := n.AddHost(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	b, err := n.AddHost(ctx, "b")
	if err != nil {
		t.Fatal(err)
	}
	_, err = exec.LookPath("ping")
	havePing := err == nil
	if !havePing {
		t.Log("no ping: reachability not checked")
	}
	ping := func(from *Host, to string) error {
		return from.Run(ctx, "ping", "-c", "1", "-W", "2", to)
	}
	if havePing {
		if err := ping(a, b.Addr().String()); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 2; i++ { // twice: the second removal needs promote_secondaries
		old, cur, err := b.ChangeAddr(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if cur == old || b.Addr() != cur {
			t.Fatalf("ChangeAddr: %s -> %s, Addr %s", old, cur, b.Addr())
		}
		out, err := exec.CommandContext(ctx, "ip", "-n", b.NS, "-4", "addr", "show", "dev", b.Dev).Output()
		if err != nil || !strings.Contains(string(out), cur.String()+"/") || strings.Contains(string(out), old.String()+"/") {
			t.Fatalf("after ChangeAddr %s -> %s the device has: %s (%v)", old, cur, out, err)
		}
		if havePing {
			if err := ping(a, cur.String()); err != nil {
				t.Fatalf("new address %s: %v", cur, err)
			}
			if ping(a, old.String()) == nil {
				t.Fatalf("old address %s still answers", old)
			}
		}
	}
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

func contains(s []string, x string) bool {
	for _, v := range s {
		if v == x {
			return true
		}
	}
	return false
}
