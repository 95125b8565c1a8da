// Package netns builds a star network of hosts, each a Linux network
// namespace with a veth link to a switch namespace. The switch holds two
// bridges, each with its own /24 (the hosts' Wi-Fi and a cellular
// network), and routes between them; it is every host's default gateway.
// A host starts with one link, on the first bridge; AddLink gives it a
// second one, on the other, and MoveLink moves it from one to the other,
// as a phone leaving Wi-Fi for cellular. Nothing is configured outside
// the namespaces it creates. Every name starts with a prefix that carries
// the creating process's id, so a later run can remove what a crashed one
// left (CleanStale).
package netns

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Prefix starts the name of every namespace this package creates.
const Prefix = "ptn"

// switchHost is the switch namespace's own address on each bridge: the
// hosts' gateway, and where relays placed on the path listen.
const switchHost = 254

// Config configures a Net.
type Config struct {
	// Subnet is the /24 of the hosts' first links (default 10.77.0.0/24).
	Subnet netip.Prefix
	// Cellular is the /24 of the hosts' second links (AddLink; default
	// 10.78.0.0/24).
	Cellular netip.Prefix
	Logger   *slog.Logger
}

// Validate checks the config and fills in the defaults.
func (c *Config) Validate() error {
	if !c.Subnet.IsValid() {
		c.Subnet = netip.MustParsePrefix("10.77.0.0/24")
	}
	if !c.Cellular.IsValid() {
		c.Cellular = netip.MustParsePrefix("10.78.0.0/24")
	}
	for _, p := range []struct {
		name string
		p    netip.Prefix
	}{{"Subnet", c.Subnet}, {"Cellular", c.Cellular}} {
		if p.p.Bits() != 24 || !p.p.Addr().Is4() {
			return fmt.Errorf("netns: Config.%s %s: want an IPv4 /24", p.name, p.p)
		}
	}
	if c.Subnet.Masked() == c.Cellular.Masked() {
		return fmt.Errorf("netns: Config.Subnet and Config.Cellular are both %s", c.Subnet.Masked())
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Net is a switch namespace and the hosts attached to it.
type Net struct {
	cfg    Config
	id     string // Prefix + pid
	log    *slog.Logger
	mu     sync.Mutex
	hosts  map[string]*Host
	segs   [2]segment // 0: first links (Subnet), 1: second links (Cellular)
	closed bool
}

// segment is one of the switch's bridges with its /24.
type segment struct {
	bridge string
	prefix netip.Prefix
	next   int // last host number handed out
}

func (s *segment) addr(i int) netip.Addr {
	b := s.prefix.Addr().As4()
	b[3] = byte(i)
	return netip.AddrFrom4(b)
}

// Host is one namespace with one or two links to the switch, one of them
// up at a time.
type Host struct {
	Name string // short name, e.g. "n1"
	NS   string // namespace name
	net  *Net
	num  int // the host's number, in its first address and its links' names

	op    sync.Mutex // serializes ChangeAddr, AddLink and MoveLink
	mu    sync.Mutex // guards links and cur
	links []hostLink
	cur   int // index of the link the host is on
}

// hostLink is one of a host's links.
type hostLink struct {
	dev, peer string
	seg       int // index into Net.segs
	addr      netip.Addr
}

// Link describes one of a host's links.
type Link struct {
	Dev  string     // the device in the host's namespace: eth0, or wwan0 for the second link
	Peer string     // its other end, in the switch namespace
	Addr netip.Addr // its address, which it has only while the host is on it
	Up   bool       // the host is on this link
}

// Check says why the harness cannot run here, or nil when it can.
func Check() error {
	if os.Geteuid() != 0 {
		return errors.New("netns: needs root (network namespaces, veth, nftables)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return errors.New("netns: no `ip` (install iproute2)")
	}
	return nil
}

// New creates the switch namespace with its two bridges. Close removes
// everything New, AddHost and AddLink made.
func New(ctx context.Context, cfg Config) (*Net, error) {
	return newNet(ctx, cfg, Prefix+strconv.Itoa(os.Getpid()))
}

// newNet is New with the id that starts its namespaces' names.
func newNet(ctx context.Context, cfg Config, id string) (*Net, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	n := &Net{cfg: cfg, id: id, log: cfg.Logger, hosts: map[string]*Host{},
		segs: [2]segment{{bridge: "br0", prefix: cfg.Subnet}, {bridge: "br1", prefix: cfg.Cellular}}}
	sw := n.nsName("sw")
	if err := ip(ctx, "netns", "add", sw); err != nil {
		return nil, err
	}
	err := sysctl(ctx, sw, "net/ipv4/ip_forward", "1") // routes between the bridges
	steps := [][]string{{"-n", sw, "link", "set", "lo", "up"}}
	for _, s := range n.segs {
		steps = append(steps,
			[]string{"-n", sw, "link", "add", s.bridge, "type", "bridge"},
			[]string{"-n", sw, "link", "set", s.bridge, "up"},
			[]string{"-n", sw, "addr", "add", s.addr(switchHost).String() + "/24", "dev", s.bridge})
	}
	for _, s := range steps {
		if err != nil {
			break
		}
		err = ip(ctx, s...)
	}
	if err != nil {
		_ = n.Close()
		return nil, err
	}
	return n, nil
}

func (n *Net) nsName(host string) string { return n.id + "-" + host }

// SwitchNS is the switch namespace's name; SwitchAddr its address on the
// first bridge.
func (n *Net) SwitchNS() string       { return n.nsName("sw") }
func (n *Net) SwitchAddr() netip.Addr { return n.segs[0].addr(switchHost) }
func (n *Net) Host(name string) *Host { n.mu.Lock(); defer n.mu.Unlock(); return n.hosts[name] }

// nextAddr hands out the next free address of segment seg and the
// host number in it.
func (n *Net) nextAddr(seg int) (netip.Addr, int, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	s := &n.segs[seg]
	if s.next+1 >= switchHost {
		return netip.Addr{}, 0, fmt.Errorf("netns: subnet %s full", s.prefix)
	}
	s.next++
	return s.addr(s.next), s.next, nil
}

// AddHost creates a host namespace linked to the switch's first bridge,
// with the next free address of Config.Subnet and the switch as its
// default gateway.
func (n *Net) AddHost(ctx context.Context, name string) (*Host, error) {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil, errors.New("netns: closed")
	}
	if _, ok := n.hosts[name]; ok {
		n.mu.Unlock()
		return nil, fmt.Errorf("netns: host %s exists", name)
	}
	h := &Host{Name: name, NS: n.nsName(name), net: n}
	n.hosts[name] = h
	n.mu.Unlock()
	addr, i, err := n.nextAddr(0)
	if err != nil {
		return nil, err
	}
	h.num = i
	if err := ip(ctx, "netns", "add", h.NS); err != nil {
		return nil, fmt.Errorf("netns: add host %s: %w", name, err)
	}
	if err := ip(ctx, "-n", h.NS, "link", "set", "lo", "up"); err != nil {
		return nil, fmt.Errorf("netns: add host %s: %w", name, err)
	}
	l := hostLink{dev: "eth0", peer: "v" + strconv.Itoa(i), seg: 0, addr: addr}
	if err := h.addLink(ctx, l, true); err != nil {
		return nil, fmt.Errorf("netns: add host %s: %w", name, err)
	}
	return h, nil
}

// AddLink gives the host its second link: a veth pair into the switch's
// second bridge, with the next free address of Config.Cellular for when
// MoveLink moves the host onto it; until then it is down and has no
// address.
func (h *Host) AddLink(ctx context.Context) error {
	h.op.Lock()
	defer h.op.Unlock()
	h.mu.Lock()
	n := len(h.links)
	h.mu.Unlock()
	if n != 1 {
		return fmt.Errorf("netns: host %s has %d links, AddLink wants 1", h.Name, n)
	}
	addr, _, err := h.net.nextAddr(1)
	if err != nil {
		return err
	}
	l := hostLink{dev: "wwan0", peer: "w" + strconv.Itoa(h.num), seg: 1, addr: addr}
	if err := h.addLink(ctx, l, false); err != nil {
		return fmt.Errorf("netns: host %s: add link: %w", h.Name, err)
	}
	return nil
}

// addLink creates l's veth pair, and with up, brings it up with its
// address and the default route.
func (h *Host) addLink(ctx context.Context, l hostLink, up bool) error {
	sw := h.net.SwitchNS()
	steps := [][]string{
		{"-n", sw, "link", "add", l.peer, "type", "veth", "peer", "name", l.dev, "netns", h.NS},
		{"-n", sw, "link", "set", l.peer, "master", h.net.segs[l.seg].bridge},
		{"-n", sw, "link", "set", l.peer, "up"},
	}
	for _, s := range steps {
		if err := ip(ctx, s...); err != nil {
			return err
		}
	}
	// Without this, removing the first address (ChangeAddr) would remove
	// the ones added after it in the same subnet too.
	if err := sysctl(ctx, h.NS, "net/ipv4/conf/"+l.dev+"/promote_secondaries", "1"); err != nil {
		return err
	}
	if up {
		if err := h.linkUp(ctx, l); err != nil {
			return err
		}
	}
	h.mu.Lock()
	h.links = append(h.links, l)
	h.mu.Unlock()
	return nil
}

// linkUp gives l its address, brings it up and routes everything off its
// subnet through the switch on it.
func (h *Host) linkUp(ctx context.Context, l hostLink) error {
	if err := ip(ctx, "-n", h.NS, "addr", "add", l.addr.String()+"/24", "dev", l.dev); err != nil {
		return err
	}
	if err := ip(ctx, "-n", h.NS, "link", "set", l.dev, "up"); err != nil {
		return err
	}
	gw := h.net.segs[l.seg].addr(switchHost).String()
	return ip(ctx, "-n", h.NS, "route", "replace", "default", "via", gw, "dev", l.dev)
}

// Addr is the host's current address: that of the link it is on.
func (h *Host) Addr() netip.Addr {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.links) == 0 { // AddHost failed
		return netip.Addr{}
	}
	return h.links[h.cur].addr
}

// Links describes the host's links, the first one first.
func (h *Host) Links() []Link {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]Link, len(h.links))
	for i, l := range h.links {
		out[i] = Link{Dev: l.dev, Peer: l.peer, Addr: l.addr, Up: i == h.cur}
	}
	return out
}

