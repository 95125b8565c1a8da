package bench

// RunSDK: device sessions with the Go SDK (package client) over WebSocket,
// raw QUIC or WebTransport. N devices, each its own user, send into M
// conversations of a chosen size; the bench measures send-ack latency
// (Send until its ack) and end-to-end delivery latency (send until
// OnMessage on every other member's device: the send time travels in the
// body and every client runs in this process, so one clock), then checks
// that every acknowledged message reached every other member's device
// once and in order. With Idle it also holds idle sessions and reports
// the edge's memory per session (idle.go).

import (
	"bytes"
	"cmp"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/bits"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/parley-chat/parley/client"
	"github.com/parley-chat/parley/client/rest"
	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/streamframe"
	"github.com/parley-chat/parley/syncproto/syncpb"
	"github.com/parley-chat/parley/syncproto/wsframe"
)

const (
	// sdkSendTimeout bounds one Send; a Send still unacknowledged then is
	// counted as an error (its message stays in the outbox and may still
	// be delivered: see DeliveryCheck.DeliveredUnacked).
	sdkSendTimeout = 30 * time.Second
	// sdkMaxOutstanding bounds one device's Sends waiting in its outbox
	// with Rate; the generator waits for room, so the achieved rate drops
	// below the target when the system cannot keep up.
	sdkMaxOutstanding = 64
	// tokenMaxAge is when a session's access token is refreshed before a
	// (re)connect; the server's default lifetime is 15 minutes.
	tokenMaxAge   = 10 * time.Minute
	benchPassword = "bench password 123"
	// benchMagic starts every bench message body; then the sender's index
	// (uint32) and the send time (int64 ns since the run's epoch).
	benchMagic       = "PBv1"
	benchHeaderBytes = len(benchMagic) + 4 + 8
	benchContentType = "application/x-parley-bench"
	// DefaultURL is SDKConfig.URL's default: a local parley serve.
	DefaultURL = "http://127.0.0.1:8080"
)

// SDKConfig is one RunSDK run (`parley bench -transport ws|quic|wt`).
// Zero values of Convs, IdleDevices, URL and UDP mean their defaults.
type SDKConfig struct {
	Transport   string // ws, quic or wt
	URL         string // edge base URLs, comma-separated (default DefaultURL); unused with Self or Region
	UDP         string // the edges' QUIC/WebTransport addresses (default: each URL's host, port 8443)
	Self        bool   // start a serve system in this process (Start)
	Region      bool   // start RegionCores core and RegionEdges edge processes of Binary
	RegionCores int
	RegionEdges int
	Shards      int    // of the Self system
	DataDir     string // of the Self or Region system ("" = a temp dir, removed after)
	Clients     int
	Convs       int // 0: ceil(Clients/GroupSize), every client in one
	GroupSize   int // members per conversation; 2 makes them 1:1
	Rate        float64
	BodyBytes   int
	Duration    time.Duration
	Warmup      time.Duration
	Straggle    time.Duration // wait for deliveries after the last ack
	Idle        int
	IdleUsers   int
	IdleDevices int           // 0: min(Idle, 100)
	IdleSockets int           // quic: UDP sockets shared by the idle sessions
	IdleLean    bool          // quic: hold idle sessions without the SDK (leanIdle)
	IdlePing    time.Duration // with IdleLean: Ping interval (the edge's keepalive)
	EdgePID     int
	JSON        bool
	Samples     string  // file for every measured ack and delivery ("" = none)
	Typing      float64 // typing indicators per second per sending client (0: none)
	// TypingRate and TypingBurst: the Self edge's per-device typing limit (0: its default).
	TypingRate  float64
	TypingBurst int

	// Start starts the Self system; Binary is the parley executable the
	// Region processes run ("" = this process's own executable).
	Start  StartFunc
	Binary string
}

