package core

import (
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// Typing: an edge publishes a device's indicator (already rate-limited,
// stamped with the device's identity and with a clamped TTL) on the
// conversation's shard subject without a reply subject. The shard's
// leader checks that the typist is a member and publishes it like a live
// delivery: on each member's user subject, or once on the conversation
// subject of a large group. A stranger's typing goes nowhere and is only
// counted (no reply, so nothing says whether the conversation exists).
// Nothing is stored; anything in doubt (queue full, not the leader, a
// store error) is dropped: the indicator lapses by itself.

const (
	// typingQueue bounds indicators waiting for the membership check.
	typingQueue = 4096
	// typingCacheSize bounds the conversations whose members are cached.
	typingCacheSize = 16384
	// typingCacheTTL re-reads a cached member list this old, in case an
	// invalidation was missed (a snapshot restore); Timeouts.TypingMembers
	// defaults to it.
	typingCacheTTL = 30 * time.Second
)

// TypingStats counts typing indicators at a core node.
type TypingStats struct {
	Received  uint64 // indicators from edges on shard subjects
	Fanned    uint64 // passed the membership check and published
	Strangers uint64 // from a non-member (or a conversation that does not exist): dropped
	Dropped   uint64 // not checked: malformed, not this node's shard, queue full, store error
}

type typingJob struct {
	sm memberLister
	t  *syncpb.Typing
}

type membersEntry struct {
	users []string // sorted
	at    time.Time
}

// typer fans out typing indicators of the shards this node leads.
type typer struct {
	region  string
	large   int
	publish func(*nats.Msg) error
	now     func() time.Time
	log     *slog.Logger
	q       chan typingJob
	// cacheTTL: see typingCacheTTL, its default.
	cacheTTL time.Duration

	mu      sync.Mutex
	gen     uint64 // bumped by forget: a list read before it is not cached
	members map[string]membersEntry

	received, fanned, strangers, dropped atomic.Uint64
}

func newTyper(region string, large int, publish func(*nats.Msg) error, now func() time.Time, log *slog.Logger) *typer {
	return &typer{region: region, large: large, publish: publish, now: now, log: log, cacheTTL: typingCacheTTL,
		q: make(chan typingJob, typingQueue), members: map[string]membersEntry{}}
}

// enqueue takes an indicator for the membership check; it never blocks.
func (ty *typer) enqueue(sm memberLister, t *syncpb.Typing) {
	select {
	case ty.q <- typingJob{sm, t}:
	default:
		ty.dropped.Add(1)
	}
}

// forget drops conv's cached members (its membership changed).
func (ty *typer) forget(conv string) {
	ty.mu.Lock()
	ty.gen++
	delete(ty.members, conv)
	ty.mu.Unlock()
}

// run fans out queued indicators until stop is closed.
func (ty *typer) run(stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		case j := <-ty.q:
			ty.fanout(j.sm, j.t)
		}
	}
}

// membersOf returns conv's members, sorted, from the cache or sm.
func (ty *typer) membersOf(sm memberLister, conv string) ([]string, error) {
	now := ty.now()
	ty.mu.Lock()
	e, ok := ty.members[conv]
	gen := ty.gen
	ty.mu.Unlock()
	if ok && now.Sub(e.at) < ty.cacheTTL {
		return e.users, nil
	}
	users, err := sm.Members(conv)
	if err != nil {
		return nil, err
	}
	users = slices.Clone(users)
	slices.Sort(users)
	ty.mu.Lock()
	if ty.gen == gen {
		if len(ty.members) >= typingCacheSize {
			clear(ty.members)
		}
		ty.members[conv] = membersEntry{users: users, at: now}
	}
	ty.mu.Unlock()
	return users, nil
}

func (ty *typer) fanout(sm memberLister, t *syncpb.Typing) {
	users, err := ty.membersOf(sm, t.ConvId)
	if err != nil {
		ty.dropped.Add(1)
		ty.log.Debug("members for typing", "conv", t.ConvId, "err", err)
		return
	}
	if _, ok := slices.BinarySearch(users, t.UserId); !ok {
		ty.strangers.Add(1)
		return
	}
	b, err := proto.Marshal(&syncpb.Deliver{Typing: []*syncpb.Typing{t}})
	if err != nil {
		ty.dropped.Add(1)
		return
	}
	ty.fanned.Add(1)
	if ty.large > 0 && len(users) > ty.large {
		ty.send(syncproto.ConvSubject(ty.region, t.ConvId), b)
		return
	}
	for _, u := range users {
		ty.send(syncproto.UserSubject(ty.region, u), b)
	}
}

func (ty *typer) send(subject string, b []byte) {
	if err := ty.publish(&nats.Msg{Subject: subject, Data: b}); err != nil {
		ty.log.Debug("publish typing", "subject", subject, "err", err)
	}
}

func (ty *typer) stats() TypingStats {
	return TypingStats{Received: ty.received.Load(), Fanned: ty.fanned.Load(),
		Strangers: ty.strangers.Load(), Dropped: ty.dropped.Load()}
}

// onTyping takes a request published without a reply subject on the
// subject of shard shardName: only typing is sent that way. It runs on
// NATS's delivery goroutine, so it only decodes, checks and queues.
func (n *Node) onTyping(shardName string, m *nats.Msg) {
	ty := n.typing
	ty.received.Add(1)
	req := &syncpb.CoreRequest{}
	if err := proto.Unmarshal(m.Data, req); err != nil {
		ty.dropped.Add(1)
		return
	}
	t := req.GetTyping()
	switch {
	case t == nil || !syncproto.ValidID(t.ConvId) || t.UserId == "" || t.UserId != req.GetCaller().GetUserId():
		ty.dropped.Add(1)
		return
	case n.ShardGroupOf(t.ConvId) != shardName:
		ty.dropped.Add(1)
		return
	}
	mem := n.groups[shardName]
	if mem.shard == nil || !mem.g.IsLeader() {
		ty.dropped.Add(1) // leadership moved: not worth forwarding
		return
	}
	ty.enqueue(mem.shard, t)
}

// TypingStats counts the typing indicators this node has handled.
func (n *Node) TypingStats() TypingStats { return n.typing.stats() }
