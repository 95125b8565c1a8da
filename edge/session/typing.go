package session

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// Typing indicators at the edge. In: a device's Typing (a datagram where
// the transport has them, else a frame) is rate-limited per session,
// checked, stamped with the session's identity and published to the
// conversation's shard without a reply; the shard leader checks
// membership and fans it out. Out: typing events from the core go to
// devices as datagrams where the transport has them, else as frames, and
// are the first thing dropped under load (see TypingStats). Nothing about
// typing ever ends a session or answers the device.

// Datagrams is an optional Conn capability of transports with unreliable
// datagrams (raw QUIC, WebTransport). Each datagram is one
// syncproto.DecodeDatagram payload.
type Datagrams interface {
	// ReceiveDatagram waits for the device's next datagram. An error means
	// no more will come (the connection ended, or ctx).
	ReceiveDatagram(ctx context.Context) ([]byte, error)
	// SendDatagram sends one datagram, which may be lost. It may block
	// while the transport's datagram queue is full. An error (too large,
	// the peer has no datagrams, closed) means it was not sent.
	SendDatagram(b []byte) error
}

// Publisher is an optional Core capability: requests sent without waiting
// for (or getting) a reply, such as typing. *corerpc.Client implements it.
type Publisher interface {
	// Publish routes req like Call and sends it once; nil means it left
	// this process, not that a core got it.
	Publish(ctx context.Context, req *syncpb.CoreRequest) error
}

// Defaults for the typing fields of Config.
const (
	DefaultTypingRate  = 2 // indicators per second per device
	DefaultTypingBurst = 4
)

// TypingStats counts typing indicators at an edge since it started. The
// Shed* counters are the load shedding: typing is dropped first, so that
// messages are not.
type TypingStats struct {
	// From devices.
	Received    uint64 // indicators read (datagrams and frames)
	Datagrams   uint64 // of Received, those that came as datagrams
	Malformed   uint64 // datagrams that did not decode (dropped)
	Invalid     uint64 // bad conv id (dropped)
	RateLimited uint64 // over the device's TypingRate (dropped)
	Overloaded  uint64 // dropped: the edge was overloaded (Config.Overloaded)
	Published   uint64 // sent on to the core
	Unpublished uint64 // publishing failed (dropped)
	// To devices.
	Pushed      uint64 // queued for a device
	SentAsDgram uint64 // of those written, written as datagrams
	ShedQueue   uint64 // dropped: the device's send queue was half full
	ShedBacklog uint64 // dropped: the edge's NATS backlog for the user was high (Hub)
	ShedLoad    uint64 // dropped: the edge was overloaded (Config.Overloaded)
}

// typingCounters are a Server's TypingStats.
type typingCounters struct {
	received, datagrams, malformed, invalid, rateLimited, overloaded, published, unpublished atomic.Uint64
	pushed, sentAsDgram, shedQueue, shedLoad                                                 atomic.Uint64
}

// TypingStats returns the typing counters of the server's sessions and
// of its Hub.
func (s *Server) TypingStats() TypingStats {
	c := &s.typing
	return TypingStats{
		Received: c.received.Load(), Datagrams: c.datagrams.Load(), Malformed: c.malformed.Load(),
		Invalid: c.invalid.Load(), RateLimited: c.rateLimited.Load(), Overloaded: c.overloaded.Load(),
		Published: c.published.Load(), Unpublished: c.unpublished.Load(),
		Pushed: c.pushed.Load(), SentAsDgram: c.sentAsDgram.Load(),
		ShedQueue: c.shedQueue.Load(), ShedBacklog: s.cfg.Hub.TypingShed(), ShedLoad: c.shedLoad.Load(),
	}
}

// TypingShed counts typing events dropped on their way to devices, for
// any reason (TypingStats has them by reason).
func (s *Server) TypingShed() uint64 {
	return s.typing.shedQueue.Load() + s.typing.shedLoad.Load() + s.cfg.Hub.TypingShed()
}

