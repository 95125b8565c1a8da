package core

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parley-chat/parley/core/fanout"
	"github.com/parley-chat/parley/core/group"
	"github.com/parley-chat/parley/core/route"
	"github.com/parley-chat/parley/syncproto"
)

// Peer is one core node of the region.
type Peer struct {
	ID string
	// RaftAddr is the node's advertised Raft address (host:port).
	RaftAddr string
}

// NATSConfig configures the NATS server embedded in each core node.
type NATSConfig struct {
	// ClientAddr is where edges connect ("127.0.0.1:4222"); empty picks a
	// free loopback port; "-" serves in-process connections only.
	ClientAddr string
	// ClusterAddr and Routes join the embedded servers of a region.
	ClusterAddr string
	Routes      []string
	// ClusterAdvertise is the route address the others learn of by
	// gossip (default: ClusterAddr's listener); see natsembed.Config.
	ClusterAdvertise string
	// NoJetStream turns JetStream off (it is on by default).
	NoJetStream bool
}

// Timeouts are a node's request, retry and maintenance timings. Zero
// values mean the defaults.
type Timeouts struct {
	// The router's: Request, Forward, RetryMin, RetryMax,
	// OverloadRetryAfter and ShardSubCheck (defaults route.DefaultTimeouts).
	route.Timeouts
	// LeaderTransfer bounds one hand-over of a group to its preferred
	// leader; after a failed one the balancer leaves the group for
	// LeaderTransferRetry (defaults 5 s, 30 s).
	LeaderTransfer, LeaderTransferRetry time.Duration
	// RaftRPC bounds one Raft RPC to another node (default 10 s).
	RaftRPC time.Duration
	// NATSReconnectWait is the wait between the node's reconnects to its
	// embedded NATS server (default 100 ms).
	NATSReconnectWait time.Duration
	// ReadyPoll is how often WaitReady looks for the groups' leaders
	// (default 20 ms).
	ReadyPoll time.Duration
	// MemberCache is how long the fanout keeps a conversation's member
	// list, in case an invalidation was missed (default 30 s).
	MemberCache time.Duration
	// StoreOpen bounds one attempt to open the last-seen bucket, retried
	// after StoreRetryMin, doubling up to StoreRetryMax (defaults 10 s,
	// 50 ms, 2 s); StorePut bounds storing one last-seen time (default
	// 5 s); StoreWatchRetry is the wait before watching the bucket again
	// after an error (default 1 s).
	StoreOpen, StoreRetryMin, StoreRetryMax, StorePut, StoreWatchRetry time.Duration
}

// timeoutField is one field of Timeouts, by name, with its default.
type timeoutField struct {
	name string
	p    *time.Duration
	def  time.Duration
}

func (t *Timeouts) fields() []timeoutField {
	return []timeoutField{
		{"Request", &t.Request, route.DefaultTimeouts.Request}, {"Forward", &t.Forward, route.DefaultTimeouts.Forward},
		{"RetryMin", &t.RetryMin, route.DefaultTimeouts.RetryMin}, {"RetryMax", &t.RetryMax, route.DefaultTimeouts.RetryMax},
		{"OverloadRetryAfter", &t.OverloadRetryAfter, route.DefaultTimeouts.OverloadRetryAfter},
		{"ShardSubCheck", &t.ShardSubCheck, route.DefaultTimeouts.ShardSubCheck},
		{"LeaderTransfer", &t.LeaderTransfer, 5 * time.Second}, {"LeaderTransferRetry", &t.LeaderTransferRetry, 30 * time.Second},
		{"RaftRPC", &t.RaftRPC, 10 * time.Second}, {"NATSReconnectWait", &t.NATSReconnectWait, 100 * time.Millisecond},
		{"ReadyPoll", &t.ReadyPoll, 20 * time.Millisecond}, {"MemberCache", &t.MemberCache, fanout.DefaultMemberTTL},
		{"StoreOpen", &t.StoreOpen, 10 * time.Second}, {"StoreRetryMin", &t.StoreRetryMin, 50 * time.Millisecond},
		{"StoreRetryMax", &t.StoreRetryMax, 2 * time.Second}, {"StorePut", &t.StorePut, 5 * time.Second},
		{"StoreWatchRetry", &t.StoreWatchRetry, time.Second},
	}
}

func (t *Timeouts) setDefaults() {
	for _, f := range t.fields() {
		if *f.p == 0 {
			*f.p = f.def
		}
	}
}

// Validate names the first bad field.
func (t *Timeouts) Validate() error {
	for _, f := range t.fields() {
		if *f.p < 0 {
			return fmt.Errorf("core: Config.Timeouts.%s %v is negative", f.name, *f.p)
		}
	}
	return nil
}

