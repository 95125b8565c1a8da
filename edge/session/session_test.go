package session

// Session tests with a real NATS server (live deliveries travel on real
// subjects) and real tokens. The core is a TEST DOUBLE (coreFunc): these
// tests are about the session; end-to-end tests against the real core live
// in cmd/parley.

import (
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/parley-chat/parley/edge/auth"
	"github.com/parley-chat/parley/edge/internal/natstest"
	"github.com/parley-chat/parley/internal/poll"
	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// testFamily places the refresh tokens of pairs issued in tests; no
// directory knows it.
var testFamily = auth.Family{ID: "0123456789abcdef", Generation: 1}

type coreFunc func(ctx context.Context, req *syncpb.CoreRequest) (*syncpb.CoreResponse, error)

func (f coreFunc) Call(ctx context.Context, req *syncpb.CoreRequest) (*syncpb.CoreResponse, error) {
	return f(ctx, req)
}

// pipeConn is an in-memory Conn: the test plays the device.
type pipeConn struct {
	in     chan *syncpb.Frame // device -> session
	inErr  chan error
	out    chan *syncpb.Frame // session -> device
	closed chan struct{}
	once   sync.Once
	mu     sync.Mutex
	err    error // Close's argument
	last   *syncpb.Frame
}

func newPipe(outCap int) *pipeConn {
	return &pipeConn{in: make(chan *syncpb.Frame, 64), inErr: make(chan error, 1), out: make(chan *syncpb.Frame, outCap), closed: make(chan struct{})}
}

func (p *pipeConn) ReadFrame(ctx context.Context) (*syncpb.Frame, error) {
	select {
	case f := <-p.in:
		return f, nil
	case err := <-p.inErr:
		return nil, err
	case <-p.closed:
		return nil, io.EOF
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (p *pipeConn) WriteFrame(ctx context.Context, f *syncpb.Frame) error {
	// Round-trip through the codec, as a transport would.
	b, err := syncproto.AppendFrame(nil, f)
	if err != nil {
		return err
	}
	g, _, err := syncproto.DecodeFrame(b, syncproto.MaxFrameSize)
	if err != nil {
		return err
	}
	select {
	case p.out <- g:
		return nil
	case <-p.closed:
		return io.ErrClosedPipe
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (p *pipeConn) Close(err error) error {
	p.once.Do(func() {
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(p.closed)
	})
	return nil
}

// next returns the next frame the session wrote, failing after a deadline.
func (p *pipeConn) next(t *testing.T) *syncpb.Frame {
	t.Helper()
	select {
	case f := <-p.out:
		return f
	case <-time.After(10 * time.Second):
		t.Fatal("no frame from the session within 10s")
		return nil
	}
}

func (p *pipeConn) send(f *syncpb.Frame) { p.in <- f }

type env struct {
	t    *testing.T
	nc   *nats.Conn
	auth *auth.Auth
	key  auth.Key
	srv  *Server
	core coreFunc
	mu   sync.Mutex
	reqs []*syncpb.CoreRequest
}

func newEnv(t *testing.T, mod func(*Config)) *env {
	t.Helper()
	return newEnvAuth(t, nil, mod)
}

// newEnvAuth is newEnv with authMod changing the auth configuration.
func newEnvAuth(t *testing.T, authMod func(*auth.Config), mod func(*Config)) *env {
	t.Helper()
	ns := natstest.Server(t)
	e := &env{t: t, nc: natstest.Conn(t, ns)}
	var err error
	if e.key, err = auth.GenerateKey("k1"); err != nil {
		t.Fatal(err)
	}
	acfg := auth.Config{Keys: []auth.Key{e.key}}
	if authMod != nil {
		authMod(&acfg)
	}
	if e.auth, err = auth.New(acfg); err != nil {
		t.Fatal(err)
	}
	e.core = func(ctx context.Context, req *syncpb.CoreRequest) (*syncpb.CoreResponse, error) {
		e.mu.Lock()
		e.reqs = append(e.reqs, req)
		e.mu.Unlock()
		switch op := req.Op.(type) {
		case *syncpb.CoreRequest_Send:
			return &syncpb.CoreResponse{Result: &syncpb.CoreResponse_SendAck{SendAck: &syncpb.SendAck{
				ConvId: op.Send.ConvId, Seq: 7, MsgId: "m_x", ClientMsgId: op.Send.ClientMsgId}}}, nil
		case *syncpb.CoreRequest_Sync:
			return &syncpb.CoreResponse{Result: &syncpb.CoreResponse_Sync{Sync: &syncpb.SyncResponse{}}}, nil
		}
		return nil, syncproto.Errorf(syncpb.Code_CODE_NOT_FOUND, "no")
	}
	hub, err := NewHub(HubConfig{Conn: e.nc, Region: "local"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(hub.Close)
	cfg := Config{Core: coreFunc(func(ctx context.Context, r *syncpb.CoreRequest) (*syncpb.CoreResponse, error) {
		return e.core(ctx, r)
	}), Auth: e.auth, Hub: hub}
	if mod != nil {
		mod(&cfg)
	}
	if e.srv, err = New(cfg); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) token(user, device string) string {
	p, err := e.auth.IssuePair(auth.Identity{WorkspaceID: "w_1", UserID: user, DeviceID: device}, testFamily)
	if err != nil {
		e.t.Fatal(err)
	}
	return p.Access
}

// start runs a session on a new pipe; the returned channel yields Serve's error.
func (e *env) start(outCap int) (*pipeConn, chan error) {
	p := newPipe(outCap)
	done, finished := make(chan error, 1), make(chan struct{})
	go func() {
		defer close(finished)
		done <- e.srv.Serve(context.Background(), p)
	}()
	e.t.Cleanup(func() {
		p.Close(nil)
		select {
		case <-finished:
		case <-time.After(10 * time.Second):
			e.t.Error("session did not end within 10s")
		}
	})
	return p, done
}

func hello(token, device string, pos *syncpb.SyncPosition) *syncpb.Frame {
	h := syncproto.NewHello(token, device)
	h.Position = pos
	return &syncpb.Frame{Id: 1, Body: &syncpb.Frame_Hello{Hello: h}}
}

// connect runs a session through hello and returns it after Welcome.
func (e *env) connect(user, device string, outCap int) *pipeConn {
	e.t.Helper()
	p, _ := e.start(outCap)
	p.send(hello(e.token(user, device), device, nil))
	p.last = p.next(e.t)
	w := p.last.GetWelcome()
	if w == nil || w.UserId != user || w.DeviceId != device || w.Version != syncproto.ProtocolVersion || w.KeepaliveMs == 0 {
		e.t.Fatalf("welcome %v (frame %v)", w, p.last)
	}
	return p
}

func (e *env) publish(user string, msgs ...*syncpb.Message) {
	e.t.Helper()
	e.publishDeliver(user, &syncpb.Deliver{Messages: msgs})
}

// publishDeliver publishes d on user's subject, as a shard leader would.
func (e *env) publishDeliver(user string, d *syncpb.Deliver) {
	e.t.Helper()
	b, err := proto.Marshal(d)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.nc.Publish(syncproto.UserSubject("local", user), b); err != nil {
		e.t.Fatal(err)
	}
	if err := e.nc.Flush(); err != nil {
		e.t.Fatal(err)
	}
}

func wantError(t *testing.T, f *syncpb.Frame, id uint64, code syncpb.Code) {
	t.Helper()
	if f.GetError() == nil || f.GetError().Code != code || f.Id != id {
		t.Fatalf("want error %v on frame %d, got %v", code, id, f)
	}
}

func TestHelloFailures(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.HelloTimeout = 300 * time.Millisecond })
	key, _ := auth.GenerateKey("k1")
	past, _ := auth.New(auth.Config{Keys: []auth.Key{key}, Now: func() time.Time { return time.Now().Add(-time.Hour) }})
	expired, _ := past.IssuePair(auth.Identity{WorkspaceID: "w_1", UserID: "u_a", DeviceID: "d_a"}, testFamily)
	good := e.token("u_a", "d_a")
	future := syncproto.NewHello(good, "")
	future.MinVersion, future.MaxVersion = 90, 99
	for _, tc := range []struct {
		name  string
		first *syncpb.Frame
		code  syncpb.Code
	}{
		{"not a hello", &syncpb.Frame{Id: 3, Body: &syncpb.Frame_Ping{Ping: &syncpb.Ping{}}}, syncpb.Code_CODE_MALFORMED},
		{"unknown versions", &syncpb.Frame{Id: 1, Body: &syncpb.Frame_Hello{Hello: future}}, syncpb.Code_CODE_UNSUPPORTED_VERSION},
		{"no token", hello("", "", nil), syncpb.Code_CODE_UNAUTHENTICATED},
		{"garbage token", hello("garbage", "", nil), syncpb.Code_CODE_UNAUTHENTICATED},
		{"token of another key", hello(expired.Access, "", nil), syncpb.Code_CODE_UNAUTHENTICATED},
		{"device of someone else", hello(good, "d_other", nil), syncpb.Code_CODE_UNAUTHENTICATED},
		{"refresh token", hello(mustPair(t, e.auth).Refresh, "", nil), syncpb.Code_CODE_UNAUTHENTICATED},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, done := e.start(8)
			p.send(tc.first)
			wantError(t, p.next(t), tc.first.Id, tc.code)
			if err := <-done; syncproto.CodeOf(err) != tc.code {
				t.Fatalf("Serve returned %v", err)
			}
		})
	}
	t.Run("expired token", func(t *testing.T) {
		// Signed by the server's own key, an hour ago.
		old, _ := auth.New(auth.Config{Keys: []auth.Key{e.key}, Now: func() time.Time { return time.Now().Add(-time.Hour) }})
		pair, _ := old.IssuePair(auth.Identity{WorkspaceID: "w_1", UserID: "u_a", DeviceID: "d_a"}, testFamily)
		p, _ := e.start(8)
		p.send(hello(pair.Access, "", nil))
		wantError(t, p.next(t), 1, syncpb.Code_CODE_TOKEN_EXPIRED)
	})
	t.Run("silence", func(t *testing.T) {
		p, done := e.start(8)
		wantError(t, p.next(t), 0, syncpb.Code_CODE_TIMEOUT)
		<-done
	})
}

func mustPair(t *testing.T, a *auth.Auth) *auth.Pair {
	t.Helper()
	p, err := a.IssuePair(auth.Identity{WorkspaceID: "w_1", UserID: "u_a", DeviceID: "d_a"}, testFamily)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRequestsCarryTheTokensIdentity(t *testing.T) {
	e := newEnv(t, nil)
	p := e.connect("u_a", "d_a", 8)
	p.send(&syncpb.Frame{Id: 5, Body: &syncpb.Frame_Send{Send: &syncpb.SendRequest{ConvId: "c_1", ClientMsgId: "x1", Body: []byte("hi")}}})
	f := p.next(t)
	if f.Id != 5 || f.GetSendAck().GetSeq() != 7 || f.GetSendAck().GetClientMsgId() != "x1" {
		t.Fatalf("ack %v", f)
	}
	e.mu.Lock()
	got := e.reqs[len(e.reqs)-1].Caller
	e.mu.Unlock()
	if got.UserId != "u_a" || got.DeviceId != "d_a" || got.WorkspaceId != "w_1" {
		t.Fatalf("caller %v", got)
	}
	// Ping is answered by the edge itself.
	p.send(&syncpb.Frame{Id: 6, Body: &syncpb.Frame_Ping{Ping: &syncpb.Ping{Nonce: 42}}})
	if f := p.next(t); f.Id != 6 || f.GetPong().GetNonce() != 42 {
		t.Fatalf("pong %v", f)
	}
	// Invalid requests are answered without reaching the core.
	p.send(&syncpb.Frame{Id: 8, Body: &syncpb.Frame_Send{Send: &syncpb.SendRequest{ConvId: "c_1", Body: []byte("no id")}}})
	wantError(t, p.next(t), 8, syncpb.Code_CODE_INVALID_ARGUMENT)
	// Core errors come back with the request's id.
	p.send(&syncpb.Frame{Id: 9, Body: &syncpb.Frame_HistoryRequest{HistoryRequest: &syncpb.HistoryRequest{ConvId: "c_1"}}})
	wantError(t, p.next(t), 9, syncpb.Code_CODE_NOT_FOUND)
}

func TestFatalFrames(t *testing.T) {
	for _, tc := range []struct {
		name string
		f    *syncpb.Frame
		err  error
		code syncpb.Code
	}{
		{"second hello", hello("x", "", nil), nil, syncpb.Code_CODE_MALFORMED},
		{"server frame", &syncpb.Frame{Id: 2, Body: &syncpb.Frame_Welcome{Welcome: &syncpb.Welcome{}}}, nil, syncpb.Code_CODE_MALFORMED},
		{"request without id", &syncpb.Frame{Body: &syncpb.Frame_Send{Send: &syncpb.SendRequest{}}}, nil, syncpb.Code_CODE_MALFORMED},
		{"bad bytes", nil, syncproto.Errorf(syncpb.Code_CODE_MALFORMED, "bad"), syncpb.Code_CODE_MALFORMED},
		{"oversized", nil, syncproto.Errorf(syncpb.Code_CODE_TOO_LARGE, "big"), syncpb.Code_CODE_TOO_LARGE},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil)
			p := e.connect("u_a", "d_a", 8)
			if tc.f != nil {
				p.send(tc.f)
			} else {
				p.inErr <- tc.err
			}
			f := p.next(t)
			if f.GetError().GetCode() != tc.code {
				t.Fatalf("got %v", f)
			}
			select {
			case <-p.closed:
			case <-time.After(10 * time.Second):
				t.Fatal("session not closed")
			}
		})
	}
}

func TestUnknownFramesAreSkipped(t *testing.T) {
	e := newEnv(t, nil)
	p := e.connect("u_a", "d_a", 8)
	p.send(&syncpb.Frame{Id: 4}) // a body this version does not know
	p.send(&syncpb.Frame{Id: 5, Body: &syncpb.Frame_Ping{Ping: &syncpb.Ping{Nonce: 1}}})
	if f := p.next(t); f.GetPong() == nil || f.Id != 5 {
		t.Fatalf("after an unknown frame: %v", f)
	}
}

func TestLiveDeliveryToEveryDeviceOfTheUser(t *testing.T) {
	e := newEnv(t, nil)
	phone := e.connect("u_a", "d_phone", 8)
	laptop := e.connect("u_a", "d_laptop", 8)
	other := e.connect("u_b", "d_b", 8)
	if n := e.srv.cfg.Hub.Users(); n != 2 {
		t.Fatalf("hub has %d user subscriptions, want 2 (one per user)", n)
	}
	e.publish("u_a", &syncpb.Message{ConvId: "c_1", Seq: 1, Body: []byte("hi")})
	for _, p := range []*pipeConn{phone, laptop} {
		d := p.next(t).GetDeliver()
		if d == nil || len(d.Messages) != 1 || d.Messages[0].Seq != 1 {
			t.Fatalf("deliver %v", d)
		}
	}
	// u_b got nothing: its next frame is the answer to a ping.
	other.send(&syncpb.Frame{Id: 2, Body: &syncpb.Frame_Ping{Ping: &syncpb.Ping{}}})
	if f := other.next(t); f.GetPong() == nil {
		t.Fatalf("u_b got %v", f)
	}
}

// The catch-up sync that follows a Hello with a position comes before any
// live push, even a push published while the sync runs.
func TestCatchUpComesBeforeLivePushes(t *testing.T) {
	e := newEnv(t, nil)
	inSync, release := make(chan struct{}), make(chan struct{})
	e.core = func(ctx context.Context, req *syncpb.CoreRequest) (*syncpb.CoreResponse, error) {
		if req.GetSync() == nil {
			return nil, syncproto.Errorf(syncpb.Code_CODE_NOT_FOUND, "no")
		}
		close(inSync)
		<-release
		return &syncpb.CoreResponse{Result: &syncpb.CoreResponse_Sync{Sync: &syncpb.SyncResponse{Changed: []*syncpb.ConversationDelta{
			{ConvId: "c_1", LastSeq: 5, Messages: []*syncpb.Message{{ConvId: "c_1", Seq: 5}}}}}}}, nil
	}
	p, _ := e.start(8)
	p.send(hello(e.token("u_a", "d_a"), "d_a", &syncpb.SyncPosition{Watermarks: []*syncpb.Watermark{{ConvId: "c_1", Seq: 4}}}))
	if p.next(t).GetWelcome() == nil {
		t.Fatal("no welcome")
	}
	<-inSync
	// Committed after the sync read: delivered live, held until the
	// catch-up is out.
	e.publish("u_a", &syncpb.Message{ConvId: "c_1", Seq: 6})
	close(release)
	if s := p.next(t).GetSyncResponse(); s == nil || s.Changed[0].LastSeq != 5 {
		t.Fatalf("want the catch-up first, got %v", s)
	}
	if d := p.next(t).GetDeliver(); d == nil || d.Messages[0].Seq != 6 {
		t.Fatalf("want the live push after the catch-up, got %v", d)
	}
}

// A device that stops reading loses live pushes beyond its queue, never
// blocks deliveries to others, and is told to resync when it reads again.
func TestSlowDeviceGetsResync(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.SendQueue = 4 })
	slow := e.connect("u_a", "d_slow", 0) // unbuffered: the writer blocks until the test reads
	fast := e.connect("u_a", "d_fast", 64)
	const n = 40
	for i := 1; i <= n; i++ {
		e.publish("u_a", &syncpb.Message{ConvId: "c_1", Seq: uint64(i)})
		// The fast device gets each push while the slow one reads nothing.
		if d := fast.next(t).GetDeliver(); d == nil || d.Messages[0].Seq != uint64(i) {
			t.Fatalf("fast device, push %d: %v", i, d)
		}
	}
	var got []uint64
	resync := false
	for !resync {
		f := slow.next(t)
		switch {
		case f.GetDeliver() != nil:
			got = append(got, f.GetDeliver().Messages[0].Seq)
		case f.GetResync() != nil:
			resync = true
		default:
			t.Fatalf("slow device got %v", f)
		}
	}
	if len(got) >= n {
		t.Fatalf("slow device got all %d pushes; the queue did not bound them", len(got))
	}
	for i := 1; i < len(got); i++ {
		if got[i] <= got[i-1] {
			t.Fatalf("pushes out of order: %v", got)
		}
	}
}

