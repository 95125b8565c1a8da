package core

import (
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/parley-chat/parley/core/shard"
	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// Live delivery: after a shard's entries are stored, its leader publishes
// each committed message once to the user subject of every member (and of
// every user a membership change removed, so they see their removal).
// Edges subscribed for a user push to its devices. A group with more than
// LargeGroup members is published once on its conversation subject
// instead, which each edge with a member connected listens on: one NATS
// message per edge, not per member. Membership changes of a large group
// still go to every member's user subject, with a header telling the
// edges to join (members) or leave (removed users) the conversation
// subject for that user; sync tells a connecting device's edge which
// large groups its user is in. Pushes are best effort:
// a device that finds a gap fills it from history, and one that reconnects
// syncs, so a push lost to overload or a leader change loses nothing.

const (
	// deliverQueue bounds batches waiting to be published; beyond it
	// batches are dropped (and counted) rather than stall the apply loop.
	deliverQueue = 8192
	// memberCacheSize bounds the conversations whose member lists are kept.
	memberCacheSize = 16384
)

// memberLister lists a conversation's members (*shard.FSM does).
type memberLister interface {
	Members(conv string) ([]string, error)
}

type deliverJob struct {
	sm memberLister
	cs []shard.Committed
}

type deliverer struct {
	region  string
	large   int // member count above which the conversation subject is used; 0: never
	publish func(*nats.Msg) error
	log     *slog.Logger
	q       chan deliverJob
	members map[string][]string // conv -> user ids; only the loop touches it
	dropped atomic.Uint64
	sent    atomic.Uint64

	lostMu sync.Mutex
	lost   map[string]memberLister // conversations with dropped deliveries
}

// maxLost bounds the conversations remembered for resync hints; beyond
// it, devices still find the gap at their next message or reconnect.
const maxLost = 65536

func newDeliverer(region string, large, queue int, publish func(*nats.Msg) error, log *slog.Logger) *deliverer {
	return &deliverer{region: region, large: large, publish: publish, log: log, q: make(chan deliverJob, queue),
		members: map[string][]string{}, lost: map[string]memberLister{}}
}

// enqueue is the shard's OnCommit hook on a node that leads the shard:
// it never blocks.
func (d *deliverer) enqueue(sm memberLister, cs []shard.Committed) {
	// The slice is the FSM's; copy what the loop keeps.
	job := deliverJob{sm: sm, cs: append([]shard.Committed(nil), cs...)}
	select {
	case d.q <- job:
	default:
		if d.dropped.Add(1)%1000 == 1 {
			d.log.Warn("delivery queue full: live pushes dropped; members are told to resync", "dropped", d.dropped.Load())
		}
		d.lostMu.Lock()
		for _, c := range cs {
			if len(d.lost) < maxLost {
				d.lost[c.ConvID] = sm
			}
		}
		d.lostMu.Unlock()
	}
}

// hintLost tells the members of conversations whose deliveries were
// dropped to sync, once the queue has drained.
func (d *deliverer) hintLost() {
	d.lostMu.Lock()
	lost := d.lost
	if len(lost) == 0 {
		d.lostMu.Unlock()
		return
	}
	d.lost = map[string]memberLister{}
	d.lostMu.Unlock()
	b, _ := proto.Marshal(&syncpb.Deliver{})
	for conv, sm := range lost {
		users, err := sm.Members(conv)
		if err != nil {
			continue
		}
		if d.large > 0 && len(users) > d.large {
			d.send(syncproto.ConvSubject(d.region, conv), b, syncproto.HeaderResync, conv)
			continue
		}
		for _, u := range users {
			d.send(syncproto.UserSubject(d.region, u), b, syncproto.HeaderResync, conv)
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
			if len(d.q) == 0 {
				d.hintLost()
			}
		}
	}
}

func (d *deliverer) deliver(sm memberLister, c shard.Committed) {
	if c.MembersChanged {
		delete(d.members, c.ConvID)
	}
	if len(c.Messages) == 0 && !c.MembersChanged {
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
	large := d.large > 0 && len(users) > d.large
	if len(c.Messages) == 0 && !large {
		return // a new small group: its first message reaches everyone
	}
	switch {
	case large && !c.MembersChanged:
		d.send(syncproto.ConvSubject(d.region, c.ConvID), b, "", "")
	case large:
		for _, u := range users {
			d.send(syncproto.UserSubject(d.region, u), b, syncproto.HeaderConvJoin, c.ConvID)
		}
	default:
		for _, u := range users {
			d.send(syncproto.UserSubject(d.region, u), b, "", "")
		}
	}
	for _, u := range c.Removed {
		d.send(syncproto.UserSubject(d.region, u), b, syncproto.HeaderConvLeave, c.ConvID)
	}
}

// send publishes one delivery, with header key: value when key is set.
func (d *deliverer) send(subject string, b []byte, key, value string) {
	m := &nats.Msg{Subject: subject, Data: b}
	if key != "" {
		m.Header = nats.Header{key: []string{value}}
	}
	if err := d.publish(m); err != nil {
		d.log.Debug("publish deliver", "subject", subject, "err", err)
		return
	}
	d.sent.Add(1)
}
