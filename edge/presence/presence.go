// Package presence is the edge's side of presence. It reports the devices
// connected here to the cores (batched deltas, a lease renewed by one
// heartbeat batch per interval for the whole edge, snapshots on request,
// a closing batch on shutdown), and it passes the presence changes of the
// users that connected users may watch on to their sessions, holding one
// NATS subscription per watched user however many sessions watch them.
package presence

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// Defaults for Config's zero values. With a 500 ms interval and a 1.5 s
// lease a core drops a dead edge's devices 1.5 s after its last batch at
// most (two batches may be lost or late before that happens to a live
// edge), which with the cores' 100 ms lease check keeps the time for
// watchers to see them offline under 2 s.
const (
	DefaultInterval = 500 * time.Millisecond
	DefaultLease    = 1500 * time.Millisecond
	DefaultLinger   = 100 * time.Millisecond
	DefaultMaxPart  = 1000
	DefaultQueue    = 8192
)

// Core is what the edge needs of the core; *corerpc.Client implements it.
type Core interface {
	Call(ctx context.Context, req *syncpb.CoreRequest) (*syncpb.CoreResponse, error)
}

// Config configures a Service. Conn and Core are required.
type Config struct {
	Conn *nats.Conn
	Core Core
	// Region names the subjects (default syncproto.DefaultRegion).
	Region string
	// EdgeID names this edge to the cores (default: random per process).
	EdgeID string
	// Interval is how often a batch goes out even when nothing changed
	// (default 500 ms); Lease is how long the cores keep this edge's
	// devices after its last batch (default 1.5 s; at least 2 Intervals).
	Interval, Lease time.Duration
	// Linger coalesces connects and disconnects into one batch (default
	// 100 ms): it adds to the time watchers take to see them.
	Linger time.Duration
	// MaxPart bounds the devices in one batch (default 1000).
	MaxPart int
	// Queue bounds the presence updates waiting to be handed to sessions
	// (default 8192); beyond it they are dropped.
	Queue  int
	Logger *slog.Logger
	Now    func() time.Time
}

// Validate names the first bad field.
func (c Config) Validate() error {
	switch {
	case c.Conn == nil || c.Core == nil:
		return errors.New("presence: Conn and Core are required")
	case c.Region != "" && !syncproto.ValidID(c.Region):
		return fmt.Errorf("presence: Region %q: want 1..%d characters of [a-z0-9_-]", c.Region, syncproto.MaxIDLen)
	case c.EdgeID != "" && !syncproto.ValidID(c.EdgeID):
		return fmt.Errorf("presence: EdgeID %q: want 1..%d characters of [a-z0-9_-]", c.EdgeID, syncproto.MaxIDLen)
	case c.Interval < 0 || c.Lease < 0 || c.Linger < 0 || c.MaxPart < 0 || c.Queue < 0:
		return errors.New("presence: Interval, Lease, Linger, MaxPart and Queue must not be negative")
	}
	c = c.withDefaults()
	if c.Lease < 2*c.Interval {
		return fmt.Errorf("presence: Lease %v must be at least twice Interval %v", c.Lease, c.Interval)
	}
	if c.Lease > time.Minute {
		return fmt.Errorf("presence: Lease %v: at most 1m (the cores cap it)", c.Lease)
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.Region == "" {
		c.Region = syncproto.DefaultRegion
	}
	if c.Interval == 0 {
		c.Interval = DefaultInterval
	}
	if c.Lease == 0 {
		c.Lease = max(DefaultLease, 2*c.Interval)
	}
	if c.Linger == 0 {
		c.Linger = DefaultLinger
	}
	if c.MaxPart == 0 {
		c.MaxPart = DefaultMaxPart
	}
	if c.Queue == 0 {
		c.Queue = DefaultQueue
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Service is an edge's presence. Join works before Run, but nothing is
// reported or delivered until Run.
type Service struct {
	cfg  Config
	rep  *reporter
	w    *watch
	core Core

	checkMu  sync.Mutex
	checks   map[*Session]map[string]struct{} // users to look up again
	sessions map[*Session]struct{}            // joined and not left
	kick     chan struct{}                    // cap 1: checks are waiting
}

// New returns a Service for cfg.
func New(cfg Config) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	var b [8]byte
	_, _ = rand.Read(b[:])
	if cfg.EdgeID == "" {
		cfg.EdgeID = "e" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:5]))
	}
	_, _ = rand.Read(b[:])
	epoch := binary.LittleEndian.Uint64(b[:]) | 1
	return &Service{cfg: cfg, rep: newReporter(cfg.Conn, cfg, epoch), w: newWatch(cfg.Conn, cfg.Region, cfg.Queue, cfg.Logger), core: cfg.Core,
		checks: map[*Session]map[string]struct{}{}, sessions: map[*Session]struct{}{}, kick: make(chan struct{}, 1)}, nil
}

