// Package core is a regional core node: Raft groups (one directory group and
// a fixed number of conversation shards) whose logs share one write-ahead
// log and whose state machines share one Badger DB, served to edges as
// NATS request/reply by core/route (any node accepts any request and
// forwards it to the group's leader, so callers never need to know who
// leads), with what the shards commit told to members by core/fanout.
// The node wires these parts and answers receipts, presence lookups and
// region information itself.
package core

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/hashicorp/raft"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/parley-chat/parley/core/directory"
	"github.com/parley-chat/parley/core/fanout"
	"github.com/parley-chat/parley/core/group"
	"github.com/parley-chat/parley/core/internal/raftlog"
	"github.com/parley-chat/parley/core/natsembed"
	"github.com/parley-chat/parley/core/push"
	"github.com/parley-chat/parley/core/raftmux"
	"github.com/parley-chat/parley/core/raftstore"
	"github.com/parley-chat/parley/core/receipts"
	"github.com/parley-chat/parley/core/route"
	"github.com/parley-chat/parley/core/search"
	"github.com/parley-chat/parley/core/search/indexer"
	"github.com/parley-chat/parley/core/shard"
	"github.com/parley-chat/parley/crdt"
)

// stateMachine is what a group's state machine is to the node: Raft's
// (group.StateMachine) and the request service's (route.StateMachine).
type stateMachine interface {
	group.StateMachine
	route.StateMachine
}

var (
	_ stateMachine = (*shard.FSM)(nil)
	_ stateMachine = (*directory.FSM)(nil)
)

type member struct {
	index int // position in the region's group order, for leader placement
	g     *group.Group
	sm    stateMachine
	// The state machine as its type: shard for a conversation shard, dir
	// for the directory group; the other is nil.
	shard *shard.FSM
	dir   *directory.FSM
}

