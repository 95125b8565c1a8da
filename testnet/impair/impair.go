// Package impair breaks a host's link in each direction: partitions and
// random loss with nftables rules where packets arrive (the host's device
// for In, the switch's end for Out), bandwidth with
// tc tbf on each end of the link, and delay with jitter with tc netem when
// the kernel has it, else through a Delayer (a userspace relay on the
// path). A scenario states what it wants once (Filter, Shape); the Link
// picks the mechanism. Impairments can change at any time during a run.
//
// A host with two links (Wi-Fi and cellular, one up at a time) has one
// Link over both: what a scenario states applies to each of them alike,
// so it holds whichever link the host is on, also across a move (a
// blackout stays one, a rate limit stays one).
package impair

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Dir is a direction on a host's link.
type Dir int

const (
	Out Dir = iota // from the host
	In             // to the host
)

func (d Dir) String() string {
	if d == Out {
		return "out"
	}
	return "in"
}

// Rule filters packets of one direction. A zero Rule passes everything.
type Rule struct {
	// Peers limits the rule to packets to (Out) or from (In) these
	// addresses; empty means every peer on the link.
	Peers []netip.Addr
	// Drop drops every matching packet (a partition or blackout).
	Drop bool
	// Loss drops this fraction (0..1) of the matching packets at random.
	Loss float64
}

// Shape slows one direction of the whole link.
type Shape struct {
	Rate          int64 // bits per second; 0: unlimited
	Delay, Jitter time.Duration
}

// Delayer delays one direction of a link in user space (a relay that the
// link's traffic goes through), for kernels without netem.
type Delayer interface {
	SetDelay(ctx context.Context, dir Dir, delay, jitter time.Duration) error
}

// Veth is one of a host's links: its device in the host's namespace and
// the other end in the switch namespace.
type Veth struct {
	HostDev, SwitchDev string
}

// Config describes a host's links.
type Config struct {
	HostNS, SwitchNS string
	// Links are the host's links; every filter and shape applies to each.
	Links []Veth
	// Netem says the kernel has sch_netem (see HasNetem).
	Netem bool
	// Delayer takes delay and jitter when Netem is false; nil: delay is
	// refused.
	Delayer Delayer
}

// Validate checks the config.
func (c *Config) Validate() error {
	if c.HostNS == "" || c.SwitchNS == "" || len(c.Links) == 0 {
		return errors.New("impair: Config needs HostNS, SwitchNS and Links")
	}
	for i, v := range c.Links {
		if v.HostDev == "" || v.SwitchDev == "" {
			return fmt.Errorf("impair: Config.Links[%d] needs HostDev and SwitchDev", i)
		}
	}
	return nil
}

// Link holds the impairments of one link. Safe for concurrent use.
type Link struct {
	cfg   Config
	mu    sync.Mutex
	rules [2]map[string]Rule
}

// New returns a Link with nothing impaired.
func New(cfg Config) (*Link, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Link{cfg: cfg, rules: [2]map[string]Rule{{}, {}}}, nil
}

// Filter sets (or with a zero Rule, clears) the named filter of dir. Names
// let a scenario lay several filters (a partition and a steady loss) and
// lift one of them.
func (l *Link) Filter(ctx context.Context, dir Dir, name string, r Rule) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !r.Drop && r.Loss <= 0 {
		delete(l.rules[dir], name)
	} else {
		l.rules[dir][name] = r
	}
	return l.applyLocked(ctx)
}

// Block drops everything both ways under name (a blackout); Unblock lifts it.
func (l *Link) Block(ctx context.Context, name string, peers ...netip.Addr) error {
	if err := l.Filter(ctx, Out, name, Rule{Peers: peers, Drop: true}); err != nil {
		return err
	}
	return l.Filter(ctx, In, name, Rule{Peers: peers, Drop: true})
}

func (l *Link) Unblock(ctx context.Context, name string) error {
	if err := l.Filter(ctx, Out, name, Rule{}); err != nil {
		return err
	}
	return l.Filter(ctx, In, name, Rule{})
}

// Shape sets dir's rate, delay and jitter on each of the host's links (a
// zero Shape removes them).
func (l *Link) Shape(ctx context.Context, dir Dir, s Shape) error {
	if (s.Delay > 0 || s.Jitter > 0) && !l.cfg.Netem && l.cfg.Delayer == nil {
		return errors.New("impair: delay needs netem or a relay on the path (Config.Delayer)")
	}
	if !l.cfg.Netem && l.cfg.Delayer != nil { // one relay for the host, whichever link it is on
		if err := l.cfg.Delayer.SetDelay(ctx, dir, s.Delay, s.Jitter); err != nil {
			return fmt.Errorf("impair: relay delay: %w", err)
		}
	}
	for _, v := range l.cfg.Links {
		ns, dev := l.cfg.HostNS, v.HostDev
		if dir == In { // shaped where it leaves the switch toward the host
			ns, dev = l.cfg.SwitchNS, v.SwitchDev
		}
		if err := shape(ctx, ns, dev, s, l.cfg.Netem); err != nil {
			return err
		}
	}
	return nil
}

