package main

// End-to-end tests of device sessions: the Go SDK (client) over real
// WebSocket connections to a real serve system.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/client"
	"github.com/parley-chat/parley/client/rest"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// inbox records what OnMessage handed the app.
type inbox struct {
	mu   sync.Mutex
	msgs map[string][]*syncpb.Message
	ch   chan struct{}
}

func newInbox() *inbox {
	return &inbox{msgs: map[string][]*syncpb.Message{}, ch: make(chan struct{}, 1)}
}

func (b *inbox) add(m *syncpb.Message) {
	b.mu.Lock()
	b.msgs[m.ConvId] = append(b.msgs[m.ConvId], m)
	b.mu.Unlock()
	select {
	case b.ch <- struct{}{}:
	default:
	}
}

func (b *inbox) get(conv string) []*syncpb.Message {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.msgs[conv])
}

// waitFor waits until the inbox holds n messages of conv.
func (b *inbox) waitFor(t *testing.T, conv string, n int, what string) []*syncpb.Message {
	t.Helper()
	deadline := time.After(60 * time.Second)
	for {
		if got := b.get(conv); len(got) >= n {
			return got
		}
		select {
		case <-b.ch:
		case <-deadline:
			t.Fatalf("%s: %d of %d messages after 60s", what, len(b.get(conv)), n)
		}
	}
}

// checkOnceInOrder fails unless msgs are seqs 1..len, each once.
func checkOnceInOrder(t *testing.T, what string, msgs []*syncpb.Message) {
	t.Helper()
	for i, m := range msgs {
		if m.Seq != uint64(i+1) {
			t.Fatalf("%s: message %d has seq %d (duplicate, gap or reorder)", what, i, m.Seq)
		}
	}
}

// wsDevice is a user's device session over WebSocket.
type wsDevice struct {
	c     *client.Client
	box   *inbox
	rest  *rest.Client
	sess  *rest.Session
	drops *dropper
}

// dropper lets a test cut a device's current connection, as a network
// failure would.
type dropper struct {
	mu sync.Mutex
	t  client.Transport
}

func (d *dropper) dial(inner client.Dialer) client.Dialer {
	return func(ctx context.Context) (client.Transport, error) {
		t, err := inner(ctx)
		if err == nil {
			d.mu.Lock()
			d.t = t
			d.mu.Unlock()
		}
		return t, err
	}
}

func (d *dropper) drop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.t != nil {
		_ = d.t.Close(nil)
	}
}

func (s *testSystem) device(t *testing.T, rc *rest.Client, sess *rest.Session, marks map[string]uint64) *wsDevice {
	t.Helper()
	return s.deviceOver(t, "ws", rc, sess, marks)
}

// dialer returns the SDK dialer of transport ("ws", "quic" or "wt") to
// the system's edge, trusting its dev certificate by hash.
func (s *testSystem) dialer(transport string) client.Dialer {
	opts := client.QUICOptions{TLS: client.PinnedTLS(s.edge.CertHashes()...)}
	switch transport {
	case "quic":
		return client.QUIC(s.edge.UDPAddr().String(), opts)
	case "wt":
		return client.WebTransport("https://"+s.edge.UDPAddr().String()+"/v1/wt", opts)
	}
	return client.WebSocket("ws" + s.base[len("http"):] + "/v1/ws")
}

func (s *testSystem) deviceOver(t *testing.T, transport string, rc *rest.Client, sess *rest.Session, marks map[string]uint64) *wsDevice {
	t.Helper()
	d := &wsDevice{box: newInbox(), rest: rc, sess: sess, drops: &dropper{}}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var err error
	d.c, err = client.Dial(ctx, client.Config{
		Dial:       d.drops.dial(s.dialer(transport)),
		Token:      func(context.Context) (string, error) { a, _ := rc.Tokens(); return a, nil },
		DeviceID:   sess.Device.ID,
		Watermarks: marks,
		OnMessage:  d.box.add,
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.c.Close() })
	return d
}

