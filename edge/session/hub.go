package session

import (
	"context"
	"log/slog"
	"sync"
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
// the user's sinks (sessions).
type Hub struct {
	nc     *nats.Conn
	region string
	log    *slog.Logger

	mu     sync.Mutex
	users  map[string]*userSub
	closed bool
}

type userSub struct {
	ready   chan struct{} // closed once the subscription is live (or failed)
	err     error         // set before ready closes when subscribing failed
	sub     *nats.Subscription
	sinks   map[*sinkRef]struct{}
	dropped int
}

// sinkRef makes every Subscribe call a distinct key, even for one Sink.
type sinkRef struct{ s Sink }

// Per-user subscription limits: a user's pending deliveries at this edge.
const (
	hubPendingMsgs  = 4096
	hubPendingBytes = 16 << 20
)

// flushTimeout bounds the round trip that confirms a new subscription.
const flushTimeout = 5 * time.Second

// NewHub returns a Hub on nc for region's subjects.
func NewHub(nc *nats.Conn, region string, log *slog.Logger) *Hub {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Hub{nc: nc, region: region, log: log, users: map[string]*userSub{}}
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
		u = &userSub{ready: make(chan struct{}), sinks: map[*sinkRef]struct{}{}}
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
		h.remove(userID, u, ref)
		return nil, ctx.Err()
	}
	if u.err != nil {
		h.remove(userID, u, ref)
		return nil, u.err
	}
	var once sync.Once
	return func() { once.Do(func() { h.remove(userID, u, ref) }) }, nil
}

// start subscribes u and waits for the server to have it.
func (h *Hub) start(ctx context.Context, userID string, u *userSub) {
	defer close(u.ready)
	sub, err := h.nc.Subscribe(syncproto.UserSubject(h.region, userID), func(m *nats.Msg) { h.deliver(u, m) })
	if err == nil {
		_ = sub.SetPendingLimits(hubPendingMsgs, hubPendingBytes)
		// A flush round trip: the server has the interest once it answers.
		// (FlushWithContext needs a deadline.)
		fctx, cancel := context.WithTimeout(ctx, flushTimeout)
		err = h.nc.FlushWithContext(fctx)
		cancel()
		if err != nil {
			_ = sub.Unsubscribe()
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if err != nil {
		u.err = syncproto.Errorf(syncpb.Code_CODE_UNAVAILABLE, "live delivery is unavailable, retry")
		h.log.Warn("subscribe user subject", "user", userID, "err", err)
		if h.users[userID] == u {
			delete(h.users, userID)
		}
		return
	}
	u.sub = sub
	if len(u.sinks) == 0 { // every subscriber gave up meanwhile
		_ = sub.Unsubscribe()
		if h.users[userID] == u {
			delete(h.users, userID)
		}
	}
}

func (h *Hub) remove(userID string, u *userSub, ref *sinkRef) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(u.sinks, ref)
	if len(u.sinks) > 0 || u.sub == nil {
		return // still used, or start will clean up
	}
	_ = u.sub.Unsubscribe()
	u.sub = nil
	if h.users[userID] == u {
		delete(h.users, userID)
	}
}

func (h *Hub) deliver(u *userSub, m *nats.Msg) {
	d := &syncpb.Deliver{}
	if err := proto.Unmarshal(m.Data, d); err != nil {
		h.log.Warn("undecodable delivery", "subject", m.Subject, "err", err)
		return
	}
	h.mu.Lock()
	lost := false
	if u.sub != nil {
		if n, err := u.sub.Dropped(); err == nil && n > u.dropped {
			u.dropped, lost = n, true
		}
	}
	sinks := make([]Sink, 0, len(u.sinks))
	for r := range u.sinks {
		sinks = append(sinks, r.s)
	}
	h.mu.Unlock()
	for _, s := range sinks {
		if lost {
			s.Lost()
		}
		s.Deliver(d)
	}
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
}
