package client

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/coder/websocket"

	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
	"github.com/parley-chat/parley/syncproto/wsframe"
)

// Transport is one connection's control channel to an edge: frames in
// order both ways. ReadFrame is called from one goroutine; WriteFrame
// calls are serialized by the client.
type Transport interface {
	ReadFrame(ctx context.Context) (*syncpb.Frame, error)
	WriteFrame(ctx context.Context, f *syncpb.Frame) error
	Close(err error) error
}

// Dialer opens a Transport to an edge.
type Dialer func(ctx context.Context) (Transport, error)

// WebSocket dials an edge's WebSocket endpoint: url is
// ws://host:port/v1/ws (or wss://).
func WebSocket(url string) Dialer {
	return func(ctx context.Context) (Transport, error) {
		c, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{Subprotocols: []string{wsframe.Subprotocol}})
		if err != nil {
			return nil, err
		}
		return &wsTransport{Conn: wsframe.NewConn(c, syncproto.MaxFrameSize), ws: c}, nil
	}
}

// wsTransport is a WebSocket connection.
type wsTransport struct {
	*wsframe.Conn
	ws *websocket.Conn
}

var _ aborter = (*wsTransport)(nil)

// abort closes the connection without the close handshake, which would
// wait up to 5 s for an edge that cannot answer.
func (w *wsTransport) abort(error) error { return w.ws.CloseNow() }

// aborter is a Transport whose Close says goodbye and waits for the
// answer (a WebSocket close handshake), and that can also close at once
// (abort) when the connection is presumed dead.
type aborter interface {
	abort(err error) error
}

// unwrapper is a Transport that wraps another (Failover's).
type unwrapper interface {
	unwrap() Transport
}

// inner is the transport under any wrappers: the one whose capabilities
// (requestOpener, datagrammer, migrator, localAddr) the connection has.
func inner(t Transport) Transport {
	for {
		u, ok := t.(unwrapper)
		if !ok {
			return t
		}
		t = u.unwrap()
	}
}

// errLinkDown fails requests in flight when their connection ends; the
// outcome is unknown, so it is retryable.
var errLinkDown = syncproto.Errorf(syncpb.Code_CODE_UNAVAILABLE, "connection lost")

// link is one live connection: request ids, waiters, serialized writes.
type link struct {
	t       Transport
	welcome *syncpb.Welcome
	token   string // the access token the session runs on (reauth's goroutine owns it)
	nextID  atomic.Uint64

	wmu sync.Mutex // serializes WriteFrame

	mu      sync.Mutex
	waiting map[uint64]chan *syncpb.Frame
	done    chan struct{}
	err     error
}

func newLink(t Transport) *link {
	return &link{t: t, waiting: map[uint64]chan *syncpb.Frame{}, done: make(chan struct{})}
}

func (l *link) write(ctx context.Context, f *syncpb.Frame) error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	return l.t.WriteFrame(ctx, f)
}

// request sends f with a fresh id and waits for the frame answering it. An
// Error frame is returned as a *syncproto.Error.
func (l *link) request(ctx context.Context, f *syncpb.Frame) (*syncpb.Frame, error) {
	if ro, ok := inner(l.t).(requestOpener); ok && onOwnStream(f) {
		return l.requestOnStream(ctx, ro, f)
	}
	id := l.nextID.Add(1)
	f.Id = id
	ch := make(chan *syncpb.Frame, 1)
	l.mu.Lock()
	if l.err != nil {
		l.mu.Unlock()
		return nil, errLinkDown
	}
	l.waiting[id] = ch
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		delete(l.waiting, id)
		l.mu.Unlock()
	}()
	if err := l.write(ctx, f); err != nil {
		l.fail(err)
		return nil, errLinkDown
	}
	select {
	case r := <-ch:
		if e := syncproto.FromProto(r.GetError()); e != nil {
			return nil, e
		}
		return r, nil
	case <-l.done:
		return nil, errLinkDown
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// answer routes a response to its waiter; false if nobody waits for it.
func (l *link) answer(f *syncpb.Frame) bool {
	l.mu.Lock()
	ch, ok := l.waiting[f.Id]
	l.mu.Unlock()
	if ok {
		ch <- f
	}
	return ok
}

// fail ends the link once: waiters get errLinkDown, and the transport is
// closed (politely: a WebSocket close handshake waits for the edge).
func (l *link) fail(err error) { l.end(err, false) }

// drop ends the link like fail, for a connection presumed dead (its
// network went away, or it stopped answering): the transport is closed
// at once where it can be (aborter), so the next connection need not
// wait for a goodbye that cannot be answered.
func (l *link) drop(err error) { l.end(err, true) }

func (l *link) end(err error, now bool) {
	l.mu.Lock()
	if l.err != nil {
		l.mu.Unlock()
		return
	}
	if err == nil {
		err = ErrClosed
	}
	l.err = err
	close(l.done)
	l.mu.Unlock()
	if a, ok := l.t.(aborter); ok && now {
		_ = a.abort(err)
		return
	}
	_ = l.t.Close(err)
}

// requestOpener is a Transport that can carry a request on a stream of
// its own (raw QUIC, WebTransport): no head-of-line blocking behind other
// requests or live pushes. The returned Transport carries one request
// frame and its response.
type requestOpener interface {
	openRequest(ctx context.Context) (Transport, error)
}

// onOwnStream reports whether f goes on a stream of its own when the
// transport has them (requests do; pings test the control stream).
func onOwnStream(f *syncpb.Frame) bool {
	switch f.Body.(type) {
	case *syncpb.Frame_Send, *syncpb.Frame_HistoryRequest, *syncpb.Frame_SyncRequest, *syncpb.Frame_Receipt:
		return true
	}
	return false
}

// requestOnStream sends f on a new stream and reads its response there.
// Any failure of the stream or the link is errLinkDown (the outcome is
// unknown, so callers retry; requests are safe to repeat).
func (l *link) requestOnStream(ctx context.Context, ro requestOpener, f *syncpb.Frame) (*syncpb.Frame, error) {
	select {
	case <-l.done:
		return nil, errLinkDown
	default:
	}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-l.done:
			cancel()
		case <-rctx.Done():
		}
	}()
	// The caller's own deadline is its error; anything else is the link's.
	failed := func() error {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return errLinkDown
	}
	t, err := ro.openRequest(rctx)
	if err != nil {
		return nil, failed()
	}
	defer t.Close(nil)
	f.Id = l.nextID.Add(1)
	if err := t.WriteFrame(rctx, f); err != nil {
		return nil, failed()
	}
	r, err := t.ReadFrame(rctx)
	if err != nil {
		return nil, failed()
	}
	if e := syncproto.FromProto(r.GetError()); e != nil {
		return nil, e
	}
	if r.Id != f.Id {
		return nil, syncproto.Errorf(syncpb.Code_CODE_MALFORMED, "response %d on the stream of request %d", r.Id, f.Id)
	}
	return r, nil
}
