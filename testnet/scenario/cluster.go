// Package scenario runs parley regions as real processes in network
// namespaces (a Cluster: 3 core nodes, 2 edges, client hosts), breaks the
// network and the processes (partitions, kills, address changes, lossy
// links, edge cuts, core crashes), drives client devices (tnhost client)
// through it, and checks what they recorded.
package scenario

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/testnet/impair"
	"github.com/parley-chat/parley/testnet/netns"
)

// Ports every node uses on its own address.
const (
	raftPort    = 7000
	natsPort    = 4222
	clusterPort = 6222
	httpPort    = 8080
	udpPort     = 8443
	shards      = 16
)

// Config configures a Cluster.
type Config struct {
	// Dir is the run directory: binaries, data, logs, device records,
	// reports.
	Dir string
	// Repo is the module root to build from.
	Repo string
	// ClientHosts is the number of client hosts (c1..cN), each with a
	// Wi-Fi link and a cellular one (netns.Host.MoveLink).
	ClientHosts int
	// RelayHosts are client hosts whose traffic to the edges goes through
	// a delaying relay in the switch namespace (used when the kernel has
	// no netem and a scenario wants delay on their link).
	RelayHosts []string
	// Keepalive is the edges' ping interval (default 5 s): a device whose
	// ping goes unanswered this long reconnects (parley's default, 25 s,
	// would take half a minute to notice every dead path).
	Keepalive time.Duration
	// LogLevel is the cores' and edges' --log-level (default info).
	LogLevel string
	Logger   *slog.Logger
}