// AddFlags binds c's fields to fs as the flags of `parley bench
// -transport ws|quic|wt`, with their defaults.
func (c *SDKConfig) AddFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Transport, "transport", "ws", "device sessions with the Go SDK over ws (WebSocket), quic (raw QUIC) or wt (WebTransport); http: sends over /v1, see parley bench -h")
	fs.StringVar(&c.UDP, "udp", "", "with -url and quic/wt: the edge's UDP address (default: -url's host, port 8443)")
	fs.StringVar(&c.URL, "url", "", "base URL of a running edge or parley serve (default "+DefaultURL+"; users go into a new workspace; its sessions are at /v1/ws)")
	fs.BoolVar(&c.Self, "self", false, "start a serve system in this process on a temp data dir instead of using -url")
	fs.BoolVar(&c.Region, "region", false, "start a region of processes of this binary on loopback instead of using -url: -region-cores `parley core` and -region-edges `parley edge` (data and logs in -data or a temp dir)")
	fs.IntVar(&c.RegionCores, "region-cores", 3, "core processes of the -region system")
	fs.IntVar(&c.RegionEdges, "region-edges", 2, "edge processes of the -region system (clients spread over them)")
	fs.IntVar(&c.Shards, "shards", 16, "shards of the -self system")
	fs.StringVar(&c.DataDir, "data", "", "data directory of the -self or -region system (default: a temp dir, removed after)")
	fs.IntVar(&c.Clients, "clients", 20, "device sessions that send and receive (one user each)")
	fs.IntVar(&c.Convs, "convs", 0, "conversations (default: clients/group-size rounded up, every client in one)")
	fs.IntVar(&c.GroupSize, "group-size", 5, "members per conversation (2: 1:1 conversations)")
	fs.Float64Var(&c.Rate, "rate", 0, "total sends per second over all clients (0: each client sends as soon as its last send is acked)")
	fs.IntVar(&c.BodyBytes, "body", 200, "message body bytes (the first 16 carry the sender and the send time)")
	fs.DurationVar(&c.Duration, "duration", 20*time.Second, "measured run time")
	fs.DurationVar(&c.Warmup, "warmup", 3*time.Second, "unmeasured run time first (its messages are still checked for delivery)")
	fs.DurationVar(&c.Straggle, "straggle", 5*time.Second, "how long to wait for deliveries after the last ack before counting the missing")
	fs.IntVar(&c.Idle, "idle", 0, "also hold this many idle sessions (users in no conversation) and report the edge's memory per session")
	fs.IntVar(&c.IdleUsers, "idle-users", 10, "users the idle sessions belong to")
	fs.IntVar(&c.IdleDevices, "idle-devices", 0, "devices (logins; each costs an argon2 hash) the idle sessions share, round-robin (default: min(idle, 100))")
	fs.IntVar(&c.IdleSockets, "idle-sockets", 64, "with -transport quic: UDP sockets the idle sessions share (0: one each)")
	fs.BoolVar(&c.IdleLean, "idle-lean", false, "with -transport quic: hold the idle sessions with a bare QUIC connection each (hello, then a ping every -idle-ping) instead of an SDK client, so that 100k fit beside the edge")
	fs.DurationVar(&c.IdlePing, "idle-ping", 25*time.Second, "with -idle-lean: how often each idle session pings (match the edge's -keepalive)")
	fs.IntVar(&c.EdgePID, "edge-pid", 0, "pid of the edge process (on this machine) whose RSS to report with -idle and -url")
	fs.BoolVar(&c.JSON, "json", false, "print the result as JSON")
	fs.StringVar(&c.Samples, "samples", "", "also write every measured ack and delivery to this file, one per line: kind (ack or delivery), send time in ms since the measured window began, latency in ms, sorted by send time")
	fs.Float64Var(&c.Typing, "typing", 0, "typing indicators per second each sending client also sends (0: none)")
	fs.Float64Var(&c.TypingRate, "typing-rate", 0, "with -self: the edge's typing limit per device per second (default 2)")
	fs.IntVar(&c.TypingBurst, "typing-burst", 0, "with -self: the edge's typing burst per device (default 4)")
}

// Validate names the first bad field (by its flag).
func (c SDKConfig) Validate() error {
	switch {
	case c.Transport != "ws" && c.Transport != "quic" && c.Transport != "wt":
		return fmt.Errorf("-transport %q: want http, ws, quic or wt", c.Transport)
	case (c.Self && c.Region) || (c.URL != "" && (c.Self || c.Region)):
		return errors.New("use one of -url, -self and -region")
	case c.Clients < 2:
		return fmt.Errorf("-clients %d: want at least 2", c.Clients)
	case c.GroupSize < 2 || c.GroupSize > c.Clients:
		return fmt.Errorf("-group-size %d: want 2..%d (-clients)", c.GroupSize, c.Clients)
	case c.Convs < 0:
		return fmt.Errorf("-convs %d is negative", c.Convs)
	case c.GroupSize == 2 && c.Convs > c.Clients*(c.Clients-1)/2:
		return fmt.Errorf("-convs %d: %d clients have only %d distinct 1:1 pairs", c.Convs, c.Clients, c.Clients*(c.Clients-1)/2)
	case c.Rate < 0:
		return fmt.Errorf("-rate %v is negative", c.Rate)
	case c.BodyBytes < benchHeaderBytes:
		return fmt.Errorf("-body %d: want at least %d (the bench header)", c.BodyBytes, benchHeaderBytes)
	case c.Duration <= 0:
		return fmt.Errorf("-duration %v: want > 0", c.Duration)
	case c.Warmup < 0 || c.Straggle < 0:
		return errors.New("-warmup and -straggle must not be negative")
	case c.Idle < 0 || c.IdleUsers < 1 || c.IdleDevices < 0:
		return errors.New("-idle and -idle-devices must not be negative, -idle-users must be positive")
	case c.EdgePID < 0:
		return fmt.Errorf("-edge-pid %d is negative", c.EdgePID)
	case c.Typing < 0 || c.TypingRate < 0 || c.TypingBurst < 0:
		return errors.New("-typing, -typing-rate and -typing-burst must not be negative")
	case c.Region && (c.RegionCores < 1 || c.RegionEdges < 1):
		return errors.New("-region-cores and -region-edges must be positive")
	}
	if !c.Self && !c.Region && c.URL != "" {
		for _, u := range strings.Split(c.URL, ",") {
			if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
				return fmt.Errorf("-url %q: want http://host:port or https://host:port (comma-separated for several edges)", c.URL)
			}
		}
	}
	if c.Transport != "ws" && !c.Self && !c.Region && c.UDP != "" && len(strings.Split(c.UDP, ",")) != len(strings.Split(c.withDefaults().URL, ",")) {
		return fmt.Errorf("-udp %q: want one UDP address per -url edge", c.UDP)
	}
	return nil
}

