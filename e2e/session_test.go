package e2e_test

// End-to-end tests of device sessions: the Go SDK (client) over real
// WebSocket connections to a real serve system.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	quicproxy "github.com/quic-go/quic-go/integrationtests/tools/proxy"
	"google.golang.org/protobuf/proto"

	"github.com/parley-chat/parley/client"
	"github.com/parley-chat/parley/client/rest"
	"github.com/parley-chat/parley/internal/poll"
	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
	"github.com/parley-chat/parley/system"
	"github.com/parley-chat/parley/systest"
)

// checkOnceInOrder fails unless msgs are seqs 1..len, each once.
func checkOnceInOrder(t *testing.T, what string, msgs []*syncpb.Message) {
	t.Helper()
	for i, m := range msgs {
		if m.Seq != uint64(i+1) {
			t.Fatalf("%s: message %d has seq %d (duplicate, gap or reorder)", what, i, m.Seq)
		}
	}
}

// wsDevice is a user's device session (over WebSocket unless said).
type wsDevice = systest.Device

func (s *testSystem) device(t *testing.T, rc *rest.Client, sess *rest.Session, marks map[string]uint64) *wsDevice {
	t.Helper()
	return s.Device(t, "ws", rc, sess, marks)
}

func TestSessionsGroupConversationOverWebSocket(t *testing.T) {
	s := startTestSystem(t, "", nil)
	ctx := t.Context()
	names := []string{"ana", "bo", "cy"}
	devs := make([]*wsDevice, len(names))
	var ids []string
	for i, n := range names {
		rc, sess := s.User(t, "acme", n)
		devs[i] = s.device(t, rc, sess, nil)
		ids = append(ids, sess.User.ID)
	}
	g, err := devs[0].Rest.CreateConversation(ctx, rest.NewConversation{Type: "group", Title: "live", MemberIDs: ids[1:]})
	if err != nil {
		t.Fatal(err)
	}
	const each = 20
	var wg sync.WaitGroup
	for i, d := range devs {
		wg.Go(func() {
			for j := range each {
				if _, err := d.C.Send(ctx, &syncpb.SendRequest{ConvId: g.ID, Body: fmt.Appendf(nil, "%s %d", names[i], j)}); err != nil {
					t.Errorf("%s send %d: %v", names[i], j, err)
					return
				}
			}
		})
	}
	wg.Wait()
	h, err := devs[0].Rest.History(ctx, rest.HistoryRequest{ConvID: g.ID, Limit: 1, Backward: true})
	if err != nil {
		t.Fatal(err)
	}
	total := int(h.LastSeq)
	var first []*syncpb.Message
	for i, d := range devs {
		got := d.Box.WaitFor(t, g.ID, total, names[i])
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
	anaRC, anaS := s.User(t, "acme", "ana")
	boRC, boS := s.User(t, "acme", "bo")
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
					d.Drop()
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
		ack, err := sender.C.Send(ctx, &syncpb.SendRequest{ConvId: g.ID, Body: fmt.Appendf(nil, "m%d", i)})
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
		got := d.Box.WaitFor(t, g.ID, int(h.LastSeq), name)
		checkOnceInOrder(t, name, got)
		if d.C.Connections() < 3 {
			t.Logf("%s reconnected only %d times", name, d.C.Connections())
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
	checkOnceInOrder(t, "tablet", tablet.Box.WaitFor(t, g.ID, int(h.LastSeq), "tablet"))
}

// sendAll has every device send n messages to conv concurrently.
func sendAll(t *testing.T, conv string, n int, devs map[string]*wsDevice) {
	t.Helper()
	var wg sync.WaitGroup
	for name, d := range devs {
		wg.Go(func() {
			for j := range n {
				if _, err := d.C.Send(t.Context(), &syncpb.SendRequest{ConvId: conv, Body: fmt.Appendf(nil, "%s %d", name, j)}); err != nil {
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
		rc, sess := s.User(t, "acme", "u"+tr)
		devs[tr] = s.Device(t, tr, rc, sess, nil)
		ids = append(ids, sess.User.ID)
	}
	g, err := devs["quic"].Rest.CreateConversation(t.Context(), rest.NewConversation{Type: "group", Title: "mixed", MemberIDs: ids[1:]})
	if err != nil {
		t.Fatal(err)
	}
	sendAll(t, g.ID, 15, devs)
	total := lastSeq(t, devs["ws"].Rest, g.ID)
	for tr, d := range devs {
		got := d.Box.WaitFor(t, g.ID, total, tr)
		checkOnceInOrder(t, tr, got)
		if len(got) != total {
			t.Fatalf("%s: %d messages, want %d", tr, len(got), total)
		}
		if d.C.Connections() != 1 {
			t.Errorf("%s: %d connections, want 1", tr, d.C.Connections())
		}
	}
}

// A raw-QUIC device moves to new UDP sockets three times while messages
// flow both ways: same connection (no reconnect), nothing lost or
// repeated. (The SDK's zero-length client connection IDs are what let a
// connection move more than twice: client/migrate_test.go.)
func TestSessionsQUICMigration(t *testing.T) {
	s := startTestSystem(t, "", nil)
	phoneRC, phoneS := s.User(t, "acme", "phone")
	peerRC, peerS := s.User(t, "acme", "peer")
	phone := s.Device(t, "quic", phoneRC, phoneS, nil)
	peer := s.Device(t, "ws", peerRC, peerS, nil)
	g, err := phoneRC.CreateConversation(t.Context(), rest.NewConversation{Type: "group", Title: "moving", MemberIDs: []string{peerS.User.ID}})
	if err != nil {
		t.Fatal(err)
	}
	both := map[string]*wsDevice{"phone": phone, "peer": peer}
	migrated := make(chan error, 1)
	go func() {
		for i := range 2 {
			peer.Box.WaitFor(t, g.ID, 15*(i+1), "peer") // mid-conversation
			before := phone.C.LocalAddr()
			if err := phone.C.Migrate(t.Context()); err != nil {
				migrated <- fmt.Errorf("migrate %d: %w", i, err)
				return
			}
			if after := phone.C.LocalAddr(); before == nil || after == nil || before.String() == after.String() {
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
		checkOnceInOrder(t, name, d.Box.WaitFor(t, g.ID, total, name))
	}
	if n := phone.C.Connections(); n != 1 {
		t.Fatalf("the phone reconnected: %d connections, want 1 (migration should keep it)", n)
	}

	// A third move within 5 s of the others.
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	err = phone.C.Migrate(ctx)
	cancel()
	if err != nil {
		t.Fatalf("third move: %v", err)
	}
	sendAll(t, g.ID, 10, both)
	total = lastSeq(t, peerRC, g.ID)
	for name, d := range both {
		checkOnceInOrder(t, name, d.Box.WaitFor(t, g.ID, total, name))
	}
	if n := phone.C.Connections(); n != 1 {
		t.Fatalf("the phone reconnected after the third move: %d connections, want 1", n)
	}
}

// A raw-QUIC device behind 5% loss each way and 50 ms ± 20 ms delay (a
// userspace relay: this kernel has no netem) keeps delivering in order.
func TestSessionsQUICThroughLossAndDelay(t *testing.T) {
	s := startTestSystem(t, "", nil)
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	var dropped, passed atomic.Int64
	proxy := &quicproxy.Proxy{
		Conn:       udp,
		ServerAddr: s.edge.UDPAddr().(*net.UDPAddr),
		DropPacket: func(quicproxy.Direction, net.Addr, net.Addr, []byte) bool {
			if rand.IntN(100) < 5 {
				dropped.Add(1)
				return true
			}
			passed.Add(1)
			return false
		},
		DelayPacket: func(quicproxy.Direction, net.Addr, net.Addr, []byte) time.Duration {
			return 30*time.Millisecond + time.Duration(rand.IntN(41))*time.Millisecond
		},
	}
	if err := proxy.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = proxy.Close() })

	phoneRC, phoneS := s.User(t, "acme", "lossy")
	peerRC, peerS := s.User(t, "acme", "wired")
	d := &wsDevice{Box: systest.NewInbox(), Rest: phoneRC, Sess: phoneS}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	d.C, err = client.Dial(ctx, client.Config{
		Dial:      client.QUIC(proxy.LocalAddr().String(), client.QUICOptions{TLS: client.PinnedTLS(s.edge.CertHashes()...)}),
		Token:     func(context.Context) (string, error) { a, _ := phoneRC.Tokens(); return a, nil },
		DeviceID:  phoneS.Device.ID,
		OnMessage: d.Box.Add,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.C.Close() })
	peer := s.Device(t, "ws", peerRC, peerS, nil)
	g, err := phoneRC.CreateConversation(t.Context(), rest.NewConversation{Type: "group", Title: "lossy", MemberIDs: []string{peerS.User.ID}})
	if err != nil {
		t.Fatal(err)
	}
	both := map[string]*wsDevice{"lossy": d, "wired": peer}
	sendAll(t, g.ID, 15, both)
	total := lastSeq(t, peerRC, g.ID)
	for name, dev := range both {
		checkOnceInOrder(t, name, dev.Box.WaitFor(t, g.ID, total, name))
	}
	t.Logf("proxy: %d packets passed, %d dropped; the phone connected %d time(s)", passed.Load(), dropped.Load(), d.C.Connections())
	if dropped.Load() == 0 {
		t.Fatal("the proxy dropped nothing: the test did not test loss")
	}
}

// Devices on an edge that dies mid-stream (or drains) move to the other
// edge and end with every acknowledged message exactly once, in order.
func TestSessionsSurviveEdgeLoss(t *testing.T) {
	for _, tc := range []struct {
		name     string
		shutdown time.Duration // 1 ns: sessions are cut at once, no goodbye
	}{{"killed", time.Nanosecond}, {"drained", 10 * time.Second}} {
		t.Run(tc.name, func(t *testing.T) {
			s := startTestSystem(t, "", nil)
			b, stopB := s.startExtraEdge(t, tc.shutdown)
			pin := client.QUICOptions{TLS: client.PinnedTLS(append(s.edge.CertHashes(), b.CertHashes()...)...)}
			dialers := map[string]client.Dialer{
				"quic": client.Failover(client.QUIC(b.UDPAddr().String(), pin), client.QUIC(s.edge.UDPAddr().String(), pin)),
				"wt": client.Failover(client.WebTransport("https://"+b.UDPAddr().String()+"/v1/wt", pin),
					client.WebTransport("https://"+s.edge.UDPAddr().String()+"/v1/wt", pin)),
				"ws": client.Failover(client.WebSocket("ws://"+b.Addr().String()+"/v1/ws"), client.WebSocket("ws"+s.base[len("http"):]+"/v1/ws")),
			}
			devs := map[string]*wsDevice{}
			var ids []string
			var first *rest.Client
			for tr, dial := range dialers {
				rc, sess := s.User(t, "acme", "u"+tr)
				d := &wsDevice{Box: systest.NewInbox(), Rest: rc, Sess: sess}
				ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
				var err error
				d.C, err = client.Dial(ctx, client.Config{Dial: dial, DeviceID: sess.Device.ID, OnMessage: d.Box.Add,
					Token:      func(context.Context) (string, error) { a, _ := rc.Tokens(); return a, nil },
					MinBackoff: 10 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
				cancel()
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { d.C.Close() })
				devs[tr] = d
				ids = append(ids, sess.User.ID)
				first = rc
			}
			if n := b.Sessions(); n != 3 {
				t.Fatalf("edge b holds %d sessions, want 3", n)
			}
			g, err := first.CreateConversation(t.Context(), rest.NewConversation{Type: "group", Title: "edge loss", MemberIDs: ids})
			if err != nil {
				t.Fatal(err)
			}
			killed := make(chan struct{})
			go func() {
				defer close(killed)
				devs["ws"].Box.WaitFor(t, g.ID, 20, "ws") // mid-stream
				stopB()
			}()
			sendAll(t, g.ID, 25, devs)
			<-killed
			sendAll(t, g.ID, 5, devs)
			total := lastSeq(t, first, g.ID)
			if total != 3*30 {
				t.Fatalf("last seq %d, want %d: a send was lost or stored twice", total, 3*30)
			}
			for tr, d := range devs {
				checkOnceInOrder(t, tr, d.Box.WaitFor(t, g.ID, total, tr))
				if d.C.Connections() < 2 {
					t.Errorf("%s never reconnected", tr)
				}
			}
			if n := s.edge.Sessions(); n != 3 {
				t.Fatalf("the surviving edge holds %d sessions, want 3", n)
			}
		})
	}
}

// A group above the large-group size is published once per message on
// its conversation subject; each edge with members connected listens
// there and fans out locally. Members added while connected start getting
// it live; removed members stop.
func TestSessionsLargeGroupUsesConversationSubject(t *testing.T) {
	s := startTestSystem(t, "", func(c *system.Config) { c.Core.LargeGroup = 3 })
	b, _ := s.startExtraEdge(t, 10*time.Second)
	nc, err := s.node.ConnectNATS("watch")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	// Publishes that carry messages (user subjects also carry presence
	// and receipt events, which this test is not about).
	var convPubs, userPubs atomic.Int64
	counter := func(n *atomic.Int64) nats.MsgHandler {
		return func(m *nats.Msg) {
			d := &syncpb.Deliver{}
			if proto.Unmarshal(m.Data, d) == nil && len(d.Messages) > 0 {
				n.Add(1)
			}
		}
	}
	if _, err := nc.Subscribe("parley.local.conv.>", counter(&convPubs)); err != nil {
		t.Fatal(err)
	}
	if _, err := nc.Subscribe("parley.local.user.>", counter(&userPubs)); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	devs := map[string]*wsDevice{}
	var ids []string
	var owner *rest.Client
	for i := range 5 {
		rc, sess := s.User(t, "acme", fmt.Sprint("m", i))
		if i == 0 {
			owner = rc
		}
		ids = append(ids, sess.User.ID)
		dial := client.WebSocket("ws" + s.base[len("http"):] + "/v1/ws")
		if i%2 == 1 {
			dial = client.WebSocket("ws://" + b.Addr().String() + "/v1/ws")
		}
		d := &wsDevice{Box: systest.NewInbox(), Rest: rc, Sess: sess}
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		d.C, err = client.Dial(ctx, client.Config{Dial: dial, DeviceID: sess.Device.ID, OnMessage: d.Box.Add,
			Token: func(context.Context) (string, error) { a, _ := rc.Tokens(); return a, nil }})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.C.Close() })
		devs[fmt.Sprint("m", i)] = d
	}
	// Created with 4 members (large: > 3); m4 joins later.
	g, err := owner.CreateConversation(t.Context(), rest.NewConversation{Type: "group", Title: "big", MemberIDs: ids[1:4]})
	if err != nil {
		t.Fatal(err)
	}
	first := map[string]*wsDevice{"m0": devs["m0"], "m1": devs["m1"], "m2": devs["m2"], "m3": devs["m3"]}
	// Creating it told the members' edges to listen (join notices).
	waitConvs(t, "edge a", s.edge.Hub().Convs, 1)
	waitConvs(t, "edge b", b.Hub().Convs, 1)
	convPubs.Store(0)
	userPubs.Store(0)
	sendAll(t, g.ID, 10, first)
	total := lastSeq(t, owner, g.ID)
	for name, d := range first {
		checkOnceInOrder(t, name, d.Box.WaitFor(t, g.ID, total, name))
	}
	if c, u := convPubs.Load(), userPubs.Load(); c != int64(total) || u != 0 {
		t.Fatalf("%d messages went out as %d conversation-subject and %d user-subject publishes; want %d and 0", total, c, u, total)
	}

	// m4 (on edge b) joins while connected: it gets the join, then live
	// messages; m3 is removed and gets nothing after its removal.
	if _, err := owner.AddMembers(t.Context(), g.ID, []string{ids[4]}, nil); err != nil {
		t.Fatal(err)
	}
	if err := owner.RemoveMember(t.Context(), g.ID, ids[3]); err != nil {
		t.Fatal(err)
	}
	removedAt := lastSeq(t, owner, g.ID)
	now := map[string]*wsDevice{"m0": devs["m0"], "m1": devs["m1"], "m4": devs["m4"]}
	sendAll(t, g.ID, 10, now)
	total = lastSeq(t, owner, g.ID)
	for name, d := range map[string]*wsDevice{"m0": devs["m0"], "m1": devs["m1"], "m2": devs["m2"]} {
		checkOnceInOrder(t, name, d.Box.WaitFor(t, g.ID, total, name))
	}
	// m4 holds everything from seq 1 too (it catches up what preceded its
	// join) and m3 stops at its removal.
	checkOnceInOrder(t, "m4", devs["m4"].Box.WaitFor(t, g.ID, total, "m4"))
	got := devs["m3"].Box.WaitFor(t, g.ID, removedAt, "m3")
	checkOnceInOrder(t, "m3", got)
	if len(got) != removedAt {
		t.Fatalf("m3 got %d messages; it was removed at seq %d", len(got), removedAt)
	}
}

// waitConvs waits until an edge's hub listens on n conversation subjects.
func waitConvs(t *testing.T, what string, convs func() int, n int) {
	t.Helper()
	poll.NoError(t, 10*time.Second, what, func() error {
		if got := convs(); got != n {
			return fmt.Errorf("listens on %d conversation subjects, want %d", got, n)
		}
		return nil
	})
}

// switchable dials through inner while on, and fails while off (the
// device lost its network).
type switchable struct {
	on    atomic.Bool
	inner client.Dialer
}

func (s *switchable) dial(ctx context.Context) (client.Transport, error) {
	if !s.on.Load() {
		return nil, errors.New("network down")
	}
	return s.inner(ctx)
}

// Sends queued while offline survive an app restart through the outbox
// file: the next run sends them, the peer gets each once, OnAck reports.
func TestSessionsOutboxSurvivesRestart(t *testing.T) {
	s := startTestSystem(t, "", nil)
	rc, sess := s.User(t, "acme", "offline")
	peerRC, peerS := s.User(t, "acme", "peer")
	peer := s.Device(t, "ws", peerRC, peerS, nil)
	g, err := rc.CreateConversation(t.Context(), rest.NewConversation{Type: "group", Title: "outbox", MemberIDs: []string{peerS.User.ID}})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "outbox")
	netw := &switchable{inner: s.Dialer("quic")}
	netw.on.Store(true)
	drops := &systest.Dropper{}
	cfg := client.Config{Dial: drops.Dial(netw.dial), DeviceID: sess.Device.ID, OutboxPath: path,
		Token:      func(context.Context) (string, error) { a, _ := rc.Tokens(); return a, nil },
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond}
	c, err := client.Dial(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Send(t.Context(), &syncpb.SendRequest{ConvId: g.ID, Body: []byte("online")}); err != nil {
		t.Fatal(err)
	}
	netw.on.Store(false)
	drops.Drop()
	for i := range 3 {
		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
		_, err := c.Send(ctx, &syncpb.SendRequest{ConvId: g.ID, Body: fmt.Appendf(nil, "offline %d", i)})
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("offline send %d: %v, want it queued past its deadline", i, err)
		}
	}
	if n := c.Pending(); n != 3 {
		t.Fatalf("%d sends pending, want 3", n)
	}
	c.Close() // the app stops

	netw.on.Store(true)
	acks := make(chan *syncpb.SendAck, 3)
	cfg.OnAck = func(req *syncpb.SendRequest, ack *syncpb.SendAck, err error) {
		if err != nil {
			t.Errorf("restored send %q: %v", req.Body, err)
			return
		}
		acks <- ack
	}
	c, err = client.Dial(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := range 3 {
		select {
		case ack := <-acks:
			if ack.Seq != uint64(i+2) {
				t.Fatalf("restored send %d acked with seq %d, want %d (in order)", i, ack.Seq, i+2)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("restored send %d never acked", i)
		}
	}
	got := peer.Box.WaitFor(t, g.ID, 4, "peer")
	checkOnceInOrder(t, "peer", got)
	for i, m := range got[1:] {
		if want := fmt.Sprintf("offline %d", i); string(m.Body) != want {
			t.Fatalf("peer's message %d is %q, want %q", i+2, m.Body, want)
		}
	}
	if total := lastSeq(t, peerRC, g.ID); total != 4 {
		t.Fatalf("last seq %d, want 4: a restored send was stored twice or lost", total)
	}
}

// Idle sessions stay up on keepalives; a path that goes silent is noticed
// by the unanswered ping, and the device reconnects and resumes.
func TestSessionsKeepAliveAndDeadPath(t *testing.T) {
	s := startTestSystem(t, "", func(c *system.Config) { c.Edge.Session.KeepAlive = 150 * time.Millisecond })
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	var blackhole atomic.Bool
	proxy := &quicproxy.Proxy{Conn: udp, ServerAddr: s.edge.UDPAddr().(*net.UDPAddr),
		DropPacket: func(quicproxy.Direction, net.Addr, net.Addr, []byte) bool { return blackhole.Load() }}
	if err := proxy.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = proxy.Close() })
	rc, sess := s.User(t, "acme", "idle")
	peerRC, peerS := s.User(t, "acme", "talker")
	box := systest.NewInbox()
	c, err := client.Dial(t.Context(), client.Config{
		Dial:     client.QUIC(proxy.LocalAddr().String(), client.QUICOptions{TLS: client.PinnedTLS(s.edge.CertHashes()...)}),
		Token:    func(context.Context) (string, error) { a, _ := rc.Tokens(); return a, nil },
		DeviceID: sess.Device.ID, OnMessage: box.Add, MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ws := s.device(t, peerRC, peerS, nil) // a WebSocket device, idle too
	// Ten keepalive periods (three without a frame end a session).
	time.Sleep(1500 * time.Millisecond)
	if c.Connections() != 1 || ws.C.Connections() != 1 {
		t.Fatalf("idle sessions reconnected: quic %d, ws %d connections", c.Connections(), ws.C.Connections())
	}
	g, err := peerRC.CreateConversation(t.Context(), rest.NewConversation{Type: "group", Title: "dead path", MemberIDs: []string{sess.User.ID}})
	if err != nil {
		t.Fatal(err)
	}
	blackhole.Store(true)
	for i := range 5 {
		if _, err := ws.C.Send(t.Context(), &syncpb.SendRequest{ConvId: g.ID, Body: fmt.Appendf(nil, "while dark %d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	poll.Until(t, 20*time.Second, "the client notices the silent path", func() bool { return !c.Connected() })
	blackhole.Store(false) // the network comes back
	poll.Until(t, 20*time.Second, "the client reconnects", func() bool { return c.Connections() >= 2 })
	checkOnceInOrder(t, "idle", box.WaitFor(t, g.ID, 5, "idle"))
}

// Over device sessions too, a client_msg_id is its sender's: bo's device
// sending under ana's id stores bo's message, which every member receives;
// ana's device reusing its id for other content gets CONFLICT at once, and
// its outbox moves on.
func TestSessionSendIDsAreTheSenders(t *testing.T) {
	s := startTestSystem(t, "", nil)
	ctx := t.Context()
	anaRC, anaS := s.User(t, "acme", "ana")
	boRC, boS := s.User(t, "acme", "bo")
	ana, bo := s.device(t, anaRC, anaS, nil), s.device(t, boRC, boS, nil)
	g, err := anaRC.CreateConversation(ctx, rest.NewConversation{Type: "group", Title: "ids", MemberIDs: []string{boS.User.ID}})
	if err != nil {
		t.Fatal(err)
	}
	first, err := ana.C.Send(ctx, &syncpb.SendRequest{ConvId: g.ID, ClientMsgId: "shared-1", Body: []byte("from ana")})
	if err != nil {
		t.Fatal(err)
	}
	mine, err := bo.C.Send(ctx, &syncpb.SendRequest{ConvId: g.ID, ClientMsgId: "shared-1", Body: []byte("from bo")})
	if err != nil {
		t.Fatal(err)
	}
	if mine.Duplicate || mine.Seq != first.Seq+1 || mine.MsgId == first.MsgId {
		t.Fatalf("bo's send under ana's id answered %v (ana's %v): want a message of his own", mine, first)
	}
	again, err := ana.C.Send(ctx, &syncpb.SendRequest{ConvId: g.ID, ClientMsgId: "shared-1", Body: []byte("from ana")})
	if err != nil || !again.Duplicate || again.Seq != first.Seq || again.MsgId != first.MsgId {
		t.Fatalf("ana's retry: %v %v, want the first answer %v", again, err, first)
	}
	_, err = ana.C.Send(ctx, &syncpb.SendRequest{ConvId: g.ID, ClientMsgId: "shared-1", Body: []byte("from ana, edited")})
	if !errors.Is(err, syncproto.ErrConflict) {
		t.Fatalf("ana reusing her id for other content: %v, want CONFLICT", err)
	}
	if n := ana.C.Pending(); n != 0 {
		t.Fatalf("%d sends pending after the conflict", n)
	}
	next, err := ana.C.Send(ctx, &syncpb.SendRequest{ConvId: g.ID, Body: []byte("next")})
	if err != nil || next.Seq != mine.Seq+1 {
		t.Fatalf("the send after the conflict: %v %v", next, err)
	}
	for name, d := range map[string]*wsDevice{"ana": ana, "bo": bo} {
		got := d.Box.WaitFor(t, g.ID, int(next.Seq), name)
		checkOnceInOrder(t, name, got)
		if m := got[mine.Seq-1]; string(m.Body) != "from bo" || m.SenderUserId != boS.User.ID || m.ClientMsgId != "shared-1" {
			t.Fatalf("%s received %v at seq %d", name, m, mine.Seq)
		}
	}
}
