// Package relay forwards TCP connections and UDP flows to fixed targets
// with a delay and jitter per direction, for kernels without netem. UDP
// packets are delayed each on its own (so jitter reorders them, as on a
// real path); TCP is a byte stream, so
// each chunk is held until its due time and never overtakes the previous
// one.
package relay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Map is one forwarded port: "udp" or "tcp", the address to listen on and
// the target.
type Map struct {
	Proto  string
	Listen string
	Target string
}

// ParseMap reads proto:listen=target (e.g. udp:10.77.0.254:9000=10.77.0.5:8443).
func ParseMap(s string) (Map, error) {
	proto, rest, ok := strings.Cut(s, ":")
	l, t, ok2 := strings.Cut(rest, "=")
	if !ok || !ok2 || (proto != "udp" && proto != "tcp") {
		return Map{}, fmt.Errorf("relay: map %q: want udp|tcp:listen=target", s)
	}
	return Map{Proto: proto, Listen: l, Target: t}, nil
}

// Config configures a Relay.
type Config struct {
	Maps   []Map
	Logger *slog.Logger
}

// Validate checks the config.
func (c *Config) Validate() error {
	if len(c.Maps) == 0 {
		return errors.New("relay: Config.Maps is empty")
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Up is the client-to-target direction; Down the other.
const (
	Up   = 0
	Down = 1
)

// Relay forwards every Map until its ctx ends.
type Relay struct {
	cfg   Config
	delay [2]atomic.Int64 // ns
	jit   [2]atomic.Int64 // ns
}

// New returns a Relay with no delay.
func New(cfg Config) (*Relay, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Relay{cfg: cfg}, nil
}

// SetDelay sets one direction's delay and jitter (uniform in ±jitter).
func (r *Relay) SetDelay(dir int, delay, jitter time.Duration) {
	r.delay[dir].Store(int64(delay))
	r.jit[dir].Store(int64(jitter))
}

func (r *Relay) pick(dir int) time.Duration {
	d, j := r.delay[dir].Load(), r.jit[dir].Load()
	if j > 0 {
		d += rand.Int64N(2*j+1) - j
	}
	return time.Duration(max(d, 0))
}

// Listen opens every listener (so the caller can say it is ready), then
// Run serves them until ctx ends and waits for every connection's pumps.
func (r *Relay) Run(ctx context.Context, ready func()) error {
	var wg sync.WaitGroup
	var closers []io.Closer
	defer func() {
		for _, c := range closers {
			_ = c.Close()
		}
		wg.Wait()
	}()
	for _, m := range r.cfg.Maps {
		switch m.Proto {
		case "udp":
			la, err := net.ResolveUDPAddr("udp", m.Listen)
			if err != nil {
				return fmt.Errorf("relay: %s: %w", m.Listen, err)
			}
			ta, err := net.ResolveUDPAddr("udp", m.Target)
			if err != nil {
				return fmt.Errorf("relay: %s: %w", m.Target, err)
			}
			conn, err := net.ListenUDP("udp", la)
			if err != nil {
				return fmt.Errorf("relay: listen %s: %w", m.Listen, err)
			}
			u := &udpRelay{r: r, conn: conn, target: ta, flows: map[string]*udpFlow{}}
			closers = append(closers, conn)
			wg.Add(1)
			go func() { defer wg.Done(); u.run(ctx) }()
		case "tcp":
			ln, err := net.Listen("tcp", m.Listen)
			if err != nil {
				return fmt.Errorf("relay: listen %s: %w", m.Listen, err)
			}
			closers = append(closers, ln)
			wg.Add(1)
			go func() {
				defer wg.Done()
				r.acceptTCP(ctx, ln, m.Target, &wg)
			}()
		}
	}
	if ready != nil {
		ready()
	}
	<-ctx.Done()
	return nil
}

func (r *Relay) acceptTCP(ctx context.Context, ln net.Listener, target string, wg *sync.WaitGroup) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.serveTCP(ctx, c, target)
		}()
	}
}

// serveTCP pumps one connection both ways until either side ends or ctx
// does.
func (r *Relay) serveTCP(ctx context.Context, c net.Conn, target string) {
	defer c.Close()
	d := net.Dialer{Timeout: 10 * time.Second}
	t, err := d.DialContext(ctx, "tcp", target)
	if err != nil {
		r.cfg.Logger.Debug("relay: dial", "target", target, "err", err)
		return
	}
	defer t.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); defer cancel(); r.pump(ctx, t, c, Up) }()
	go func() { defer wg.Done(); defer cancel(); r.pump(ctx, c, t, Down) }()
	<-ctx.Done()
	_ = c.Close()
	_ = t.Close()
	wg.Wait()
}

type chunk struct {
	b   []byte
	due time.Time
}

// pump copies src to dst, each chunk written no earlier than its due time
// and in order. The queue is bounded: a full one stops reading (TCP's own
// backpressure then slows the sender).
func (r *Relay) pump(ctx context.Context, dst io.Writer, src io.Reader, dir int) {
	q := make(chan chunk, 256)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for c := range q {
			if w := time.Until(c.due); w > 0 {
				t := time.NewTimer(w)
				select {
				case <-t.C:
				case <-ctx.Done():
					t.Stop()
					return
				}
			}
			if _, err := dst.Write(c.b); err != nil {
				return
			}
		}
	}()
	defer func() { close(q); <-done }()
	var last time.Time
	for {
		buf := make([]byte, 16<<10)
		n, err := src.Read(buf)
		if n > 0 {
			due := time.Now().Add(r.pick(dir))
			if due.Before(last) {
				due = last // a stream never reorders
			}
			last = due
			select {
			case q <- chunk{b: buf[:n], due: due}:
			case <-ctx.Done():
				return
			case <-done:
				return
			}
		}
		if err != nil {
			return
		}
	}
}