// withDefaults fills the fields whose zero value means a default.
func (c SDKConfig) withDefaults() SDKConfig {
	if c.URL == "" {
		c.URL = DefaultURL
	}
	if c.UDP == "" && !c.Self && !c.Region {
		var udps []string
		for _, s := range strings.Split(c.URL, ",") {
			if u, err := url.Parse(s); err == nil {
				udps = append(udps, net.JoinHostPort(u.Hostname(), "8443"))
			}
		}
		c.UDP = strings.Join(udps, ",")
	}
	if c.Convs == 0 {
		c.Convs = (c.Clients + c.GroupSize - 1) / max(c.GroupSize, 1)
	}
	if c.IdleDevices == 0 {
		c.IdleDevices = min(c.Idle, 100)
	}
	return c
}

// RunSDK runs cfg, printing progress to stderr and the result to stdout
// (text, or JSON with cfg.JSON).
func RunSDK(ctx context.Context, cfg SDKConfig, stdout, stderr io.Writer) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	cfg = cfg.withDefaults()
	edges := strings.Split(cfg.URL, ",")
	for i := range edges {
		edges[i] = strings.TrimRight(edges[i], "/")
	}
	base := edges[0]
	var probe memProbe
	target := base
	if len(edges) > 1 {
		target = fmt.Sprintf("%d edges (%s)", len(edges), cfg.URL)
	}
	var sys System
	if cfg.Self {
		if cfg.Start == nil {
			return errNoStart
		}
		if cfg.Idle > 0 {
			// Finer heap sampling, for the split of the memory per idle
			// session between the edge and the bench's own clients.
			runtime.MemProfileRate = selfMemProfileRate
		}
		dir, cleanup, err := dataDir(cfg.DataDir, "parley-bench-ws-")
		if err != nil {
			return err
		}
		defer cleanup()
		sys, err = cfg.Start(ctx, SystemConfig{DataDir: dir, Shards: cfg.Shards, UDP: true,
			TypingRate: cfg.TypingRate, TypingBurst: cfg.TypingBurst})
		if err != nil {
			return fmt.Errorf("start the -self system: %w", err)
		}
		defer sys.Close()
		base = sys.URL()
		edges = []string{base}
		cfg.UDP = sys.UDPAddr()
		target = "self (serve in this process) at " + base
		probe = selfProbe{sys: sys}
	} else if cfg.Region {
		dir, cleanup, err := dataDir(cfg.DataDir, "parley-bench-region-")
		if err != nil {
			return err
		}
		defer cleanup()
		r, err := startRegion(ctx, regionConfig{Dir: dir, Cores: cfg.RegionCores, Edges: cfg.RegionEdges, UDP: true, Binary: cfg.Binary})
		if err != nil {
			return fmt.Errorf("start the -region system: %w", err)
		}
		defer r.Close()
		edges, base = r.urls, r.urls[0]
		cfg.UDP = strings.Join(r.udps, ",")
		target = fmt.Sprintf("region (%d core and %d edge processes on loopback, %s)", cfg.RegionCores, cfg.RegionEdges, strings.Join(r.urls, ","))
		probe = pidProbe{pid: r.pid("e1")}
	} else if cfg.EdgePID > 0 {
		probe = pidProbe{pid: cfg.EdgePID}
	}
	if !cfg.JSON {
		fmt.Fprintf(stdout, "parley bench: %s sessions, %s, %d clients, %d conversations of %d, rate %s, %d-byte bodies, %v (after %v warmup), GOMAXPROCS %d, load %s\n",
			cfg.Transport, target, cfg.Clients, cfg.Convs, cfg.GroupSize, rateName(cfg.Rate), cfg.BodyBytes, cfg.Duration, cfg.Warmup, runtime.GOMAXPROCS(0), loadAvg())
	}
	b := newSDKBench(cfg, base, stderr)
	defer b.closeAll()
	b.sys = sys
	udps := strings.Split(cfg.UDP, ",")
	for i, e := range edges {
		c := cfg
		if i < len(udps) {
			c.UDP = udps[i]
		}
		d, err := sdkDialer(ctx, c, e, nil)
		if err != nil {
			return err
		}
		if d == nil {
			d = client.WebSocket("ws" + strings.TrimPrefix(e, "http") + wsframe.Path)
		}
		b.dialers = append(b.dialers, d)
	}
	b.dialer = b.dialers[0]
	if cfg.Transport == "quic" && cfg.IdleLean && cfg.Idle > 0 {
		hashes, err := fetchCertHashes(ctx, base)
		if err != nil {
			return err
		}
		if b.lean, err = newLeanIdle(cfg.UDP, hashes, cfg.IdleSockets, cfg.Idle); err != nil {
			return err
		}
		defer b.lean.close()
	} else if cfg.Transport == "quic" && cfg.IdleSockets > 0 && cfg.Idle > 0 {
		for range cfg.IdleSockets {
			pc, err := net.ListenPacket("udp", ":0")
			if err != nil {
				return err
			}
			tr := &quic.Transport{Conn: pc}
			defer pc.Close()
			defer tr.Close()
			d, err := sdkDialer(ctx, cfg, base, tr)
			if err != nil {
				return err
			}
			b.idleDialers = append(b.idleDialers, d)
		}
	}
	res, err := b.run(ctx, probe)
	if err != nil {
		return err
	}
	res.Target = target
	if cfg.JSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	res.WriteText(stdout)
	return nil
}

func rateName(r float64) string {
	if r == 0 {
		return "unthrottled"
	}
	return fmt.Sprintf("%g/s", r)
}

