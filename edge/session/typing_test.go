package session

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/parley-chat/parley/internal/poll"
	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// publishingCore is the test core plus Publisher: what a session
// publishes is recorded.
type publishingCore struct {
	Core
	mu  sync.Mutex
	got []*syncpb.CoreRequest
	ch  chan struct{}
}

func (p *publishingCore) Publish(_ context.Context, req *syncpb.CoreRequest) error {
	p.mu.Lock()
	p.got = append(p.got, req)
	p.mu.Unlock()
	select {
	case p.ch <- struct{}{}:
	default:
	}
	return nil
}

func (p *publishingCore) published() []*syncpb.CoreRequest {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]*syncpb.CoreRequest(nil), p.got...)
}

// waitStats waits until the server's typing counters satisfy ok (they
// are bumped just after the work they count, so they may lag a frame).
func (e *env) waitStats(t *testing.T, ok func(TypingStats) bool) {
	t.Helper()
	poll.NoError(t, 20*time.Second, "typing stats", func() error {
		if st := e.srv.TypingStats(); !ok(st) {
			return fmt.Errorf("stats %+v", st)
		}
		return nil
	})
}

func newTypingEnv(t *testing.T, mod func(*Config)) (*env, *publishingCore) {
	pc := &publishingCore{ch: make(chan struct{}, 1)}
	e := newEnv(t, func(c *Config) {
		pc.Core = c.Core
		c.Core = pc
		if mod != nil {
			mod(c)
		}
	})
	return e, pc
}

// dgPipe is a pipeConn with datagrams.
type dgPipe struct {
	*pipeConn
	dgIn  chan []byte
	dgOut chan []byte
}

