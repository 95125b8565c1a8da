package fanout

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/parley-chat/parley/core/shard"
	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// A batch dropped because the queue was full becomes a resync hint to
// every member once the queue drains, so no device waits for a message
// that will never be pushed.
func TestDeliveryHintsResyncAfterDrops(t *testing.T) {
	f, pub, _ := newTestFanout(t, 0)
	f.deliver.q = make(chan deliverJob, 1)
	members := &mutableMembers{users: []string{"u_a", "u_b"}}
	msg := func(seq uint64) []shard.Committed {
		return []shard.Committed{{ConvID: "c_1", Messages: []*syncpb.Message{{ConvId: "c_1", Seq: seq}}}}
	}
	f.Committed(members, msg(1)) // queued
	f.Committed(members, msg(2)) // dropped: the queue holds one
	if _, dropped := f.DeliveryStats(); dropped != 1 {
		t.Fatalf("dropped %d, want 1", dropped)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = f.Run(ctx) }()
	var got []*nats.Msg
	for len(got) < 4 {
		select {
		case m := <-pub:
			got = append(got, m)
		case <-time.After(10 * time.Second):
			t.Fatalf("%d publishes, want 4", len(got))
		}
	}
	cancel()
	<-done
	var pushes, hints int
	for _, m := range got {
		switch {
		case m.Header.Get(syncproto.HeaderResync) == "c_1":
			hints++
		case m.Header == nil:
			pushes++
		}
	}
	if pushes != 2 || hints != 2 {
		t.Fatalf("%d pushes and %d resync hints, want 2 and 2 (seq 1 to each member, then a hint each)", pushes, hints)
	}
}

// A large group's messages go once on its conversation subject; its
// membership changes go to every member (join) and removed user (leave).
func TestDeliveryLargeGroup(t *testing.T) {
	f, pub, _ := newTestFanout(t, 2)
	members := &mutableMembers{users: []string{"u_a", "u_b", "u_c"}}
	f.deliverOne(members, shard.Committed{ConvID: "c_1", Messages: []*syncpb.Message{{ConvId: "c_1", Seq: 1}}})
	if m := <-pub; m.Subject != syncproto.ConvSubject("local", "c_1") || len(pub) != 0 {
		t.Fatalf("message published on %s (+%d more), want the conversation subject once", m.Subject, len(pub))
	}
	f.deliverOne(members, shard.Committed{ConvID: "c_1", MembersChanged: true, Removed: []string{"u_x"}})
	joins, leaves := 0, 0
	for len(pub) > 0 {
		m := <-pub
		switch {
		case m.Header.Get(syncproto.HeaderConvJoin) == "c_1":
			joins++
		case m.Header.Get(syncproto.HeaderConvLeave) == "c_1" && m.Subject == syncproto.UserSubject("local", "u_x"):
			leaves++
		}
	}
	if joins != 3 || leaves != 1 {
		t.Fatalf("%d joins and %d leaves, want 3 and 1", joins, leaves)
	}
}
