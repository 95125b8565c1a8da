// Package session runs client sessions of the syncproto frame protocol, the
// same code for every transport (raw QUIC, WebTransport, WebSocket): hello
// and token check, requests forwarded to the core, the catch-up sync, and
// live deliveries from the user's NATS subject, through a bounded queue
// per session. Transports adapt their connections to Conn.
package session

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/parley-chat/parley/edge/auth"
	"github.com/parley-chat/parley/edge/internal/edgemetrics"
	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// Conn is one client connection's control channel: frames in order in both
// directions. A session calls ReadFrame from one goroutine and WriteFrame
// from another, never either concurrently with itself.
type Conn interface {
	// ReadFrame returns the next frame, io.EOF when the peer closed
	// cleanly, or a *syncproto.Error (MALFORMED, TOO_LARGE) for bad bytes.
	ReadFrame(ctx context.Context) (*syncpb.Frame, error)
	// WriteFrame writes one frame.
	WriteFrame(ctx context.Context, f *syncpb.Frame) error
	// Close ends the connection without waiting for the peer: ReadFrame
	// and WriteFrame calls in progress return soon after, and whatever
	// the transport does to finish (a close handshake, a grace period
	// for the last frame) it bounds itself. err (nil for a clean end) may
	// tell the peer why, as the transport allows. One goroutine closes
	// every idle session, so Close must not block.
	Close(err error) error
}

// Core is what sessions need of the core; *corerpc.Client implements it.
type Core interface {
	Call(ctx context.Context, req *syncpb.CoreRequest) (*syncpb.CoreResponse, error)
}

// Defaults for Config's zero values.
const (
	DefaultHelloTimeout         = 10 * time.Second
	DefaultKeepAlive            = 25 * time.Second
	DefaultWriteTimeout         = 30 * time.Second
	DefaultRequestStreamTimeout = 10 * time.Second
	DefaultSendQueue            = 256
	DefaultMaxInFlight          = 32
	DefaultRequestTimeout       = 10 * time.Second
	DefaultFrameRate            = rate.Limit(100)
	DefaultFrameBurst           = 200
	DefaultSyncLimit            = 100
	DefaultEndGrace             = 2 * time.Second
	DefaultLastFrameTimeout     = time.Second
	DefaultPublishTimeout       = time.Second
	DefaultRateLimitRetryAfter  = time.Second
)

// Config configures a Server. Core, Auth and Hub are required.
type Config struct {
	Core Core
	Auth *auth.Auth
	Hub  *Hub
	// MaxFrameSize bounds the frames a client may send (default
	// syncproto.DefaultMaxFrameSize); announced in Welcome.
	MaxFrameSize int
	// HelloTimeout bounds the wait for the first frame, all of it
	// (default 10 s): a client that trickles its hello is cut too.
	HelloTimeout time.Duration
	// KeepAlive is how often an idle client pings (announced in Welcome,
	// default 25 s); a session that reads no whole frame for 3 KeepAlives
	// ends, however many bytes of one trickle in.
	KeepAlive time.Duration
	// WriteTimeout bounds writing one frame to the device (default 30 s):
	// a device that takes no bytes for this long is gone, and its
	// session ends.
	WriteTimeout time.Duration
	// RequestStreamTimeout bounds the wait for the request on a request
	// stream (see RequestStreams), and the writing of its answer
	// (default 10 s); the stream is closed then, not the session.
	RequestStreamTimeout time.Duration
	// SendQueue bounds the frames waiting to be written to one device
	// (default 256). Live pushes that find it full are dropped and the
	// device is told to resync.
	SendQueue int
	// Presence reports devices and watches presence; nil: presence is off.
	Presence Presence
	// MaxInFlight bounds one session's concurrent requests (default 32);
	// more wait, which slows the reading of its frames.
	MaxInFlight int
	// RequestTimeout bounds each request's core call (default 10 s).
	RequestTimeout time.Duration
	// FrameRate and FrameBurst limit the frames one session sends
	// (default 100/s, burst 200); requests over it get RATE_LIMITED, and a
	// session that keeps flooding is closed.
	FrameRate  rate.Limit
	FrameBurst int
	// SyncLimit is the per-conversation message limit of the catch-up
	// sync that follows a Hello with a position (default 100).
	SyncLimit uint32
	// TypingRate and TypingBurst limit one session's typing indicators
	// (default 2/s, burst 4); more are dropped silently (counted).
	TypingRate  rate.Limit
	TypingBurst int
	// EndGrace is how long a session told to end (its token expired or
	// was revoked) may take to write its last frame before it is closed
	// anyway (default 2 s).
	EndGrace time.Duration
	// LastFrameTimeout bounds writing the Error frame that ends a session
	// or a request stream; the connection is closed after it whether or
	// not it was written (default 1 s).
	LastFrameTimeout time.Duration
	// PublishTimeout bounds publishing one typing indicator (it only waits
	// when the edge has yet to learn the region's shard count; default
	// 1 s).
	PublishTimeout time.Duration
	// RateLimitRetryAfter is the retry hint of a request refused for
	// FrameRate (default 1 s).
	RateLimitRetryAfter time.Duration
	// Overloaded, when set, reports whether the edge is overloaded (short
	// of CPU, say); typing is then dropped, from devices and to them. It
	// is called for every indicator, so it must be cheap.
	Overloaded func() bool
	// Metrics receives the sessions' series (see metrics.go); nil: none
	// are registered. Shared are the series the edge's transports share
	// (nil: not measured).
	Metrics prometheus.Registerer
	Shared  *edgemetrics.Shared
	Logger  *slog.Logger
	Now     func() time.Time
}

