package session

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// Sink receives a user's live deliveries. Both methods are called from
// NATS's delivery goroutine and must not block.
type Sink interface {
	// Deliver is one Deliver published by a shard leader.
	Deliver(d *syncpb.Deliver)
	// Lost says deliveries were dropped before reaching the sink (a slow
	// consumer at the NATS level): the device must sync.
	Lost()
}

// Hub holds one NATS subscription per connected user, however many devices
// of that user are connected to this edge, and fans each delivery out to
// the user's sinks (sessions). For large groups it holds one subscription
// per conversation subject while any member is connected here, and fans
// each delivery out to the sinks of the members connected here.
type Hub struct {
	nc     *nats.Conn
	region string
	flush  time.Duration
	log    *slog.Logger

	mu     sync.Mutex
	users  map[string]*userSub
	convs  map[string]*convSub
	closed bool
	pos    atomic.Uint64 // counts join and leave notices (see SetConvs)

	typingShed atomic.Uint64
}

type userSub struct {
	id      string
	ready   chan struct{} // closed once the subscription is live (or failed)
	err     error         // set before ready closes when subscribing failed
	sub     *nats.Subscription
	sinks   map[*sinkRef]struct{}
	dropped int
	convs   map[string]struct{} // large groups the user is in
	marks   map[string]uint64   // conv -> pos of the last join or leave notice
}

type convSub struct {
	sub     *nats.Subscription
	users   map[string]struct{}
	dropped int
}

// sinkRef makes every Subscribe call a distinct key, even for one Sink.
type sinkRef struct{ s Sink }

// Per-user subscription limits: a user's pending deliveries at this edge.
const (
	hubPendingMsgs  = 4096
	hubPendingBytes = 16 << 20
)

// typingShedBacklog is the backlog of a subscription (deliveries NATS
// has handed this edge that it has yet to pass on) at which typing events
// are dropped instead of passed on: the edge is not keeping up, and the
// messages behind them matter more. (NATS counts the delivery being
// handled: a keeping-up edge sees 1 or 2.)
const typingShedBacklog = 32

// errNoLive is the error of a session whose live deliveries could not be
// set up: the device retries.
func errNoLive() error {
	return syncproto.Errorf(syncpb.Code_CODE_UNAVAILABLE, "live delivery is unavailable, retry")
}

// DefaultFlushTimeout is HubConfig.FlushTimeout's default.
const DefaultFlushTimeout = 5 * time.Second

// HubConfig configures a Hub. Conn is required; zero values mean the
// defaults.
type HubConfig struct {
	Conn *nats.Conn
	// Region names the subjects (default syncproto.DefaultRegion).
	Region string
	// FlushTimeout bounds the round trip that confirms a new subscription
	// (default DefaultFlushTimeout).
	FlushTimeout time.Duration
	// Logger (default: discard).
	Logger *slog.Logger
}

// Validate names the first bad field.
func (c HubConfig) Validate() error {
	switch {
	case c.Conn == nil:
		return errors.New("session: HubConfig.Conn is required")
	case c.Region != "" && !syncproto.ValidID(c.Region):
		return fmt.Errorf("session: HubConfig.Region %q: want 1..%d characters of [a-z0-9_-]", c.Region, syncproto.MaxIDLen)
	case c.FlushTimeout < 0:
		return fmt.Errorf("session: HubConfig.FlushTimeout %v is negative", c.FlushTimeout)
	}
	return nil
}

