// Package raftmux carries the Raft traffic of every group of a node over one
// TCP listener. Each connection starts with a small header naming its group
// and the dialer's advertise address (see header.go); the accepting Mux hands
// it to that group's Layer, a raft.StreamLayer for raft's NetworkTransport.
//
// The header is not authenticated and the traffic is not encrypted: the
// listener belongs on the region's private network.
//
// For in-process cluster tests, Mux.Partition cuts this node off from given
// peers (both directions) and Mux.Heal restores it.
package raftmux

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

var (
	// ErrClosed is returned by Layer.Accept after the Layer or Mux is
	// closed, and by Dial and Mux.Layer after Close. It matches
	// net.ErrClosed.
	ErrClosed = fmt.Errorf("raftmux: closed: %w", net.ErrClosed)
	// ErrBadGroup is returned by Mux.Layer for a name outside [a-z0-9_-]{1,32}.
	ErrBadGroup = errors.New("raftmux: bad group name")
	// ErrDuplicateGroup is returned by Mux.Layer for a group that has an open
	// Layer already.
	ErrDuplicateGroup = errors.New("raftmux: group already registered")
	// ErrPartitioned is returned by Layer.Dial to a peer cut off by Partition.
	ErrPartitioned = errors.New("raftmux: peer partitioned")
)

// Defaults for zero Config fields.
const (
	DefaultHeaderTimeout = 5 * time.Second
	DefaultAcceptBacklog = 32
	// maxHandshakes bounds connections whose header is still being read;
	// more are closed at once.
	maxHandshakes = 64
)

// Config of a Mux. The zero value is valid.
type Config struct {
	// AdvertiseAddr is the host:port peers dial to reach this node. It is
	// what Layer.Addr returns and what this node sends as "from" in its
	// headers. Empty means the listener's address.
	AdvertiseAddr string
	// HeaderTimeout bounds reading an incoming header, and how long an
	// incoming connection waits for room in a full accept queue.
	HeaderTimeout time.Duration
	// AcceptBacklog bounds each Layer's queue of accepted connections.
	AcceptBacklog int
	Logger        *slog.Logger
}

// Validate reports the first bad field.
func (c *Config) Validate() error {
	if c.AdvertiseAddr != "" {
		if _, _, err := net.SplitHostPort(c.AdvertiseAddr); err != nil {
			return fmt.Errorf("raftmux: Config.AdvertiseAddr: %w", err)
		}
		if len(c.AdvertiseAddr) > MaxAddrLen {
			return fmt.Errorf("raftmux: Config.AdvertiseAddr longer than %d bytes", MaxAddrLen)
		}
	}
	if c.HeaderTimeout < 0 {
		return fmt.Errorf("raftmux: Config.HeaderTimeout %v is negative", c.HeaderTimeout)
	}
	if c.AcceptBacklog < 0 {
		return fmt.Errorf("raftmux: Config.AcceptBacklog %d is negative", c.AcceptBacklog)
	}
	return nil
}

// Mux owns a listener and routes its connections to Layers by group.
type Mux struct {
	ln        net.Listener
	advertise net.Addr
	cfg       Config
	log       *slog.Logger
	ctx       context.Context // cancelled by Close; aborts dials
	cancel    context.CancelFunc
	handshake chan struct{} // semaphore of maxHandshakes
	rejects   rate.Sometimes
	wg        sync.WaitGroup

	mu          sync.Mutex
	closed      bool
	layers      map[string]*Layer
	conns       map[*conn]struct{}
	partitioned map[string]bool

	closeOnce sync.Once
	closeErr  error
}