// EdgeID is the name this edge reports under.
func (s *Service) EdgeID() string { return s.cfg.EdgeID }

// Run reports and delivers until ctx ends; then it sends the closing batch
// (the cores drop this edge's devices at once) and returns. Call it once.
func (s *Service) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Go(func() { s.w.run(ctx) })
	wg.Go(func() { s.checkLoop(ctx) })
	err := s.rep.run(ctx)
	wg.Wait()
	s.w.close()
	return err
}

// Devices is how many devices are connected here (for tests and stats).
func (s *Service) Devices() int { return s.rep.count() }

// Watched is how many users connected users watch here.
func (s *Service) Watched() int { return s.w.count() }

// IsWatched reports whether anyone connected here watches user.
func (s *Service) IsWatched(user string) bool {
	s.w.mu.Lock()
	defer s.w.mu.Unlock()
	return s.w.users[user] != nil
}

// Session is one device session's presence.
type Session struct {
	s      *Service
	caller *syncpb.Caller
	wr     *watcher
	once   sync.Once

	mu  sync.Mutex
	ids []string // the last Watch's users (nil: the default set)
}

// Join reports the caller's device connected; the returned Session's
// Watch chooses whose changes reach deliver, which must not block.
// Leave undoes both.
func (s *Service) Join(caller *syncpb.Caller, deliver func(*syncpb.PresenceUpdate)) *Session {
	s.rep.connected(device(caller))
	ss := &Session{s: s, caller: caller, wr: &watcher{deliver: deliver, users: map[string]struct{}{}}}
	s.checkMu.Lock()
	s.sessions[ss] = struct{}{}
	s.checkMu.Unlock()
	return ss
}

