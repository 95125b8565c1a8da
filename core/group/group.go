// Package group runs one Raft group of a core node: bootstrap, proposals
// with a context, linearizable reads on the leader, and leadership moves.
package group

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// StateMachine is what a group replicates. Apply results are returned by
// Apply below. AppliedIndex is the last log index whose effects the state
// machine has persisted; on start the group restores the newest snapshot
// only when the state machine is behind it (raft's NoSnapshotRestoreOnStart).
type StateMachine interface {
	raft.BatchingFSM
	AppliedIndex() (uint64, error)
}

// Peer is one voter of the group.
type Peer struct {
	ID   string
	Addr string
}

// Timing holds Raft timings; zero fields take the defaults in DefaultTiming.
type Timing struct {
	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	CommitTimeout      time.Duration
	SnapshotInterval   time.Duration
	SnapshotThreshold  uint64
	TrailingLogs       uint64
	MaxAppendEntries   int
}

// DefaultTiming suits a region on a LAN.
var DefaultTiming = Timing{
	HeartbeatTimeout:   1000 * time.Millisecond,
	ElectionTimeout:    1000 * time.Millisecond,
	LeaderLeaseTimeout: 500 * time.Millisecond,
	// CommitTimeout is how often (randomised up to twice) an idle leader
	// sends AppendEntries just to carry the commit index to followers, so
	// it is also how long after a lone write a follower's own copy lags.
	// Every group on every node pays it: an idle 3-node region of 17
	// groups spends 46% of a core at 50 ms, 24% at 500 ms. Commits do not
	// wait for it, and nothing answers from a follower's copy: requests,
	// syncs and presence lookups read on the leaders after a read barrier.
	CommitTimeout:     500 * time.Millisecond,
	SnapshotInterval:  60 * time.Second,
	SnapshotThreshold: 16384,
	TrailingLogs:      10240,
	MaxAppendEntries:  256,
}

func (t Timing) withDefaults() Timing {
	d := DefaultTiming
	if t.HeartbeatTimeout != 0 {
		d.HeartbeatTimeout = t.HeartbeatTimeout
	}
	if t.ElectionTimeout != 0 {
		d.ElectionTimeout = t.ElectionTimeout
	}
	if t.LeaderLeaseTimeout != 0 {
		d.LeaderLeaseTimeout = t.LeaderLeaseTimeout
	}
	if t.CommitTimeout != 0 {
		d.CommitTimeout = t.CommitTimeout
	}
	if t.SnapshotInterval != 0 {
		d.SnapshotInterval = t.SnapshotInterval
	}
	if t.SnapshotThreshold != 0 {
		d.SnapshotThreshold = t.SnapshotThreshold
	}
	if t.TrailingLogs != 0 {
		d.TrailingLogs = t.TrailingLogs
	}
	if t.MaxAppendEntries != 0 {
		d.MaxAppendEntries = t.MaxAppendEntries
	}
	return d
}

// Config of a group.
type Config struct {
	Name   string
	NodeID string
	// Peers are all voters including this node. They bootstrap a group that
	// has no state yet; a group with state keeps its own configuration.
	Peers     []Peer
	FSM       StateMachine
	Logs      raft.LogStore
	Stable    raft.StableStore
	Snapshots raft.SnapshotStore
	// Transport belongs to the group from New on: Close closes it (when it
	// has a Close method), so that no peer waits on a transport whose raft
	// is gone.
	Transport raft.Transport
	Timing    Timing
	// RaftLogger receives raft's own log; nil discards it.
	RaftLogger hclog.Logger
	Logger     *slog.Logger
}

// Validate reports the first missing or inconsistent field.
func (c *Config) Validate() error {
	switch {
	case c.Name == "":
		return errors.New("group: Config.Name is required")
	case c.NodeID == "":
		return errors.New("group: Config.NodeID is required")
	case c.FSM == nil || c.Logs == nil || c.Stable == nil || c.Snapshots == nil || c.Transport == nil:
		return fmt.Errorf("group %s: Config needs FSM, Logs, Stable, Snapshots and Transport", c.Name)
	case len(c.Peers) == 0:
		return fmt.Errorf("group %s: Config.Peers is empty", c.Name)
	}
	self := false
	seen := map[string]bool{}
	for _, p := range c.Peers {
		if p.ID == "" || p.Addr == "" {
			return fmt.Errorf("group %s: Config.Peers: peer with empty id or address", c.Name)
		}
		if seen[p.ID] {
			return fmt.Errorf("group %s: Config.Peers: duplicate id %q", c.Name, p.ID)
		}
		seen[p.ID] = true
		self = self || p.ID == c.NodeID
	}
	if !self {
		return fmt.Errorf("group %s: Config.Peers does not include this node %q", c.Name, c.NodeID)
	}
	return nil
}