// Node is a running core node.
type Node struct {
	cfg   Config
	log   *slog.Logger
	peers []Peer // sorted by id

	db     *badger.DB
	syncer *raftstore.Syncer
	wal    *raftstore.WAL
	ln     net.Listener
	mux    *raftmux.Mux
	groups map[string]*member
	order  []string // dir, s0, s1, ...

	nats   *natsembed.Server
	nc     *nats.Conn
	subs   []*nats.Subscription
	router *route.Router

	fanout   *fanout.Fanout
	receipts *receipts.Service // nil when JetStream is off
	rcancel  context.CancelFunc
	lcancel  context.CancelFunc // last-seen (presence)
	presence *presenceService
	pusher   *push.Pusher     // nil when Config.Push is
	engine   search.Engine    // nil when search is off
	indexer  *indexer.Indexer // nil when search is off
	// shardFSMs are the shards' state machines by index, for the indexer.
	shardFSMs []*shard.FSM

	metrics    *nodeMetrics
	unregister []func() // removes the node's series from Config.Metrics (Close)

	stop      chan struct{}
	stopCtx   context.Context // canceled with stop
	stopAll   context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// New starts a core node: storage, Raft groups, the embedded NATS server,
// the fanout and the request service. Close stops it.
func New(cfg Config) (_ *Node, err error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, log: cfg.Logger.With("node", cfg.NodeID, "region", cfg.Region),
		groups: map[string]*member{}, stop: make(chan struct{})}
	n.stopCtx, n.stopAll = context.WithCancel(context.Background())
	defer func() {
		if err != nil {
			n.Close()
		}
	}()
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("core: data dir: %w", err)
	}
	n.db, err = raftstore.OpenDB(filepath.Join(cfg.DataDir, "badger"), n.log)
	if err != nil {
		return nil, fmt.Errorf("core: open badger: %w", err)
	}
	if err := checkShardCount(n.db, cfg.ShardCount); err != nil {
		return nil, err
	}
	n.syncer = raftstore.NewSyncer(n.db)
	n.metrics = newNodeMetrics()
	reg := prometheus.WrapRegistererWith(prometheus.Labels{"node": cfg.NodeID}, cfg.Metrics)
	n.wal, err = raftstore.OpenWAL(raftstore.WALConfig{Dir: filepath.Join(cfg.DataDir, "raftwal"), Logger: n.log, Metrics: reg})
	if err != nil {
		return nil, fmt.Errorf("core: open raft wal: %w", err)
	}

	n.ln = cfg.RaftListener
	if n.ln == nil {
		n.ln, err = net.Listen("tcp", cfg.RaftAddr)
		if err != nil {
			return nil, fmt.Errorf("core: raft listener: %w", err)
		}
	}
	advertise := cfg.RaftAdvertise
	if advertise == "" {
		advertise = n.ln.Addr().String()
	}
	n.mux, err = raftmux.NewWithConfig(n.ln, raftmux.Config{AdvertiseAddr: advertise, Logger: n.log})
	if err != nil {
		return nil, fmt.Errorf("core: raft mux: %w", err)
	}
	n.peers = append([]Peer(nil), cfg.Peers...)
	if len(n.peers) == 0 {
		n.peers = []Peer{{ID: cfg.NodeID, RaftAddr: advertise}}
	}
	sort.Slice(n.peers, func(i, j int) bool { return n.peers[i].ID < n.peers[j].ID })

	// The NATS server starts first so that shard state machines can reach
	// the directory group through the node's own request path.
	n.nats, err = natsembed.Start(natsembed.Config{
		Name:             cfg.NodeID,
		ClientAddr:       cfg.NATS.ClientAddr,
		ClusterName:      "parley-" + cfg.Region,
		ClusterAddr:      cfg.NATS.ClusterAddr,
		Routes:           cfg.NATS.Routes,
		ClusterAdvertise: cfg.NATS.ClusterAdvertise,
		JetStream:        !cfg.NATS.NoJetStream,
		StoreDir:         filepath.Join(cfg.DataDir, "nats"),
		Logger:           n.log,
	})
	if err != nil {
		return nil, fmt.Errorf("core: %w", err)
	}
	n.nc, err = n.nats.Connect("core-"+cfg.NodeID, nats.ReconnectWait(cfg.Timeouts.NATSReconnectWait))
	if err != nil {
		return nil, fmt.Errorf("core: %w", err)
	}

	dir, err := directory.New(n.db, directory.Config{Group: route.DirGroup, Sync: n.syncer.Sync, OnRevoke: n.publishRevocations,
		CheckPushTarget: n.checkPushTarget, Logger: n.log})
	if err != nil {
		return nil, fmt.Errorf("core: directory state: %w", err)
	}
	if err := n.addGroup(route.DirGroup, 0, dir, &member{dir: dir}); err != nil {
		return nil, err
	}
	if err := n.newPresence(); err != nil {
		return nil, err
	}
	fcfg := fanout.Config{
		Region: cfg.Region, LargeGroup: fanout.LargeGroup(cfg.LargeGroup), Publish: n.nc.PublishMsg,
		Shard: n.ledShard, Presence: n.presence, ReceiptAggregate: cfg.ReceiptAggregate, MemberTTL: cfg.Timeouts.MemberCache,
		Now: cfg.Now, Logger: n.log,
	}
	if !cfg.NATS.NoJetStream {
		fcfg.Positions = func(conv string, users []string, sent map[string]crdt.Register) (map[string]crdt.Marks, error) {
			return n.receipts.Positions(conv, users, sent)
		}
	}
	if n.fanout, err = fanout.New(fcfg); err != nil {
		return nil, fmt.Errorf("core: %w", err)
	}
	if !cfg.NATS.NoJetStream {
		n.receipts, err = receipts.New(n.db, n.nc, receipts.Config{
			Region: cfg.Region, NodeID: cfg.NodeID, Peers: peerIDs(n.peers),
			Replicas: min(3, len(n.peers)), OnChange: n.receiptsChanged, Logger: n.log,
		})
		if err != nil {
			return nil, fmt.Errorf("core: %w", err)
		}
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		_ = n.fanout.Run(n.stopCtx)
	}()
	if err := n.startPush(reg); err != nil {
		return nil, err
	}
	// The indexer exists before the shards, so it hears of every commit
	// (raft replays the log as a group starts); it runs once they exist.
	if err := n.openSearch(); err != nil {
		return nil, err
	}
	for i := 0; i < cfg.ShardCount; i++ {
		name := route.ShardGroup(i)
		var sm *shard.FSM
		var g atomic.Pointer[group.Group] // set once the group runs
		onCommit := func(cs []shard.Committed) {
			if n.indexer != nil {
				n.indexer.Notify(i, cs) // on every node: each keeps its own index
			}
			for _, c := range cs {
				if c.MembersChanged {
					n.fanout.Forget(c.ConvID) // on every node: any may lead next
				}
			}
			// Only the leader publishes what it proposed itself (entries of
			// its own term), in apply order: a new leader applying its
			// predecessor's entries late must not publish them again.
			gg := g.Load()
			if gg == nil || !gg.IsLeader() {
				return
			}
			term := gg.Raft().CurrentTerm()
			own := cs[:0:0]
			for _, c := range cs {
				if c.Term == term {
					own = append(own, c)
				}
			}
			if len(own) > 0 {
				n.fanout.Committed(sm, own)
				n.pushCommitted(own)
			}
		}
		sm, err = shard.New(n.db, shard.Config{Group: name, Directory: directoryClient{n}, Sync: n.syncer.Sync, OnCommit: onCommit,
			OnRestore: n.onRestore(i), LargeGroup: cfg.LargeGroup, Reads: readPositions{n}, Logger: n.log})
		if err != nil {
			return nil, fmt.Errorf("core: shard %s state: %w", name, err)
		}
		if n.shardFSMs != nil {
			n.shardFSMs[i] = sm
		}
		if err := n.addGroup(name, i+1, sm, &member{shard: sm}); err != nil {
			return nil, err
		}
		g.Store(n.groups[name].g)
	}
	n.runSearch()
	if err := n.startPresence(); err != nil {
		return nil, err
	}
	if err := n.registerMetrics(reg); err != nil {
		return nil, err
	}
	if n.router, err = n.newRouter(); err != nil {
		return nil, fmt.Errorf("core: %w", err)
	}
	if err := n.router.Start(); err != nil {
		return nil, fmt.Errorf("core: %w", err)
	}
	if n.receipts != nil {
		var rctx context.Context
		rctx, n.rcancel = context.WithCancel(context.Background())
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			_ = n.receipts.Run(rctx)
		}()
	}
	if cfg.BalanceInterval > 0 && len(n.peers) > 1 {
		n.wg.Add(1)
		go n.balanceLoop()
	}
	n.log.Info("core node started", "raft", advertise, "nats", n.nats.ClientURL(), "groups", len(n.order))
	return n, nil
}