// shape sets one device's root qdisc: netem for delay when the kernel has
// it, else tbf for a rate, else none.
func shape(ctx context.Context, ns, dev string, s Shape, netem bool) error {
	if netem && (s.Delay > 0 || s.Jitter > 0) {
		args := []string{"qdisc", "replace", "dev", dev, "root", "netem", "delay", dur(s.Delay), dur(s.Jitter)}
		if s.Rate > 0 {
			args = append(args, "rate", strconv.FormatInt(s.Rate, 10)+"bit")
		}
		return tc(ctx, ns, args...)
	}
	if s.Rate > 0 {
		// burst: at least one MTU, about 20 ms worth; latency bounds the queue.
		burst := max(s.Rate/8/50, 3000)
		return tc(ctx, ns, "qdisc", "replace", "dev", dev, "root", "tbf",
			"rate", strconv.FormatInt(s.Rate, 10)+"bit", "burst", strconv.FormatInt(burst, 10), "latency", "500ms")
	}
	_ = tc(ctx, ns, "qdisc", "del", "dev", dev, "root") // none there is fine
	return nil
}

// Clear removes every filter and shape.
func (l *Link) Clear(ctx context.Context) error {
	l.mu.Lock()
	l.rules = [2]map[string]Rule{{}, {}}
	err := l.applyLocked(ctx)
	l.mu.Unlock()
	return errors.Join(err, l.Shape(ctx, Out, Shape{}), l.Shape(ctx, In, Shape{}))
}

// applyLocked replaces the link's nftables tables. Packets are dropped
// where they arrive, never where they leave: a drop in a host's own output
// path would fail the sender's sendmsg with EPERM, which no real network
// does (quic-go closes the connection on it; TCP gives up at once instead
// of retransmitting). So In rules sit on the host devices' ingress, and
// Out rules on the switch-side ends' ingress: a table per device, the
// tables of each namespace in one transaction. The rules match peers'
// addresses only, never the host's own, so they hold across the host's
// address changes and link moves.
func (l *Link) applyLocked(ctx context.Context) error {
	var hostDevs, switchDevs []string
	for _, v := range l.cfg.Links {
		hostDevs, switchDevs = append(hostDevs, v.HostDev), append(switchDevs, v.SwitchDev)
	}
	if err := nft(ctx, l.cfg.HostNS, hostDevs, "saddr", l.rules[In]); err != nil {
		return err
	}
	return nft(ctx, l.cfg.SwitchNS, switchDevs, "daddr", l.rules[Out])
}

// table is the nftables table that filters what arrives on dev.
func table(dev string) string { return "parleytn_" + dev }

func nft(ctx context.Context, ns string, devs []string, addr string, rules map[string]Rule) error {
	var b strings.Builder
	for _, dev := range devs {
		nftTable(&b, dev, addr, rules)
	}
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", ns, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(b.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("impair: nft in %s: %w: %s\n%s", ns, err, bytes.TrimSpace(out), b.String())
	}
	return nil
}

// nftTable writes the commands that replace dev's table with rules.
func nftTable(b *strings.Builder, dev, addr string, rules map[string]Rule) {
	t := table(dev)
	fmt.Fprintf(b, "table netdev %s\ndelete table netdev %s\ntable netdev %s {\n", t, t, t)
	fmt.Fprintf(b, "  chain in {\n    type filter hook ingress device %q priority 0; policy accept;\n", dev)
	names := make([]string, 0, len(rules))
	for n := range rules {
		names = append(names, n)
	}
	sort.Strings(names) // drops and losses commute; sorted for stable output
	for _, n := range names {
		r := rules[n]
		match := ""
		if len(r.Peers) > 0 {
			ps := make([]string, len(r.Peers))
			for i, p := range r.Peers {
				ps[i] = p.String()
			}
			slices.Sort(ps)
			match = fmt.Sprintf("ip %s { %s } ", addr, strings.Join(ps, ", "))
		}
		if r.Drop {
			fmt.Fprintf(b, "    %scounter drop comment %q\n", match, n)
		} else {
			fmt.Fprintf(b, "    %snumgen random mod 10000 < %d counter drop comment %q\n", match, int(r.Loss*10000), n)
		}
	}
	b.WriteString("  }\n}\n")
}

// Dump lists the links' rules with their counters (packets dropped so far)
// and its qdiscs, for the run directory.
func (l *Link) Dump(ctx context.Context) string {
	var b strings.Builder
	for _, v := range l.cfg.Links {
		for _, x := range []struct{ ns, dev string }{{l.cfg.HostNS, v.HostDev}, {l.cfg.SwitchNS, v.SwitchDev}} {
			out, _ := exec.CommandContext(ctx, "ip", "netns", "exec", x.ns, "nft", "list", "table", "netdev", table(x.dev)).CombinedOutput()
			qd, _ := exec.CommandContext(ctx, "ip", "netns", "exec", x.ns, "tc", "-s", "qdisc", "show", "dev", x.dev).CombinedOutput()
			fmt.Fprintf(&b, "# %s %s\n%s\n%s\n", x.ns, x.dev, out, qd)
		}
	}
	return b.String()
}

// HasNetem says whether tc netem works in namespace ns (on its lo).
func HasNetem(ctx context.Context, ns string) bool {
	if err := tc(ctx, ns, "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"); err != nil {
		return false
	}
	_ = tc(ctx, ns, "qdisc", "del", "dev", "lo", "root")
	return true
}

func tc(ctx context.Context, ns string, args ...string) error {
	out, err := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns, "tc"}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("tc %s in %s: %w: %s", strings.Join(args, " "), ns, err, bytes.TrimSpace(out))
	}
	return nil
}

func dur(d time.Duration) string { return strconv.FormatInt(d.Microseconds(), 10) + "us" }