// ErrNotLeader is returned (as a *syncproto.Error with code UNAVAILABLE) by
// Apply and ReadBarrier on a node that is not the group's leader.
var ErrNotLeader = &syncproto.Error{Code: syncpb.Code_CODE_UNAVAILABLE, Message: "not the leader, retry"}

// Group is one running Raft group.
type Group struct {
	name  string
	raft  *raft.Raft
	trans raft.Transport
	fsm   StateMachine
	log   *slog.Logger

	mu        sync.Mutex
	readyTerm uint64 // term in which a barrier completed on this leader
}

// New starts the group, bootstrapping it when it has no state.
func New(cfg Config) (*Group, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	t := cfg.Timing.withDefaults()
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.NodeID)
	rc.HeartbeatTimeout = t.HeartbeatTimeout
	rc.ElectionTimeout = t.ElectionTimeout
	rc.LeaderLeaseTimeout = t.LeaderLeaseTimeout
	rc.CommitTimeout = t.CommitTimeout
	rc.SnapshotInterval = t.SnapshotInterval
	rc.SnapshotThreshold = t.SnapshotThreshold
	rc.TrailingLogs = t.TrailingLogs
	rc.MaxAppendEntries = t.MaxAppendEntries
	rc.BatchApplyCh = true
	rc.NoSnapshotRestoreOnStart = true
	rc.Logger = cfg.RaftLogger
	if rc.Logger == nil {
		rc.Logger = hclog.NewNullLogger()
	}
	if err := raft.ValidateConfig(rc); err != nil {
		return nil, fmt.Errorf("group %s: %w", cfg.Name, err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("group", cfg.Name)

	has, err := raft.HasExistingState(cfg.Logs, cfg.Stable, cfg.Snapshots)
	if err != nil {
		return nil, fmt.Errorf("group %s: existing state: %w", cfg.Name, err)
	}
	if !has {
		var servers []raft.Server
		for _, p := range cfg.Peers {
			servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(p.ID), Address: raft.ServerAddress(p.Addr)})
		}
		if err := raft.BootstrapCluster(rc, cfg.Logs, cfg.Stable, cfg.Snapshots, cfg.Transport, raft.Configuration{Servers: servers}); err != nil {
			return nil, fmt.Errorf("group %s: bootstrap: %w", cfg.Name, err)
		}
	}
	if err := catchUpFromSnapshot(cfg.FSM, cfg.Snapshots, cfg.Logs, log); err != nil {
		return nil, fmt.Errorf("group %s: %w", cfg.Name, err)
	}
	r, err := raft.NewRaft(rc, cfg.FSM, cfg.Logs, cfg.Stable, cfg.Snapshots, cfg.Transport)
	if err != nil {
		return nil, fmt.Errorf("group %s: start raft: %w", cfg.Name, err)
	}
	return &Group{name: cfg.Name, raft: r, trans: cfg.Transport, fsm: cfg.FSM, log: log}, nil
}

// catchUpFromSnapshot restores the newest snapshot into a state machine
// that is behind it (lost unsynced writes, an interrupted restore). Raft
// itself skips the restore on start because the state machine persists.
func catchUpFromSnapshot(fsm StateMachine, snaps raft.SnapshotStore, logs raft.LogStore, log *slog.Logger) error {
	metas, err := snaps.List()
	if err != nil {
		return fmt.Errorf("list snapshots: %w", err)
	}
	if len(metas) == 0 {
		return nil
	}
	applied, err := fsm.AppliedIndex()
	if err == nil && onlyInternalAfter(logs, applied, metas[0].Index) {
		return nil
	}
	log.Info("state machine behind its snapshot, restoring", "applied", applied, "snapshot", metas[0].Index, "err", err)
	_, rc, err := snaps.Open(metas[0].ID)
	if err != nil {
		return fmt.Errorf("open snapshot %s: %w", metas[0].ID, err)
	}
	defer rc.Close()
	if err := fsm.Restore(io.NopCloser(rc)); err != nil {
		return fmt.Errorf("restore snapshot %s: %w", metas[0].ID, err)
	}
	return nil
}

