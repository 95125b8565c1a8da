package client

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// Typing indicators. A device says it is typing with Typing(ctx, conv,
// true), again every few seconds while the user keeps typing (each
// indicator lapses after its TTL, Config.TypingTTL, default 5 s, at most
// 10 s), and Typing(ctx, conv, false) when the user stops. Indicators go
// as QUIC or WebTransport datagrams where the connection has them, else
// as frames; they are best effort: the edge drops them over 2/s (burst 4)
// per device, and under load before anything else. Incoming indicators
// reach Config.OnTyping, and expire by themselves (see OnTyping).

// ErrNotConnected is returned by Typing when no session is up: the
// indicator is not sent (a late one would be wrong anyway).
var ErrNotConnected = errors.New("client: not connected")

// maxTypers bounds the remote typers tracked for expiry; beyond it new
// typers are still passed to OnTyping but expire only by their own
// "stopped".
const maxTypers = 1024

// datagrammer is a Transport with unreliable datagrams (raw QUIC,
// WebTransport).
type datagrammer interface {
	sendDatagram(b []byte) error
	receiveDatagram(ctx context.Context) ([]byte, error)
}

func (q *quicTransport) sendDatagram(b []byte) error { return q.conn.SendDatagram(b) }
func (q *quicTransport) receiveDatagram(ctx context.Context) ([]byte, error) {
	return q.conn.ReceiveDatagram(ctx)
}
func (w *wtTransport) sendDatagram(b []byte) error { return w.sess.SendDatagram(b) }
func (w *wtTransport) receiveDatagram(ctx context.Context) ([]byte, error) {
	return w.sess.ReceiveDatagram(ctx)
}

// Typing tells conv's other members (and this user's other devices)
// whether this user is typing there. It does not wait for the edge, and
// nothing says whether anyone got it. Errors: ErrNotConnected, an invalid
// conv id (INVALID_ARGUMENT), or the connection's write error.
func (c *Client) Typing(ctx context.Context, conv string, typing bool) error {
	t := &syncpb.Typing{ConvId: conv, Typing: typing, TtlMs: uint32(c.cfg.TypingTTL / time.Millisecond)}
	if err := syncproto.ValidateTyping(t); err != nil {
		return err
	}
	c.mu.Lock()
	l := c.cur
	c.mu.Unlock()
	if l == nil {
		return ErrNotConnected
	}
	if dg, ok := inner(l.t).(datagrammer); ok {
		b, err := syncproto.AppendDatagram(nil, t)
		if err == nil && dg.sendDatagram(b) == nil {
			return nil
		}
		// The edge takes no datagrams (or this one was refused): a frame.
	}
	if err := l.write(ctx, &syncpb.Frame{Body: &syncpb.Frame_Typing{Typing: t}}); err != nil {
		l.fail(err)
		return errLinkDown
	}
	return nil
}

// readDatagrams passes the edge's typing datagrams on until the link
// ends; undecodable ones are dropped.
func (c *Client) readDatagrams(l *link, dg datagrammer) {
	defer c.wg.Done()
	ctx, cancel := context.WithCancel(c.ctx)
	defer cancel()
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		select {
		case <-l.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	for {
		b, err := dg.receiveDatagram(ctx)
		if err != nil {
			return
		}
		if t, err := syncproto.DecodeDatagram(b); err == nil {
			c.typers.seen(t)
		}
	}
}

// typers tracks remote typers so that each indicator ends by itself: a
// timer per (conversation, user) that reports Typing false when the TTL
// lapses without a renewal. OnTyping is called with mu held, so calls are
// serialized and a lapse never overtakes a renewal.
type typers struct {
	on     func(*syncpb.Typing)
	mu     sync.Mutex
	active map[typerKey]*typerEntry
	closed bool
}

type typerKey struct{ conv, user string }

type typerEntry struct {
	timer *time.Timer
	gen   uint64
}

func newTypers(on func(*syncpb.Typing)) *typers {
	return &typers{on: on, active: map[typerKey]*typerEntry{}}
}

// seen takes an indicator from the edge.
func (ts *typers) seen(t *syncpb.Typing) {
	if ts.on == nil || t.GetConvId() == "" || t.GetUserId() == "" {
		return
	}
	k := typerKey{t.ConvId, t.UserId}
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.closed {
		return
	}
	e := ts.active[k]
	if !t.Typing {
		if e != nil {
			e.timer.Stop()
			delete(ts.active, k)
		}
		ts.on(t)
		return
	}
	ttl := syncproto.TypingTTL(t.TtlMs)
	switch {
	case e != nil:
		e.gen++
		e.timer.Stop()
		gen := e.gen
		e.timer = time.AfterFunc(ttl, func() { ts.lapse(k, gen) })
	case len(ts.active) < maxTypers:
		e = &typerEntry{}
		e.timer = time.AfterFunc(ttl, func() { ts.lapse(k, 0) })
		ts.active[k] = e
	}
	ts.on(t)
}

// lapse ends k's indicator if generation gen is still the latest.
func (ts *typers) lapse(k typerKey, gen uint64) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	e := ts.active[k]
	if ts.closed || e == nil || e.gen != gen {
		return
	}
	delete(ts.active, k)
	ts.on(&syncpb.Typing{ConvId: k.conv, UserId: k.user, Typing: false})
}

// close stops every timer; OnTyping is not called after it returns.
func (ts *typers) close() {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.closed = true
	for k, e := range ts.active {
		e.timer.Stop()
		delete(ts.active, k)
	}
}
