package group

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/parley-chat/parley/internal/poll"
	"github.com/parley-chat/parley/syncproto"
)

// counter is a small persistent-looking state machine: a sum of applied
// values, with its applied index, so restarts can skip replays.
type counter struct {
	mu      sync.Mutex
	sum     uint64
	applied uint64
}

func (c *counter) Apply(l *raft.Log) any { return c.ApplyBatch([]*raft.Log{l})[0] }

func (c *counter) ApplyBatch(ls []*raft.Log) []any {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]any, len(ls))
	for i, l := range ls {
		if l.Index <= c.applied {
			continue
		}
		c.applied = l.Index
		if l.Type == raft.LogCommand && len(l.Data) == 8 {
			c.sum += binary.BigEndian.Uint64(l.Data)
			out[i] = c.sum
		}
	}
	return out
}

func (c *counter) AppliedIndex() (uint64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.applied, nil
}

func (c *counter) Snapshot() (raft.FSMSnapshot, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return &counterSnap{sum: c.sum, applied: c.applied}, nil
}

func (c *counter) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var b [16]byte
	if _, err := io.ReadFull(rc, b[:]); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sum, c.applied = binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])
	return nil
}

func (c *counter) value() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sum
}

type counterSnap struct{ sum, applied uint64 }

func (s *counterSnap) Persist(sink raft.SnapshotSink) error {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], s.sum)
	binary.BigEndian.PutUint64(b[8:], s.applied)
	if _, err := sink.Write(b[:]); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}
func (s *counterSnap) Release() {}

var fastTiming = Timing{
	HeartbeatTimeout: 150 * time.Millisecond, ElectionTimeout: 150 * time.Millisecond,
	LeaderLeaseTimeout: 100 * time.Millisecond, CommitTimeout: 5 * time.Millisecond,
}

type cluster struct {
	groups []*Group
	fsms   []*counter
	trans  []*raft.InmemTransport
}