// SDKResult is what one run measured. The send and delivery figures cover
// messages sent in the measured window; Check covers the whole run.
type SDKResult struct {
	Target      string  `json:"target"`
	Transport   string  `json:"transport"`
	Clients     int     `json:"clients"`
	Senders     int     `json:"senders"` // clients in at least one conversation
	Convs       int     `json:"convs"`
	GroupSize   int     `json:"group_size"`
	TargetRate  float64 `json:"target_rate"` // sends/s; 0: unthrottled
	BodyBytes   int     `json:"body_bytes"`
	WarmupSec   float64 `json:"warmup_s"`
	DurationSec float64 `json:"duration_s"`
	GOMAXPROCS  int     `json:"gomaxprocs"`
	LoadBefore  string  `json:"load_before"`
	LoadAfter   string  `json:"load_after"`

	Sent             int          `json:"sent"`  // Sends started in the window
	Acked            int          `json:"acked"` // of those, acknowledged
	AckedPerSec      float64      `json:"acked_per_s"`
	Deliveries       int          `json:"deliveries"` // of those, handed to OnMessage on another member's device
	DeliveriesPerSec float64      `json:"deliveries_per_s"`
	Ack              LatencyStats `json:"ack_latency"`
	Delivery         LatencyStats `json:"delivery_latency"`
	Errors           int          `json:"errors"` // failed Sends, whole run

	Check      DeliveryCheck `json:"check"`
	Reconnects int           `json:"reconnects"` // sessions re-established by the clients
	Idle       *IdleResult   `json:"idle,omitempty"`
	Typing     *TypingResult `json:"typing,omitempty"`
	// Machine is the whole machine's CPU split over the measured window
	// (absent where /proc/stat is not readable).
	Machine *CPUShare `json:"machine,omitempty"`
}

// DeliveryCheck compares, for the whole run, every acknowledged message
// with what the other members' devices were handed. Expected is always
// Delivered + Missing.
type DeliveryCheck struct {
	AckedMessages int `json:"acked_messages"`
	Expected      int `json:"expected"` // acked messages × other members
	Delivered     int `json:"delivered"`
	Missing       int `json:"missing"`
	// Duplicates are bench messages handed to one device twice;
	// OutOfOrder counts messages (any kind, own included) whose seq was
	// not the device's previous seq of the conversation plus one.
	Duplicates int `json:"duplicates"`
	OutOfOrder int `json:"out_of_order"`
	// DeliveredUnacked are deliveries of messages whose Send failed or
	// timed out: stored after all, not lost.
	DeliveredUnacked int     `json:"delivered_unacked"`
	StraggleSec      float64 `json:"straggle_wait_s"` // waited after the last ack
}

// LatencyStats are in milliseconds.
type LatencyStats struct {
	Count int     `json:"count"`
	P50   float64 `json:"p50_ms"`
	P95   float64 `json:"p95_ms"`
	P99   float64 `json:"p99_ms"`
	Max   float64 `json:"max_ms"`
}

func latencies(d []time.Duration) LatencyStats {
	if len(d) == 0 {
		return LatencyStats{}
	}
	slices.Sort(d)
	q := func(p float64) float64 { return msf(d[min(len(d)-1, int(p*float64(len(d))))]) }
	return LatencyStats{Count: len(d), P50: q(0.50), P95: q(0.95), P99: q(0.99), Max: msf(d[len(d)-1])}
}

func (l LatencyStats) String() string {
	return fmt.Sprintf("p50 %.2fms p95 %.2fms p99 %.2fms max %.2fms", l.P50, l.P95, l.P99, l.Max)
}

func (r *SDKResult) WriteText(w io.Writer) {
	fmt.Fprintf(w, "sends: %d started, %d acked in %.1fs = %.0f/s, errors %d; ack latency %v\n",
		r.Sent, r.Acked, r.DurationSec, r.AckedPerSec, r.Errors, r.Ack)
	fmt.Fprintf(w, "deliveries: %d to other members' devices = %.0f/s; send-to-OnMessage latency %v\n",
		r.Deliveries, r.DeliveriesPerSec, r.Delivery)
	c := r.Check
	fmt.Fprintf(w, "check (whole run): %d acked messages, %d deliveries expected, %d delivered, %d missing (after waiting %.1fs), %d duplicates, %d out of order, %d delivered though their send failed; %d reconnects; load after %s\n",
		c.AckedMessages, c.Expected, c.Delivered, c.Missing, c.StraggleSec, c.Duplicates, c.OutOfOrder, c.DeliveredUnacked, r.Reconnects, r.LoadAfter)
	if r.Machine != nil {
		fmt.Fprintf(w, "machine during the measured window: %v\n", r.Machine)
	}
	if r.Idle != nil {
		printIdle(w, r.Idle)
	}
	if r.Typing != nil {
		printTyping(w, r.Typing)
	}
}

// sdkBench is one run's state.
type sdkBench struct {
	lean   *leanIdle // -idle-lean
	cfg    SDKConfig
	base   string
	wsURL  string
	dialer client.Dialer // nil: WebSocket to wsURL
	// dialers reach each edge of -url; clients take them round-robin.
	dialers []client.Dialer
	// idleDialers, if any, dial the idle sessions round-robin (QUIC
	// connections sharing a few UDP sockets).
	idleDialers []client.Dialer
	sys         System // with -self, for its counters
	typing      typingBench
	log         io.Writer
	hc          *http.Client
	space       string // the run's workspace

	epoch    time.Time
	from, to time.Duration // the measured window, since epoch

	devs    []*benchDevice
	convIDs []string
	convIdx map[string]int
	members [][]int

	mu      sync.Mutex
	clients []*client.Client // every session, for closeAll

	sent, winSent, winAcked, errs, winDeliv atomic.Int64
	dups, disorder                          atomic.Int64
	// Running totals for the straggler wait: deliveries owed by acks, and
	// first deliveries of bench messages to other members.
	owed, delivered atomic.Int64
}

