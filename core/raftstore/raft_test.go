package raftstore

import (
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/parley-chat/parley/core/internal/raftlog"
	"github.com/parley-chat/parley/internal/poll"
)

// listFSM records applied commands in order.
type listFSM struct {
	mu  sync.Mutex
	got []string
}

func (f *listFSM) Apply(l *raft.Log) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.got = append(f.got, string(l.Data))
	return len(f.got)
}

func (f *listFSM) list() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.got)
}

func (f *listFSM) Snapshot() (raft.FSMSnapshot, error) { return listSnap(f.list()), nil }

func (f *listFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var got []string
	if err := json.NewDecoder(rc).Decode(&got); err != nil {
		return err
	}
	f.mu.Lock()
	f.got = got
	f.mu.Unlock()
	return nil
}

type listSnap []string

func (s listSnap) Persist(sink raft.SnapshotSink) error {
	if err := json.NewEncoder(sink).Encode([]string(s)); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (listSnap) Release() {}

// raftNode is one member of a test cluster; its store's files, snapshots
// and address outlive restarts.
type raftNode struct {
	id    raft.ServerID
	addr  raft.ServerAddress
	dir   string
	snaps *raft.InmemSnapshotStore

	wal   *WAL
	store logStore
	trans *raft.InmemTransport
	fsm   *listFSM
	raft  *raft.Raft
}

type raftCluster struct {
	t     testing.TB
	nodes []*raftNode
}

func newRaftCluster(t testing.TB, n int) *raftCluster {
	t.Helper()
	c := &raftCluster{t: t}
	var servers []raft.Server
	for i := 0; i < n; i++ {
		nd := &raftNode{
			id:    raft.ServerID(fmt.Sprintf("n%d", i)),
			addr:  raft.ServerAddress(fmt.Sprintf("node%d", i)),
			dir:   filepath.Join(t.TempDir(), "wal"),
			snaps: raft.NewInmemSnapshotStore(),
		}
		c.nodes = append(c.nodes, nd)
		servers = append(servers, raft.Server{ID: nd.id, Address: nd.addr})
	}
	t.Cleanup(c.stop)
	c.start(&raft.Configuration{Servers: servers})
	return c
}

func (c *raftCluster) config(nd *raftNode) *raft.Config {
	cfg := raft.DefaultConfig()
	cfg.LocalID = nd.id
	// Loose enough for -race on two busy cores.
	cfg.HeartbeatTimeout = 500 * time.Millisecond
	cfg.ElectionTimeout = 500 * time.Millisecond
	cfg.LeaderLeaseTimeout = 250 * time.Millisecond
	cfg.CommitTimeout = 5 * time.Millisecond
	cfg.TrailingLogs = 10
	cfg.SnapshotThreshold = 1 << 30 // only explicit snapshots
	cfg.Logger = raftlog.New(testLogger(c.t), "s0")
	return cfg
}

// start opens every node's DB and store and starts raft, bootstrapping
// with boot when given.
func (c *raftCluster) start(boot *raft.Configuration) {
	t := c.t
	t.Helper()
	for _, nd := range c.nodes {
		w, err := OpenWAL(WALConfig{Dir: nd.dir, Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		nd.wal, nd.store = w, mustStore(t, w, "s0")
		_, nd.trans = raft.NewInmemTransport(nd.addr)
		nd.fsm = &listFSM{}
	}
	for _, a := range c.nodes {
		for _, b := range c.nodes {
			if a != b {
				a.trans.Connect(b.addr, b.trans)
			}
		}
	}
	for _, nd := range c.nodes {
		cfg := c.config(nd)
		has, err := raft.HasExistingState(nd.store, nd.store, nd.snaps)
		if err != nil {
			t.Fatal(err)
		}
		if boot != nil {
			if has {
				t.Fatalf("%s: state before bootstrap", nd.id)
			}
			if err := raft.BootstrapCluster(cfg, nd.store, nd.store, nd.snaps, nd.trans, *boot); err != nil {
				t.Fatal(err)
			}
		} else if !has {
			t.Fatalf("%s: no existing state after restart", nd.id)
		}
		r, err := raft.NewRaft(cfg, nd.fsm, nd.store, nd.store, nd.snaps, nd.trans)
		if err != nil {
			t.Fatal(err)
		}
		nd.raft = r
	}
}

// stop shuts raft down and closes the DBs.
func (c *raftCluster) stop() {
	for _, nd := range c.nodes {
		if nd.raft == nil {
			continue
		}
		if err := nd.raft.Shutdown().Error(); err != nil {
			c.t.Errorf("%s shutdown: %v", nd.id, err)
		}
		nd.trans.Close()
		if err := nd.wal.Close(); err != nil {
			c.t.Errorf("%s close wal: %v", nd.id, err)
		}
		nd.raft = nil
	}
}

func (c *raftCluster) leader() *raftNode {
	c.t.Helper()
	var leader *raftNode
	poll.NoError(c.t, 20*time.Second, "", func() error {
		for _, nd := range c.nodes {
			if nd.raft.State() == raft.Leader {
				leader = nd
				return nil
			}
		}
		return fmt.Errorf("no leader")
	})
	return leader
}

// apply proposes cmds one by one on the leader, retrying while leadership
// moves (a retried command may then be applied twice, back to back).
func (c *raftCluster) apply(cmds ...string) {
	c.t.Helper()
	for _, cmd := range cmds {
		poll.NoError(c.t, 20*time.Second, "", func() error {
			return c.leader().raft.Apply([]byte(cmd), 5*time.Second).Error()
		})
	}
}

// converged waits until every FSM holds want, ignoring back-to-back
// duplicates from retries.
func (c *raftCluster) converged(want []string) {
	c.t.Helper()
	poll.NoError(c.t, 20*time.Second, "", func() error {
		for _, nd := range c.nodes {
			if got := slices.Compact(nd.fsm.list()); !slices.Equal(got, want) {
				return fmt.Errorf("%s applied %d of %d commands", nd.id, len(got), len(want))
			}
		}
		return nil
	})
}

func commands(from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("cmd-%03d", i))
	}
	return out
}

func TestRaftCluster(t *testing.T) {
	c := newRaftCluster(t, 3)
	want := commands(0, 100)
	c.apply(want...)
	c.converged(want)

	// The committed logs agree entry by entry.
	ref := c.leader()
	applied := ref.raft.AppliedIndex()
	for i := uint64(1); i <= applied; i++ {
		var want raft.Log
		if err := ref.store.GetLog(i, &want); err != nil {
			t.Fatalf("%s GetLog(%d): %v", ref.id, i, err)
		}
		for _, nd := range c.nodes {
			poll.NoError(t, 10*time.Second, "", func() error {
				var l raft.Log
				if err := nd.store.GetLog(i, &l); err != nil {
					return fmt.Errorf("%s GetLog(%d): %w", nd.id, i, err)
				}
				if l.Term != want.Term || l.Type != want.Type || string(l.Data) != string(want.Data) {
					return fmt.Errorf("%s entry %d differs: %+v vs %+v", nd.id, i, l, want)
				}
				return nil
			})
		}
	}

	// A snapshot compacts the log through DeleteRange.
	if err := ref.raft.Snapshot().Error(); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	first, _ := ref.store.FirstIndex()
	last, _ := ref.store.LastIndex()
	if first <= 1 || last-first > 20 {
		t.Fatalf("after snapshot %s's log is %d..%d", ref.id, first, last)
	}
	more := commands(100, 150)
	c.apply(more...)
	want = append(want, more...)
	c.converged(want)
	term := ref.raft.CurrentTerm()

	// Everything survives closing and reopening the DBs: the nodes restart
	// from their stores (no bootstrap), replay, elect and go on.
	c.stop()
	c.start(nil)
	for _, nd := range c.nodes {
		if v, err := nd.store.GetUint64([]byte("CurrentTerm")); err != nil || v < term {
			t.Fatalf("%s: CurrentTerm %d, %v; was %d", nd.id, v, err, term)
		}
	}
	tail := commands(150, 170)
	c.apply(tail...)
	want = append(want, tail...)
	c.converged(want)
}
