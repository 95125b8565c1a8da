package fanout

import (
	"context"
	"sync"
	"sync/atomic"

	"google.golang.org/protobuf/proto"

	"github.com/parley-chat/parley/core/shard"
	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// Live delivery: after a shard's entries are stored, its leader publishes
// each committed message once to the user subject of every member (and of
// every user a membership change removed, so they see their removal), or
// once on the conversation subject of a large group. Membership changes
// of a large group still go to every member's user subject, with a header
// telling the edges to join (members) or leave (removed users) the
// conversation subject for that user; sync tells a connecting device's
// edge which large groups its user is in. Pushes are best effort: a
// device that finds a gap fills it from history, and one that reconnects
// syncs, so a push lost to overload or a leader change loses nothing.

const (
	// deliverQueue bounds batches waiting to be published; beyond it
	// batches are dropped (and counted) rather than stall the apply loop.
	deliverQueue = 8192
	// maxLost bounds the conversations remembered for resync hints;
	// beyond it, devices still find the gap at their next message or
	// reconnect.
	maxLost = 65536
)

type deliverJob struct {
	src Source
	cs  []shard.Committed
}

type deliverer struct {
	q       chan deliverJob
	dropped atomic.Uint64
	sent    atomic.Uint64

	lostMu sync.Mutex
	lost   map[string]Source // conversations with dropped deliveries
}

func (d *deliverer) init() {
	d.q = make(chan deliverJob, deliverQueue)
	d.lost = map[string]Source{}
}

// Committed takes the entries a shard this node leads has committed (its
// OnCommit hook, own term only) for delivery, and their membership
// changes for presence notices; it never blocks.
func (f *Fanout) Committed(src Source, cs []shard.Committed) {
	d := &f.deliver
	// The slice is the FSM's; copy what the loop keeps.
	job := deliverJob{src: src, cs: append([]shard.Committed(nil), cs...)}
	select {
	case d.q <- job:
	default:
		if d.dropped.Add(1)%1000 == 1 {
			f.log.Warn("delivery queue full: live pushes dropped; members are told to resync", "dropped", d.dropped.Load())
		}
		d.lostMu.Lock()
		for _, c := range cs {
			if len(d.lost) < maxLost {
				d.lost[c.ConvID] = src
			}
		}
		d.lostMu.Unlock()
	}
	f.memberNotices(src, cs)
}

// DeliveryStats are the deliveries published and the batches dropped
// (queue full) since the Fanout started.
func (f *Fanout) DeliveryStats() (published, dropped uint64) {
	return f.deliver.sent.Load(), f.deliver.dropped.Load()
}

func (f *Fanout) deliverLoop(ctx context.Context) {
	d := &f.deliver
	for {
		select {
		case <-ctx.Done():
			return
		case job := <-d.q:
			for _, c := range job.cs {
				f.deliverOne(job.src, c)
			}
			if len(d.q) == 0 {
				f.hintLost()
			}
		}
	}
}

// hintLost tells the members of conversations whose deliveries were
// dropped to sync, once the queue has drained.
func (f *Fanout) hintLost() {
	d := &f.deliver
	d.lostMu.Lock()
	lost := d.lost
	if len(lost) == 0 {
		d.lostMu.Unlock()
		return
	}
	d.lost = map[string]Source{}
	d.lostMu.Unlock()
	b, _ := proto.Marshal(&syncpb.Deliver{})
	for conv, src := range lost {
		m, err := f.members.get(src, conv)
		if err != nil {
			continue
		}
		d.sent.Add(uint64(f.send("deliver", b, syncproto.HeaderResync, conv, f.subjects(conv, m.Users)...)))
	}
}

func (f *Fanout) deliverOne(src Source, c shard.Committed) {
	if len(c.Messages) == 0 && !c.MembersChanged {
		return
	}
	m, err := f.members.get(src, c.ConvID)
	if err != nil {
		f.log.Warn("members for delivery", "conv", c.ConvID, "err", err)
		return
	}
	b, err := proto.Marshal(&syncpb.Deliver{Messages: c.Messages})
	if err != nil {
		f.log.Error("marshal deliver", "err", err)
		return
	}
	large := f.cfg.LargeGroup.Is(len(m.Users))
	if len(c.Messages) == 0 && !large {
		return // a new small group: its first message reaches everyone
	}
	sent := 0
	switch {
	case large && !c.MembersChanged:
		sent += f.send("deliver", b, "", "", syncproto.ConvSubject(f.cfg.Region, c.ConvID))
	case large:
		sent += f.send("deliver", b, syncproto.HeaderConvJoin, c.ConvID, f.userSubjects(m.Users)...)
	default:
		sent += f.send("deliver", b, "", "", f.userSubjects(m.Users)...)
	}
	sent += f.send("deliver", b, syncproto.HeaderConvLeave, c.ConvID, f.userSubjects(c.Removed)...)
	f.deliver.sent.Add(uint64(sent))
}
