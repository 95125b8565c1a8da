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
	d := &wsDevice{box: newInbox(), rest: rc, sess: sess, drops: &dropper{}}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var err error
	d.c, err = client.Dial(ctx, client.Config{
		Dial:       d.drops.dial(client.WebSocket("ws" + s.base[len("http"):] + "/v1/ws")),
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