// benchDevice is one sending and receiving device session.
type benchDevice struct {
	idx   int
	name  string
	rc    *rest.Client
	sess  *rest.Session
	tok   *tokenSource
	c     *client.Client
	convs []int

	mu     sync.Mutex
	last   map[int]uint64  // conv -> last seq handed over (order check)
	got    map[int]*bitset // conv -> seqs of bench messages from others
	lat    []sample        // deliveries of window messages
	acks   []ackRec
	ackLat []sample // of window messages
}

// sample is one measured latency of a message sent at sent (since the
// bench's epoch).
type sample struct{ sent, lat time.Duration }

func lats(ss []sample) []time.Duration {
	out := make([]time.Duration, len(ss))
	for i, s := range ss {
		out[i] = s.lat
	}
	return out
}

type ackRec struct {
	conv int
	seq  uint64
}

func newSDKBench(cfg SDKConfig, base string, log io.Writer) *sdkBench {
	ws := "ws" + strings.TrimPrefix(base, "http") + wsframe.Path // http->ws, https->wss
	conns := min(cfg.Clients, 64)
	return &sdkBench{cfg: cfg, base: base, wsURL: ws, log: log,
		hc: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
			MaxIdleConns: conns, MaxIdleConnsPerHost: conns, IdleConnTimeout: time.Minute}},
		space: fmt.Sprintf("wsbench%d", time.Now().UnixNano()%1e9)}
}

func (b *sdkBench) progress(format string, args ...any) {
	fmt.Fprintf(b.log, "bench: "+format+"\n", args...)
}

// closeAll closes every session; safe to call more than once.
func (b *sdkBench) closeAll() {
	b.mu.Lock()
	cs := b.clients
	b.clients = nil
	b.mu.Unlock()
	var wg sync.WaitGroup
	for _, c := range cs {
		wg.Go(func() { _ = c.Close() })
	}
	wg.Wait()
}

func (b *sdkBench) run(ctx context.Context, probe memProbe) (*SDKResult, error) {
	if err := b.setup(ctx); err != nil {
		return nil, err
	}
	var idle *IdleResult
	if b.cfg.Idle > 0 {
		var err error
		if idle, err = b.holdIdle(ctx, probe); err != nil {
			return nil, err
		}
	}
	res := &SDKResult{Transport: b.cfg.Transport, Clients: b.cfg.Clients, Convs: b.cfg.Convs, GroupSize: b.cfg.GroupSize,
		TargetRate: b.cfg.Rate, BodyBytes: b.cfg.BodyBytes, WarmupSec: b.cfg.Warmup.Seconds(),
		DurationSec: b.cfg.Duration.Seconds(), GOMAXPROCS: runtime.GOMAXPROCS(0), LoadBefore: loadAvg()}
	var senders []*benchDevice
	for _, d := range b.devs {
		if len(d.convs) > 0 {
			senders = append(senders, d)
		}
	}
	res.Senders = len(senders)
	b.progress("sending for %v (+%v warmup)", b.cfg.Duration, b.cfg.Warmup)
	b.epoch = time.Now()
	b.from, b.to = b.cfg.Warmup, b.cfg.Warmup+b.cfg.Duration
	windowStart := make(chan cpuTimes, 1)
	time.AfterFunc(b.cfg.Warmup, func() {
		if t, err := readCPUTimes(); err == nil {
			windowStart <- t
		}
	})
	var wg sync.WaitGroup
	for _, d := range senders {
		wg.Go(func() { b.generate(ctx, d, len(senders)) })
		if b.cfg.Typing > 0 {
			wg.Go(func() { b.generateTyping(ctx, d, b.cfg.Typing) })
		}
	}
	wg.Wait() // every Send has returned
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if end, err := readCPUTimes(); err == nil {
		select {
		case start := <-windowStart:
			share := end.shareSince(start)
			res.Machine = &share
		default:
		}
	}
	straggle := time.Now()
	if err := b.waitDelivered(ctx); err != nil {
		return nil, err
	}
	res.Check.StraggleSec = time.Since(straggle).Seconds()
	res.LoadAfter = loadAvg()
	for _, d := range b.devs {
		res.Reconnects += d.c.Connections() - 1
	}
	if idle != nil {
		b.finishIdle(idle, probe)
		res.Idle = idle
	}
	b.closeAll() // no more deliveries: the devices' state is final
	if b.cfg.Typing > 0 {
		res.Typing = b.typingReport(senders)
	}

	var ackLat, delLat []sample
	for _, d := range b.devs {
		ackLat = append(ackLat, d.ackLat...)
		delLat = append(delLat, d.lat...)
	}
	if b.cfg.Samples != "" {
		if err := writeSamples(b.cfg.Samples, b.from, ackLat, delLat); err != nil {
			return nil, err
		}
	}
	secs := b.cfg.Duration.Seconds()
	res.Sent, res.Acked, res.Deliveries = int(b.winSent.Load()), int(b.winAcked.Load()), int(b.winDeliv.Load())
	res.AckedPerSec, res.DeliveriesPerSec = float64(res.Acked)/secs, float64(res.Deliveries)/secs
	res.Ack, res.Delivery = latencies(lats(ackLat)), latencies(lats(delLat))
	res.Errors = int(b.errs.Load())
	b.check(&res.Check)
	return res, nil
}