// readDatagrams handles the device's datagrams until the session ends. A
// datagram that does not decode is dropped and counted, never fatal.
func (s *session) readDatagrams(ctx context.Context, dg Datagrams) {
	defer s.wg.Done()
	c := &s.srv.typing
	for {
		b, err := dg.ReceiveDatagram(ctx)
		if err != nil {
			return
		}
		c.received.Add(1)
		c.datagrams.Add(1)
		t, err := syncproto.DecodeDatagram(b)
		if err != nil {
			c.malformed.Add(1)
			continue
		}
		s.typingIn(ctx, t)
	}
}

// typingIn takes one indicator from the device (counted as received by
// the caller): rate limit, check, stamp and publish. Drops are counted,
// never answered: the device learns nothing, and a flood costs it only
// its own indicators.
func (s *session) typingIn(ctx context.Context, t *syncpb.Typing) {
	c := &s.srv.typing
	if !s.typingLimit.Allow() {
		c.rateLimited.Add(1)
		s.srv.m.shared.RateLimited("typing")
		return
	}
	if typingRequest.Validate(t) != nil {
		c.invalid.Add(1)
		return
	}
	if s.cfg.Overloaded != nil && s.cfg.Overloaded() {
		// Dropped here, one indicator saves its whole fan-out.
		c.overloaded.Add(1)
		return
	}
	pub, ok := s.cfg.Core.(Publisher)
	if !ok {
		c.unpublished.Add(1)
		return
	}
	req := typingRequest.Wrap(s.caller, &syncpb.Typing{
		ConvId: t.ConvId, UserId: s.caller.UserId, Typing: t.Typing,
		TtlMs:    uint32(syncproto.TypingTTL(t.TtlMs) / time.Millisecond),
		DeviceId: s.caller.DeviceId, WorkspaceId: s.caller.WorkspaceId,
	})
	pctx, cancel := context.WithTimeout(ctx, s.cfg.PublishTimeout)
	err := pub.Publish(pctx, req)
	cancel()
	if err != nil {
		c.unpublished.Add(1)
		s.log.Debug("publish typing", "err", err)
		return
	}
	c.published.Add(1)
}

// typingRequest is the row of typing indicators.
var typingRequest = syncproto.Requests.ByOp("typing")

// pushTyping queues a typing event for the device unless it is the
// device's own, the edge is overloaded, or the device's queue is half
// full (shed: typing goes first, and never causes a resync).
func (s *session) pushTyping(t *syncpb.Typing) {
	if t.GetUserId() == s.caller.UserId && t.GetDeviceId() == s.caller.DeviceId {
		return
	}
	out := &syncpb.Typing{ConvId: t.ConvId, UserId: t.UserId, Typing: t.Typing, TtlMs: t.TtlMs}
	c := &s.srv.typing
	if s.cfg.Overloaded != nil && s.cfg.Overloaded() {
		c.shedLoad.Add(1)
		return
	}
	if len(s.out) >= cap(s.out)/2 {
		c.shedQueue.Add(1)
		return
	}
	select {
	case s.out <- &syncpb.Frame{Body: &syncpb.Frame_Typing{Typing: out}}:
		c.pushed.Add(1)
		s.kickWriter()
	default:
		c.shedQueue.Add(1)
	}
}

// writeTyping writes a queued typing event as a datagram when the
// transport has them; it reports false when the caller should write it
// as a frame instead (no datagrams, or the datagram was refused).
func (s *session) writeTyping(f *syncpb.Frame) bool {
	dg, ok := s.conn.(Datagrams)
	if !ok {
		return false
	}
	b, err := syncproto.AppendDatagram(nil, f.GetTyping())
	if err != nil || dg.SendDatagram(b) != nil {
		return false
	}
	s.srv.typing.sentAsDgram.Add(1)
	return true
}
