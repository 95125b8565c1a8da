package core_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/parley-chat/parley/internal/poll"
	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// inbox collects the live deliveries published to one user's subject.
type inbox struct {
	mu   sync.Mutex
	msgs []*syncpb.Message
}

func (b *inbox) snapshot() []*syncpb.Message {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]*syncpb.Message(nil), b.msgs...)
}

func (r *testRegion) subscribeUser(user string) *inbox {
	r.t.Helper()
	b := &inbox{}
	sub, err := r.Conn().Subscribe(syncproto.UserSubject(syncproto.DefaultRegion, user), func(m *nats.Msg) {
		d := &syncpb.Deliver{}
		if err := proto.Unmarshal(m.Data, d); err != nil {
			r.t.Errorf("undecodable deliver: %v", err)
			return
		}
		b.mu.Lock()
		b.msgs = append(b.msgs, d.Messages...)
		b.mu.Unlock()
	})
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := r.Conn().Flush(); err != nil {
		r.t.Fatal(err)
	}
	return b
}

// waitInbox waits until b holds at least n messages.
func waitInbox(t *testing.T, name string, b *inbox, n int) []*syncpb.Message {
	t.Helper()
	var got []*syncpb.Message
	poll.NoError(t, 20*time.Second, name, func() error {
		if got = b.snapshot(); len(got) < n {
			return fmt.Errorf("%d deliveries, want %d", len(got), n)
		}
		return nil
	})
	return got
}

func (r *testRegion) send(c *syncpb.Caller, conv, body string) *syncpb.SendAck {
	r.t.Helper()
	return r.MustCall(r.ShardSubject(conv), &syncpb.CoreRequest{Caller: c, Op: &syncpb.CoreRequest_Send{Send: &syncpb.SendRequest{
		ConvId: conv, ClientMsgId: syncproto.NewClientMsgID(), Body: []byte(body)}}}).GetSendAck()
}

func (r *testRegion) sync(c *syncpb.Caller, limit uint32, marks map[string]uint64) *syncpb.SyncResponse {
	r.t.Helper()
	pos := &syncpb.SyncPosition{}
	for conv, seq := range marks {
		pos.Watermarks = append(pos.Watermarks, &syncpb.Watermark{ConvId: conv, Seq: seq})
	}
	return r.MustCall(syncproto.APISubject(syncproto.DefaultRegion), &syncpb.CoreRequest{Caller: c,
		Op: &syncpb.CoreRequest_Sync{Sync: &syncpb.SyncRequest{Position: pos, PerConversationLimit: limit}}}).GetSync()
}

// TestLiveDeliveryAndSync: in a 3-node region, each committed message is
// published once, in seq order, to every member's user subject (and to a
// removed member once, for its removal), never to others; a sync returns
// exactly the conversations beyond the device's watermarks.
func TestLiveDeliveryAndSync(t *testing.T) {
	r := newTestRegion(t, 3, testTiming)
	us := r.Users("ann", "bob", "cat", "dan")
	ann, bob, cat, dan := us[0], us[1], us[2], us[3]
	conv := r.CreateGroup(ann, []*syncpb.Caller{ann, bob, cat})
	boxes := map[string]*inbox{}
	for _, u := range us {
		boxes[u.UserId] = r.subscribeUser(u.UserId)
	}

	const n = 30
	for i := 0; i < n; i++ {
		from := []*syncpb.Caller{ann, bob, cat}[i%3]
		if ack := r.send(from, conv, fmt.Sprint("m", i)); ack.Seq != uint64(i+1) {
			t.Fatalf("send %d: seq %d", i, ack.Seq)
		}
	}
	for _, u := range []*syncpb.Caller{ann, bob, cat} {
		got := waitInbox(t, u.UserId, boxes[u.UserId], n)
		for i, m := range got[:n] {
			if m.Seq != uint64(i+1) || m.ConvId != conv || string(m.Body) != fmt.Sprint("m", i) {
				t.Fatalf("%s: delivery %d is seq %d %q", u.UserId, i, m.Seq, m.Body)
			}
		}
	}

	// Remove cat: cat hears of the removal, and nothing after it.
	r.MustCall(r.ShardSubject(conv), &syncpb.CoreRequest{Caller: ann, Op: &syncpb.CoreRequest_ChangeMembers{
		ChangeMembers: &syncpb.ChangeMembersRequest{ConvId: conv, RemoveUserIds: []string{cat.UserId}}}})
	after := r.send(bob, conv, "after")
	got := waitInbox(t, "bob", boxes[bob.UserId], n+2)
	if last := got[len(got)-1]; last.Seq != after.Seq {
		t.Fatalf("bob's last delivery is seq %d, want %d", last.Seq, after.Seq)
	}
	catGot := waitInbox(t, "cat", boxes[cat.UserId], n+1)
	if m := catGot[n]; m.Kind != syncpb.MessageKind_MESSAGE_KIND_SYSTEM || m.Seq != uint64(n+1) {
		t.Fatalf("cat's last delivery: %v", m)
	}

	// Sync: bob at seq 5 with limit 3 gets 6..8, truncated.
	other := r.CreateGroup(dan, []*syncpb.Caller{dan, bob})
	r.send(dan, other, "hello bob")
	s := r.sync(bob, 3, map[string]uint64{conv: 5})
	if len(s.Changed) != 2 {
		t.Fatalf("bob's sync: %d changed conversations, want 2: %v", len(s.Changed), s.Changed)
	}
	for _, d := range s.Changed {
		switch d.ConvId {
		case conv:
			if d.LastSeq != after.Seq || !d.Truncated || len(d.Messages) != 3 || d.Messages[0].Seq != 6 || d.Messages[2].Seq != 8 {
				t.Fatalf("bob's delta of the group: %v", d)
			}
		case other:
			if d.LastSeq != 1 || d.Truncated || len(d.Messages) != 1 {
				t.Fatalf("bob's delta of the new conversation: %v", d)
			}
		}
	}
	// Caught up: nothing changed.
	if s := r.sync(bob, 0, map[string]uint64{conv: after.Seq, other: 1}); len(s.Changed) != 0 {
		t.Fatalf("caught-up sync returned %v", s.Changed)
	}
	// A removed member and a stranger learn nothing of the group.
	for _, c := range []*syncpb.Caller{cat, dan} {
		for _, d := range r.sync(c, 0, nil).Changed {
			if d.ConvId == conv {
				t.Fatalf("%s synced a conversation it is not in", c.UserId)
			}
		}
	}
	if got := boxes[dan.UserId].snapshot(); len(got) != 1 || got[0].ConvId != other {
		t.Fatalf("dan got deliveries of conversations it is not in: %v", got)
	}
}