// addGroup starts group name on sm and records it as mem (which holds the
// state machine's typed field).
func (n *Node) addGroup(name string, index int, sm stateMachine, mem *member) error {
	store, err := n.wal.Store(name)
	if err != nil {
		return fmt.Errorf("core: group %s log store: %w", name, err)
	}
	hl := raftlog.New(n.log, name)
	snaps, err := raft.NewFileSnapshotStoreWithLogger(filepath.Join(n.cfg.DataDir, "snapshots", name), 2, hl)
	if err != nil {
		return fmt.Errorf("core: group %s snapshots: %w", name, err)
	}
	layer, err := n.mux.Layer(name)
	if err != nil {
		return fmt.Errorf("core: group %s: %w", name, err)
	}
	// MaxRPCsInFlight 1 turns off raft's pipelined replication: in
	// hashicorp/raft v1.8.0 a follower's Success=false can leave the
	// pipeline's sender and decoder blocked on each other forever, so that
	// follower gets heartbeats but no more entries, and the leader's
	// Shutdown hangs (seen here with 32 shards; grafana/pyroscope#5518).
	trans := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: layer, MaxPool: 4, MaxRPCsInFlight: 1, Timeout: n.cfg.Timeouts.RaftRPC, Logger: hl,
	})
	var peers []group.Peer
	for _, p := range n.peers {
		peers = append(peers, group.Peer{ID: p.ID, Addr: p.RaftAddr})
	}
	g, err := group.New(group.Config{
		Name: name, NodeID: n.cfg.NodeID, Peers: peers, FSM: sm,
		Logs: store, Stable: store, Snapshots: snaps, Transport: trans,
		Timing: n.cfg.Timing, RaftLogger: hl, Logger: n.log,
	})
	if err != nil {
		trans.Close()
		return fmt.Errorf("core: %w", err)
	}
	mem.index, mem.g, mem.sm = index, g, sm
	n.groups[name] = mem
	n.order = append(n.order, name)
	return nil
}