// Validate names the first bad field.
func (c Config) Validate() error {
	switch {
	case c.Core == nil || c.Auth == nil || c.Hub == nil:
		return errors.New("session: Core, Auth and Hub are required")
	case c.MaxFrameSize < 0 || c.MaxFrameSize > syncproto.MaxFrameSize:
		return fmt.Errorf("session: MaxFrameSize %d: want 0..%d", c.MaxFrameSize, syncproto.MaxFrameSize)
	case c.HelloTimeout < 0 || c.KeepAlive < 0 || c.RequestTimeout < 0 || c.WriteTimeout < 0 || c.RequestStreamTimeout < 0 ||
		c.EndGrace < 0 || c.LastFrameTimeout < 0 || c.PublishTimeout < 0 || c.RateLimitRetryAfter < 0:
		return errors.New("session: timeouts must not be negative")
	case c.SendQueue < 0 || c.MaxInFlight < 0 || c.FrameBurst < 0 || c.FrameRate < 0:
		return errors.New("session: SendQueue, MaxInFlight, FrameRate and FrameBurst must not be negative")
	case c.TypingRate < 0 || c.TypingBurst < 0:
		return errors.New("session: TypingRate and TypingBurst must not be negative")
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.MaxFrameSize == 0 {
		c.MaxFrameSize = syncproto.DefaultMaxFrameSize
	}
	if c.HelloTimeout == 0 {
		c.HelloTimeout = DefaultHelloTimeout
	}
	if c.KeepAlive == 0 {
		c.KeepAlive = DefaultKeepAlive
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.RequestStreamTimeout == 0 {
		c.RequestStreamTimeout = DefaultRequestStreamTimeout
	}
	if c.SendQueue == 0 {
		c.SendQueue = DefaultSendQueue
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.FrameRate == 0 {
		c.FrameRate = DefaultFrameRate
	}
	if c.FrameBurst == 0 {
		c.FrameBurst = DefaultFrameBurst
	}
	if c.TypingRate == 0 {
		c.TypingRate = DefaultTypingRate
	}
	if c.TypingBurst == 0 {
		c.TypingBurst = DefaultTypingBurst
	}
	if c.SyncLimit == 0 {
		c.SyncLimit = DefaultSyncLimit
	}
	if c.EndGrace == 0 {
		c.EndGrace = DefaultEndGrace
	}
	if c.LastFrameTimeout == 0 {
		c.LastFrameTimeout = DefaultLastFrameTimeout
	}
	if c.PublishTimeout == 0 {
		c.PublishTimeout = DefaultPublishTimeout
	}
	if c.RateLimitRetryAfter == 0 {
		c.RateLimitRetryAfter = DefaultRateLimitRetryAfter
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Server runs sessions. Safe for concurrent use.
type Server struct {
	cfg Config
	log *slog.Logger

	mu       sync.Mutex
	sessions map[*session]struct{}
	draining bool
	sweeping bool          // the idle sweeper runs (while there are sessions)
	emptied  chan struct{} // wakes the sweeper when the last session ends
	wg       sync.WaitGroup

	typing typingCounters
	swept  atomic.Uint64 // sweeps done (tests wait for them)
	m      *metrics
}

// New returns a Server for cfg.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	s := &Server{cfg: cfg, log: cfg.Logger, sessions: map[*session]struct{}{}, emptied: make(chan struct{}, 1)}
	var err error
	if s.m, err = newMetrics(s, cfg.Metrics, cfg.Shared); err != nil {
		return nil, fmt.Errorf("session: metrics: %w", err)
	}
	return s, nil
}

// MaxFrameSize is the largest frame payload clients may send.
func (s *Server) MaxFrameSize() int { return s.cfg.MaxFrameSize }

// ErrDraining is returned by Serve when the server is draining.
var ErrDraining = syncproto.Errorf(syncpb.Code_CODE_UNAVAILABLE, "this edge is draining; connect to another")

// Serve runs one session on conn until the peer leaves, a fatal protocol
// error, ctx ends or the server drains. It closes conn. The error is nil
// for a clean end.
func (s *Server) Serve(ctx context.Context, conn Conn) error {
	s.mu.Lock()
	if s.draining {
		s.mu.Unlock()
		wctx, cancel := context.WithTimeout(ctx, s.cfg.LastFrameTimeout)
		_ = conn.WriteFrame(wctx, errorFrame(0, ErrDraining))
		cancel()
		_ = conn.Close(ErrDraining)
		return ErrDraining
	}
	ss := newSession(s, conn)
	s.sessions[ss] = struct{}{}
	live := s.m.sessions.WithLabelValues(ss.transport)
	live.Inc()
	defer live.Dec()
	s.wg.Add(1)
	if !s.sweeping {
		s.sweeping = true
		s.wg.Add(1)
		go s.sweep()
	}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.sessions, ss)
		if len(s.sessions) == 0 {
			select {
			case s.emptied <- struct{}{}:
			default:
			}
		}
		s.mu.Unlock()
		s.wg.Done()
	}()
	return ss.run(ctx)
}

// sweep ends sessions that sent no frame for three keepalive intervals,
// and those whose access token expired (see access.go).
// One goroutine for all sessions, rather than a timer each (or a deadline
// per read): at 100k sessions the runtime's timer heap is the edge's main
// CPU cost, and every timer in it makes it dearer. It exits when no
// session is left; Serve starts it again.
func (s *Server) sweep() {
	defer s.wg.Done()
	idle := 3 * s.cfg.KeepAlive
	t := time.NewTicker(min(max(idle/4, 10*time.Millisecond), time.Second))
	defer t.Stop()
	var quiet, expired, late []*session
	for {
		select {
		case <-t.C:
		case <-s.emptied:
		}
		now := time.Now().UnixNano()
		nowMs := s.cfg.Now().UnixMilli()
		quiet, expired, late = quiet[:0], expired[:0], late[:0]
		s.mu.Lock()
		if len(s.sessions) == 0 {
			s.sweeping = false
			s.mu.Unlock()
			return
		}
		for ss := range s.sessions {
			if last := ss.lastRead.Load(); last != 0 && time.Duration(now-last) >= idle {
				quiet = append(quiet, ss)
				continue
			}
			switch end, kill := ss.expired(nowMs, now); {
			case end:
				expired = append(expired, ss)
			case kill:
				late = append(late, ss)
			}
		}
		s.mu.Unlock()
		for _, ss := range quiet {
			ss.stop(syncproto.Errorf(syncpb.Code_CODE_TIMEOUT, "no frame for %v", idle))
		}
		for _, ss := range expired {
			ss.end(errTokenExpired)
		}
		for _, ss := range late {
			ss.stop(ss.endErrOr(errTokenExpired))
		}
		clear(quiet)
		clear(expired)
		clear(late)
		s.swept.Add(1)
	}
}

// Sessions is the number of sessions running.
func (s *Server) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

// Drain stops new sessions, sends GoAway to every session (they should
// reconnect, preferably to an alternative), and waits until they have
// ended or ctx ends; then it closes the rest.
func (s *Server) Drain(ctx context.Context, reason string, alternatives ...string) error {
	s.mu.Lock()
	s.draining = true
	all := make([]*session, 0, len(s.sessions))
	for ss := range s.sessions {
		all = append(all, ss)
	}
	s.mu.Unlock()
	for _, ss := range all {
		ss.goAway(reason, alternatives)
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		for ss := range s.sessions {
			ss.stop(ErrDraining)
		}
		s.mu.Unlock()
		<-done
		return ctx.Err()
	}
}

func errorFrame(id uint64, err error) *syncpb.Frame {
	return &syncpb.Frame{Id: id, Body: &syncpb.Frame_Error{Error: syncproto.AsError(err).Proto()}}
}

func newSessionID() string {
	var b [10]byte
	_, _ = rand.Read(b[:])
	return "s_" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]))
}