// Command runs name inside the host's namespace.
func (h *Host) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", h.NS, name}, args...)...)
}

// Run runs a command in the host's namespace and returns its error with
// its output.
func (h *Host) Run(ctx context.Context, name string, args ...string) error {
	out, err := h.Command(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s in %s: %w: %s", name, strings.Join(args, " "), h.NS, err, bytes.TrimSpace(out))
	}
	return nil
}

// ChangeAddr gives the host a new address on the link it is on and
// removes the old one, as a phone whose network hands it a new address:
// sockets bound to the old address stop working; those bound to any
// address send from the new one.
func (h *Host) ChangeAddr(ctx context.Context) (old, cur netip.Addr, err error) {
	h.op.Lock()
	defer h.op.Unlock()
	h.mu.Lock()
	l := h.links[h.cur]
	h.mu.Unlock()
	old = l.addr
	cur, _, err = h.net.nextAddr(l.seg)
	if err != nil {
		return old, cur, err
	}
	if err := ip(ctx, "-n", h.NS, "addr", "add", cur.String()+"/24", "dev", l.dev); err != nil {
		return old, cur, err
	}
	if err := ip(ctx, "-n", h.NS, "addr", "del", old.String()+"/24", "dev", l.dev); err != nil {
		return old, cur, err
	}
	h.setAddr(l.dev, cur)
	return old, cur, nil
}

