package session

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/parley-chat/parley/edge/auth"
	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// session is one device's connection.
type session struct {
	srv  *Server
	cfg  Config
	conn Conn
	id   string
	log  *slog.Logger

	caller    *syncpb.Caller
	transport string // the metrics label (Transporter)

	lastRead atomic.Int64    // unix ns of the last frame read (Server.sweep); 0 before Welcome
	expires  atomic.Int64    // unix ms when the token expires (Server.sweep); 0 before hello
	ending   atomic.Int64    // unix ns when end was called; 0 before
	pres     PresenceSession // nil when presence is off

	out      chan *syncpb.Frame // responses and pushes, bounded
	inflight chan struct{}
	limiter  *rate.Limiter
	// typingLimit bounds the device's typing indicators (one session is
	// one device).
	typingLimit *rate.Limiter

	mu      sync.Mutex
	holding bool            // catch-up running: pushes wait in held
	held    []*syncpb.Frame // pushes during catch-up, bounded like out
	resync  bool            // pushes were dropped: a Resync is owed
	live    bool            // the Welcome is out: writers may start
	writing bool            // a writer goroutine runs
	wctx    context.Context // the writers' context (set with live)
	stopped bool            // stop was called: no writer starts
	final   chan finalFrame // the writer's last frame before the end (cap 1)
	done    chan struct{}   // closed by stop
	stopErr error           // why the session ended (nil: cleanly)
	acc     access          // the token the session runs on
	endErr  error           // what end was given
	once    sync.Once
	wg      sync.WaitGroup
}

func newSession(srv *Server, conn Conn) *session {
	cfg := srv.cfg
	id := newSessionID()
	return &session{
		srv: srv, cfg: cfg, conn: conn, id: id, log: srv.log.With("session", id), transport: transportOf(conn),
		out:         make(chan *syncpb.Frame, cfg.SendQueue),
		inflight:    make(chan struct{}, cfg.MaxInFlight),
		limiter:     rate.NewLimiter(cfg.FrameRate, cfg.FrameBurst),
		typingLimit: rate.NewLimiter(cfg.TypingRate, cfg.TypingBurst),
		holding:     true,
		final:       make(chan finalFrame, 1),
		done:        make(chan struct{}),
	}
}

// stop ends the session once, closing the connection.
func (s *session) stop(err error) {
	s.once.Do(func() {
		s.mu.Lock()
		s.stopErr = err
		s.stopped = true
		s.mu.Unlock()
		close(s.done)
		_ = s.conn.Close(err)
	})
}

func (s *session) run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// No goroutine per session for this: idle sessions are the edge's
	// main memory cost.
	unwatch := context.AfterFunc(ctx, func() {
		s.stop(syncproto.Errorf(syncpb.Code_CODE_UNAVAILABLE, "the edge is shutting down"))
	})
	defer unwatch()
	hello, helloID, err := s.hello(ctx)
	if err != nil {
		s.fail(ctx, helloID, err)
		return err
	}
	// Joined before live deliveries can reach Deliver (which reads pres);
	// a session that fails before Welcome leaves within one batch.
	if s.cfg.Presence != nil {
		s.pres = s.cfg.Presence.Join(s.caller, s.pushPresence)
		defer s.pres.Leave()
	}
	unsubscribe, err := s.cfg.Hub.Subscribe(ctx, s.caller.UserId, s)
	if err != nil {
		s.fail(ctx, helloID, err)
		return err
	}
	defer unsubscribe()
	welcome := &syncpb.Frame{Id: helloID, Body: &syncpb.Frame_Welcome{Welcome: &syncpb.Welcome{
		Version: hello.version, SessionId: s.id, UserId: s.caller.UserId, DeviceId: s.caller.DeviceId,
		WorkspaceId: s.caller.WorkspaceId, ServerTimeUnixMs: s.cfg.Now().UnixMilli(),
		MaxFrameSize: uint32(s.cfg.MaxFrameSize), KeepaliveMs: uint32(s.cfg.KeepAlive / time.Millisecond),
		TokenExpiresUnixMs: s.expires.Load(),
	}}}
	if err := s.write(ctx, welcome); err != nil {
		s.stop(err)
		return err
	}
	s.log.Debug("session started", "user", s.caller.UserId, "device", s.caller.DeviceId, "client", hello.client)

	s.mu.Lock()
	s.live, s.wctx = true, ctx
	s.kickWriterLocked()
	endErr := s.endErr
	s.mu.Unlock()
	if endErr != nil {
		s.queueFinal(endErr) // told to end before it was live
	}
	// The catch-up sync also tells the edge the user's large groups, so it
	// runs even for a device that asked for none (and is not shown it).
	s.wg.Add(1)
	go s.catchUp(ctx, hello.position)
	rctx, stopRequests := context.WithCancel(ctx)
	defer stopRequests()
	if rs, ok := s.conn.(RequestStreams); ok {
		s.wg.Add(1)
		go s.acceptRequests(rctx, rs)
	}
	if dg, ok := s.conn.(Datagrams); ok {
		s.wg.Add(1)
		go s.readDatagrams(rctx, dg)
	}
	err = s.reader(ctx)
	s.stop(err)
	stopRequests()
	s.wg.Wait()
	s.mu.Lock()
	err = s.stopErr
	s.mu.Unlock()
	return err
}