func TestSessionsGroupConversationOverWebSocket(t *testing.T) {
	s := startTestSystem(t, "", nil)
	ctx := t.Context()
	names := []string{"ana", "bo", "cy"}
	devs := make([]*wsDevice, len(names))
	var ids []string
	for i, n := range names {
		rc, sess := s.user(t, "acme", n)
		devs[i] = s.device(t, rc, sess, nil)
		ids = append(ids, sess.User.ID)
	}
	g, err := devs[0].rest.CreateConversation(ctx, rest.NewConversation{Type: "group", Title: "live", MemberIDs: ids[1:]})
	if err != nil {
		t.Fatal(err)
	}
	const each = 20
	var wg sync.WaitGroup
	for i, d := range devs {
		wg.Go(func() {
			for j := range each {
				if _, err := d.c.Send(ctx, &syncpb.SendRequest{ConvId: g.ID, Body: fmt.Appendf(nil, "%s %d", names[i], j)}); err != nil {
					t.Errorf("%s send %d: %v", names[i], j, err)
					return
				}
			}
		})
	}
	wg.Wait()
	h, err := devs[0].rest.History(ctx, rest.HistoryRequest{ConvID: g.ID, Limit: 1, Backward: true})
	if err != nil {
		t.Fatal(err)
	}
	total := int(h.LastSeq)
	var first []*syncpb.Message
	for i, d := range devs {
		got := d.box.waitFor(t, g.ID, total, names[i])
		checkOnceInOrder(t, names[i], got)
		if len(got) != total {
			t.Fatalf("%s got %d messages, want %d", names[i], len(got), total)
		}
		if first == nil {
			first = got
			continue
		}
		for k := range got {
			if got[k].MsgId != first[k].MsgId {
				t.Fatalf("%s and %s differ at seq %d", names[0], names[i], k+1)
			}
		}
	}
}

// Devices whose connections are cut at random moments (including between
// the catch-up and the first live push) end with every acknowledged
// message exactly once, in order.
func TestSessionsResumeAfterDrops(t *testing.T) {
	s := startTestSystem(t, "", nil)
	ctx := t.Context()
	anaRC, anaS := s.user(t, "acme", "ana")
	boRC, boS := s.user(t, "acme", "bo")
	g, err := anaRC.CreateConversation(ctx, rest.NewConversation{Type: "group", Title: "flaky", MemberIDs: []string{boS.User.ID}})
	if err != nil {
		t.Fatal(err)
	}
	ana := s.device(t, anaRC, anaS, nil)
	bo := s.device(t, boRC, boS, nil)
	stop := make(chan struct{})
	var chaos sync.WaitGroup
	for _, d := range []*wsDevice{ana, bo} {
		chaos.Go(func() {
			for {
				select {
				case <-stop:
					return
				case <-time.After(time.Duration(rand.IntN(150)+5) * time.Millisecond):
					d.drops.drop()
				}
			}
		})
	}
	const n = 150
	acked := map[uint64]bool{}
	for i := range n {
		sender := ana
		if i%3 == 0 {
			sender = bo
		}
		ack, err := sender.c.Send(ctx, &syncpb.SendRequest{ConvId: g.ID, Body: fmt.Appendf(nil, "m%d", i)})
		if err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
		if acked[ack.Seq] {
			t.Fatalf("seq %d acked twice", ack.Seq)
		}
		acked[ack.Seq] = true
	}
	close(stop)
	chaos.Wait()
	h, err := anaRC.History(ctx, rest.HistoryRequest{ConvID: g.ID, Limit: 1, Backward: true})
	if err != nil {
		t.Fatal(err)
	}
	for name, d := range map[string]*wsDevice{"ana": ana, "bo": bo} {
		got := d.box.waitFor(t, g.ID, int(h.LastSeq), name)
		checkOnceInOrder(t, name, got)
		if d.c.Connections() < 3 {
			t.Logf("%s reconnected only %d times", name, d.c.Connections())
		}
	}
	// A device that was off for the whole conversation catches up from
	// its (empty) watermarks on connect.
	boRC2 := rest.New(s.base)
	sess2, err := boRC2.Login(ctx, rest.LoginRequest{Workspace: "acme", Username: "bo", Password: testPassword, DeviceName: "tablet"})
	if err != nil {
		t.Fatal(err)
	}
	tablet := s.device(t, boRC2, sess2, nil)
	checkOnceInOrder(t, "tablet", tablet.box.waitFor(t, g.ID, int(h.LastSeq), "tablet"))
}

