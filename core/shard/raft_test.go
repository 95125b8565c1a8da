package shard

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	rgroup "github.com/parley-chat/parley/core/group"
	"github.com/parley-chat/parley/internal/poll"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// raftNode is one replica: a group running a shard FSM on its own DB.
type raftNode struct {
	id    string
	db    *badger.DB
	fsm   *FSM
	g     *rgroup.Group
	trans *raft.InmemTransport
}

type raftCluster struct {
	t     *testing.T
	nodes []*raftNode
	peers []rgroup.Peer
}

var raftTiming = rgroup.Timing{
	HeartbeatTimeout: 150 * time.Millisecond, ElectionTimeout: 150 * time.Millisecond,
	LeaderLeaseTimeout: 100 * time.Millisecond, CommitTimeout: 5 * time.Millisecond,
	SnapshotInterval: time.Hour, SnapshotThreshold: 1 << 30, TrailingLogs: 5,
}

func (c *raftCluster) start(i int) {
	t := c.t
	n := c.nodes[i]
	n.db = openDB(t, 16<<20)
	n.fsm = newFSM(t, n.db, newFakeDir())
	_, n.trans = raft.NewInmemTransport(raft.ServerAddress(n.id))
	for _, o := range c.nodes {
		if o != n && o.trans != nil {
			o.trans.Connect(n.trans.LocalAddr(), n.trans)
			n.trans.Connect(o.trans.LocalAddr(), o.trans)
		}
	}
	store := raft.NewInmemStore()
	g, err := rgroup.New(rgroup.Config{
		Name: group, NodeID: n.id, Peers: c.peers, FSM: n.fsm, Logs: store, Stable: store,
		Snapshots: raft.NewInmemSnapshotStore(), Transport: n.trans, Timing: raftTiming, Logger: testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	n.g = g
	t.Cleanup(func() { g.Close() })
}

func newRaftCluster(t *testing.T, n int) *raftCluster {
	c := &raftCluster{t: t}
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("n%d", i)
		c.nodes = append(c.nodes, &raftNode{id: id})
		c.peers = append(c.peers, rgroup.Peer{ID: id, Addr: id})
	}
	for i := range c.nodes {
		c.start(i)
	}
	return c
}

func (c *raftCluster) leader() *raftNode {
	c.t.Helper()
	var leader *raftNode
	poll.Until(c.t, 10*time.Second, "a leader", func() bool {
		for _, n := range c.nodes {
			if n.g.IsLeader() {
				leader = n
				return true
			}
		}
		return false
	})
	return leader
}

// do serves req as the node does: Prepare on the leader, then propose.
func (c *raftCluster) do(by *syncpb.Caller, req *syncpb.CoreRequest) *syncpb.CoreResponse {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l := c.leader()
	req.Caller = by
	cmd, resp, err := l.fsm.Prepare(ctx, req, time.Now())
	if err != nil {
		return errResp(err)
	}
	if resp != nil {
		return resp
	}
	data, err := proto.Marshal(cmd)
	if err != nil {
		c.t.Fatal(err)
	}
	res, err := l.g.Apply(ctx, data)
	if err != nil {
		c.t.Fatal(err)
	}
	return res.(*syncpb.CoreResponse)
}

// Through real raft: batches from raft's apply loop, a follower that lost
// its state and is brought back by InstallSnapshot (Restore), and all
// replicas ending byte-identical.
func TestRaftReplicasConverge(t *testing.T) {
	c := newRaftCluster(t, 3)
	mustOK(t, c.do(caller("ana"), groupReq("c_raft", "bo")))
	send := func(from, to int) {
		for i := from; i < to; i++ {
			ack := mustOK(t, c.do(caller("bo"), sendReq("c_raft", fmt.Sprint(i%100), "x"))).GetSendAck()
			if ack.Seq == 0 {
				t.Fatalf("send %d: %v", i, ack)
			}
		}
	}
	send(0, 60)
	l := c.leader()
	if err := l.g.Raft().Snapshot().Error(); err != nil {
		t.Fatal(err)
	}
	send(60, 90)
	// A follower loses everything and rejoins: its log is behind the
	// leader's compacted log, so it is sent the snapshot.
	var victim int
	for i, n := range c.nodes {
		if n != l {
			victim = i
			break
		}
	}
	if err := c.nodes[victim].g.Close(); err != nil {
		t.Fatal(err)
	}
	c.start(victim)
	send(90, 120)
	mustOK(t, c.do(caller("ana"), sendReq("c_raft", "ana-1", "x")))

	poll.Until(t, 30*time.Second, "replicas to converge", func() bool {
		want := dumpGroup(t, c.leader().db, group)
		same := true
		for _, n := range c.nodes {
			same = same && bytes.Equal(dumpGroup(t, n.db, group), want)
		}
		return same
	})
	if s := c.nodes[victim].g.Raft().Stats()["last_snapshot_index"]; s == "0" {
		t.Fatal("the restarted follower never installed a snapshot")
	}
}
