package impair_test

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/testnet/impair"
	"github.com/parley-chat/parley/testnet/netns"
)

// TestLinkCoversEveryLink checks that a host's filters and shapes are laid
// on each of its links, the one it is not on too, so they hold after it
// moves (netns.Host.MoveLink), and that Clear lifts them from each.
func TestLinkCoversEveryLink(t *testing.T) {
	if err := netns.Check(); err != nil {
		t.Skip(err)
	}
	for _, tool := range []string{"nft", "tc"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("no %s", tool)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n, err := netns.New(ctx, netns.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close() })
	peer, err := n.AddHost(ctx, "peer")
	if err != nil {
		t.Fatal(err)
	}
	h, err := n.AddHost(ctx, "mob")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.AddLink(ctx); err != nil {
		t.Fatal(err)
	}
	cfg := impair.Config{HostNS: h.NS, SwitchNS: n.SwitchNS()}
	for _, l := range h.Links() {
		cfg.Links = append(cfg.Links, impair.Veth{HostDev: l.Dev, SwitchDev: l.Peer})
	}
	l, err := impair.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Block(ctx, "cut", peer.Addr()); err != nil {
		t.Fatal(err)
	}
	if err := l.Shape(ctx, impair.Out, impair.Shape{Rate: 1_000_000}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := h.MoveLink(ctx); err != nil {
		t.Fatal(err)
	}
	dump := sections(l.Dump(ctx))
	if len(dump) != 4 {
		t.Fatalf("Dump has %d sections, want 4 (2 links, 2 ends):\n%s", len(dump), l.Dump(ctx))
	}
	for i, sec := range dump {
		if !strings.Contains(sec, peer.Addr().String()) || !strings.Contains(sec, `drop comment "cut"`) {
			t.Errorf("section %d has no drop of %s:\n%s", i, peer.Addr(), sec)
		}
		host := i%2 == 0 // host end, then switch end, per link
		if tbf := strings.Contains(sec, "qdisc tbf"); tbf != host {
			t.Errorf("section %d: tbf %v, want %v (Out is shaped at the host's end):\n%s", i, tbf, host, sec)
		}
	}
	if err := l.Clear(ctx); err != nil {
		t.Fatal(err)
	}
	for i, sec := range sections(l.Dump(ctx)) {
		if strings.Contains(sec, "drop comment") || strings.Contains(sec, "qdisc tbf") {
			t.Errorf("section %d after Clear:\n%s", i, sec)
		}
	}
}

// sections splits a Dump at its "# ns dev" headers.
func sections(dump string) []string { return strings.Split(dump, "# ")[1:] }