// NodeID is this node's id.
func (n *Node) NodeID() string { return n.cfg.NodeID }

// RaftAddr is the address of this node's Raft listener.
func (n *Node) RaftAddr() string { return n.ln.Addr().String() }

// NATSURL is where edges connect ("" for an in-process-only server).
func (n *Node) NATSURL() string { return n.nats.ClientURL() }

// NATSClusterAddr is the embedded server's route address, if clustered.
func (n *Node) NATSClusterAddr() string {
	if a := n.nats.ClusterAddr(); a != nil {
		return a.String()
	}
	return ""
}

// ConnectNATS returns an in-process connection to the node's NATS server
// (parley serve gives it to its edge).
func (n *Node) ConnectNATS(name string, opts ...nats.Option) (*nats.Conn, error) {
	return n.nats.Connect(name, opts...)
}

// Group returns a group by name ("dir", "s0"...), for stats and tests.
func (n *Node) Group(name string) *group.Group {
	if m, ok := n.groups[name]; ok {
		return m.g
	}
	return nil
}

// Groups lists group names in region order.
func (n *Node) Groups() []string { return append([]string(nil), n.order...) }

// Partition cuts this node's Raft traffic to and from the given nodes'
// Raft addresses (tests only); Heal restores it.
func (n *Node) Partition(raftAddrs ...string) { n.mux.Partition(raftAddrs...) }

// Heal undoes Partition.
func (n *Node) Heal() { n.mux.Heal() }

// WaitReady waits until every group has a leader that answers reads.
func (n *Node) WaitReady(ctx context.Context) error {
	for _, name := range n.order {
		for {
			if id, _ := n.groups[name].g.Leader(); id != "" {
				break
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("core: group %s has no leader: %w", name, ctx.Err())
			case <-time.After(n.cfg.Timeouts.ReadyPoll):
			}
		}
	}
	return nil
}

// Close stops the node: the request service, the groups, the listener, the
// NATS server and the DB, in that order. Idempotent; waits for goroutines.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		for _, f := range n.unregister {
			f()
		}
		close(n.stop)
		n.stopAll()
		if n.rcancel != nil {
			n.rcancel()
		}
		if n.lcancel != nil {
			n.lcancel()
		}
		var errs []error
		if n.router != nil {
			n.router.Close()
		}
		for _, s := range n.subs {
			_ = s.Unsubscribe()
		}
		if n.nc != nil {
			n.nc.Close()
		}
		n.wg.Wait()
		for i := len(n.order) - 1; i >= 0; i-- {
			if err := n.groups[n.order[i]].g.Close(); err != nil {
				errs = append(errs, err)
			}
		}
		if n.mux != nil {
			if err := n.mux.Close(); err != nil {
				errs = append(errs, err)
			}
		} else if n.ln != nil {
			n.ln.Close()
		}
		if n.nats != nil {
			n.nats.Close()
		}
		if n.wal != nil {
			if err := n.wal.Close(); err != nil {
				errs = append(errs, err)
			}
		}
		if n.syncer != nil {
			n.syncer.Close()
		}
		if n.engine != nil {
			if err := n.engine.Close(); err != nil {
				errs = append(errs, fmt.Errorf("core: close search: %w", err))
			}
		}
		if n.db != nil {
			if err := n.db.Close(); err != nil {
				errs = append(errs, fmt.Errorf("core: close badger: %w", err))
			}
		}
		n.closeErr = errors.Join(errs...)
		n.log.Info("core node stopped")
	})
	return n.closeErr
}

// ledShard is the state machine of conv's shard when this node leads
// it, else nil (the fanout's Config.Shard).
func (n *Node) ledShard(conv string) fanout.ReceiptSource {
	mem := n.groups[n.ShardGroupOf(conv)]
	if !mem.g.IsLeader() {
		return nil
	}
	return mem.shard
}

// TypingStats are a core node's typing counters.
type TypingStats = fanout.TypingStats

// TypingStats counts the typing indicators this node has handled.
func (n *Node) TypingStats() TypingStats { return n.fanout.TypingStats() }

func peerIDs(peers []Peer) []string {
	ids := make([]string, 0, len(peers))
	for _, p := range peers {
		ids = append(ids, p.ID)
	}
	return ids
}