type helloInfo struct {
	version  uint32
	position *syncpb.SyncPosition
	client   string
}

// hello reads and checks the first frame and verifies its token.
func (s *session) hello(ctx context.Context) (helloInfo, uint64, error) {
	hctx, cancel := context.WithTimeout(ctx, s.cfg.HelloTimeout)
	defer cancel()
	f, err := s.conn.ReadFrame(hctx)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return helloInfo{}, 0, syncproto.Errorf(syncpb.Code_CODE_TIMEOUT, "no hello within %v", s.cfg.HelloTimeout)
		}
		return helloInfo{}, 0, err
	}
	h := f.GetHello()
	if h == nil {
		return helloInfo{}, f.Id, syncproto.Errorf(syncpb.Code_CODE_MALFORMED, "the first frame must be hello")
	}
	v, err := syncproto.Negotiate(h)
	if err != nil {
		return helloInfo{}, f.Id, err
	}
	if err := syncproto.CheckHello(h); err != nil {
		return helloInfo{}, f.Id, err
	}
	c, err := s.cfg.Auth.Verify(h.AccessToken, auth.Access)
	if err != nil {
		return helloInfo{}, f.Id, err
	}
	if h.DeviceId != "" && h.DeviceId != c.DeviceID {
		return helloInfo{}, f.Id, syncproto.Errorf(syncpb.Code_CODE_UNAUTHENTICATED, "device_id does not match the access token")
	}
	s.caller = &syncpb.Caller{WorkspaceId: c.WorkspaceID, UserId: c.UserID, DeviceId: c.DeviceID}
	s.log = s.log.With("user", c.UserID, "device", c.DeviceID)
	if err := s.setAccess(c); err != nil {
		return helloInfo{}, f.Id, err
	}
	return helloInfo{version: v, position: h.Position, client: h.ClientName}, f.Id, nil
}

// fail answers a failed hello with an Error frame and ends the session.
func (s *session) fail(ctx context.Context, id uint64, err error) {
	if !errors.Is(err, io.EOF) && !errors.Is(err, context.Canceled) {
		wctx, cancel := context.WithTimeout(ctx, s.cfg.LastFrameTimeout)
		_ = s.conn.WriteFrame(wctx, errorFrame(id, err))
		cancel()
	}
	s.stop(err)
}

// finalFrame is an Error frame that ends the session once written.
type finalFrame struct {
	f   *syncpb.Frame
	err error
}

// abort ends a running session (the writer started) with an Error frame:
// the writer writes it, then stops the session.
func (s *session) abort(id uint64, err error) {
	select {
	case s.final <- finalFrame{errorFrame(id, err), err}:
		s.kickWriter()
		t := time.NewTimer(2 * s.cfg.LastFrameTimeout)
		defer t.Stop()
		select {
		case <-s.done:
		case <-t.C:
			s.stop(err)
		}
	case <-s.done:
	}
}

func (s *session) write(ctx context.Context, f *syncpb.Frame) error {
	wctx, cancel := context.WithTimeout(ctx, s.cfg.WriteTimeout)
	defer cancel()
	return s.conn.WriteFrame(wctx, f)
}

