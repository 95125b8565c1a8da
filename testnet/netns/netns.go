// Package netns builds a star network of hosts, each a Linux network
// namespace with one veth link to a switch namespace that holds a bridge.
// Nothing is configured outside the namespaces it creates. Every name
// starts with a prefix that carries the creating process's id, so a later
// run can remove what a crashed one left (CleanStale).
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

// SwitchAddr is the switch namespace's own address on the bridge (used by
// relays placed on the path).
const switchHost = 254

// Config configures a Net.
type Config struct {
	// Subnet is the /24 the hosts share (default 10.77.0.0/24).
	Subnet netip.Prefix
	Logger *slog.Logger
}

// Validate checks the config.
func (c *Config) Validate() error {
	if !c.Subnet.IsValid() {
		c.Subnet = netip.MustParsePrefix("10.77.0.0/24")
	}
	if c.Subnet.Bits() != 24 || !c.Subnet.Addr().Is4() {
		return fmt.Errorf("netns: Config.Subnet %s: want an IPv4 /24", c.Subnet)
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
	next   int // last host number handed out
	closed bool
}

// Host is one namespace with one link to the switch.
type Host struct {
	Name string // short name, e.g. "n1"
	NS   string // namespace name
	Dev  string // the link's name inside NS ("eth0")
	Peer string // the link's other end, in the switch namespace
	net  *Net

	mu   sync.Mutex
	addr netip.Addr
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

// New creates the switch namespace with its bridge. Close removes
// everything New and AddHost made.
func New(ctx context.Context, cfg Config) (*Net, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	n := &Net{cfg: cfg, id: Prefix + strconv.Itoa(os.Getpid()), log: cfg.Logger, hosts: map[string]*Host{}}
	sw := n.nsName("sw")
	steps := [][]string{
		{"netns", "add", sw},
		{"-n", sw, "link", "set", "lo", "up"},
		{"-n", sw, "link", "add", "br0", "type", "bridge"},
		{"-n", sw, "link", "set", "br0", "up"},
		{"-n", sw, "addr", "add", n.addr(switchHost).String() + "/24", "dev", "br0"},
	}
	for _, s := range steps {
		if err := ip(ctx, s...); err != nil {
			_ = n.Close()
			return nil, err
		}
	}
	return n, nil
}

func (n *Net) nsName(host string) string { return n.id + "-" + host }

func (n *Net) addr(i int) netip.Addr {
	b := n.cfg.Subnet.Addr().As4()
	b[3] = byte(i)
	return netip.AddrFrom4(b)
}

// SwitchNS is the switch namespace's name; SwitchAddr its address.
func (n *Net) SwitchNS() string       { return n.nsName("sw") }
func (n *Net) SwitchAddr() netip.Addr { return n.addr(switchHost) }
func (n *Net) Host(name string) *Host { n.mu.Lock(); defer n.mu.Unlock(); return n.hosts[name] }

// AddHost creates a host namespace linked to the switch, with the next
// free address of the subnet.
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
	n.next++
	i := n.next
	h := &Host{Name: name, NS: n.nsName(name), Dev: "eth0", Peer: "v" + strconv.Itoa(i), net: n, addr: n.addr(i)}
	n.hosts[name] = h
	n.mu.Unlock()
	sw := n.SwitchNS()
	steps := [][]string{
		{"netns", "add", h.NS},
		{"-n", h.NS, "link", "set", "lo", "up"},
		{"-n", sw, "link", "add", h.Peer, "type", "veth", "peer", "name", h.Dev, "netns", h.NS},
		{"-n", sw, "link", "set", h.Peer, "master", "br0"},
		{"-n", sw, "link", "set", h.Peer, "up"},
		{"-n", h.NS, "addr", "add", h.addr.String() + "/24", "dev", h.Dev},
		{"-n", h.NS, "link", "set", h.Dev, "up"},
	}
	for _, s := range steps {
		if err := ip(ctx, s...); err != nil {
			return nil, fmt.Errorf("netns: add host %s: %w", name, err)
		}
	}
	// Without this, removing the first address (ChangeAddr) would remove
	// the ones added after it in the same subnet too.
	promote := "echo 1 > /proc/sys/net/ipv4/conf/" + h.Dev + "/promote_secondaries"
	if err := h.Run(ctx, "sh", "-c", promote); err != nil {
		return nil, fmt.Errorf("netns: add host %s: %w", name, err)
	}
	return h, nil
}

// Addr is the host's current address.
func (h *Host) Addr() netip.Addr { h.mu.Lock(); defer h.mu.Unlock(); return h.addr }

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

// ChangeAddr gives the host a new address and removes the old one, as a
// phone moving from Wi-Fi to cellular: sockets bound to the old address
// stop working; those bound to any address send from the new one.
func (h *Host) ChangeAddr(ctx context.Context) (old, cur netip.Addr, err error) {
	n := h.net
	n.mu.Lock()
	n.next++
	i := n.next
	n.mu.Unlock()
	if i >= switchHost {
		return netip.Addr{}, netip.Addr{}, errors.New("netns: subnet full")
	}
	h.mu.Lock()
	old = h.addr
	h.mu.Unlock()
	cur = n.addr(i)
	if err := ip(ctx, "-n", h.NS, "addr", "add", cur.String()+"/24", "dev", h.Dev); err != nil {
		return old, cur, err
	}
	if err := ip(ctx, "-n", h.NS, "addr", "del", old.String()+"/24", "dev", h.Dev); err != nil {
		return old, cur, err
	}
	h.mu.Lock()
	h.addr = cur
	h.mu.Unlock()
	return old, cur, nil
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

func ip(ctx context.Context, args ...string) error {
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}
