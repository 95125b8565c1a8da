package fanout

import (
	"context"
	"slices"
	"sync/atomic"

	"google.golang.org/protobuf/proto"

	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// Typing: an edge publishes a device's indicator (already rate-limited,
// stamped with the device's identity and with a clamped TTL) on the
// conversation's shard subject without a reply subject. The shard's
// leader checks that the typist is a member and publishes it like a live
// delivery. A stranger's typing goes nowhere and is only counted (no
// reply, so nothing says whether the conversation exists). Nothing is
// stored; anything in doubt (queue full, not the leader, a store error)
// is dropped: the indicator lapses by itself.

// typingQueue bounds indicators waiting for the membership check.
const typingQueue = 4096

// TypingStats counts typing indicators at a core node.
type TypingStats struct {
	Received  uint64 // indicators from edges on shard subjects
	Fanned    uint64 // passed the membership check and published
	Strangers uint64 // from a non-member (or a conversation that does not exist): dropped
	Dropped   uint64 // not checked: malformed, not this node's shard, queue full, store error
}

type typingJob struct {
	src Source
	t   *syncpb.Typing
}

type typer struct {
	q                                    chan typingJob
	received, fanned, strangers, dropped atomic.Uint64
}

func (ty *typer) init() { ty.q = make(chan typingJob, typingQueue) }

// Typing takes a request published without a reply subject on a shard
// subject (only typing is sent that way): it decodes and checks it, and
// queues it for the membership check in the shard source returns (nil:
// this node does not lead the conversation's shard, or it is not this
// subject's). It runs on NATS's delivery goroutine and never blocks.
func (f *Fanout) Typing(data []byte, source func(conv string) Source) {
	ty := &f.typing
	ty.received.Add(1)
	req := &syncpb.CoreRequest{}
	if err := proto.Unmarshal(data, req); err != nil {
		ty.dropped.Add(1)
		return
	}
	t := req.GetTyping()
	if t == nil || !syncproto.ValidID(t.ConvId) || t.UserId == "" || t.UserId != req.GetCaller().GetUserId() {
		ty.dropped.Add(1)
		return
	}
	src := source(t.ConvId)
	if src == nil {
		ty.dropped.Add(1) // leadership moved: not worth forwarding
		return
	}
	select {
	case ty.q <- typingJob{src, t}:
	default:
		ty.dropped.Add(1)
	}
}

// TypingStats counts the typing indicators handled since the Fanout
// started.
func (f *Fanout) TypingStats() TypingStats {
	ty := &f.typing
	return TypingStats{Received: ty.received.Load(), Fanned: ty.fanned.Load(),
		Strangers: ty.strangers.Load(), Dropped: ty.dropped.Load()}
}

func (f *Fanout) typingLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case j := <-f.typing.q:
			f.typingOne(j.src, j.t)
		}
	}
}

func (f *Fanout) typingOne(src Source, t *syncpb.Typing) {
	ty := &f.typing
	m, err := f.members.get(src, t.ConvId)
	if err != nil {
		ty.dropped.Add(1)
		f.log.Debug("members for typing", "conv", t.ConvId, "err", err)
		return
	}
	if _, ok := slices.BinarySearch(m.Users, t.UserId); !ok {
		ty.strangers.Add(1)
		return
	}
	b, err := proto.Marshal(&syncpb.Deliver{Typing: []*syncpb.Typing{t}})
	if err != nil {
		ty.dropped.Add(1)
		return
	}
	ty.fanned.Add(1)
	f.send("typing", b, "", "", f.subjects(t.ConvId, m.Users)...)
}