// setup registers and logs in the users, creates the conversations and
// connects the devices.
func (b *sdkBench) setup(ctx context.Context) error {
	sctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	t0 := time.Now()
	b.progress("registering %d users in workspace %s at %s", b.cfg.Clients, b.space, b.base)
	names := make([]string, b.cfg.Clients)
	for i := range names {
		names[i] = fmt.Sprintf("u%d", i)
	}
	rcs, sessions, err := b.users(sctx, names, names)
	if err != nil {
		return err
	}
	b.devs = make([]*benchDevice, b.cfg.Clients)
	for i := range b.devs {
		b.devs[i] = &benchDevice{idx: i, name: names[i], rc: rcs[i], sess: sessions[i],
			tok: &tokenSource{rc: rcs[i], at: time.Now()}, last: map[int]uint64{}, got: map[int]*bitset{}}
	}
	b.progress("users ready in %.1fs; creating %d conversations", time.Since(t0).Seconds(), b.cfg.Convs)
	b.members, err = planConvs(b.cfg.Clients, b.cfg.Convs, b.cfg.GroupSize, rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		return err
	}
	b.convIDs = make([]string, len(b.members))
	err = parallel(sctx, len(b.members), 8, func(ctx context.Context, i int) error {
		ms := b.members[i]
		nc := rest.NewConversation{Type: "group", Title: fmt.Sprintf("bench %d", i)}
		if len(ms) == 2 {
			nc = rest.NewConversation{Type: "direct"}
		}
		for _, m := range ms[1:] {
			nc.MemberIDs = append(nc.MemberIDs, b.devs[m].sess.User.ID)
		}
		return retrying(ctx, func() error {
			c, err := b.devs[ms[0]].rc.CreateConversation(ctx, nc)
			if err == nil {
				b.convIDs[i] = c.ID
			}
			return err
		})
	})
	if err != nil {
		return fmt.Errorf("create conversations: %w", err)
	}
	// The map is complete before any device connects, so OnMessage only
	// reads it; the devices catch up on the conversations' first messages.
	b.convIdx = make(map[string]int, len(b.convIDs))
	for i, id := range b.convIDs {
		if _, dup := b.convIdx[id]; dup {
			return fmt.Errorf("create conversations: conversation %d is %s again", i, id)
		}
		b.convIdx[id] = i
		for _, m := range b.members[i] {
			b.devs[m].convs = append(b.devs[m].convs, i)
		}
	}
	b.progress("connecting %d devices to %s", len(b.devs), b.wsURL)
	t0 = time.Now()
	err = parallel(sctx, len(b.devs), 16, func(ctx context.Context, i int) error {
		d := b.devs[i]
		c, err := b.dialWith(ctx, b.dialers[i%len(b.dialers)], d.tok, d.sess.Device.ID, func(m *syncpb.Message) { b.onMessage(d, m) })
		d.c = c
		return err
	})
	if err != nil {
		return fmt.Errorf("connect devices: %w", err)
	}
	b.progress("devices connected in %.1fs", time.Since(t0).Seconds())
	return nil
}

// users registers users (the first alone, since it creates the workspace)
// and logs in one device per entry of logins (a user name, repeated for
// more devices of one user).
func (b *sdkBench) users(ctx context.Context, names, logins []string) ([]*rest.Client, []*rest.Session, error) {
	register := func(ctx context.Context, i int) error {
		return retrying(ctx, func() error {
			_, err := rest.New(b.base, rest.WithHTTPClient(b.hc)).Register(ctx, b.space, names[i], benchPassword)
			return err
		})
	}
	if err := register(ctx, 0); err != nil {
		return nil, nil, fmt.Errorf("register %s: %w", names[0], err)
	}
	// argon2 is deliberately expensive: a few at a time.
	if err := parallel(ctx, len(names)-1, 4, func(ctx context.Context, i int) error { return register(ctx, i+1) }); err != nil {
		return nil, nil, fmt.Errorf("register: %w", err)
	}
	rcs := make([]*rest.Client, len(logins))
	sessions := make([]*rest.Session, len(logins))
	err := parallel(ctx, len(logins), 4, func(ctx context.Context, i int) error {
		rcs[i] = rest.New(b.base, rest.WithHTTPClient(b.hc))
		return retrying(ctx, func() error {
			s, err := rcs[i].Login(ctx, rest.LoginRequest{Workspace: b.space, Username: logins[i], Password: benchPassword,
				DeviceName: fmt.Sprintf("bench-%d", i), Platform: "bench"})
			sessions[i] = s
			return err
		})
	})
	if err != nil {
		return nil, nil, fmt.Errorf("log in: %w", err)
	}
	return rcs, sessions, nil
}

// dial opens one device session.
func (b *sdkBench) dial(ctx context.Context, tok *tokenSource, device string, onMessage func(*syncpb.Message)) (*client.Client, error) {
	return b.dialWith(ctx, b.dialer, tok, device, onMessage)
}

func (b *sdkBench) dialWith(ctx context.Context, dial client.Dialer, tok *tokenSource, device string, onMessage func(*syncpb.Message)) (*client.Client, error) {
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if dial == nil {
		dial = client.WebSocket(b.wsURL)
	}
	cfg := client.Config{Dial: dial, Token: tok.token, DeviceID: device, ClientName: "parley-bench", OnMessage: onMessage}
	if b.cfg.Typing > 0 {
		cfg.OnTyping = b.typing.onTyping
	}
	c, err := client.Dial(dctx, cfg)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	b.clients = append(b.clients, c)
	b.mu.Unlock()
	return c, nil
}