// NewWithConfig starts a Mux on ln (Config{Logger: l} gives the defaults).
// The Mux owns ln from then on; on error ln is left open.
func NewWithConfig(ln net.Listener, cfg Config) (*Mux, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.HeaderTimeout == 0 {
		cfg.HeaderTimeout = DefaultHeaderTimeout
	}
	if cfg.AcceptBacklog == 0 {
		cfg.AcceptBacklog = DefaultAcceptBacklog
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var adv net.Addr = ln.Addr()
	if cfg.AdvertiseAddr != "" {
		adv = addr(cfg.AdvertiseAddr)
	}
	if len(adv.String()) > MaxAddrLen {
		return nil, fmt.Errorf("raftmux: listener address longer than %d bytes; set Config.AdvertiseAddr", MaxAddrLen)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &Mux{
		ln:          ln,
		advertise:   adv,
		cfg:         cfg,
		log:         log.With("component", "raftmux", "addr", adv.String()),
		ctx:         ctx,
		cancel:      cancel,
		handshake:   make(chan struct{}, maxHandshakes),
		rejects:     rate.Sometimes{First: 5, Interval: 10 * time.Second},
		layers:      map[string]*Layer{},
		conns:       map[*conn]struct{}{},
		partitioned: map[string]bool{},
	}
	m.wg.Add(1)
	go m.acceptLoop()
	return m, nil
}

// addr is an advertise address.
type addr string

func (a addr) Network() string { return "tcp" }
func (a addr) String() string  { return string(a) }

// Addr is the advertise address (Config.AdvertiseAddr, else the listener's).
func (m *Mux) Addr() net.Addr { return m.advertise }

// Layer registers group and returns its raft.StreamLayer. It fails with
// ErrBadGroup, ErrDuplicateGroup while the group has an open Layer, or
// ErrClosed. Closing the Layer frees the name.
func (m *Mux) Layer(group string) (*Layer, error) {
	if !ValidGroup(group) {
		return nil, fmt.Errorf("%w: %q", ErrBadGroup, group)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrClosed
	}
	if _, ok := m.layers[group]; ok {
		return nil, fmt.Errorf("%w: %q", ErrDuplicateGroup, group)
	}
	l := &Layer{m: m, group: group, queue: make(chan net.Conn, m.cfg.AcceptBacklog), done: make(chan struct{})}
	m.layers[group] = l
	return l, nil
}

// Partition cuts this node off from the peers with the given advertise
// addresses (as they appear in raft's configuration), in both directions:
// Dial to them fails at once with ErrPartitioned, connections to and from
// them are closed, and new connections from them (known by the "from" in
// their header) are closed. It adds to earlier Partition calls. Meant for
// tests; a one-sided Partition suffices to cut a pair.
func (m *Mux) Partition(addrs ...string) {
	m.mu.Lock()
	var victims []*conn
	for _, a := range addrs {
		m.partitioned[a] = true
	}
	for c := range m.conns {
		if m.partitioned[c.peer] {
			victims = append(victims, c)
		}
	}
	m.mu.Unlock()
	for _, c := range victims {
		c.Close()
	}
	m.log.Info("raft traffic partitioned", "peers", addrs)
}

// Heal undoes every Partition.
func (m *Mux) Heal() {
	m.mu.Lock()
	clear(m.partitioned)
	m.mu.Unlock()
	m.log.Info("raft traffic healed")
}

// Close closes the listener, every Layer and every connection, and waits for
// the Mux's goroutines. Idempotent; later calls return the first result.
func (m *Mux) Close() error {
	m.closeOnce.Do(func() {
		m.cancel()
		err := m.ln.Close()
		if err != nil && !errors.Is(err, net.ErrClosed) {
			m.closeErr = fmt.Errorf("raftmux: close listener: %w", err)
		}
		m.mu.Lock()
		m.closed = true
		layers := make([]*Layer, 0, len(m.layers))
		for _, l := range m.layers {
			layers = append(layers, l)
		}
		conns := make([]*conn, 0, len(m.conns))
		for c := range m.conns {
			conns = append(conns, c)
		}
		m.mu.Unlock()
		for _, l := range layers {
			l.Close()
		}
		for _, c := range conns {
			c.Close()
		}
		m.wg.Wait()
	})
	return m.closeErr
}

func (m *Mux) isClosed() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.closed
}

// reject closes c and logs why at Debug, rate-limited.
func (m *Mux) reject(c net.Conn, why string, args ...any) {
	c.Close()
	m.rejects.Do(func() {
		m.log.Debug("raft connection rejected", append([]any{"reason", why, "remote", c.RemoteAddr().String()}, args...)...)
	})
}

func (m *Mux) acceptLoop() {
	defer m.wg.Done()
	var delay time.Duration
	warn := rate.Sometimes{First: 1, Interval: 10 * time.Second}
	for {
		c, err := m.ln.Accept()
		if err != nil {
			if m.isClosed() || errors.Is(err, net.ErrClosed) {
				return
			}
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			warn.Do(func() { m.log.Warn("raft accept failed", "err", err, "retry", delay) })
			select {
			case <-m.ctx.Done():
				return
			case <-time.After(delay):
			}
			continue
		}
		delay = 0
		select {
		case m.handshake <- struct{}{}:
		default:
			m.reject(c, "too many handshakes")
			continue
		}
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			defer func() { <-m.handshake }()
			m.serve(c)
		}()
	}
}

// serve reads c's header and hands c to its group's Layer.
func (m *Mux) serve(raw net.Conn) {
	c := m.track(raw, "", nil)
	if c == nil {
		return
	}
	_ = raw.SetReadDeadline(time.Now().Add(m.cfg.HeaderTimeout))
	h, err := readHeader(raw)
	if err != nil {
		m.untrack(c)
		m.reject(raw, "bad header", "err", err)
		return
	}
	_ = raw.SetReadDeadline(time.Time{})

	m.mu.Lock()
	l := m.layers[h.group]
	switch {
	case m.closed:
		m.mu.Unlock()
		m.untrack(c)
		raw.Close()
		return
	case l == nil:
		m.mu.Unlock()
		m.untrack(c)
		m.reject(raw, "unknown group", "group", h.group, "from", h.from)
		return
	case m.partitioned[h.from]:
		m.mu.Unlock()
		m.untrack(c)
		m.reject(raw, "partitioned", "group", h.group, "from", h.from)
		return
	}
	c.peer, c.layer = h.from, l
	m.mu.Unlock()

	timer := time.NewTimer(m.cfg.HeaderTimeout)
	defer timer.Stop()
	select {
	case l.queue <- c:
	case <-l.done:
		c.Close()
	case <-m.ctx.Done():
		c.Close()
	case <-timer.C:
		c.Close()
		m.rejects.Do(func() {
			m.log.Warn("raft accept queue full; connection dropped", "group", h.group, "from", h.from)
		})
	}
}

// track registers raw as a connection of layer to peer, or closes it and
// returns nil when the Mux is closed.
func (m *Mux) track(raw net.Conn, peer string, l *Layer) *conn {
	c := &conn{Conn: raw, m: m, peer: peer, layer: l}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		raw.Close()
		return nil
	}
	m.conns[c] = struct{}{}
	return c
}

func (m *Mux) untrack(c *conn) {
	m.mu.Lock()
	delete(m.conns, c)
	m.mu.Unlock()
}

// conn is a connection the Mux tracks so that Partition, Layer.Close and
// Close can cut it.
type conn struct {
	net.Conn
	m     *Mux
	peer  string // advertise address of the other end; guarded by m.mu
	layer *Layer // guarded by m.mu; nil during the handshake
	once  sync.Once
	err   error
}

// Close closes the connection and forgets it.
func (c *conn) Close() error {
	c.once.Do(func() {
		c.m.untrack(c)
		c.err = c.Conn.Close()
	})
	return c.err
}
