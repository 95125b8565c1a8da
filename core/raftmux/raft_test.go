package raftmux

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/parley-chat/parley/core/internal/raftlog"
	"github.com/parley-chat/parley/internal/poll"
)

// countFSM records applied commands.
type countFSM struct {
	mu  sync.Mutex
	got []string
}

func (f *countFSM) Apply(l *raft.Log) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.got = append(f.got, string(l.Data))
	return nil
}

func (f *countFSM) list() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.got)
}

func (f *countFSM) Snapshot() (raft.FSMSnapshot, error) { return nil, errors.New("no snapshots") }
func (f *countFSM) Restore(io.ReadCloser) error         { return errors.New("no snapshots") }

// muxCluster is len(muxes) nodes, each running every group over its Mux
// with raft's NetworkTransport.
type muxCluster struct {
	t      *testing.T
	muxes  []*Mux
	groups []string
	rafts  map[string][]*raft.Raft // by group, by node
	fsms   map[string][]*countFSM
	trans  []*raft.NetworkTransport
}

func newMuxCluster(t *testing.T, nodes int, groups ...string) *muxCluster {
	t.Helper()
	c := &muxCluster{t: t, groups: groups, rafts: map[string][]*raft.Raft{}, fsms: map[string][]*countFSM{}}
	var servers []raft.Server
	for i := 0; i < nodes; i++ {
		m := newTestMux(t, Config{HeaderTimeout: time.Second, Logger: testLogger(t, slog.LevelInfo)})
		c.muxes = append(c.muxes, m)
		servers = append(servers, raft.Server{ID: raft.ServerID(fmt.Sprintf("n%d", i)), Address: raft.ServerAddress(m.Addr().String())})
	}
	t.Cleanup(c.shutdown) // runs before the muxes close
	for _, g := range groups {
		for i, m := range c.muxes {
			hl := raftlog.New(testLogger(t, slog.LevelInfo), g)
			layer := mustLayer(t, m, g)
			trans := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
				Stream: layer, MaxPool: 2, Timeout: time.Second, Logger: hl,
			})
			c.trans = append(c.trans, trans)
			cfg := raft.DefaultConfig()
			cfg.LocalID = servers[i].ID
			// Loose enough for -race on two busy cores.
			cfg.HeartbeatTimeout = 500 * time.Millisecond
			cfg.ElectionTimeout = 500 * time.Millisecond
			cfg.LeaderLeaseTimeout = 250 * time.Millisecond
			cfg.CommitTimeout = 5 * time.Millisecond
			cfg.Logger = hl
			store, snaps := raft.NewInmemStore(), raft.NewInmemSnapshotStore()
			must(t, raft.BootstrapCluster(cfg, store, store, snaps, trans, raft.Configuration{Servers: servers}))
			fsm := &countFSM{}
			r, err := raft.NewRaft(cfg, fsm, store, store, snaps, trans)
			must(t, err)
			c.rafts[g] = append(c.rafts[g], r)
			c.fsms[g] = append(c.fsms[g], fsm)
		}
	}
	return c
}

func (c *muxCluster) shutdown() {
	for _, g := range c.groups {
		for _, r := range c.rafts[g] {
			if err := r.Shutdown().Error(); err != nil {
				c.t.Errorf("raft shutdown: %v", err)
			}
		}
	}
	for _, tr := range c.trans {
		tr.Close()
	}
}

// leader waits for group g to have exactly one leader among the nodes not
// in skip, and returns its node index.
func (c *muxCluster) leader(g string, skip ...int) int {
	c.t.Helper()
	idx := -1
	poll.NoError(c.t, 20*time.Second, "", func() error {
		idx = -1
		for i, r := range c.rafts[g] {
			if slices.Contains(skip, i) || r.State() != raft.Leader {
				continue
			}
			if idx >= 0 {
				return fmt.Errorf("group %s: two leaders, n%d and n%d", g, idx, i)
			}
			idx = i
		}
		if idx < 0 {
			return fmt.Errorf("group %s: no leader", g)
		}
		return nil
	})
	return idx
}

// apply proposes cmds to group g's leader, retrying while leadership moves.
func (c *muxCluster) apply(g string, cmds ...string) {
	c.t.Helper()
	for _, cmd := range cmds {
		poll.NoError(c.t, 20*time.Second, "", func() error {
			return c.rafts[g][c.leader(g)].Apply([]byte(cmd), time.Second).Error()
		})
	}
}

// has waits until the given nodes of group g applied all of want, in order
// (a retried Apply may have committed twice; duplicates are ignored).
func (c *muxCluster) has(g string, want []string, nodes ...int) {
	c.t.Helper()
	poll.NoError(c.t, 20*time.Second, "", func() error {
		for _, i := range nodes {
			got := slices.Compact(c.fsms[g][i].list())
			if !slices.Equal(got, want) {
				return fmt.Errorf("group %s node %d applied %d of %d", g, i, len(got), len(want))
			}
		}
		return nil
	})
}

func cmds(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%03d", prefix, i)
	}
	return out
}

var allNodes = []int{0, 1, 2}

func TestRaftOverMux(t *testing.T) {
	checkGoroutines(t)
	c := newMuxCluster(t, 3, "dir", "s0", "s1")
	for _, g := range c.groups {
		want := cmds(g, 20)
		c.apply(g, want...)
		c.has(g, want, allNodes...)
	}

	// Bad connections are rejected without disturbing the groups.
	for _, send := range [][]byte{[]byte("garbage!"), header{group: "s9", from: "x:1"}.appendTo(nil)} {
		conn := dialRaw(t, c.muxes[0].Addr())
		_, err := conn.Write(send)
		must(t, err)
		closedByPeer(t, conn, 10*time.Second)
	}
	for _, g := range c.groups {
		want := append(cmds(g, 20), cmds(g+"-more", 5)...)
		c.apply(g, cmds(g+"-more", 5)...)
		c.has(g, want, allNodes...)
	}
}

func TestRaftPartition(t *testing.T) {
	checkGoroutines(t)
	c := newMuxCluster(t, 3, "s0", "s1")
	before := cmds("before", 5)
	c.apply("s0", before...)
	c.has("s0", before, allNodes...)

	old := c.leader("s0")
	var others []string
	var rest []int
	for i, m := range c.muxes {
		if i != old {
			others = append(others, m.Addr().String())
			rest = append(rest, i)
		}
	}
	c.muxes[old].Partition(others...)

	// The old leader loses quorum and steps down; the others elect a leader.
	poll.NoError(t, 20*time.Second, "", func() error {
		if st := c.rafts["s0"][old].State(); st == raft.Leader {
			return fmt.Errorf("partitioned n%d is still %v", old, st)
		}
		return nil
	})
	during := cmds("during", 5)
	c.apply("s0", during...)
	c.has("s0", append(slices.Clone(before), during...), rest...)
	if got := slices.Compact(c.fsms["s0"][old].list()); len(got) != len(before) {
		t.Fatalf("partitioned node applied %d commands, want %d", len(got), len(before))
	}
	// s1 keeps a leader among the connected nodes, too.
	c.leader("s1", old)

	// After Heal the old leader catches up and the group has one leader.
	c.muxes[old].Heal()
	after := cmds("after", 5)
	c.apply("s0", after...)
	want := append(append(slices.Clone(before), during...), after...)
	c.has("s0", want, allNodes...)
	c.leader("s0")
	c.apply("s1", "s1-after")
	c.has("s1", []string{"s1-after"}, allNodes...)
}
