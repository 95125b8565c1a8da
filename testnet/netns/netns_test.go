package netns

import (
	"context"
	"log/slog"
	"os/exec"
	"strconv"
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
	// The network of a run whose process is gone, with a host moved to its
	// second link, is removed whole. The run is a child process that lives
	// while its network is built, so that no other run's CleanStale takes
	// the network before it is complete.
	run := exec.CommandContext(ctx, "sleep", "600")
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = run.Process.Kill(); _ = run.Wait() }()
	stale, err := newNet(ctx, Config{}, Prefix+strconv.Itoa(run.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	defer stale.Close()
	sh, err := stale.AddHost(ctx, "x")
	if err != nil {
		t.Fatal(err)
	}
	if err := sh.AddLink(ctx); err != nil {
		t.Fatal(err)
	}
	if _, _, err := sh.MoveLink(ctx); err != nil {
		t.Fatal(err)
	}
	_ = run.Process.Kill()
	_ = run.Wait()
	if err := CleanStale(ctx, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	names, err := list(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		if strings.HasPrefix(name, stale.id+"-") {
			t.Errorf("stale namespace %s not removed", name)
		}
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
		out, err := exec.CommandContext(ctx, "ip", "-n", b.NS, "-4", "addr", "show", "dev", b.Links()[0].Dev).Output()
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
	if names, err = list(ctx); err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		if strings.HasPrefix(name, n.id+"-") {
			t.Errorf("namespace %s left after Close", name)
		}
	}
}