// NewHub returns a Hub on cfg.Conn for cfg.Region's subjects.
func NewHub(cfg HubConfig) (*Hub, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Region == "" {
		cfg.Region = syncproto.DefaultRegion
	}
	if cfg.FlushTimeout == 0 {
		cfg.FlushTimeout = DefaultFlushTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Hub{nc: cfg.Conn, region: cfg.Region, flush: cfg.FlushTimeout, log: cfg.Logger,
		users: map[string]*userSub{}, convs: map[string]*convSub{}}, nil
}

// Subscribe adds s to userID's sinks and returns once the NATS server has
// the subscription, so every delivery published after Subscribe returns
// reaches s. cancel removes s; the last cancel unsubscribes.
func (h *Hub) Subscribe(ctx context.Context, userID string, s Sink) (cancel func(), err error) {
	ref := &sinkRef{s}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil, syncproto.Errorf(syncpb.Code_CODE_UNAVAILABLE, "the edge is shutting down")
	}
	u := h.users[userID]
	if u == nil {
		u = &userSub{id: userID, ready: make(chan struct{}), sinks: map[*sinkRef]struct{}{}}
		h.users[userID] = u
		u.sinks[ref] = struct{}{}
		h.mu.Unlock()
		h.start(ctx, userID, u)
	} else {
		u.sinks[ref] = struct{}{}
		h.mu.Unlock()
	}
	select {
	case <-u.ready:
	case <-ctx.Done():
		h.remove(u, ref)
		return nil, ctx.Err()
	}
	if u.err != nil {
		h.remove(u, ref)
		return nil, u.err
	}
	var once sync.Once
	return func() { once.Do(func() { h.remove(u, ref) }) }, nil
}

// start subscribes u and waits for the server to have it.
func (h *Hub) start(ctx context.Context, userID string, u *userSub) {
	defer close(u.ready)
	sub, err := h.nc.Subscribe(syncproto.UserSubject(h.region, userID), func(m *nats.Msg) { h.deliver(u, m) })
	if err == nil {
		_ = sub.SetPendingLimits(hubPendingMsgs, hubPendingBytes)
		// A flush round trip: the server has the interest once it answers.
		// (FlushWithContext needs a deadline.)
		fctx, cancel := context.WithTimeout(ctx, h.flush)
		err = h.nc.FlushWithContext(fctx)
		cancel()
		if err != nil {
			_ = sub.Unsubscribe()
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if err != nil {
		u.err = errNoLive()
		h.log.Warn("subscribe user subject", "user", userID, "err", err)
		h.dropLocked(u)
		return
	}
	u.sub = sub
	if len(u.sinks) == 0 { // every subscriber gave up meanwhile
		h.dropLocked(u)
	}
}

func (h *Hub) remove(u *userSub, ref *sinkRef) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(u.sinks, ref)
	if len(u.sinks) > 0 || u.sub == nil {
		return // still used, or start will clean up
	}
	h.dropLocked(u)
}

// dropLocked unsubscribes u from its subjects and forgets it. h.mu is held.
func (h *Hub) dropLocked(u *userSub) {
	if u.sub != nil {
		_ = u.sub.Unsubscribe()
		u.sub = nil
	}
	for conv := range u.convs {
		h.leaveLocked(u.id, conv)
	}
	u.convs, u.marks = nil, nil
	if h.users[u.id] == u {
		delete(h.users, u.id)
	}
}

func (h *Hub) deliver(u *userSub, m *nats.Msg) {
	d, ok := h.decode(m)
	if !ok {
		return
	}
	// Join and leave notices are applied here, in the order the core sent
	// them on the user's subject; only confirming a new subscription waits.
	if conv := m.Header.Get(syncproto.HeaderConvLeave); conv != "" {
		h.mu.Lock()
		if h.users[u.id] == u {
			h.markLocked(u, conv)
			if _, ok := u.convs[conv]; ok {
				delete(u.convs, conv)
				h.leaveLocked(u.id, conv)
			}
		}
		h.mu.Unlock()
	}
	if conv := m.Header.Get(syncproto.HeaderConvJoin); conv != "" {
		h.mu.Lock()
		var fresh bool
		var err error
		if h.users[u.id] == u && !h.closed {
			h.markLocked(u, conv)
			fresh, err = h.joinLocked(u, conv)
		}
		h.mu.Unlock()
		if err != nil {
			h.log.Warn("join conversation subject", "conv", conv, "err", err)
			fanout(h.sinks(u), true, nil)
		} else if fresh {
			// Confirming the subscription waits for the server: not on
			// NATS's goroutine.
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), h.flush)
				defer cancel()
				if err := h.nc.FlushWithContext(ctx); err != nil {
					h.log.Warn("join conversation subject", "conv", conv, "err", err)
				}
				fanout(h.sinks(u), true, nil)
			}()
		}
	}
	h.mu.Lock()
	lost := m.Header.Get(syncproto.HeaderResync) != ""
	if u.sub != nil {
		if n, err := u.sub.Dropped(); err == nil && n > u.dropped {
			u.dropped, lost = n, true
		}
	}
	sinks := h.sinksLocked(u, nil)
	sub := u.sub
	h.mu.Unlock()
	h.shedTyping(sub, d)
	fanout(sinks, lost, d)
}

