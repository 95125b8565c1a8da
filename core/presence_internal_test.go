package core

import (
	"log/slog"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/parley-chat/parley/core/presence"
	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// leaderView is a settable answer to "who leads shard i".
type leaderView struct {
	mu    sync.Mutex
	self  map[int]bool
	known bool
}

func (v *leaderView) leads(i int) (bool, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.self[i], v.known || v.self[i]
}

func (v *leaderView) set(i int, self bool) {
	v.mu.Lock()
	v.self[i] = self
	v.mu.Unlock()
}

// newTestPresence is a node's presence service without the node: a
// table on a test clock, a settable leadership, and the publishes kept.
func newTestPresence(t *testing.T) (*presenceService, *leaderView, *time.Time, *[]*syncpb.PresenceUpdate) {
	t.Helper()
	now := time.Unix(1_700_000_000, 0)
	clock := func() time.Time { return now }
	n := &Node{cfg: Config{Region: "local", ShardCount: 4, Now: clock}, log: slog.New(slog.DiscardHandler), groups: map[string]*member{}}
	table, err := presence.New(presence.Config{Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	view := &leaderView{self: map[int]bool{}, known: true}
	var sent []*syncpb.PresenceUpdate
	p := &presenceService{n: n, off: map[string]bool{}, table: table, leads: view.leads, led: make([]bool, 4),
		send: func(subject string, data []byte) error {
			d := &syncpb.Deliver{}
			if err := proto.Unmarshal(data, d); err != nil {
				t.Fatalf("publish on %s: %v", subject, err)
			}
			sent = append(sent, d.Presence...)
			return nil
		}}
	p.cfg.setDefaults()
	return p, view, &now, &sent
}

func connectBatch(seq uint64, users ...string) *syncpb.PresenceBatch {
	b := &syncpb.PresenceBatch{EdgeId: "e1", Epoch: 1, Seq: seq, LeaseMs: 60_000, Reset_: seq == 1, Snapshot: seq == 1, SnapshotDone: seq == 1}
	for _, u := range users {
		b.Connected = append(b.Connected, &syncpb.PresenceDevice{WorkspaceId: "w1", UserId: u, DeviceId: "d"})
	}
	return b
}

func (p *presenceService) applyForTest(b *syncpb.PresenceBatch) {
	p.mu.Lock()
	changes, _ := p.table.Apply(b)
	p.mu.Unlock()
	p.publish(changes)
}

// A change that a node sees while another node is believed to lead the
// user's shard is not published by it; if that other node stepped down
// before publishing, the node that then becomes leader publishes it at its
// next tick. Nothing is repeated while leadership stays put.
func TestPresenceNewLeaderRepeatsRecentChanges(t *testing.T) {
	p, view, now, sent := newTestPresence(t)
	const user = "u_ana"
	shard := p.shardOf(user)
	p.tick() // leads nothing yet
	p.applyForTest(connectBatch(1, user))
	if len(*sent) != 0 {
		t.Fatalf("published %v while another node leads", *sent)
	}
	*now = now.Add(time.Second)
	view.set(shard, true)
	p.tick()
	if len(*sent) != 1 || (*sent)[0].UserId != user || !(*sent)[0].Online {
		t.Fatalf("new leader published %v, want %s online", *sent, user)
	}
	p.tick()
	if len(*sent) != 1 {
		t.Fatalf("published again while still leading: %v", *sent)
	}
	// Leadership goes and comes back after the window: nothing that old is
	// repeated.
	view.set(shard, false)
	p.tick()
	*now = now.Add(p.cfg.RepairWindow + time.Second)
	view.set(shard, true)
	p.tick()
	if len(*sent) != 1 {
		t.Fatalf("repeated a change older than the window: %v", *sent)
	}
}

// Only the shards a node gained are repaired: another shard's users are
// left to their own leader.
func TestPresenceRepairOnlyGainedShards(t *testing.T) {
	p, view, _, sent := newTestPresence(t)
	users := map[int]string{}
	for i := 0; len(users) < 2; i++ {
		u := syncproto.NewID(syncproto.PrefixUser)
		if _, ok := users[p.shardOf(u)]; !ok {
			users[p.shardOf(u)] = u
		}
	}
	var shards []int
	var ids []string
	for s, u := range users {
		shards = append(shards, s)
		ids = append(ids, u)
	}
	p.tick()
	p.applyForTest(connectBatch(1, ids...))
	view.set(shards[0], true)
	p.tick()
	if len(*sent) != 1 || (*sent)[0].UserId != users[shards[0]] {
		t.Fatalf("published %v, want only %s", *sent, users[shards[0]])
	}
}