// catchUp answers the Hello's position with a SyncResponse (id 0) before
// any live push, then lets the held pushes through. Pushes that arrive
// while the sync runs are held, so the device sees the catch-up first and
// live deliveries after it; a message in both is dropped by the device by
// seq.
func (s *session) catchUp(ctx context.Context, pos *syncpb.SyncPosition) {
	defer s.wg.Done()
	defer s.release()
	limit := s.cfg.SyncLimit
	if pos == nil {
		limit = 1 // only for the large groups; the device asked for nothing
	}
	// Presence is looked up and watched beside the sync; changes that come
	// meanwhile are held behind the catch-up like every push.
	presence := make(chan []*syncpb.PresenceUpdate, 1)
	go func() { presence <- s.catchUpPresence(ctx) }()
	resp, err := s.call(ctx, 0, syncRequest, &syncpb.SyncRequest{Position: pos, PerConversationLimit: limit})
	watched := <-presence
	if err != nil {
		// The device syncs itself; tell it so.
		s.mu.Lock()
		s.resync = true
		s.mu.Unlock()
		s.log.Debug("catch-up sync failed", "err", err)
		return
	}
	switch {
	case pos != nil:
		resp.GetSyncResponse().Presence = watched
		s.reply(resp)
	case len(watched) > 0:
		s.reply(&syncpb.Frame{Body: &syncpb.Frame_SyncResponse{SyncResponse: &syncpb.SyncResponse{Presence: watched}}})
	}
}

// release ends the catch-up hold: held pushes go to the queue in order.
func (s *session) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.holding {
		return
	}
	s.holding = false
	for _, f := range s.held {
		select {
		case s.out <- f:
		default:
			s.resync = true
			s.srv.m.dropped.WithLabelValues(s.transport).Inc()
		}
	}
	s.held = nil
	s.kickWriterLocked()
}

// kickWriter starts a writer unless one runs. Writers start once the
// Welcome is out and end when nothing is left to write, so an idle
// session has no goroutine for writing.
func (s *session) kickWriter() {
	s.mu.Lock()
	s.kickWriterLocked()
	s.mu.Unlock()
}

func (s *session) kickWriterLocked() {
	if s.writing || !s.live || s.stopped {
		return
	}
	s.writing = true
	s.wg.Add(1)
	go s.writer(s.wctx)
}

// Deliver queues a live push; it never blocks (Sink). Messages go out as
// one Deliver frame; receipt, presence and typing events as their own
// frames. Typing is shed first: it is dropped (and counted) once the
// device's queue is half full, and never causes a resync.
func (s *session) Deliver(d *syncpb.Deliver) {
	if len(d.GetMessages()) > 0 {
		s.push(&syncpb.Frame{Body: &syncpb.Frame_Deliver{Deliver: &syncpb.Deliver{Messages: d.Messages}}})
	}
	for _, r := range d.GetReceipts() {
		s.push(&syncpb.Frame{Body: &syncpb.Frame_ReceiptUpdate{ReceiptUpdate: r}})
	}
	for _, p := range d.GetPresence() {
		s.push(&syncpb.Frame{Body: &syncpb.Frame_Presence{Presence: p}})
	}
	if len(d.GetPresence()) > 0 && s.pres != nil {
		s.pres.Add(d.Presence) // new conversation members: watch them too
	}
	for _, t := range d.GetTyping() {
		s.pushTyping(t)
	}
}

// push queues a live push; when the queue is full the push is dropped and
// the device is owed a Resync.
func (s *session) push(f *syncpb.Frame) {
	s.mu.Lock()
	if s.holding {
		if len(s.held) < cap(s.out) {
			s.held = append(s.held, f)
		} else {
			s.resync = true
			s.srv.m.dropped.WithLabelValues(s.transport).Inc()
		}
		s.mu.Unlock()
		return
	}
	s.mu.Unlock()
	select {
	case s.out <- f:
	default:
		s.srv.m.dropped.WithLabelValues(s.transport).Inc()
		s.mu.Lock()
		s.resync = true
		s.mu.Unlock()
	}
	s.kickWriter()
}

// Lost records that pushes were lost upstream (Sink).
func (s *session) Lost() {
	s.mu.Lock()
	s.resync = true
	s.mu.Unlock()
	s.kickWriter()
}

// reply queues a response; it waits for room (responses are never
// dropped; MaxInFlight bounds how many can wait).
func (s *session) reply(f *syncpb.Frame) {
	select {
	case s.out <- f:
		s.kickWriter()
	case <-s.done:
	}
}