// shedTyping drops d's typing events when sub's backlog says this edge is
// behind (counted in TypingShed).
func (h *Hub) shedTyping(sub *nats.Subscription, d *syncpb.Deliver) {
	if len(d.GetTyping()) == 0 || sub == nil {
		return
	}
	if n, _, err := sub.Pending(); err == nil && n >= typingShedBacklog {
		h.typingShed.Add(uint64(len(d.Typing)))
		d.Typing = nil
	}
}

// TypingShed counts typing events dropped because a subscription's
// backlog was at typingShedBacklog.
func (h *Hub) TypingShed() uint64 { return h.typingShed.Load() }

// decode reads a delivery; an undecodable one is logged and dropped.
func (h *Hub) decode(m *nats.Msg) (*syncpb.Deliver, bool) {
	d := &syncpb.Deliver{}
	if err := proto.Unmarshal(m.Data, d); err != nil {
		h.log.Warn("undecodable delivery", "subject", m.Subject, "err", err)
		return nil, false
	}
	return d, true
}

// sinks lists u's sinks.
func (h *Hub) sinks(u *userSub) []Sink {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.sinksLocked(u, nil)
}

// sinksLocked appends u's sinks to dst; h.mu is held.
func (h *Hub) sinksLocked(u *userSub, dst []Sink) []Sink {
	for r := range u.sinks {
		dst = append(dst, r.s)
	}
	return dst
}

// fanout hands d to every sink, after Lost when deliveries were lost. A
// delivery without messages or events (a join, leave or resync notice) is
// not passed on.
func fanout(sinks []Sink, lost bool, d *syncpb.Deliver) {
	pass := len(d.GetMessages()) > 0 || len(d.GetReceipts()) > 0 || len(d.GetPresence()) > 0 || len(d.GetTyping()) > 0
	for _, s := range sinks {
		if lost {
			s.Lost()
		}
		if pass {
			s.Deliver(d)
		}
	}
}

// Pos is the hub's notice position: pass it to SetConvs to say the list
// was asked for after this point.
func (h *Hub) Pos() uint64 { return h.pos.Load() }

// SetConvs makes userID, which must be subscribed, listen on the subjects
// of convs (the large groups it is in, as a sync returned them) and no
// others. since is Pos from before the sync was asked for: a conversation
// the user joined or left by a notice after since keeps what the notice
// said, as the list may predate it. It returns once the server has every
// new subscription. fresh reports whether one was new on this edge:
// deliveries published before it may have been missed, so the caller's
// devices must sync.
func (h *Hub) SetConvs(ctx context.Context, userID string, convs []string, since uint64) (fresh bool, err error) {
	h.mu.Lock()
	u := h.users[userID]
	if h.closed || u == nil || u.sub == nil {
		h.mu.Unlock()
		return false, errNoLive()
	}
	want := make(map[string]struct{}, len(convs))
	for _, c := range convs {
		want[c] = struct{}{}
	}
	noticed := func(c string) bool { return u.marks[c] > since }
	for c := range u.convs {
		if _, ok := want[c]; !ok && !noticed(c) {
			delete(u.convs, c)
			h.leaveLocked(userID, c)
		}
	}
	for c := range want {
		if noticed(c) {
			continue
		}
		var f bool
		if f, err = h.joinLocked(u, c); err != nil {
			break
		}
		fresh = fresh || f
	}
	// Notices at or before since are in the list: forget them.
	for c, at := range u.marks {
		if at <= since {
			delete(u.marks, c)
		}
	}
	h.mu.Unlock()
	if err != nil {
		return fresh, errNoLive()
	}
	if fresh {
		fctx, cancel := context.WithTimeout(ctx, h.flush)
		defer cancel()
		if err := h.nc.FlushWithContext(fctx); err != nil {
			return true, errNoLive()
		}
	}
	return fresh, nil
}

