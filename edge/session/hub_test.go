package session

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/parley-chat/parley/edge/internal/natstest"
	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// chanSink passes each delivery's messages to a channel.
type chanSink struct{ msgs chan *syncpb.Message }

func (c chanSink) Deliver(d *syncpb.Deliver) {
	for _, m := range d.Messages {
		c.msgs <- m
	}
}

func (c chanSink) Lost() {}

// hubEnv is a hub on a real NATS server with one subscribed user, u_a.
type hubEnv struct {
	t    *testing.T
	nc   *nats.Conn
	hub  *Hub
	sink chanSink
	seq  uint64
}

func newHubEnv(t *testing.T) *hubEnv {
	ns := natstest.Server(t)
	e := &hubEnv{t: t, nc: natstest.Conn(t, ns), sink: chanSink{msgs: make(chan *syncpb.Message, 64)}}
	hub, err := NewHub(HubConfig{Conn: natstest.Conn(t, ns), Region: "local"})
	if err != nil {
		t.Fatal(err)
	}
	e.hub = hub
	t.Cleanup(e.hub.Close)
	cancel, err := e.hub.Subscribe(t.Context(), "u_a", e.sink)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cancel)
	return e
}

// publish sends a delivery of one message of conv to subject, with header
// key: conv when key is set, and returns the message's seq.
func (e *hubEnv) publish(subject, conv, key string) uint64 {
	e.t.Helper()
	e.seq++
	b, _ := proto.Marshal(&syncpb.Deliver{Messages: []*syncpb.Message{{ConvId: conv, Seq: e.seq}}})
	m := &nats.Msg{Subject: subject, Data: b}
	if key != "" {
		m.Header = nats.Header{key: []string{conv}}
	}
	if err := e.nc.PublishMsg(m); err != nil {
		e.t.Fatal(err)
	}
	return e.seq
}

// notice sends a join or leave notice for conv on u_a's subject and waits
// until the hub has handled it (its message reached the sink).
func (e *hubEnv) notice(key, conv string) {
	e.t.Helper()
	e.await(e.publish(syncproto.UserSubject("local", "u_a"), conv, key))
}

// await waits for the message with seq; any other message fails the test.
func (e *hubEnv) await(seq uint64) {
	e.t.Helper()
	select {
	case m := <-e.sink.msgs:
		if m.Seq != seq {
			e.t.Fatalf("got message %d (%s), want %d", m.Seq, m.ConvId, seq)
		}
	case <-time.After(10 * time.Second):
		e.t.Fatalf("message %d did not arrive within 10s", seq)
	}
}

// listening reports whether u_a gets conv's live deliveries: it publishes
// a message on the conversation subject, then a probe on the user's
// subject, and reports whether the first arrived. (The server sends both
// in order; the hub hands each subscription's to the sink on its own
// goroutine, so the first may come after the probe.)
func (e *hubEnv) listening(conv string) bool {
	e.t.Helper()
	e.hub.mu.Lock()
	cs := e.hub.convs[conv]
	e.hub.mu.Unlock()
	if cs != nil {
		// A new subscription is live once the server answers a flush.
		if err := e.hub.nc.FlushTimeout(5 * time.Second); err != nil {
			e.t.Fatal(err)
		}
	}
	c := e.publish(syncproto.ConvSubject("local", conv), conv, "")
	u := e.publish(syncproto.UserSubject("local", "u_a"), "probe", "")
	got := map[uint64]bool{}
	for !got[u] {
		select {
		case m := <-e.sink.msgs:
			got[m.Seq] = true
		case <-time.After(10 * time.Second):
			e.t.Fatalf("probe %d did not arrive within 10s", u)
		}
	}
	if !got[c] && cs != nil {
		e.await(c) // the subjects are separate subscriptions: no order between them
		got[c] = true
	}
	return got[c]
}