// onlyInternalAfter reports whether every entry in (applied, upto] is one
// raft keeps to itself (no-ops, barriers): the snapshot at upto then holds
// nothing the state machine lacks. A missing entry counts as a command.
func onlyInternalAfter(logs raft.LogStore, applied, upto uint64) bool {
	if applied >= upto {
		return true
	}
	if upto-applied > 64 {
		return false
	}
	for i := applied + 1; i <= upto; i++ {
		var l raft.Log
		if err := logs.GetLog(i, &l); err != nil {
			return false
		}
		if l.Type == raft.LogCommand || l.Type == raft.LogConfiguration {
			return false
		}
	}
	return true
}

// Name is the group's name.
func (g *Group) Name() string { return g.name }

// Raft exposes the underlying raft instance for stats and tests.
func (g *Group) Raft() *raft.Raft { return g.raft }

// IsLeader reports whether this node currently believes it leads the group.
func (g *Group) IsLeader() bool { return g.raft.State() == raft.Leader }

// Leader returns the current leader's node id and address, empty if unknown.
func (g *Group) Leader() (id, addr string) {
	a, i := g.raft.LeaderWithID()
	return string(i), string(a)
}

// Apply proposes data and returns the state machine's result once the entry
// is committed on a quorum and applied here. It fails with ErrNotLeader (or
// another UNAVAILABLE error) when leadership is lost; the entry may then
// still commit, so callers retry idempotent commands only.
func (g *Group) Apply(ctx context.Context, data []byte) (any, error) {
	if err := ctx.Err(); err != nil {
		return nil, err // not proposed
	}
	timeout := 10 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
		if timeout <= 0 {
			return nil, ctx.Err()
		}
	}
	f := g.raft.Apply(data, timeout)
	if err := waitFuture(ctx, f); err != nil {
		return nil, err
	}
	return f.Response(), nil
}

// ReadBarrier returns nil when a read of the local state machine is
// linearizable: this node is the leader, it has applied every entry
// committed before it took office, and a quorum still follows it.
func (g *Group) ReadBarrier(ctx context.Context) error {
	if !g.IsLeader() {
		return ErrNotLeader
	}
	term := g.raft.CurrentTerm()
	g.mu.Lock()
	ready := g.readyTerm == term
	g.mu.Unlock()
	if !ready {
		timeout := 5 * time.Second
		if dl, ok := ctx.Deadline(); ok {
			timeout = time.Until(dl)
		}
		if err := waitFuture(ctx, g.raft.Barrier(timeout)); err != nil {
			return err
		}
		g.mu.Lock()
		if g.readyTerm < term {
			g.readyTerm = term
		}
		g.mu.Unlock()
	}
	return waitFuture(ctx, g.raft.VerifyLeader())
}

// TransferLeadership asks raft to hand leadership to the node id.
func (g *Group) TransferLeadership(ctx context.Context, id, addr string) error {
	return waitFuture(ctx, g.raft.LeadershipTransferToServer(raft.ServerID(id), raft.ServerAddress(addr)))
}

// Close shuts the group down and waits. Idempotent.
func (g *Group) Close() error {
	f := g.raft.Shutdown()
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(shutdownGrace):
		// A replication pipeline to a peer that stopped answering blocks
		// raft's shutdown; closing the transport fails its I/O.
		g.log.Warn("raft shutdown is slow; closing its transport", "group", g.name)
		g.closeTransport()
		err = <-done
	}
	// A transport left open after its raft stops keeps accepting RPCs
	// that nobody answers, and a leader's pipeline to it then stalls for
	// its I/O timeout per request in flight.
	g.closeTransport()
	if err != nil && !errors.Is(err, raft.ErrRaftShutdown) {
		return fmt.Errorf("group %s: shutdown: %w", g.name, err)
	}
	return nil
}

// shutdownGrace is how long Close waits for raft before closing the
// transport under it.
const shutdownGrace = 3 * time.Second

func (g *Group) closeTransport() {
	if c, ok := g.trans.(raft.WithClose); ok {
		if err := c.Close(); err != nil {
			g.log.Warn("close raft transport", "group", g.name, "err", err)
		}
	}
}

// waitFuture waits for f or ctx and maps raft's errors to wire errors.
func waitFuture(ctx context.Context, f raft.Future) error {
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		return mapRaftError(err)
	case <-ctx.Done():
		return ctx.Err()
	}
}

func mapRaftError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipLost),
		errors.Is(err, raft.ErrLeadershipTransferInProgress), errors.Is(err, raft.ErrNotVoter):
		return fmt.Errorf("%w (%v)", ErrNotLeader, err)
	case errors.Is(err, raft.ErrRaftShutdown), errors.Is(err, raft.ErrEnqueueTimeout), errors.Is(err, raft.ErrAbortedByRestore):
		return fmt.Errorf("%w (%v)", syncproto.ErrUnavailable, err)
	default:
		return err
	}
}