func (d *dgPipe) ReceiveDatagram(ctx context.Context) ([]byte, error) {
	select {
	case b := <-d.dgIn:
		return b, nil
	case <-d.closed:
		return nil, context.Canceled
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (d *dgPipe) SendDatagram(b []byte) error {
	select {
	case d.dgOut <- append([]byte(nil), b...):
	default: // lost, as datagrams may be
	}
	return nil
}

func (e *env) connectDatagrams(user, device string) *dgPipe {
	e.t.Helper()
	d := &dgPipe{pipeConn: newPipe(64), dgIn: make(chan []byte, 256), dgOut: make(chan []byte, 64)}
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		_ = e.srv.Serve(context.Background(), d)
	}()
	e.t.Cleanup(func() {
		d.Close(nil)
		<-finished
	})
	d.send(hello(e.token(user, device), device, nil))
	if w := d.next(e.t).GetWelcome(); w == nil {
		e.t.Fatal("no welcome")
	}
	return d
}

func typingFrame(conv string, typing bool, ttl uint32) *syncpb.Frame {
	return &syncpb.Frame{Body: &syncpb.Frame_Typing{Typing: &syncpb.Typing{ConvId: conv, Typing: typing, TtlMs: ttl}}}
}

func TestTypingIsStampedClampedAndPublished(t *testing.T) {
	e, pc := newTypingEnv(t, func(c *Config) { c.TypingRate, c.TypingBurst = 1000, 1000 })
	p := e.connect("u_a", "d_a", 8)
	// A device may not speak for someone else: the session's identity wins.
	forged := typingFrame("c_1", true, 60000)
	forged.GetTyping().UserId, forged.GetTyping().DeviceId, forged.GetTyping().WorkspaceId = "u_evil", "d_evil", "w_evil"
	p.send(forged)
	p.send(typingFrame("c_1", false, 0))
	p.send(typingFrame("C 1!", true, 0)) // invalid conv id: dropped
	p.send(typingFrame("c_1", true, 2500))
	poll.Until(t, 20*time.Second, "3 published", func() bool { return len(pc.published()) == 3 })
	want := []*syncpb.Typing{
		{ConvId: "c_1", UserId: "u_a", Typing: true, TtlMs: 10000, DeviceId: "d_a", WorkspaceId: "w_1"},
		{ConvId: "c_1", UserId: "u_a", Typing: false, TtlMs: 5000, DeviceId: "d_a", WorkspaceId: "w_1"},
		{ConvId: "c_1", UserId: "u_a", Typing: true, TtlMs: 2500, DeviceId: "d_a", WorkspaceId: "w_1"},
	}
	for i, req := range pc.published() {
		if !proto.Equal(req.GetTyping(), want[i]) || req.Caller.GetUserId() != "u_a" {
			t.Errorf("published %d: %v, want %v", i, req, want[i])
		}
	}
	e.waitStats(t, func(st TypingStats) bool { return st.Received == 4 && st.Invalid == 1 && st.Published == 3 })
	// Nothing was answered: the next frame is the pong.
	p.send(&syncpb.Frame{Id: 2, Body: &syncpb.Frame_Ping{Ping: &syncpb.Ping{Nonce: 1}}})
	if f := p.next(t); f.GetPong() == nil {
		t.Fatalf("want the pong, got %v", f)
	}
}

// A typing flood over frames is cut to the device's rate and costs the
// session nothing else: it stays up and its requests are served.
func TestTypingFloodIsRateLimited(t *testing.T) {
	e, pc := newTypingEnv(t, func(c *Config) {
		c.TypingRate, c.TypingBurst = 0.001, 4 // the burst, then nothing in this test's time
		c.FrameRate, c.FrameBurst = 0.001, 10  // a typing flood must not count against frames
	})
	p := e.connect("u_a", "d_a", 8)
	const flood = 500
	for range flood {
		p.send(typingFrame("c_1", true, 0))
	}
	e.waitStats(t, func(st TypingStats) bool {
		return st.Received == flood && st.Published == 4 && st.RateLimited == flood-4
	})
	if n := len(pc.published()); n != 4 {
		t.Fatalf("%d published", n)
	}
	p.send(&syncpb.Frame{Id: 7, Body: &syncpb.Frame_Send{Send: &syncpb.SendRequest{ConvId: "c_1", ClientMsgId: "x", Body: []byte("hi")}}})
	if f := p.next(t); f.GetSendAck() == nil || f.Id != 7 {
		t.Fatalf("after the flood: %v", f)
	}
}

// Datagrams: valid ones are published; malformed ones, or frames other
// than typing, are dropped and counted, never fatal.
func TestTypingDatagrams(t *testing.T) {
	e, pc := newTypingEnv(t, func(c *Config) { c.TypingRate, c.TypingBurst = 1000, 1000 })
	d := e.connectDatagrams("u_a", "d_a")
	good, _ := syncproto.AppendDatagram(nil, &syncpb.Typing{ConvId: "c_1", Typing: true})
	ping, _ := syncproto.AppendFrame(nil, &syncpb.Frame{Id: 3, Body: &syncpb.Frame_Ping{Ping: &syncpb.Ping{}}})
	bad := [][]byte{{}, {0xff}, []byte("garbage"), good[:len(good)-1], append(append([]byte(nil), good...), 1), ping, make([]byte, 1500)}
	for _, b := range bad {
		d.dgIn <- b
	}
	d.dgIn <- good
	e.waitStats(t, func(st TypingStats) bool {
		return st.Datagrams == uint64(len(bad)+1) && st.Malformed == uint64(len(bad)) && st.Published == 1
	})
	if n := len(pc.published()); n != 1 {
		t.Fatalf("%d published", n)
	}
	d.send(&syncpb.Frame{Id: 2, Body: &syncpb.Frame_Ping{Ping: &syncpb.Ping{Nonce: 1}}})
	if f := d.next(t); f.GetPong() == nil {
		t.Fatalf("session after bad datagrams: %v", f)
	}
}

func (e *env) publishTyping(user string, ts ...*syncpb.Typing) {
	e.t.Helper()
	e.publishDeliver(user, &syncpb.Deliver{Typing: ts})
}

// Typing reaches a device as a datagram where it has them, else as a
// frame; never the device's own.
func TestTypingPushedAsDatagramOrFrame(t *testing.T) {
	e, _ := newTypingEnv(t, nil)
	d := e.connectDatagrams("u_b", "d_b1")
	p := e.connect("u_b", "d_b2", 8)
	e.publishTyping("u_b",
		&syncpb.Typing{ConvId: "c_1", UserId: "u_b", DeviceId: "d_b1", Typing: true, TtlMs: 5000}, // d_b1's own
		&syncpb.Typing{ConvId: "c_1", UserId: "u_a", DeviceId: "d_a", WorkspaceId: "w_1", Typing: true, TtlMs: 4000})
	// d_b2 gets both (the first is another device of its user), as frames,
	// without the device and workspace (edge-to-core only).
	for _, want := range []*syncpb.Typing{
		{ConvId: "c_1", UserId: "u_b", Typing: true, TtlMs: 5000},
		{ConvId: "c_1", UserId: "u_a", Typing: true, TtlMs: 4000},
	} {
		if f := p.next(t); !proto.Equal(f.GetTyping(), want) {
			t.Fatalf("frame %v, want typing %v", f, want)
		}
	}
	// d_b1 gets only u_a's, as a datagram.
	select {
	case b := <-d.dgOut:
		got, err := syncproto.DecodeDatagram(b)
		if err != nil || got.UserId != "u_a" || got.DeviceId != "" {
			t.Fatalf("datagram %v, %v", got, err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no datagram")
	}
	select {
	case b := <-d.dgOut:
		t.Fatalf("a second datagram: %x", b)
	case f := <-d.out:
		t.Fatalf("a frame: %v", f)
	default:
	}
	// Counters are bumped after the push: the frame may be read first.
	poll.Until(t, 20*time.Second, "3 pushed, 1 as a datagram", func() bool {
		st := e.srv.TypingStats()
		return st.Pushed == 3 && st.SentAsDgram == 1
	})
}

// sessionOf returns the running session of user's device.
func (e *env) sessionOf(user, device string) *session {
	e.srv.mu.Lock()
	defer e.srv.mu.Unlock()
	for ss := range e.srv.sessions {
		if ss.caller != nil && ss.caller.UserId == user && ss.caller.DeviceId == device {
			return ss
		}
	}
	return nil
}

// A stalled device (not reading) whose queue is half full gets no typing,
// while its messages stay queued and arrive in order once it reads; when
// the queue overflows, the message that did not fit becomes a Resync (as
// without typing), and typing is still shed.
func TestTypingShedForAStalledDevice(t *testing.T) {
	const queue = 8
	e, _ := newTypingEnv(t, func(c *Config) { c.SendQueue = queue })
	p := e.connect("u_b", "d_b", 0) // unbuffered: the writer blocks until the test reads
	var ss *session
	poll.Until(t, 20*time.Second, "session", func() bool { ss = e.sessionOf("u_b", "d_b"); return ss != nil })
	poll.Until(t, 20*time.Second, "catch-up done", func() bool { ss.mu.Lock(); defer ss.mu.Unlock(); return !ss.holding })
	msg := func(i int) {
		e.publish("u_b", &syncpb.Message{ConvId: "c_1", Seq: uint64(i), MsgId: "m", Body: []byte("x")})
	}
	typing := func(on bool) {
		e.publishTyping("u_b", &syncpb.Typing{ConvId: "c_1", UserId: "u_a", DeviceId: "d_a", Typing: on})
	}
	// The writer takes message 1 and blocks writing it; 2..5 wait in the
	// queue: half full.
	for i := 1; i <= 1+queue/2; i++ {
		msg(i)
	}
	poll.Until(t, 20*time.Second, "queue half full", func() bool { return len(ss.out) == queue/2 })
	typing(true)
	poll.Until(t, 20*time.Second, "typing shed", func() bool { return e.srv.TypingStats().ShedQueue == 1 })
	// 6..9 fill the queue; 10 does not fit: a Resync is owed.
	for i := 2 + queue/2; i <= 2+queue; i++ {
		msg(i)
	}
	typing(true)
	poll.Until(t, 20*time.Second, "second typing shed", func() bool { return e.srv.TypingStats().ShedQueue == 2 })
	for i := 1; i <= 1+queue; i++ {
		f := p.next(t)
		if ms := f.GetDeliver().GetMessages(); len(ms) != 1 || ms[0].Seq != uint64(i) {
			t.Fatalf("frame %d: %v", i, f)
		}
	}
	if f := p.next(t); f.GetResync() == nil {
		t.Fatalf("after the queued messages: %v, want a Resync", f)
	}
	// Room again: typing flows.
	typing(false)
	if f := p.next(t); f.GetTyping() == nil || f.GetTyping().Typing {
		t.Fatalf("want typing false, got %v", f)
	}
	poll.Until(t, 20*time.Second, "2 shed, 1 pushed", func() bool {
		st := e.srv.TypingStats()
		return st.ShedQueue == 2 && st.Pushed == 1
	})
}

// blockingSink holds the hub's delivery goroutine in its first Deliver
// until released, so deliveries pile up in the subscription.
type blockingSink struct {
	entered  chan struct{}
	release  chan struct{}
	once     sync.Once
	mu       sync.Mutex
	messages int
	typing   int
}

func (b *blockingSink) Deliver(d *syncpb.Deliver) {
	b.once.Do(func() { close(b.entered); <-b.release })
	b.mu.Lock()
	b.messages += len(d.Messages)
	b.typing += len(d.Typing)
	b.mu.Unlock()
}

func (b *blockingSink) Lost() {}

// An edge that falls behind on a user's deliveries (its NATS backlog for
// the subscription reaches typingShedBacklog) drops the typing events and
// passes every message on.
func TestHubShedsTypingWhenBehind(t *testing.T) {
	e, _ := newTypingEnv(t, nil)
	hub := e.srv.cfg.Hub
	sink := &blockingSink{entered: make(chan struct{}), release: make(chan struct{})}
	cancel, err := hub.Subscribe(t.Context(), "u_b", sink)
	if err != nil {
		t.Fatal(err)
	}
	defer cancel()
	const n = 1 + typingShedBacklog + 8
	pub := func(i int) {
		b, _ := proto.Marshal(&syncpb.Deliver{
			Messages: []*syncpb.Message{{ConvId: "c_1", Seq: uint64(i)}},
			Typing:   []*syncpb.Typing{{ConvId: "c_1", UserId: "u_a", Typing: true}},
		})
		if err := e.nc.Publish(syncproto.UserSubject("local", "u_b"), b); err != nil {
			t.Fatal(err)
		}
	}
	pub(1) // passed on (nothing behind it), then holds the delivery goroutine
	select {
	case <-sink.entered:
	case <-time.After(20 * time.Second):
		t.Fatal("first delivery not within 20s")
	}
	for i := 2; i <= n; i++ {
		pub(i)
	}
	if err := e.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	hub.mu.Lock()
	sub := hub.users["u_b"].sub
	hub.mu.Unlock()
	poll.Until(t, 20*time.Second, "backlog", func() bool { m, _, _ := sub.Pending(); return m == n })
	close(sink.release)
	poll.Until(t, 20*time.Second, "all messages", func() bool { sink.mu.Lock(); defer sink.mu.Unlock(); return sink.messages == n })
	// Pending counts the delivery being handled: delivery k (from 2) sees
	// n-k+1, and is shed while that is at least the backlog limit.
	shed := n - typingShedBacklog
	sink.mu.Lock()
	defer sink.mu.Unlock()
	if hub.TypingShed() != uint64(shed) || sink.typing != n-shed {
		t.Fatalf("shed %d, typing passed %d; want %d and %d", hub.TypingShed(), sink.typing, shed, n-shed)
	}
}

// While the edge says it is overloaded, typing is dropped both ways and
// messages are not.
func TestTypingShedWhileOverloaded(t *testing.T) {
	var over atomic.Bool
	e, pc := newTypingEnv(t, func(c *Config) { c.Overloaded = over.Load })
	p := e.connect("u_b", "d_b", 8)
	over.Store(true)
	p.send(typingFrame("c_1", true, 0))
	e.publishTyping("u_b", &syncpb.Typing{ConvId: "c_1", UserId: "u_a", DeviceId: "d_a", Typing: true})
	e.publish("u_b", &syncpb.Message{ConvId: "c_1", Seq: 1, MsgId: "m", Body: []byte("x")})
	if f := p.next(t); f.GetDeliver() == nil {
		t.Fatalf("want the message, got %v", f)
	}
	poll.Until(t, 20*time.Second, "typing shed both ways", func() bool {
		st := e.srv.TypingStats()
		return st.Overloaded == 1 && st.ShedLoad == 1
	})
	over.Store(false)
	p.send(typingFrame("c_1", true, 0))
	e.publishTyping("u_b", &syncpb.Typing{ConvId: "c_1", UserId: "u_a", DeviceId: "d_a", Typing: true})
	if f := p.next(t); f.GetTyping() == nil {
		t.Fatalf("want typing, got %v", f)
	}
	poll.Until(t, 20*time.Second, "published", func() bool { return len(pc.published()) == 1 })
	poll.Until(t, 20*time.Second, "1 published, 1 pushed", func() bool {
		st := e.srv.TypingStats()
		return st.Published == 1 && st.Pushed == 1
	})
}