func (h *Host) setAddr(dev string, a netip.Addr) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i := range h.links {
		if h.links[i].dev == dev {
			h.links[i].addr = a
		}
	}
}

// MoveLink moves the host to its other link (AddLink), as a phone leaving
// Wi-Fi for cellular or coming back: the other link comes up with its
// address and takes the default route, then the current one goes down and
// loses its address. Sockets bound to any address now send from the other
// link's address through its device; connections from the old address
// are dead. It returns the addresses before and after.
func (h *Host) MoveLink(ctx context.Context) (old, cur netip.Addr, err error) {
	h.op.Lock()
	defer h.op.Unlock()
	h.mu.Lock()
	if len(h.links) < 2 {
		h.mu.Unlock()
		return netip.Addr{}, netip.Addr{}, fmt.Errorf("netns: host %s has one link (AddLink first)", h.Name)
	}
	i := h.cur
	from, to := h.links[i], h.links[1-i]
	h.mu.Unlock()
	if err := h.linkUp(ctx, to); err != nil {
		return from.addr, to.addr, fmt.Errorf("netns: host %s: move to %s: %w", h.Name, to.dev, err)
	}
	h.mu.Lock()
	h.cur = 1 - i // the default route is there now
	h.mu.Unlock()
	for _, s := range [][]string{{"link", "set", from.dev, "down"}, {"-4", "addr", "flush", "dev", from.dev}} {
		if err := ip(ctx, append([]string{"-n", h.NS}, s...)...); err != nil {
			return from.addr, to.addr, fmt.Errorf("netns: host %s: move to %s: %w", h.Name, to.dev, err)
		}
	}
	return from.addr, to.addr, nil
}