// Validate checks the config.
func (c *Config) Validate() error {
	if c.Dir == "" || c.Repo == "" {
		return errors.New("scenario: Config needs Dir and Repo")
	}
	if c.ClientHosts <= 0 {
		c.ClientHosts = 5
	}
	if c.LogLevel == "" {
		c.LogLevel = "info"
	}
	if c.Keepalive <= 0 {
		c.Keepalive = 5 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Cluster is a running region in namespaces.
type Cluster struct {
	cfg    Config
	log    *slog.Logger
	net    *netns.Net
	parley string // binary paths
	tnhost string
	keys   string
	netem  bool

	mu     sync.Mutex
	hosts  map[string]*netns.Host
	links  map[string]*impair.Link
	cores  map[string]*proc
	edges  map[string]*proc
	relays map[string]*relayProc
}

// CoreNames and EdgeNames are the region's hosts.
var (
	CoreNames = []string{"n1", "n2", "n3"}
	EdgeNames = []string{"e1", "e2"}
)

// Prepare checks the machine, installs nftables/iproute2 when missing and
// removes what crashed runs left. It returns why the harness cannot run,
// if it cannot.
func Prepare(ctx context.Context, log *slog.Logger) error {
	if err := netns.Check(); err != nil {
		return err
	}
	if _, err := exec.LookPath("nft"); err != nil {
		log.Info("installing nftables and iproute2 (apt-get install -y nftables iproute2)")
		cmd := exec.CommandContext(ctx, "sh", "-c", "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nftables iproute2")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("scenario: install nftables: %w: %s", err, lastLines(out, 5))
		}
	}
	return netns.CleanStale(ctx, log)
}

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// Start builds the binaries, creates the network and starts the cores and
// edges. Close undoes all of it, also after a failed Start.
func Start(ctx context.Context, cfg Config) (c *Cluster, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c = &Cluster{cfg: cfg, log: cfg.Logger, hosts: map[string]*netns.Host{}, links: map[string]*impair.Link{},
		cores: map[string]*proc{}, edges: map[string]*proc{}, relays: map[string]*relayProc{}}
	defer func() {
		if err != nil {
			_ = c.Close()
			c = nil
		}
	}()
	for _, d := range []string{"bin", "logs", "data", "devices"} {
		if err := os.MkdirAll(filepath.Join(cfg.Dir, d), 0o755); err != nil {
			return c, err
		}
	}
	if err := c.build(ctx); err != nil {
		return c, err
	}
	c.keys = filepath.Join(cfg.Dir, "token.keys")
	if out, err := exec.CommandContext(ctx, c.parley, "keygen", c.keys).CombinedOutput(); err != nil {
		return c, fmt.Errorf("scenario: keygen: %w: %s", err, out)
	}
	if c.net, err = netns.New(ctx, netns.Config{Logger: c.log}); err != nil {
		return c, err
	}
	names := append(append([]string{}, CoreNames...), EdgeNames...)
	for i := 1; i <= cfg.ClientHosts; i++ {
		names = append(names, "c"+strconv.Itoa(i))
	}
	for _, n := range names {
		h, err := c.net.AddHost(ctx, n)
		if err != nil {
			return c, err
		}
		c.hosts[n] = h
		if strings.HasPrefix(n, "c") { // client hosts are phones: Wi-Fi and cellular (MoveLink)
			if err := h.AddLink(ctx); err != nil {
				return c, err
			}
		}
	}
	c.netem = impair.HasNetem(ctx, c.hosts["n1"].NS)
	c.log.Info("network up", "hosts", len(names), "netem", c.netem)
	for _, n := range cfg.RelayHosts {
		if c.netem {
			break // netem delays in the kernel: no relay needed
		}
		if err := c.startRelay(ctx, n); err != nil {
			return c, err
		}
	}
	for _, n := range names {
		// One impair.Link over all of a host's links: what a scenario
		// states for a client host holds on Wi-Fi and cellular alike.
		lc := impair.Config{HostNS: c.hosts[n].NS, SwitchNS: c.net.SwitchNS(), Netem: c.netem}
		for _, l := range c.hosts[n].Links() {
			lc.Links = append(lc.Links, impair.Veth{HostDev: l.Dev, SwitchDev: l.Peer})
		}
		if r := c.relays[n]; r != nil {
			lc.Delayer = r
		}
		if c.links[n], err = impair.New(lc); err != nil {
			return c, err
		}
	}
	for _, n := range CoreNames {
		if err := c.StartCore(ctx, n); err != nil {
			return c, err
		}
	}
	for _, n := range EdgeNames {
		if err := c.StartEdge(ctx, n); err != nil {
			return c, err
		}
	}
	return c, nil
}

// build compiles parley and tnhost once per run.
func (c *Cluster) build(ctx context.Context) error {
	c.parley = filepath.Join(c.cfg.Dir, "bin", "parley")
	c.tnhost = filepath.Join(c.cfg.Dir, "bin", "tnhost")
	for out, pkg := range map[string]string{c.parley: "./cmd/parley", c.tnhost: "./testnet/cmd/tnhost"} {
		start := time.Now()
		cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
		cmd.Dir = c.cfg.Repo
		if b, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("scenario: go build %s: %w: %s", pkg, err, b)
		}
		c.log.Info("built", "pkg", pkg, "took", time.Since(start).Round(time.Millisecond))
	}
	return nil
}

// Addr is a host's current address.
func (c *Cluster) Addr(host string) netip.Addr { return c.hosts[host].Addr() }

func (c *Cluster) hostPort(host string, port int) string {
	return netip.AddrPortFrom(c.Addr(host), uint16(port)).String()
}

// StartCore starts (or restarts, on the same data) core node n.
func (c *Cluster) StartCore(ctx context.Context, n string) error {
	var peers, routes []string
	for _, m := range CoreNames {
		peers = append(peers, m+"="+c.hostPort(m, raftPort))
		if m != n {
			routes = append(routes, c.hostPort(m, clusterPort))
		}
	}
	h := c.hosts[n]
	cmd := h.Command(context.Background(), c.parley, "core", "--id", n, "--data", filepath.Join(c.cfg.Dir, "data", n),
		"--raft", c.hostPort(n, raftPort), "--peers", strings.Join(peers, ","),
		"--nats", c.hostPort(n, natsPort), "--nats-cluster", c.hostPort(n, clusterPort), "--nats-routes", strings.Join(routes, ","),
		"--shards", strconv.Itoa(shards), "--log-level", c.cfg.LogLevel)
	p, err := startProc(n, cmd, filepath.Join(c.cfg.Dir, "logs", n+".log"))
	if err != nil {
		return err
	}
	if _, _, err := p.waitLine(ctx, "parley core", 0, 60*time.Second); err != nil {
		p.Kill()
		return err
	}
	c.mu.Lock()
	c.cores[n] = p
	c.mu.Unlock()
	return nil
}

