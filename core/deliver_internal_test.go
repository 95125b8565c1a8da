package core

import (
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/parley-chat/parley/core/shard"
	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

type fixedMembers []string

func (f fixedMembers) Members(string) ([]string, error) { return f, nil }

// A batch dropped because the queue was full becomes a resync hint to
// every member once the queue drains, so no device waits for a message
// that will never be pushed.
func TestDelivererHintsResyncAfterDrops(t *testing.T) {
	pub := make(chan *nats.Msg, 16)
	d := newDeliverer("local", 0, 1, func(m *nats.Msg) error { pub <- m; return nil }, slog.New(slog.DiscardHandler))
	members := fixedMembers{"u_a", "u_b"}
	msg := func(seq uint64) []shard.Committed {
		return []shard.Committed{{ConvID: "c_1", Messages: []*syncpb.Message{{ConvId: "c_1", Seq: seq}}}}
	}
	d.enqueue(members, msg(1)) // queued
	d.enqueue(members, msg(2)) // dropped: the queue holds one
	if d.dropped.Load() != 1 {
		t.Fatalf("dropped %d, want 1", d.dropped.Load())
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { defer close(done); d.run(stop) }()
	var got []*nats.Msg
	for len(got) < 4 {
		select {
		case m := <-pub:
			got = append(got, m)
		case <-time.After(10 * time.Second):
			t.Fatalf("%d publishes, want 4", len(got))
		}
	}
	close(stop)
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