// sendAll has every device send n messages to conv concurrently.
func sendAll(t *testing.T, conv string, n int, devs map[string]*wsDevice) {
	t.Helper()
	var wg sync.WaitGroup
	for name, d := range devs {
		wg.Go(func() {
			for j := range n {
				if _, err := d.c.Send(t.Context(), &syncpb.SendRequest{ConvId: conv, Body: fmt.Appendf(nil, "%s %d", name, j)}); err != nil {
					t.Errorf("%s send %d: %v", name, j, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// lastSeq reads a conversation's last seq over the HTTP API.
func lastSeq(t *testing.T, rc *rest.Client, conv string) int {
	t.Helper()
	h, err := rc.History(t.Context(), rest.HistoryRequest{ConvID: conv, Limit: 1, Backward: true})
	if err != nil {
		t.Fatal(err)
	}
	return int(h.LastSeq)
}

// Raw QUIC, WebTransport and WebSocket devices in one group conversation
// see every message once, in order.
func TestSessionsOverQUICWebTransportAndWebSocket(t *testing.T) {
	s := startTestSystem(t, "", nil)
	devs := map[string]*wsDevice{}
	var ids []string
	for _, tr := range []string{"quic", "wt", "ws"} {
		rc, sess := s.user(t, "acme", "u"+tr)
		devs[tr] = s.deviceOver(t, tr, rc, sess, nil)
		ids = append(ids, sess.User.ID)
	}
	g, err := devs["quic"].rest.CreateConversation(t.Context(), rest.NewConversation{Type: "group", Title: "mixed", MemberIDs: ids[1:]})
	if err != nil {
		t.Fatal(err)
	}
	sendAll(t, g.ID, 15, devs)
	total := lastSeq(t, devs["ws"].rest, g.ID)
	for tr, d := range devs {
		got := d.box.waitFor(t, g.ID, total, tr)
		checkOnceInOrder(t, tr, got)
		if len(got) != total {
			t.Fatalf("%s: %d messages, want %d", tr, len(got), total)
		}
		if d.c.Connections() != 1 {
			t.Errorf("%s: %d connections, want 1", tr, d.c.Connections())
		}
	}
}

// A raw-QUIC device moves to new UDP sockets while messages flow both
// ways: same connection (no reconnect), nothing lost or repeated. A move
// the edge refuses (quic-go tracks at most 3 new paths per 5 s, against
// address churn) falls back to reconnect-and-resume, also without loss.
func TestSessionsQUICMigration(t *testing.T) {
	s := startTestSystem(t, "", nil)
	phoneRC, phoneS := s.user(t, "acme", "phone")
	peerRC, peerS := s.user(t, "acme", "peer")
	phone := s.deviceOver(t, "quic", phoneRC, phoneS, nil)
	peer := s.deviceOver(t, "ws", peerRC, peerS, nil)
	g, err := phoneRC.CreateConversation(t.Context(), rest.NewConversation{Type: "group", Title: "moving", MemberIDs: []string{peerS.User.ID}})
	if err != nil {
		t.Fatal(err)
	}
	both := map[string]*wsDevice{"phone": phone, "peer": peer}
	migrated := make(chan error, 1)
	go func() {
		for i := range 2 {
			peer.box.waitFor(t, g.ID, 15*(i+1), "peer") // mid-conversation
			before := phone.c.LocalAddr()
			if err := phone.c.Migrate(t.Context()); err != nil {
				migrated <- fmt.Errorf("migrate %d: %w", i, err)
				return
			}
			if after := phone.c.LocalAddr(); before == nil || after == nil || before.String() == after.String() {
				migrated <- fmt.Errorf("migrate %d: local address %v -> %v", i, before, after)
				return
			}
		}
		migrated <- nil
	}()
	sendAll(t, g.ID, 40, both)
	if err := <-migrated; err != nil {
		t.Fatal(err)
	}
	total := lastSeq(t, peerRC, g.ID)
	for name, d := range both {
		checkOnceInOrder(t, name, d.box.waitFor(t, g.ID, total, name))
	}
	if n := phone.c.Connections(); n != 1 {
		t.Fatalf("the phone reconnected: %d connections, want 1 (migration should keep it)", n)
	}

	// A third move within 5 s: whether the edge takes it or not, nothing
	// is lost; if not, the client reconnects.
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	err = phone.c.Migrate(ctx)
	cancel()
	t.Logf("third move: %v (connections %d)", err, phone.c.Connections())
	sendAll(t, g.ID, 10, both)
	total = lastSeq(t, peerRC, g.ID)
	for name, d := range both {
		checkOnceInOrder(t, name, d.box.waitFor(t, g.ID, total, name))
	}
	if err != nil && phone.c.Connections() < 2 {
		t.Fatalf("a failed migration must reconnect; connections %d", phone.c.Connections())
	}
}
