package e2e_test

// End-to-end tests of typing indicators: the Go SDK over raw QUIC,
// WebTransport (datagrams) and WebSocket (frames) against a real serve
// system (edge, core, NATS).

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/parley-chat/parley/client"
	"github.com/parley-chat/parley/client/rest"
	"github.com/parley-chat/parley/internal/poll"
	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/streamframe"
	"github.com/parley-chat/parley/syncproto/syncpb"
	"github.com/parley-chat/parley/system"
)

// typingLog records what OnTyping handed the app.
type typingLog struct {
	mu  sync.Mutex
	got []*syncpb.Typing
	ch  chan struct{}
}

func newTypingLog() *typingLog { return &typingLog{ch: make(chan struct{}, 1)} }

func (l *typingLog) add(t *syncpb.Typing) {
	l.mu.Lock()
	l.got = append(l.got, t)
	l.mu.Unlock()
	select {
	case l.ch <- struct{}{}:
	default:
	}
}

func (l *typingLog) all() []*syncpb.Typing {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]*syncpb.Typing(nil), l.got...)
}

// has reports whether an indicator of user in conv with typing was seen.
func (l *typingLog) has(conv, user string, typing bool) bool {
	for _, t := range l.all() {
		if t.ConvId == conv && t.UserId == user && t.Typing == typing {
			return true
		}
	}
	return false
}

// waitFor waits until has(conv, user, typing), failing after a deadline.
func (l *typingLog) waitFor(t *testing.T, what, conv, user string, typing bool) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for !l.has(conv, user, typing) {
		select {
		case <-l.ch:
		case <-deadline:
			t.Fatalf("%s: no typing=%v from %s after 30s (got %v)", what, typing, user, l.all())
		}
	}
}

type typist struct {
	name string
	user string
	c    *client.Client
	log  *typingLog
}

// typingDevice logs a new device of user in (one rest.Client each, so
// tokens are the device's own) and dials it over transport.
func (s *testSystem) typingDevice(t *testing.T, transport, workspace, user string, ttl time.Duration) *typist {
	t.Helper()
	rc := rest.New(s.base)
	sess, err := rc.Login(t.Context(), rest.LoginRequest{Workspace: workspace, Username: user, Password: testPassword, DeviceName: transport})
	if err != nil {
		t.Fatal(err)
	}
	d := &typist{name: user + "/" + transport, user: sess.User.ID, log: newTypingLog()}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	d.c, err = client.Dial(ctx, client.Config{
		Dial:       s.Dialer(transport),
		Token:      func(context.Context) (string, error) { a, _ := rc.Tokens(); return a, nil },
		DeviceID:   sess.Device.ID,
		OnTyping:   d.log.add,
		TypingTTL:  ttl,
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.c.Close() })
	return d
}

// typeUntilSeen says "typing" in conv until every one of to has seen it:
// datagrams may be lost, so it repeats once a second (within the
// device's rate), as an app renewing its indicator would.
func typeUntilSeen(t *testing.T, from *typist, conv string, to ...*typist) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if err := from.c.Typing(t.Context(), conv, true); err != nil {
			t.Fatalf("%s: Typing: %v", from.name, err)
		}
		wait := time.After(time.Second)
	check:
		for {
			seen := true
			for _, d := range to {
				seen = seen && d.log.has(conv, from.user, true)
			}
			if seen {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s's typing not seen by all within 30s", from.name)
			}
			select {
			case <-wait:
				break check
			case <-to[0].log.ch:
			case <-time.After(20 * time.Millisecond): // the others' logs
			}
		}
	}
}

// QUIC, WebTransport and WebSocket devices in one group see each other's
// typing, and so does the typist's own other device, but never the typing
// device itself; a non-member's typing reaches nobody; an indicator that
// is not renewed ends by itself in the SDK.
func TestSessionsTypingAcrossTransports(t *testing.T) {
	s := startTestSystem(t, "", noCPUShedding)
	var ids []string
	for _, u := range []string{"uq", "uwt", "uws", "stranger"} {
		_, sess := s.User(t, "acme", u)
		ids = append(ids, sess.User.ID)
	}
	quic := s.typingDevice(t, "quic", "acme", "uq", 0)
	wt := s.typingDevice(t, "wt", "acme", "uwt", 0)
	ws := s.typingDevice(t, "ws", "acme", "uws", 400*time.Millisecond) // short TTL: its indicator lapses
	quic2 := s.typingDevice(t, "ws", "acme", "uq", 0)                  // uq's other device
	stranger := s.typingDevice(t, "quic", "acme", "stranger", 0)
	rc, _ := s.User(t, "acme", "owner")
	g, err := rc.CreateConversation(t.Context(), rest.NewConversation{Type: "group", Title: "typing", MemberIDs: ids[:3]})
	if err != nil {
		t.Fatal(err)
	}
	typeUntilSeen(t, quic, g.ID, wt, ws, quic2)
	typeUntilSeen(t, wt, g.ID, quic, ws, quic2)
	typeUntilSeen(t, ws, g.ID, quic, wt, quic2)
	// uws never renewed: its indicator lapses at every receiver.
	for _, d := range []*typist{quic, wt, quic2} {
		d.log.waitFor(t, d.name+" sees uws's indicator lapse", g.ID, ws.user, false)
	}
	// A stranger's typing goes nowhere. It travels the same path (the same
	// edge connection, the same shard queue) as the member's marker after
	// it, so once the marker arrived the stranger's would have too.
	for range 3 {
		if err := stranger.c.Typing(t.Context(), g.ID, true); err != nil {
			t.Fatal(err)
		}
	}
	poll.Until(t, 30*time.Second, "the core dropped the stranger's typing", func() bool { return s.node.TypingStats().Strangers >= 1 })
	if err := wt.c.Typing(t.Context(), g.ID, false); err != nil {
		t.Fatal(err)
	}
	for _, d := range []*typist{quic, ws, quic2} {
		d.log.waitFor(t, d.name+" sees uwt stop", g.ID, wt.user, false)
	}
	for _, d := range []*typist{quic, wt, ws, quic2, stranger} {
		for _, tt := range d.log.all() {
			if tt.UserId == stranger.user {
				t.Errorf("%s saw the stranger's typing: %v", d.name, tt)
			}
			if d == quic && tt.UserId == quic.user {
				t.Errorf("the typing device got its own typing back: %v", tt)
			}
			if d == stranger {
				t.Errorf("the stranger saw typing in a conversation it is not in: %v", tt)
			}
		}
	}
	st := s.edge.TypingStats()
	t.Logf("edge typing stats %+v; core %+v", st, s.node.TypingStats())
	if st.Datagrams == 0 || st.SentAsDgram == 0 {
		t.Errorf("no typing datagrams in or out: %+v", st)
	}
}