// Join and leave notices take effect in the order the core sent them: a
// member added and removed in quick succession does not keep listening on
// the group's subject (a removed member kept getting the group's messages
// when the join was applied after the leave).
func TestHubAppliesJoinAndLeaveNoticesInOrder(t *testing.T) {
	e := newHubEnv(t)
	for range 20 {
		e.notice(syncproto.HeaderConvJoin, "c_big")
		e.notice(syncproto.HeaderConvLeave, "c_big")
		if n := e.hub.Convs(); n != 0 {
			t.Fatalf("after join and leave notices the hub listens on %d conversation subjects, want 0", n)
		}
	}
	if e.listening("c_big") {
		t.Fatal("a member that left still gets the group's deliveries")
	}
	e.notice(syncproto.HeaderConvJoin, "c_big")
	if n := e.hub.Convs(); n != 1 {
		t.Fatalf("after a join notice the hub listens on %d conversation subjects, want 1", n)
	}
	if !e.listening("c_big") {
		t.Fatal("a member that joined does not get the group's deliveries")
	}
}

// A sync's list of large groups may predate notices that arrived while it
// was asked for: SetConvs keeps what those notices said, and a later list
// rules again.
func TestHubSetConvsKeepsNewerNotices(t *testing.T) {
	e := newHubEnv(t)
	ctx := t.Context()
	if _, err := e.hub.SetConvs(ctx, "u_a", []string{"c_left"}, e.hub.Pos()); err != nil {
		t.Fatal(err)
	}
	since := e.hub.Pos() // a sync is asked for; meanwhile:
	e.notice(syncproto.HeaderConvLeave, "c_left")
	e.notice(syncproto.HeaderConvJoin, "c_joined")
	// The sync's answer, read before the notices' commits.
	if _, err := e.hub.SetConvs(ctx, "u_a", []string{"c_left", "c_other"}, since); err != nil {
		t.Fatal(err)
	}
	for conv, want := range map[string]bool{"c_left": false, "c_joined": true, "c_other": true} {
		if got := e.listening(conv); got != want {
			t.Errorf("after a stale sync, listening on %s: %v, want %v", conv, got, want)
		}
	}
	// A sync asked for after the notices decides alone.
	if _, err := e.hub.SetConvs(ctx, "u_a", []string{"c_left"}, e.hub.Pos()); err != nil {
		t.Fatal(err)
	}
	for conv, want := range map[string]bool{"c_left": true, "c_joined": false, "c_other": false} {
		if got := e.listening(conv); got != want {
			t.Errorf("after a fresh sync, listening on %s: %v, want %v", conv, got, want)
		}
	}
	if n := e.hub.Convs(); n != 1 {
		t.Fatalf("the hub listens on %d conversation subjects, want 1", n)
	}
}

// lostSink counts Lost calls.
type lostSink struct{ lost chan struct{} }

func (s lostSink) Deliver(*syncpb.Deliver) {}
func (s lostSink) Lost()                   { s.lost <- struct{}{} }

// After the NATS connection comes back, every sink of every user is told
// that deliveries may have been lost.
func TestHubReconnectedTellsEverySinkToSync(t *testing.T) {
	ns := natstest.Server(t)
	hub, err := NewHub(HubConfig{Conn: natstest.Conn(t, ns), Region: "local"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(hub.Close)
	sinks := []lostSink{{make(chan struct{}, 1)}, {make(chan struct{}, 1)}, {make(chan struct{}, 1)}}
	for i, user := range []string{"u_a", "u_a", "u_b"} {
		cancel, err := hub.Subscribe(t.Context(), user, sinks[i])
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cancel)
	}
	hub.Reconnected()
	for i, s := range sinks {
		select {
		case <-s.lost:
		default:
			t.Fatalf("sink %d was not told to sync", i)
		}
	}
}

func TestHubConfigValidate(t *testing.T) {
	nc := natstest.Conn(t, natstest.Server(t))
	for _, tc := range []struct {
		name string
		cfg  HubConfig
		ok   bool
	}{
		{"defaults", HubConfig{Conn: nc}, true},
		{"no conn", HubConfig{}, false},
		{"bad region", HubConfig{Conn: nc, Region: "EU West"}, false},
		{"negative flush timeout", HubConfig{Conn: nc, FlushTimeout: -1}, false},
	} {
		if err := tc.cfg.Validate(); (err == nil) != tc.ok {
			t.Errorf("%s: Validate() = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}