// Reconnected tells the service that its NATS connection came back after
// a loss: updates published meanwhile reached nobody here, so every
// session's watched users are looked up again (one lookup per session, in
// the background). The edge calls it from NATS's reconnect handler; it
// never blocks.
func (s *Service) Reconnected() {
	s.w.mu.Lock()
	s.checkMu.Lock()
	for ss := range s.sessions {
		if len(ss.wr.users) == 0 {
			continue
		}
		ids := s.checks[ss]
		if ids == nil {
			ids = map[string]struct{}{}
			s.checks[ss] = ids
		}
		for u := range ss.wr.users {
			ids[u] = struct{}{}
		}
	}
	s.checkMu.Unlock()
	s.w.mu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

func device(c *syncpb.Caller) *syncpb.PresenceDevice {
	return &syncpb.PresenceDevice{WorkspaceId: c.GetWorkspaceId(), UserId: c.GetUserId(), DeviceId: c.GetDeviceId()}
}

// Watch asks the core for the presence of userIDs (none: everyone the
// caller may watch), watches exactly those the core allows, and returns
// their current state. Errors are *syncproto.Error.
func (ss *Session) Watch(ctx context.Context, userIDs []string) ([]*syncpb.PresenceUpdate, error) {
	ss.mu.Lock()
	ss.ids = userIDs
	ss.mu.Unlock()
	resp, err := ss.s.core.Call(ctx, &syncpb.CoreRequest{Caller: ss.caller,
		Op: &syncpb.CoreRequest_GetPresence{GetPresence: &syncpb.GetPresenceRequest{UserIds: userIDs}}})
	if err != nil {
		return nil, err
	}
	list, fresh, err := ss.s.w.set(ctx, ss.wr, resp.GetPresence().GetUsers())
	if err != nil {
		return nil, err
	}
	ss.s.recheck(ss, fresh)
	return list, nil
}

// States is the newest state this edge knows of each user the session
// watches (from lookups and live updates), to repair a device that
// missed updates.
func (ss *Session) States() []*syncpb.PresenceUpdate { return ss.s.w.states(ss.wr) }

// Add also watches the users of states unless the session chose whom to
// watch (Watch with users): the core told the user of new conversation
// members (on the user's own subject, which only cores publish on, so no
// lookup is needed). It never blocks.
func (ss *Session) Add(states []*syncpb.PresenceUpdate) {
	ss.mu.Lock()
	chose := len(ss.ids) > 0
	ss.mu.Unlock()
	if chose {
		return
	}
	ss.s.w.add(ss.wr, states)
	// A change between the notice's state and the new subscription would
	// be missed: look the users up once the subscription is live.
	ids := make([]string, 0, len(states))
	for _, p := range states {
		ids = append(ids, p.UserId)
	}
	ss.s.recheck(ss, ids)
}

// recheck has checkLoop look users up again for ss once the NATS server
// has their subscriptions: a change published after the state ss was
// given and before the subscription reached the server went to nobody.
// It never blocks.
func (s *Service) recheck(ss *Session, users []string) {
	if len(users) == 0 {
		return
	}
	s.checkMu.Lock()
	ids := s.checks[ss]
	if ids == nil {
		ids = map[string]struct{}{}
		s.checks[ss] = ids
	}
	for _, u := range users {
		ids[u] = struct{}{}
	}
	s.checkMu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// checkLoop looks up the users that recheck queued, after the server has
// their subscriptions, and passes on states that changed meanwhile.
func (s *Service) checkLoop(ctx context.Context) {
	var fns []func(*syncpb.PresenceUpdate)
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.kick:
		}
		s.checkMu.Lock()
		batch := s.checks
		s.checks = map[*Session]map[string]struct{}{}
		s.checkMu.Unlock()
		fctx, cancel := context.WithTimeout(ctx, flushTimeout)
		err := s.cfg.Conn.FlushWithContext(fctx)
		cancel()
		if err != nil {
			continue
		}
		for ss, set := range batch {
			if len(set) == 0 {
				continue // an empty list would ask for everyone
			}
			ids := make([]string, 0, len(set))
			for id := range set {
				ids = append(ids, id)
			}
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			resp, err := s.core.Call(cctx, &syncpb.CoreRequest{Caller: ss.caller,
				Op: &syncpb.CoreRequest_GetPresence{GetPresence: &syncpb.GetPresenceRequest{UserIds: ids}}})
			cancel()
			if err != nil {
				s.cfg.Logger.Debug("presence check", "user", ss.caller.GetUserId(), "err", err)
				continue
			}
			for _, p := range resp.GetPresence().GetUsers() {
				fns = s.w.update(p, fns[:0])
			}
		}
	}
}

// Leave stops watching and reports the device gone. Idempotent.
func (ss *Session) Leave() {
	ss.s.checkMu.Lock()
	delete(ss.s.checks, ss)
	delete(ss.s.sessions, ss)
	ss.s.checkMu.Unlock()
	ss.once.Do(func() {
		ss.s.w.drop(ss.wr)
		ss.s.rep.disconnected(device(ss.caller))
	})
}