// markLocked records that a notice about conv reached u now. h.mu is held.
func (h *Hub) markLocked(u *userSub, conv string) {
	if u.marks == nil {
		u.marks = map[string]uint64{}
	}
	u.marks[conv] = h.pos.Add(1)
}

// joinLocked makes u listen on conv's subject, subscribing when it is new
// on this edge (fresh; the server has it only after a flush). h.mu is held.
func (h *Hub) joinLocked(u *userSub, conv string) (fresh bool, err error) {
	if _, ok := u.convs[conv]; ok {
		return false, nil
	}
	cs := h.convs[conv]
	if cs == nil {
		cs = &convSub{users: map[string]struct{}{}}
		cs.sub, err = h.nc.Subscribe(syncproto.ConvSubject(h.region, conv), func(m *nats.Msg) { h.deliverConv(cs, m) })
		if err != nil {
			return false, err
		}
		_ = cs.sub.SetPendingLimits(hubPendingMsgs, hubPendingBytes)
		h.convs[conv] = cs
		fresh = true
	}
	cs.users[u.id] = struct{}{}
	if u.convs == nil {
		u.convs = map[string]struct{}{}
	}
	u.convs[conv] = struct{}{}
	return fresh, nil
}

// leaveLocked drops userID from conv's listeners; the last one out
// unsubscribes. h.mu is held.
func (h *Hub) leaveLocked(userID, conv string) {
	cs := h.convs[conv]
	if cs == nil {
		return
	}
	delete(cs.users, userID)
	if len(cs.users) == 0 {
		_ = cs.sub.Unsubscribe()
		delete(h.convs, conv)
	}
}

// deliverConv fans a large group's delivery out to its members here.
func (h *Hub) deliverConv(cs *convSub, m *nats.Msg) {
	d, ok := h.decode(m)
	if !ok {
		return
	}
	h.mu.Lock()
	lost := m.Header.Get(syncproto.HeaderResync) != ""
	if n, err := cs.sub.Dropped(); err == nil && n > cs.dropped {
		cs.dropped, lost = n, true
	}
	var sinks []Sink
	for user := range cs.users {
		if u := h.users[user]; u != nil {
			sinks = h.sinksLocked(u, sinks)
		}
	}
	h.mu.Unlock()
	h.shedTyping(cs.sub, d)
	fanout(sinks, lost, d)
}

// Reconnected tells the hub that its NATS connection came back after a
// loss: deliveries published meanwhile reached nobody here, so every
// session is told to sync (Sink.Lost). The subscriptions themselves are
// restored by the NATS client. The edge calls it from NATS's reconnect
// handler; it never blocks.
func (h *Hub) Reconnected() {
	h.mu.Lock()
	var sinks []Sink
	for _, u := range h.users {
		sinks = h.sinksLocked(u, sinks)
	}
	h.mu.Unlock()
	fanout(sinks, true, nil)
}

// Convs is how many conversation subjects the hub listens on.
func (h *Hub) Convs() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.convs)
}

// Users is how many users have a live subscription (for tests and stats).
func (h *Hub) Users() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.users)
}

// Close unsubscribes everything; later Subscribes fail with UNAVAILABLE.
func (h *Hub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for id, u := range h.users {
		if u.sub != nil {
			_ = u.sub.Unsubscribe()
			u.sub = nil
		}
		delete(h.users, id)
	}
	for id, cs := range h.convs {
		_ = cs.sub.Unsubscribe()
		delete(h.convs, id)
	}
}