// noCPUShedding keeps a busy test machine from making the edge shed
// typing for CPU (that rule has its own tests in edge/session and
// edge/internal/schedload): these tests are about where typing goes.
func noCPUShedding(c *system.Config) { c.Edge.TypingShedWait = -1 }

// A device flooding typing datagrams, malformed ones among them, is cut
// to its rate; its session and everyone else's keep working.
func TestSessionsTypingFloodIsRateLimited(t *testing.T) {
	s := startTestSystem(t, "", noCPUShedding)
	rc, floodS := s.User(t, "acme", "flood")
	_, peerS := s.User(t, "acme", "peer")
	peer := s.typingDevice(t, "wt", "acme", "peer", 0)
	g, err := rc.CreateConversation(t.Context(), rest.NewConversation{Type: "group", Title: "flood", MemberIDs: []string{peerS.User.ID}})
	if err != nil {
		t.Fatal(err)
	}
	// The flooder is a raw QUIC connection, so it can send bad bytes too.
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	tlsConf := client.PinnedTLS(s.edge.CertHashes()...)
	tlsConf.NextProtos = []string{streamframe.ALPN}
	conn, err := quic.DialAddr(ctx, s.edge.UDPAddr().String(), tlsConf, &quic.Config{EnableDatagrams: true})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseWithError(0, "")
	ctrl := rawHello(ctx, t, conn, rc)
	good, _ := syncproto.AppendDatagram(nil, &syncpb.Typing{ConvId: g.ID, Typing: true})
	const flood = 3000
	start := time.Now()
	for i := range flood {
		b := good
		if i%10 == 0 {
			b = []byte{0x05, 0xff, 0xff} // malformed
		}
		if err := conn.SendDatagram(b); err != nil {
			t.Fatal(err)
		}
	}
	// The session is up: a send on it is acked, and reaches the peer.
	if err := ctrl.WriteFrame(ctx, &syncpb.Frame{Id: 2, Body: &syncpb.Frame_Send{Send: &syncpb.SendRequest{
		ConvId: g.ID, ClientMsgId: "after-flood", Body: []byte("still here")}}}); err != nil {
		t.Fatal(err)
	}
	for {
		f, err := ctrl.ReadFrame(ctx)
		if err != nil {
			t.Fatalf("the flooder's session: %v", err)
		}
		if f.Id == 2 {
			if f.GetSendAck() == nil {
				t.Fatalf("send after the flood: %v", f)
			}
			break
		}
	}
	// Every datagram that arrived was counted; datagrams may be lost under
	// a flood, so wait only for the counts to settle.
	var st, prev = s.edge.TypingStats(), s.edge.TypingStats()
	poll.Until(t, 30*time.Second, "the flood counted", func() bool {
		prev, st = st, s.edge.TypingStats()
		return st.Datagrams > 0 && st == prev && st.Received == st.Malformed+st.RateLimited+st.Overloaded+st.Published+st.Invalid+st.Unpublished
	})
	elapsed := time.Since(start)
	t.Logf("flood of %d datagrams: %+v (%v)", flood, st, elapsed)
	maxPublished := uint64(4 + 2*elapsed.Seconds() + 1) // burst, then 2/s
	if st.Published > maxPublished || st.Malformed == 0 || st.RateLimited == 0 {
		t.Fatalf("published %d (at most %d), malformed %d, rate-limited %d", st.Published, maxPublished, st.Malformed, st.RateLimited)
	}
	peer.log.waitFor(t, "peer sees the flooder typing", g.ID, floodS.User.ID, true)
	// The peer's session works too: it reads the message sent after.
	h, err := peer.c.History(ctx, &syncpb.HistoryRequest{ConvId: g.ID, Direction: syncpb.Direction_DIRECTION_FORWARD})
	if err != nil || len(h.Messages) != 1 || string(h.Messages[0].Body) != "still here" {
		t.Fatalf("history after the flood: %v, %v", h, err)
	}
}

// rawHello opens a control stream on conn and says hello with rc's token.
func rawHello(ctx context.Context, t *testing.T, conn *quic.Conn, rc *rest.Client) *streamframe.Conn {
	t.Helper()
	str, err := conn.OpenStreamSync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c := streamframe.NewConn(str, syncproto.MaxFrameSize)
	tok, _ := rc.Tokens()
	if err := c.WriteFrame(ctx, &syncpb.Frame{Id: 1, Body: &syncpb.Frame_Hello{Hello: syncproto.NewHello(tok, "")}}); err != nil {
		t.Fatal(err)
	}
	f, err := c.ReadFrame(ctx)
	if err != nil || f.GetWelcome() == nil {
		t.Fatalf("hello: %v %v", f, err)
	}
	return c
}