func newTestCluster(t *testing.T, n int) *cluster {
	t.Helper()
	c := &cluster{}
	var peers []Peer
	for i := 0; i < n; i++ {
		addr, tr := raft.NewInmemTransport(raft.ServerAddress(fmt.Sprintf("n%d", i)))
		c.trans = append(c.trans, tr)
		peers = append(peers, Peer{ID: fmt.Sprintf("n%d", i), Addr: string(addr)})
	}
	for i := range c.trans {
		for j := range c.trans {
			if i != j {
				c.trans[i].Connect(c.trans[j].LocalAddr(), c.trans[j])
			}
		}
	}
	for i := 0; i < n; i++ {
		store := raft.NewInmemStore()
		fsm := &counter{}
		g, err := New(Config{
			Name: "g", NodeID: peers[i].ID, Peers: peers, FSM: fsm,
			Logs: store, Stable: store, Snapshots: raft.NewInmemSnapshotStore(), Transport: c.trans[i],
			Timing: fastTiming,
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { g.Close() })
		c.groups = append(c.groups, g)
		c.fsms = append(c.fsms, fsm)
	}
	return c
}

func (c *cluster) leader(t *testing.T) int {
	t.Helper()
	leader := -1
	poll.Until(t, 10*time.Second, "a leader", func() bool {
		for i, g := range c.groups {
			if g.IsLeader() {
				leader = i
				return true
			}
		}
		return false
	})
	return leader
}

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func TestConfigValidate(t *testing.T) {
	store := raft.NewInmemStore()
	_, tr := raft.NewInmemTransport("")
	base := Config{Name: "g", NodeID: "a", Peers: []Peer{{"a", "x"}}, FSM: &counter{}, Logs: store, Stable: store,
		Snapshots: raft.NewInmemSnapshotStore(), Transport: tr}
	for _, tc := range []struct {
		name string
		mut  func(*Config)
		ok   bool
	}{
		{"ok", func(*Config) {}, true},
		{"no name", func(c *Config) { c.Name = "" }, false},
		{"no node", func(c *Config) { c.NodeID = "" }, false},
		{"no fsm", func(c *Config) { c.FSM = nil }, false},
		{"no peers", func(c *Config) { c.Peers = nil }, false},
		{"self missing", func(c *Config) { c.Peers = []Peer{{"b", "y"}} }, false},
		{"duplicate peer", func(c *Config) { c.Peers = []Peer{{"a", "x"}, {"a", "y"}} }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := base
			tc.mut(&c)
			if err := c.Validate(); (err == nil) != tc.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

func TestApplyAndReadOnLeaderOnly(t *testing.T) {
	c := newTestCluster(t, 3)
	li := c.leader(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := uint64(1); i <= 10; i++ {
		res, err := c.groups[li].Apply(ctx, u64(i))
		if err != nil {
			t.Fatal(err)
		}
		if res.(uint64) != i*(i+1)/2 {
			t.Fatalf("apply %d returned %v", i, res)
		}
	}
	if err := c.groups[li].ReadBarrier(ctx); err != nil {
		t.Fatalf("ReadBarrier on leader: %v", err)
	}
	if got := c.fsms[li].value(); got != 55 {
		t.Fatalf("leader sum %d, want 55", got)
	}
	f := (li + 1) % 3
	if err := c.groups[f].ReadBarrier(ctx); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("ReadBarrier on follower = %v, want ErrNotLeader", err)
	}
	if _, err := c.groups[f].Apply(ctx, u64(1)); !errors.Is(err, syncproto.ErrUnavailable) {
		t.Fatalf("Apply on follower = %v, want UNAVAILABLE", err)
	}
	// Followers converge.
	poll.NoError(t, 20*time.Second, "followers to converge", func() error {
		for i, fsm := range c.fsms {
			if v := fsm.value(); v != 55 {
				return fmt.Errorf("node %d sum %d, want 55", i, v)
			}
		}
		return nil
	})
}

func TestLeadershipTransfer(t *testing.T) {
	c := newTestCluster(t, 3)
	li := c.leader(t)
	to := (li + 1) % 3
	id, addr := fmt.Sprintf("n%d", to), string(c.trans[to].LocalAddr())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.groups[li].TransferLeadership(ctx, id, addr); err != nil {
		t.Fatal(err)
	}
	if got := c.leader(t); got != to {
		t.Fatalf("leader is n%d, want n%d", got, to)
	}
	if lid, _ := c.groups[li].Leader(); lid != id {
		t.Logf("old leader still learning the new one: %q", lid)
	}
}

func TestApplyHonoursContext(t *testing.T) {
	c := newTestCluster(t, 3)
	li := c.leader(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.groups[li].Apply(ctx, u64(1)); err == nil {
		t.Fatal("Apply with a cancelled context succeeded")
	}
}

func TestCatchUpFromSnapshotWhenBehind(t *testing.T) {
	snaps := raft.NewInmemSnapshotStore()
	src := &counter{sum: 42, applied: 100}
	snap, _ := src.Snapshot()
	sink, err := snaps.Create(raft.SnapshotVersionMax, 100, 3, raft.Configuration{}, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	logs := raft.NewInmemStore()
	for i := uint64(90); i <= 100; i++ {
		typ := raft.LogNoop
		if i == 95 {
			typ = raft.LogCommand
		}
		if err := logs.StoreLog(&raft.Log{Index: i, Term: 3, Type: typ}); err != nil {
			t.Fatal(err)
		}
	}
	behind := &counter{applied: 50}
	if err := catchUpFromSnapshot(behind, snaps, logs, discardLog()); err != nil {
		t.Fatal(err)
	}
	if behind.value() != 42 {
		t.Fatalf("sum %d after restore, want 42", behind.value())
	}
	ahead := &counter{sum: 7, applied: 200}
	if err := catchUpFromSnapshot(ahead, snaps, logs, discardLog()); err != nil {
		t.Fatal(err)
	}
	if ahead.value() != 7 {
		t.Fatal("a state machine ahead of the snapshot was restored")
	}
	// Only no-ops between applied and the snapshot: nothing to restore.
	nearly := &counter{sum: 9, applied: 95}
	if err := catchUpFromSnapshot(nearly, snaps, logs, discardLog()); err != nil {
		t.Fatal(err)
	}
	if nearly.value() != 9 {
		t.Fatal("restored over entries raft never gives the state machine")
	}
	// A command between them: restore.
	before := &counter{sum: 9, applied: 94}
	if err := catchUpFromSnapshot(before, snaps, logs, discardLog()); err != nil {
		t.Fatal(err)
	}
	if before.value() != 42 {
		t.Fatal("a state machine missing a command was not restored")
	}
}

func discardLog() *slog.Logger { return slog.New(slog.DiscardHandler) }