// Config of a core node. Zero values mean the defaults.
type Config struct {
	NodeID string
	Region string
	// DataDir holds the Raft WAL (raftwal/), the Badger DB (badger/), the
	// groups' snapshots (snapshots/), NATS JetStream files (nats/) and
	// the search index (search/).
	DataDir string
	// RaftAddr is the Raft listener ("127.0.0.1:0" by default); RaftAdvertise
	// is the address peers dial (the listener's address by default).
	RaftAddr      string
	RaftAdvertise string
	// RaftListener, when set, is used instead of listening on RaftAddr
	// (tests pass one bound to 127.0.0.1:0). The node closes it.
	RaftListener net.Listener
	// Peers are all core nodes of the region, this one included. Empty means
	// a single-node region.
	Peers []Peer
	// ShardCount is the number of shard groups; every node and edge of a
	// region must agree (edges learn it from region_info).
	ShardCount int
	NATS       NATSConfig
	Timing     group.Timing
	// Timeouts are the node's request, retry and maintenance timings.
	Timeouts Timeouts
	// LargeGroup is the member count above which a group's live deliveries
	// are published once on its conversation subject rather than once per
	// member (default 100; negative: never).
	LargeGroup int
	// ReceiptAggregate is how often large groups' aggregate receipt counts
	// are published (default 1 s).
	ReceiptAggregate time.Duration
	// MaxInFlight bounds requests being served at once; more are refused
	// with UNAVAILABLE instead of queueing without bound.
	MaxInFlight int
	// Presence configures the presence table (see PresenceConfig).
	Presence PresenceConfig
	// Push configures push to offline devices (see PushConfig); nil: off.
	Push *PushConfig
	// Search configures message search (see SearchConfig); on by
	// default, with an embedded index in DataDir/search.
	Search SearchConfig
	// BalanceInterval is how often a node hands groups it leads to their
	// preferred leaders (spreading leaders across nodes); 0 means 2 s,
	// negative disables balancing.
	BalanceInterval time.Duration
	// Metrics receives the node's Prometheus series, each labelled with
	// node=NodeID (see metrics.go and docs/metrics.md); nil: a private
	// registry that nothing reads. Close unregisters them.
	Metrics prometheus.Registerer
	Logger  *slog.Logger
	Now     func() time.Time
}

func (c *Config) setDefaults() {
	if c.Region == "" {
		c.Region = syncproto.DefaultRegion
	}
	if c.RaftAddr == "" {
		c.RaftAddr = "127.0.0.1:0"
	}
	if c.ShardCount == 0 {
		c.ShardCount = syncproto.DefaultShardCount
	}
	switch {
	case c.LargeGroup == 0:
		c.LargeGroup = 100
	case c.LargeGroup < 0:
		c.LargeGroup = 0
	}
	if c.ReceiptAggregate <= 0 {
		c.ReceiptAggregate = time.Second
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = 4096
	}
	if c.BalanceInterval == 0 {
		c.BalanceInterval = 2 * time.Second
	}
	if c.Metrics == nil {
		c.Metrics = prometheus.NewRegistry()
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	c.Timeouts.setDefaults()
}

// Validate reports the first bad field.
func (c *Config) Validate() error {
	if c.NodeID == "" || !syncproto.ValidID(c.NodeID) {
		return fmt.Errorf("core: Config.NodeID %q must be 1..%d of [a-z0-9_-]", c.NodeID, syncproto.MaxIDLen)
	}
	if c.DataDir == "" {
		return errors.New("core: Config.DataDir is required")
	}
	if c.Region != "" && !syncproto.ValidID(c.Region) {
		return fmt.Errorf("core: Config.Region %q must be of [a-z0-9_-]", c.Region)
	}
	if c.ShardCount < 0 || c.ShardCount > syncproto.MaxShardCount {
		return fmt.Errorf("core: Config.ShardCount %d out of 1..%d", c.ShardCount, syncproto.MaxShardCount)
	}
	if _, _, err := net.SplitHostPort(c.RaftAddr); c.RaftAddr != "" && err != nil {
		return fmt.Errorf("core: Config.RaftAddr: %w", err)
	}
	if err := c.Search.Validate(); err != nil {
		return err
	}
	if err := c.Presence.Validate(); err != nil {
		return err
	}
	if err := c.Timeouts.Validate(); err != nil {
		return err
	}
	if len(c.Peers) > 0 {
		self := false
		seen := map[string]bool{}
		for _, p := range c.Peers {
			if !syncproto.ValidID(p.ID) {
				return fmt.Errorf("core: Config.Peers: bad node id %q", p.ID)
			}
			if seen[p.ID] {
				return fmt.Errorf("core: Config.Peers: duplicate node id %q", p.ID)
			}
			seen[p.ID] = true
			if _, _, err := net.SplitHostPort(p.RaftAddr); err != nil {
				return fmt.Errorf("core: Config.Peers: node %s: %w", p.ID, err)
			}
			self = self || p.ID == c.NodeID
		}
		if !self {
			return fmt.Errorf("core: Config.Peers does not name this node %q", c.NodeID)
		}
		if len(c.Peers)%2 == 0 {
			return fmt.Errorf("core: Config.Peers has %d nodes; use an odd number (1, 3, 5)", len(c.Peers))
		}
	}
	return nil
}