// tokenSource hands a session its access token, refreshing it when old.
type tokenSource struct {
	rc *rest.Client
	mu sync.Mutex
	at time.Time // when the access token was issued
}

func (s *tokenSource) token(ctx context.Context) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if time.Since(s.at) > tokenMaxAge {
		if err := s.rc.Refresh(ctx); err != nil {
			return "", err
		}
		s.at = time.Now()
	}
	access, _ := s.rc.Tokens()
	return access, nil
}

// generate sends from d until the window ends: back to back with no
// -rate, else on d's share of the rate with up to sdkMaxOutstanding Sends
// waiting in its outbox.
func (b *sdkBench) generate(ctx context.Context, d *benchDevice, senders int) {
	end := b.epoch.Add(b.to)
	k := 0
	nextConv := func() int { k++; return d.convs[k%len(d.convs)] }
	if b.cfg.Rate == 0 {
		for ctx.Err() == nil && time.Now().Before(end) {
			b.send(ctx, d, nextConv())
		}
		return
	}
	interval := max(time.Duration(float64(time.Second)*float64(senders)/b.cfg.Rate), 1)
	next := b.epoch.Add(rand.N(interval)) // spread the senders' phases
	slots := make(chan struct{}, sdkMaxOutstanding)
	var wg sync.WaitGroup
	defer wg.Wait()
	t := time.NewTimer(0)
	defer t.Stop()
	for next.Before(end) {
		t.Reset(time.Until(next))
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		conv := nextConv()
		wg.Go(func() {
			defer func() { <-slots }()
			b.send(ctx, d, conv)
		})
		next = next.Add(interval)
		if now := time.Now(); next.Before(now.Add(-interval)) {
			next = now // fell behind: do not burst to catch up
		}
	}
}

// send sends one message into conv and records its ack.
func (b *sdkBench) send(ctx context.Context, d *benchDevice, conv int) {
	t0 := time.Now()
	off := t0.Sub(b.epoch)
	in := off >= b.from && off < b.to
	b.sent.Add(1)
	if in {
		b.winSent.Add(1)
	}
	body := make([]byte, b.cfg.BodyBytes)
	copy(body, benchMagic)
	binary.BigEndian.PutUint32(body[4:], uint32(d.idx))
	binary.BigEndian.PutUint64(body[8:], uint64(off))
	for i := benchHeaderBytes; i < len(body); i++ {
		body[i] = 'x'
	}
	sctx, cancel := context.WithTimeout(ctx, sdkSendTimeout)
	ack, err := d.c.Send(sctx, &syncpb.SendRequest{ConvId: b.convIDs[conv], Body: body, ContentType: benchContentType})
	cancel()
	lat := time.Since(t0)
	if err != nil {
		if ctx.Err() == nil && b.errs.Add(1) <= 5 {
			b.progress("send from %s: %v", d.name, err)
		}
		return
	}
	b.owed.Add(int64(len(b.members[conv]) - 1))
	d.mu.Lock()
	d.acks = append(d.acks, ackRec{conv: conv, seq: ack.Seq})
	if in {
		d.ackLat = append(d.ackLat, sample{sent: off, lat: lat})
	}
	d.mu.Unlock()
	if in {
		b.winAcked.Add(1)
	}
}