// KillCore crashes core node n (SIGKILL).
func (c *Cluster) KillCore(n string) {
	c.mu.Lock()
	p := c.cores[n]
	delete(c.cores, n)
	c.mu.Unlock()
	if p != nil {
		p.Kill()
	}
}

// StartEdge starts (or restarts) edge n.
func (c *Cluster) StartEdge(ctx context.Context, n string) error {
	var nats []string
	for _, m := range CoreNames {
		nats = append(nats, "nats://"+c.hostPort(m, natsPort))
	}
	cmd := c.hosts[n].Command(context.Background(), c.parley, "edge", "--nats", strings.Join(nats, ","),
		"--token-keys", c.keys, "--http", c.hostPort(n, httpPort), "--udp", c.hostPort(n, udpPort),
		"--keepalive", c.cfg.Keepalive.String(), "--idle-timeout", "15s",
		"--ip-rate", "1000", "--ip-burst", "1000", "--user-rate", "1000", "--user-burst", "1000", "--log-level", c.cfg.LogLevel)
	p, err := startProc(n, cmd, filepath.Join(c.cfg.Dir, "logs", n+".log"))
	if err != nil {
		return err
	}
	if _, _, err := p.waitLine(ctx, "parley edge: QUIC", 0, 60*time.Second); err != nil {
		p.Kill()
		return err
	}
	c.mu.Lock()
	c.edges[n] = p
	c.mu.Unlock()
	return nil
}

// KillEdge crashes edge n (SIGKILL) with whatever it had in flight.
func (c *Cluster) KillEdge(n string) {
	c.mu.Lock()
	p := c.edges[n]
	delete(c.edges, n)
	c.mu.Unlock()
	if p != nil {
		p.Kill()
	}
}

// PreferredLeader is the core node that leads conv's shard once the region
// has balanced its leaders (core: group index mod node count, the shard
// groups after the directory, nodes sorted by id).
func PreferredLeader(conv string) string {
	shard := int(syncproto.ShardOf(conv, shards))
	return CoreNames[(shard+1)%len(CoreNames)]
}

// Leader says which core node leads conv's shard, from the nodes' logs
// (the latest "entering leader state" of the shard's group), or the
// preferred leader when the logs do not tell.
func (c *Cluster) Leader(conv string) string {
	group := " group=s" + strconv.Itoa(int(syncproto.ShardOf(conv, shards))) + " "
	best, bestT := PreferredLeader(conv), ""
	for _, n := range CoreNames {
		b, err := os.ReadFile(filepath.Join(c.cfg.Dir, "logs", n+".log"))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if !strings.Contains(line, `msg="entering leader state"`) || !strings.Contains(line, group) {
				continue
			}
			t, _, _ := strings.Cut(strings.TrimPrefix(line, "time="), " ")
			if t > bestT { // RFC 3339 times in UTC sort as strings
				best, bestT = n, t
			}
		}
	}
	return best
}

// Link is host's link (all of its links, for a client host), to impair.
func (c *Cluster) Link(host string) *impair.Link { return c.links[host] }

// Partition cuts host off from peers (both ways) under name.
func (c *Cluster) Partition(ctx context.Context, name, host string, peers ...string) error {
	var addrs []netip.Addr
	for _, p := range peers {
		addrs = append(addrs, c.Addr(p))
	}
	return c.links[host].Block(ctx, name, addrs...)
}