func (s *session) goAway(reason string, alternatives []string) {
	f := &syncpb.Frame{Body: &syncpb.Frame_GoAway{GoAway: &syncpb.GoAway{Reason: reason, Alternatives: alternatives}}}
	select {
	case s.out <- f:
		s.kickWriter()
	default:
		s.stop(ErrDraining)
	}
}

// writer writes queued frames, and a Resync when pushes were dropped,
// until nothing is left (kickWriter starts the next one).
func (s *session) writer(ctx context.Context) {
	defer s.wg.Done()
	for {
		var f *syncpb.Frame
		select {
		case <-s.done:
			return
		case ff := <-s.final:
			wctx, cancel := context.WithTimeout(ctx, s.cfg.LastFrameTimeout)
			_ = s.conn.WriteFrame(wctx, ff.f)
			cancel()
			s.stop(ff.err)
			return
		case f = <-s.out:
		default:
		}
		if f != nil && (f.GetTyping() == nil || !s.writeTyping(f)) {
			if err := s.write(ctx, f); err != nil {
				s.stop(err)
				return
			}
			if d := f.GetDeliver(); d != nil && f.Id == 0 {
				s.srv.m.delivered(s.transport, d, s.cfg.Now())
			}
		}
		s.mu.Lock()
		owed := s.resync && !s.holding && len(s.out) == 0
		if owed {
			s.resync = false
		}
		// A frame queued after this check finds writing false and
		// starts a writer itself.
		idle := f == nil && !owed && len(s.out) == 0 && len(s.final) == 0
		if idle {
			s.writing = false
		}
		s.mu.Unlock()
		if idle {
			return
		}
		if owed {
			r := &syncpb.Frame{Body: &syncpb.Frame_Resync{Resync: &syncpb.Resync{Reason: "live deliveries were dropped; sync from your watermarks"}}}
			if err := s.write(ctx, r); err != nil {
				s.stop(err)
				return
			}
			s.srv.m.resyncs.WithLabelValues(s.transport).Inc()
		}
	}
}

// reader reads the device's frames and dispatches them until the session
// ends. It returns nil when the device closed cleanly.
func (s *session) reader(ctx context.Context) error {
	// Server.sweep ends the session after 3 keepalives without a frame.
	s.lastRead.Store(time.Now().UnixNano())
	flooding := 0
	for {
		f, err := s.conn.ReadFrame(ctx)
		select {
		case <-s.done:
			return nil
		default:
		}
		switch {
		case err == nil:
			s.lastRead.Store(time.Now().UnixNano())
		case errors.Is(err, io.EOF):
			return nil
		default:
			var pe *syncproto.Error
			if errors.As(err, &pe) {
				// Bad bytes: the stream can no longer be trusted.
				s.abort(0, pe)
			}
			return err
		}
		if t := f.GetTyping(); t != nil {
			// Typing has its own, lower limit; over it, indicators are
			// dropped, and the session pays nothing else for them.
			s.srv.typing.received.Add(1)
			s.typingIn(ctx, t)
			continue
		}
		if !s.limiter.Allow() {
			s.srv.m.shared.RateLimited("frame")
			flooding++
			if flooding > s.cfg.FrameBurst {
				err := syncproto.Errorf(syncpb.Code_CODE_RATE_LIMITED, "too many frames; closing")
				s.abort(0, err)
				return err
			}
			if f.Id != 0 {
				e := syncproto.Errorf(syncpb.Code_CODE_RATE_LIMITED, "too many requests")
				e.RetryAfter = s.cfg.RateLimitRetryAfter
				s.reply(errorFrame(f.Id, e))
			}
			continue
		}
		flooding = 0
		if err := s.dispatch(ctx, f); err != nil {
			s.abort(f.Id, err)
			return err
		}
	}
}