func TestFloodIsLimitedThenClosed(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.FrameRate, c.FrameBurst = 1, 5 })
	p := e.connect("u_a", "d_a", 256)
	go func() {
		for i := range 100 {
			select {
			case p.in <- &syncpb.Frame{Id: uint64(i + 10), Body: &syncpb.Frame_Ping{Ping: &syncpb.Ping{}}}:
			case <-p.closed:
				return
			}
		}
	}()
	select {
	case <-p.closed:
	case <-time.After(10 * time.Second):
		t.Fatal("flooding session not closed")
	}
	limited, pongs := 0, 0
	for len(p.out) > 0 {
		f := <-p.out
		switch {
		case f.GetPong() != nil:
			pongs++
		case f.GetError().GetCode() == syncpb.Code_CODE_RATE_LIMITED:
			limited++
			if f.Id != 0 && f.GetError().RetryAfterMs == 0 {
				t.Fatalf("rate limited without retry_after: %v", f)
			}
		}
	}
	if pongs > 6 {
		t.Fatalf("%d pings answered with a burst of 5", pongs)
	}
	if limited == 0 {
		t.Fatal("no RATE_LIMITED answers")
	}
}

func TestDrainSendsGoAway(t *testing.T) {
	e := newEnv(t, nil)
	p := e.connect("u_a", "d_a", 8)
	drained := make(chan error, 1)
	go func() { drained <- e.srv.Drain(context.Background(), "maintenance", "edge2:443") }()
	g := p.next(t).GetGoAway()
	if g == nil || g.Reason != "maintenance" || len(g.Alternatives) != 1 {
		t.Fatalf("go away %v", g)
	}
	p.Close(nil) // the device leaves
	if err := <-drained; err != nil {
		t.Fatal(err)
	}
	// New sessions are refused while draining.
	q, done := e.start(8)
	wantError(t, q.next(t), 0, syncpb.Code_CODE_UNAVAILABLE)
	if err := <-done; !errors.Is(err, ErrDraining) {
		t.Fatalf("serve while draining: %v", err)
	}
}