// Heal lifts the partition name from host's link.
func (c *Cluster) Heal(ctx context.Context, name, host string) error {
	return c.links[host].Unblock(ctx, name)
}

// edgeURLs are what a device on host dials: each edge's HTTP base URL and
// UDP address, through host's relay when it has one.
func (c *Cluster) edgeURLs(host string, order []string) (httpURLs, udp []string) {
	r := c.relays[host]
	for _, e := range order {
		if r != nil {
			httpURLs = append(httpURLs, "http://"+r.tcp[e])
			udp = append(udp, r.udp[e])
			continue
		}
		httpURLs = append(httpURLs, "http://"+c.hostPort(e, httpPort))
		udp = append(udp, c.hostPort(e, udpPort))
	}
	return httpURLs, udp
}

// Close stops every process and removes the network.
func (c *Cluster) Close() error {
	c.mu.Lock()
	var ps []*proc
	for _, m := range []map[string]*proc{c.edges, c.cores} {
		for _, p := range m {
			ps = append(ps, p)
		}
	}
	for _, r := range c.relays {
		ps = append(ps, r.p)
	}
	c.edges, c.cores, c.relays = map[string]*proc{}, map[string]*proc{}, map[string]*relayProc{}
	c.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range ps {
		wg.Add(1)
		go func() { defer wg.Done(); _ = p.Stop(10 * time.Second) }()
	}
	wg.Wait()
	if c.net != nil {
		return c.net.Close()
	}
	return nil
}

// relayProc is a tnhost relay in the switch namespace for one client host.
type relayProc struct {
	p   *proc
	udp map[string]string // edge -> relay address
	tcp map[string]string
	mu  sync.Mutex
}

var _ impair.Delayer = (*relayProc)(nil)

func (c *Cluster) startRelay(ctx context.Context, host string) error {
	r := &relayProc{udp: map[string]string{}, tcp: map[string]string{}}
	idx, _ := strconv.Atoi(strings.TrimPrefix(host, "c"))
	var maps []string
	sw := c.net.SwitchAddr()
	for i, e := range EdgeNames {
		base := 20000 + idx*100 + i*10
		r.udp[e] = netip.AddrPortFrom(sw, uint16(base)).String()
		r.tcp[e] = netip.AddrPortFrom(sw, uint16(base+1)).String()
		maps = append(maps, "udp:"+r.udp[e]+"="+c.hostPort(e, udpPort), "tcp:"+r.tcp[e]+"="+c.hostPort(e, httpPort))
	}
	cmd := exec.Command("ip", "netns", "exec", c.net.SwitchNS(), c.tnhost, "relay", "--map", strings.Join(maps, ","))
	p, err := startProc("relay-"+host, cmd, filepath.Join(c.cfg.Dir, "logs", "relay-"+host+".log"))
	if err != nil {
		return err
	}
	r.p = p
	c.relays[host] = r
	_, _, err = p.waitLine(ctx, "ready", 0, 20*time.Second)
	return err
}

// SetDelay sets the relay's delay (impair.Delayer): Out of the client host
// is up toward the edges.
func (r *relayProc) SetDelay(ctx context.Context, dir impair.Dir, delay, jitter time.Duration) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	d := "up"
	if dir == impair.In {
		d = "down"
	}
	from := r.p.lineCount()
	if err := r.p.send(fmt.Sprintf("delay %s %s %s", d, delay, jitter)); err != nil {
		return err
	}
	line, _, err := r.p.waitLine(ctx, "", from, 10*time.Second)
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "ok") {
		return fmt.Errorf("relay: %s", line)
	}
	return nil
}

// run runs a command on the host for its output (stdout only).
func (c *Cluster) output(ctx context.Context, host string, args ...string) ([]byte, error) {
	var stderr bytes.Buffer
	cmd := c.hosts[host].Command(ctx, c.tnhost, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s on %s: %w: %s", args[0], host, err, lastLines(stderr.Bytes(), 5))
	}
	return out, nil
}
