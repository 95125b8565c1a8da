package core

import (
	"log/slog"
	"sync/atomic"

	"google.golang.org/protobuf/proto"

	"github.com/parley-chat/parley/core/shard"
	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// Live delivery: after a shard's entries are stored, its leader publishes
// each committed message once to the user subject of every member (and of
// every user a membership change removed, so they see their removal).
// Edges subscribed for a user push to its devices. Pushes are best effort:
// a device that finds a gap fills it from history, and one that reconnects
// syncs, so a push lost to overload or a leader change loses nothing.

const (
	// deliverQueue bounds batches waiting to be published; beyond it
	// batches are dropped (and counted) rather than stall the apply loop.
	deliverQueue = 8192
	// memberCacheSize bounds the conversations whose member lists are kept.
	memberCacheSize = 16384
)

type deliverJob struct {
	sm *shard.FSM
	cs []shard.Committed
}

type deliverer struct {
	region  string
	publish func(subject string, data []byte) error
	log     *slog.Logger
	q       chan deliverJob
	members map[string][]string // conv -> user ids; only the loop touches it
	dropped atomic.Uint64
	sent    atomic.Uint64
}

func newDeliverer(region string, publish func(string, []byte) error, log *slog.Logger) *deliverer {
	return &deliverer{region: region, publish: publish, log: log, q: make(chan deliverJob, deliverQueue), members: map[string][]string{}}
}

// enqueue is the shard's OnCommit hook on a node that leads the shard:
// it never blocks.
func (d *deliverer) enqueue(sm *shard.FSM, cs []shard.Committed) {
	// The slice is the FSM's; copy what the loop keeps.
	job := deliverJob{sm: sm, cs: append([]shard.Committed(nil), cs...)}
	select {
	case d.q <- job:
	default:
		if d.dropped.Add(1)%1000 == 1 {
			d.log.Warn("delivery queue full: live pushes dropped (devices catch up by seq)", "dropped", d.dropped.Load())
		}
	}
}

// run publishes queued batches until stop is closed.
func (d *deliverer) run(stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		case job := <-d.q:
			for _, c := range job.cs {
				d.deliver(job.sm, c)
			}
		}
	}
}

func (d *deliverer) deliver(sm *shard.FSM, c shard.Committed) {
	if c.MembersChanged {
		delete(d.members, c.ConvID)
	}
	if len(c.Messages) == 0 {
		return
	}
	users, ok := d.members[c.ConvID]
	if !ok {
		var err error
		users, err = sm.Members(c.ConvID)
		if err != nil {
			d.log.Warn("members for delivery", "conv", c.ConvID, "err", err)
			return
		}
		if len(d.members) >= memberCacheSize {
			clear(d.members)
		}
		d.members[c.ConvID] = users
	}
	b, err := proto.Marshal(&syncpb.Deliver{Messages: c.Messages})
	if err != nil {
		d.log.Error("marshal deliver", "err", err)
		return
	}
	for _, u := range users {
		d.send(u, b)
	}
	for _, u := range c.Removed {
		d.send(u, b)
	}
}

func (d *deliverer) send(user string, b []byte) {
	if err := d.publish(syncproto.UserSubject(d.region, user), b); err != nil {
		d.log.Debug("publish deliver", "user", user, "err", err)
		return
	}
	d.sent.Add(1)
}