// Close kills every process left in the namespaces and deletes them. It is
// idempotent.
func (n *Net) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	n.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return removeAll(ctx, n.id+"-", n.log)
}

// CleanStale removes namespaces left by runs whose process is gone.
func CleanStale(ctx context.Context, log *slog.Logger) error {
	names, err := list(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, name := range names {
		id, _, ok := strings.Cut(name, "-")
		if !ok || !strings.HasPrefix(id, Prefix) {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimPrefix(id, Prefix))
		if err != nil || (pid != os.Getpid() && alive(pid)) {
			continue
		}
		log.Info("removing a stale namespace", "ns", name)
		errs = append(errs, removeNS(ctx, name))
	}
	return errors.Join(errs...)
}

func alive(pid int) bool {
	return syscall.Kill(pid, 0) == nil
}

func removeAll(ctx context.Context, prefix string, log *slog.Logger) error {
	names, err := list(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, name := range names {
		if strings.HasPrefix(name, prefix) {
			errs = append(errs, removeNS(ctx, name))
		}
	}
	return errors.Join(errs...)
}

// removeNS kills the processes in a namespace, then deletes it (its veth
// ends go with it).
func removeNS(ctx context.Context, name string) error {
	out, _ := exec.CommandContext(ctx, "ip", "netns", "pids", name).Output()
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	return ip(ctx, "netns", "del", name)
}

func list(ctx context.Context) ([]string, error) {
	out, err := exec.CommandContext(ctx, "ip", "netns", "list").Output()
	if err != nil {
		return nil, fmt.Errorf("netns: list: %w", err)
	}
	var names []string
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			names = append(names, f[0])
		}
	}
	return names, nil
}

// sysctl sets key (a path under /proc/sys) to v in namespace ns.
func sysctl(ctx context.Context, ns, key, v string) error {
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", ns, "sh", "-c", "echo "+v+" > /proc/sys/"+key)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("netns: sysctl %s=%s in %s: %w: %s", key, v, ns, err, bytes.TrimSpace(out))
	}
	return nil
}

func ip(ctx context.Context, args ...string) error {
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}