// dispatch starts serving one frame. An error is fatal to the session.
func (s *session) dispatch(ctx context.Context, f *syncpb.Frame) error {
	r, body := syncproto.Requests.FrameOf(f)
	switch {
	case f.Body == nil:
		return nil // a frame type this version does not know: skip it
	case f.GetPong() != nil:
		return nil
	case r == nil:
		return syncproto.Errorf(syncpb.Code_CODE_MALFORMED, "a client may not send this frame type here")
	case r.NoReply:
		return nil // the reader takes typing before dispatch
	case f.Id == 0 && r.IDOptional:
		return nil
	case f.Id == 0:
		return syncproto.Errorf(syncpb.Code_CODE_MALFORMED, "a request needs a non-zero frame id")
	}
	if edgeRequests[r.Frame].inline {
		s.reply(s.serve(ctx, f.Id, r, body))
		return nil
	}
	select {
	case s.inflight <- struct{}{}:
	case <-s.done:
		return nil
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer func() { <-s.inflight }()
		s.reply(s.serve(ctx, f.Id, r, body))
	}()
	return nil
}

// edgeRequest is how the session answers a request frame without an op
// (syncproto.Request.Op ""): its handler, and whether it runs in the
// reader, before the next frame is read, or beside it as a core request
// does.
type edgeRequest struct {
	serve  func(s *session, ctx context.Context, id uint64, body proto.Message) (*syncpb.Frame, error)
	inline bool
}

// edgeRequests are the handlers of the request frames the edge answers
// itself, by frame body.
var edgeRequests = map[protoreflect.Name]edgeRequest{
	"ping": {inline: true, serve: func(_ *session, _ context.Context, id uint64, body proto.Message) (*syncpb.Frame, error) {
		return &syncpb.Frame{Id: id, Body: &syncpb.Frame_Pong{Pong: &syncpb.Pong{Nonce: body.(*syncpb.Ping).GetNonce()}}}, nil
	}},
	"reauth": {inline: true, serve: func(s *session, _ context.Context, id uint64, body proto.Message) (*syncpb.Frame, error) {
		return s.reauth(id, body.(*syncpb.Reauth))
	}},
	"presence_subscribe": {serve: func(s *session, ctx context.Context, id uint64, body proto.Message) (*syncpb.Frame, error) {
		return s.presenceSubscribe(ctx, id, body.(*syncpb.PresenceSubscribe))
	}},
}

// syncRequest is the row of the device's SyncRequest, which the session
// also uses to listen on the user's large groups.
var syncRequest = syncproto.Requests.ByOp("sync")

// serve answers one request frame: its answer, or the Error frame.
func (s *session) serve(ctx context.Context, id uint64, r *syncproto.Request, body proto.Message) *syncpb.Frame {
	resp, err := s.call(ctx, id, r, body)
	if err != nil {
		return errorFrame(id, err)
	}
	return resp
}

// call checks one request with its validator and serves it: with its
// edge handler when it has no op, else through the core.
func (s *session) call(ctx context.Context, id uint64, r *syncproto.Request, body proto.Message) (*syncpb.Frame, error) {
	if s.ending.Load() != 0 {
		// Told to end (revoked, expired): its last frame may still be on
		// its way, but nothing it asks for now is served.
		return nil, s.endErrOr(syncproto.ErrUnauthenticated)
	}
	if err := r.Validate(body); err != nil {
		return nil, err
	}
	if r.Op == "" {
		h, ok := edgeRequests[r.Frame]
		if !ok {
			return nil, syncproto.Errorf(syncpb.Code_CODE_MALFORMED, "not a request")
		}
		return h.serve(s, ctx, id, body)
	}
	req := r.Wrap(s.caller, body)
	cctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	defer cancel()
	isSync := r == syncRequest
	var since uint64
	if isSync {
		since = s.cfg.Hub.Pos() // before the core reads the user's groups
	}
	start := time.Now()
	resp, err := s.cfg.Core.Call(cctx, req)
	if r.Op == "send" {
		s.srv.m.shared.Send(s.transport, start, err)
	}
	if err != nil {
		return nil, err
	}
	if isSync {
		// A sync lists the user's large groups: listen on their subjects.
		// A subscription new here may have missed deliveries: resync.
		fresh, err := s.cfg.Hub.SetConvs(cctx, s.caller.UserId, resp.GetConversationSubjects(), since)
		if err != nil || fresh {
			s.Lost()
		}
		if sr := resp.GetSync(); sr != nil && id != 0 && s.pres != nil {
			// A device's own sync (after a Resync: pushes were dropped)
			// also repairs its presence; the catch-up brings its own.
			sr.Presence = s.pres.States()
		}
	}
	out, err := r.Reply(id, resp)
	if err != nil {
		s.log.Error("core answered without the expected result", "request", r.Op)
		return nil, err
	}
	return out, nil
}