// A welcomed device that sends nothing for three keepalive intervals is
// ended with TIMEOUT; one that keeps pinging stays.
func TestIdleSessionEnds(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.KeepAlive = 50 * time.Millisecond })
	quiet, done := e.start(8)
	quiet.send(hello(e.token("u_a", "d_a"), "d_a", nil))
	if quiet.next(t).GetWelcome() == nil {
		t.Fatal("no welcome")
	}
	busy := e.connect("u_b", "d_b", 8)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
				busy.send(&syncpb.Frame{Body: &syncpb.Frame_Ping{Ping: &syncpb.Ping{}}})
			}
		}
	}()
	select {
	case err := <-done:
		if syncproto.CodeOf(err) != syncpb.Code_CODE_TIMEOUT {
			t.Fatalf("the quiet session ended with %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the quiet session was not ended")
	}
	if e.srv.Sessions() != 1 {
		t.Fatalf("%d sessions left, want the busy one", e.srv.Sessions())
	}
}

// writers reports how many of the server's sessions have a writer running.
func (e *env) writers() int {
	e.srv.mu.Lock()
	defer e.srv.mu.Unlock()
	n := 0
	for ss := range e.srv.sessions {
		ss.mu.Lock()
		if ss.writing {
			n++
		}
		ss.mu.Unlock()
	}
	return n
}

// An idle session runs no writer goroutine; a push starts one, which
// writes it and ends again.
func TestIdleSessionHasNoWriter(t *testing.T) {
	e := newEnv(t, nil)
	p := e.connect("u_a", "d_phone", 8)
	poll.Until(t, 20*time.Second, "the writer ends once the session is idle", func() bool { return e.writers() == 0 })
	for seq := uint64(1); seq <= 3; seq++ {
		e.publish("u_a", &syncpb.Message{ConvId: "c_1", Seq: seq, Body: []byte("hi")})
		if d := p.next(t).GetDeliver(); d == nil || len(d.Messages) != 1 || d.Messages[0].Seq != seq {
			t.Fatalf("push %d: %v", seq, d)
		}
		poll.Until(t, 20*time.Second, "the writer ends after the push", func() bool { return e.writers() == 0 })
	}
	p.send(&syncpb.Frame{Id: 2, Body: &syncpb.Frame_Ping{Ping: &syncpb.Ping{}}})
	if f := p.next(t); f.GetPong() == nil || f.Id != 2 {
		t.Fatalf("want pong 2, got %v", f)
	}
}