// onMessage is d's OnMessage: order check, then, for a bench message
// from another member, the delivery and its latency.
func (b *sdkBench) onMessage(d *benchDevice, m *syncpb.Message) {
	now := time.Since(b.epoch)
	conv, ok := b.convIdx[m.ConvId]
	if !ok {
		return // not a bench conversation
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if prev := d.last[conv]; m.Seq != prev+1 {
		b.disorder.Add(1)
	}
	d.last[conv] = max(d.last[conv], m.Seq)
	sender, sentAt, ok := decodeBenchBody(m.Body)
	if !ok || m.Kind != syncpb.MessageKind_MESSAGE_KIND_USER || sender == d.idx {
		return
	}
	bs := d.got[conv]
	if bs == nil {
		bs = &bitset{}
		d.got[conv] = bs
	}
	if !bs.set(m.Seq) {
		b.dups.Add(1)
		return
	}
	b.delivered.Add(1)
	if sentAt >= b.from && sentAt < b.to {
		d.lat = append(d.lat, sample{sent: sentAt, lat: now - sentAt})
		b.winDeliv.Add(1)
	}
}

func decodeBenchBody(body []byte) (sender int, sentAt time.Duration, ok bool) {
	if len(body) < benchHeaderBytes || string(body[:len(benchMagic)]) != benchMagic {
		return 0, 0, false
	}
	return int(binary.BigEndian.Uint32(body[4:])), time.Duration(binary.BigEndian.Uint64(body[8:])), true
}

// waitDelivered waits up to -straggle for the deliveries the acks owe.
func (b *sdkBench) waitDelivered(ctx context.Context) error {
	deadline := time.NewTimer(b.cfg.Straggle)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for b.delivered.Load() < b.owed.Load() {
		select {
		case <-tick.C:
		case <-deadline.C:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// check fills c from the acks and what every device was handed; the
// sessions must be closed.
func (b *sdkBench) check(c *DeliveryCheck) {
	acked := make([]bitset, len(b.convIDs))
	for _, d := range b.devs {
		for _, a := range d.acks {
			c.AckedMessages++
			acked[a.conv].set(a.seq)
			for _, m := range b.members[a.conv] {
				if m == d.idx {
					continue
				}
				c.Expected++
				if b.devs[m].got[a.conv].has(a.seq) {
					c.Delivered++
				} else {
					c.Missing++
				}
			}
		}
	}
	for _, d := range b.devs {
		for conv, bs := range d.got {
			c.DeliveredUnacked += bs.countNotIn(&acked[conv])
		}
	}
	c.Duplicates, c.OutOfOrder = int(b.dups.Load()), int(b.disorder.Load())
}

// planConvs picks the members of m conversations of g among n clients:
// the first ceil(n/g) take consecutive blocks, so every client is in one
// if m allows; the rest take random distinct members (distinct pairs for
// 1:1 conversations, which the server keeps unique per pair).
func planConvs(n, m, g int, rng *rand.Rand) ([][]int, error) {
	if g < 2 || g > n {
		return nil, fmt.Errorf("group size %d: want 2..%d", g, n)
	}
	out := make([][]int, 0, m)
	pairs := map[[2]int]bool{}
	fresh := func(ms []int) bool {
		if g != 2 {
			return true
		}
		p := [2]int{min(ms[0], ms[1]), max(ms[0], ms[1])}
		if pairs[p] {
			return false
		}
		pairs[p] = true
		return true
	}
	blocks := (n + g - 1) / g
	for i := 0; i < m && i < blocks; i++ {
		ms := make([]int, g)
		for k := range ms {
			ms[k] = (i*g + k) % n
		}
		fresh(ms)
		out = append(out, ms)
	}
	for len(out) < m {
		placed := false
		for range 10000 {
			ms := rng.Perm(n)[:g]
			if fresh(ms) {
				out = append(out, slices.Clone(ms))
				placed = true
				break
			}
		}
		if !placed {
			return nil, fmt.Errorf("cannot find %d distinct 1:1 pairs among %d clients; lower -convs", m, n)
		}
	}
	return out, nil
}

// bitset is a set of seqs.
type bitset struct{ w []uint64 }

// set adds s and reports whether it was new.
func (b *bitset) set(s uint64) bool {
	i := int(s / 64)
	if i >= len(b.w) {
		b.w = append(b.w, make([]uint64, i+1-len(b.w))...)
	}
	bit := uint64(1) << (s % 64)
	if b.w[i]&bit != 0 {
		return false
	}
	b.w[i] |= bit
	return true
}

func (b *bitset) has(s uint64) bool {
	if b == nil {
		return false
	}
	i := int(s / 64)
	return i < len(b.w) && b.w[i]&(1<<(s%64)) != 0
}

// countNotIn counts the members of b that o lacks.
func (b *bitset) countNotIn(o *bitset) int {
	n := 0
	for i, w := range b.w {
		if i < len(o.w) {
			w &^= o.w[i]
		}
		n += bits.OnesCount64(w)
	}
	return n
}

// sdkDialer is the SDK dialer of cfg.Transport. QUIC and WebTransport
// trust the edge's certificate by the hashes it publishes over HTTP (its
// dev certificate), or by the system roots when it publishes none.
func sdkDialer(ctx context.Context, cfg SDKConfig, base string, shared *quic.Transport) (client.Dialer, error) {
	if cfg.Transport == "ws" {
		return nil, nil
	}
	hashes, err := fetchCertHashes(ctx, base)
	if err != nil {
		return nil, err
	}
	opts := client.QUICOptions{Transport: shared}
	if len(hashes) > 0 {
		opts.TLS = client.PinnedTLS(hashes...)
	}
	if cfg.Transport == "quic" {
		return client.QUIC(cfg.UDP, opts), nil
	}
	return client.WebTransport("https://"+cfg.UDP+streamframe.WebTransportPath, opts), nil
}

func fetchCertHashes(ctx context.Context, base string) ([][32]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+syncproto.CertHashPath, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("certificate hashes: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("certificate hashes: %s (does the edge serve QUIC?)", resp.Status)
	}
	var list syncproto.CertHashList
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		return nil, fmt.Errorf("certificate hashes: %w", err)
	}
	var out [][32]byte
	for _, h := range list.Hashes {
		b, err := base64.StdEncoding.DecodeString(h.Value)
		if err != nil || len(b) != 32 {
			return nil, fmt.Errorf("certificate hashes: bad value %q", h.Value)
		}
		out = append(out, [32]byte(b))
	}
	return out, nil
}

// writeSamples writes -samples: "ack" and "delivery" lines of send time
// (ms since from) and latency (ms), ordered by send time (a message's ack
// before its deliveries).
func writeSamples(path string, from time.Duration, acks, dels []sample) error {
	type line struct {
		kind string
		sample
	}
	all := make([]line, 0, len(acks)+len(dels))
	for _, a := range acks {
		all = append(all, line{"ack", a})
	}
	for _, d := range dels {
		all = append(all, line{"delivery", d})
	}
	slices.SortStableFunc(all, func(a, b line) int { return cmp.Compare(a.sent, b.sent) })
	var buf bytes.Buffer
	for _, l := range all {
		fmt.Fprintf(&buf, "%s %.3f %.3f\n", l.kind, msf(l.sent-from), msf(l.lat))
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("-samples: %w", err)
	}
	return nil
}
