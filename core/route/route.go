// Package route is a core node's request service: it takes the edges'
// NATS requests, goes by each request's row in syncproto.Requests
// (conversation requests to their shard's group, directory requests to
// the directory group, the rest to the node), runs a group's requests on
// its leader (here, or forwarded to the node that leads it) and gathers
// the requests that span every shard (list_conversations, sync).
//
// Subjects: the API subject and each shard subject are served in the
// core queue group; a shard subject only by the shard's leader, so an
// edge's request reaches it in one hop. A node's own subject takes what
// other nodes forward to it because it leads the target group.
package route

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/parley-chat/parley/core/group"
	"github.com/parley-chat/parley/core/internal/cmdpb"
	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// DirGroup is the name of the directory group; shard i is ShardGroup(i).
const DirGroup = "dir"

// ShardGroup names shard i's group ("s<i>").
func ShardGroup(i int) string { return "s" + strconv.Itoa(i) }

// StateMachine is what the router needs of a group's state machine.
type StateMachine interface {
	// Prepare answers a read from local state (resp), or validates a write
	// and returns the command to propose (cmd); err is a wire error. It
	// may run concurrently with the group's apply loop.
	Prepare(ctx context.Context, req *syncpb.CoreRequest, now time.Time) (cmd *cmdpb.Command, resp *syncpb.CoreResponse, err error)
}

// Group is one Raft group the router serves, with its state machine.
type Group struct {
	Raft *group.Group
	SM   StateMachine
}

// Handler answers a request the node serves itself (a RouteNone op).
type Handler func(ctx context.Context, req *syncpb.CoreRequest) *syncpb.CoreResponse

// LeaderHandler answers, on the leader of group name, a request the
// leader serves itself rather than through its state machine's Prepare.
// A read's handler runs after the read barrier.
type LeaderHandler func(ctx context.Context, name string, req *syncpb.CoreRequest) *syncpb.CoreResponse

// Config of a Router. Zero values mean the defaults, but for the
// required Conn, NodeID, Region and groups.
type Config struct {
	Conn *nats.Conn
	// NodeID names this node in replies and in its forward subject.
	NodeID string
	Region string
	// Directory is the directory group; Shards are the shard groups, shard
	// i at index i.
	Directory Group
	Shards    []Group
	// Node handles the RouteNone ops the node answers itself;
	// list_conversations and sync the router gathers from every shard.
	Node map[protoreflect.Name]Handler
	// Leader handles the ops a group's leader serves itself.
	Leader map[protoreflect.Name]LeaderHandler
	// NoReply takes what is published on shard shard's subject without a
	// reply subject (typing). It runs on NATS's delivery goroutine.
	NoReply func(shard string, m *nats.Msg)
	// MaxInFlight bounds requests being served at once (default 4096);
	// more are refused with UNAVAILABLE instead of queueing without bound.
	MaxInFlight int
	// OnApply observes each proposal's time to its applied result.
	OnApply func(group string, start time.Time)
	// Timeouts of requests; zero fields take DefaultTimeouts' values.
	Timeouts Timeouts
	Now      func() time.Time
	Logger   *slog.Logger
}

// Timeouts are the router's timings.
type Timeouts struct {
	// Request bounds a request whose caller set no deadline, and caps the
	// deadline of one that did.
	Request time.Duration
	// Forward bounds one forward of a request to its group's leader, so a
	// dead leader costs a retry rather than the whole deadline.
	Forward time.Duration
	// RetryMin is the first wait between a request's attempts while its
	// group has no reachable leader; the wait doubles while below RetryMax.
	RetryMin, RetryMax time.Duration
	// OverloadRetryAfter is the retry hint of a request refused because
	// MaxInFlight are being served.
	OverloadRetryAfter time.Duration
	// ShardSubCheck is how often the shard subscriptions are checked
	// against leadership, in case a leader change went unobserved.
	ShardSubCheck time.Duration
}

// DefaultTimeouts are the timings a zero Timeouts field takes.
var DefaultTimeouts = Timeouts{
	Request: 10 * time.Second, Forward: 2 * time.Second,
	RetryMin: 5 * time.Millisecond, RetryMax: 200 * time.Millisecond,
	OverloadRetryAfter: 50 * time.Millisecond, ShardSubCheck: 250 * time.Millisecond,
}

func (t *Timeouts) setDefaults() {
	d := DefaultTimeouts
	for _, f := range []struct {
		p   *time.Duration
		def time.Duration
	}{
		{&t.Request, d.Request}, {&t.Forward, d.Forward}, {&t.RetryMin, d.RetryMin}, {&t.RetryMax, d.RetryMax},
		{&t.OverloadRetryAfter, d.OverloadRetryAfter}, {&t.ShardSubCheck, d.ShardSubCheck},
	} {
		if *f.p <= 0 {
			*f.p = f.def
		}
	}
}

func (c *Config) setDefaults() {
	c.Timeouts.setDefaults()
	if c.MaxInFlight == 0 {
		c.MaxInFlight = 4096
	}
	if c.NoReply == nil {
		c.NoReply = func(string, *nats.Msg) {}
	}
	if c.OnApply == nil {
		c.OnApply = func(string, time.Time) {}
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate names the first bad field.
func (c *Config) Validate() error {
	switch {
	case c.Conn == nil:
		return errors.New("route: Config.Conn is required")
	case !syncproto.ValidID(c.NodeID) || !syncproto.ValidID(c.Region):
		return fmt.Errorf("route: Config.NodeID %q and Config.Region %q must be of [a-z0-9_-]", c.NodeID, c.Region)
	case c.Directory.Raft == nil || c.Directory.SM == nil:
		return errors.New("route: Config.Directory needs its group and state machine")
	case len(c.Shards) == 0 || len(c.Shards) > syncproto.MaxShardCount:
		return fmt.Errorf("route: Config.Shards has %d groups, want 1..%d", len(c.Shards), syncproto.MaxShardCount)
	case c.MaxInFlight < 0:
		return errors.New("route: Config.MaxInFlight must not be negative")
	}
	for i, g := range c.Shards {
		if g.Raft == nil || g.SM == nil {
			return fmt.Errorf("route: Config.Shards[%d] needs its group and state machine", i)
		}
	}
	for op := range c.Node {
		if _, ok := gathered[op]; ok {
			return fmt.Errorf("route: Config.Node: the router serves %s itself", op)
		}
	}
	return nil
}

// Router serves a node's requests. Start subscribes; Close stops it.
type Router struct {
	cfg    Config
	log    *slog.Logger
	nc     *nats.Conn
	groups map[string]Group
	sem    chan struct{}

	ctx    context.Context // the parent of request contexts; canceled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex // guards stopped against wg.Add
	// stopped is set by Close: no request starts after it.
	stopped bool

	subs      []*nats.Subscription
	shardMu   sync.Mutex
	shardSubs map[string]*nats.Subscription // shards this node leads
	closing   bool
	observer  *raft.Observer
	closeOnce sync.Once
}

// New returns a Router for cfg's groups.
func New(cfg Config) (*Router, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r := &Router{cfg: cfg, log: cfg.Logger, nc: cfg.Conn, groups: map[string]Group{DirGroup: cfg.Directory},
		sem: make(chan struct{}, cfg.MaxInFlight), shardSubs: map[string]*nats.Subscription{}}
	for i, g := range cfg.Shards {
		r.groups[ShardGroup(i)] = g
	}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	return r, nil
}

func (r *Router) nodeSubject(id string) string {
	return "parley." + r.cfg.Region + ".node." + id
}

// ShardOf names the group that sequences a conversation.
func (r *Router) ShardOf(conv string) string {
	return ShardGroup(int(syncproto.ShardOf(conv, uint32(len(r.cfg.Shards)))))
}

// Start subscribes the request subjects: the API subject in the core
// queue group, this node's forward subject, and the subjects of the
// shards this node leads, kept in step with leadership until Close.
func (r *Router) Start() error {
	if err := r.subscribe(syncproto.APISubject(r.cfg.Region), syncproto.CoreQueue, r.onRequest("")); err != nil {
		return err
	}
	if err := r.subscribe(r.nodeSubject(r.cfg.NodeID), "", r.onForward); err != nil {
		return err
	}
	// While leadership moves, a request may find no responder on a shard
	// subject (the edge retries) or a former leader (it forwards).
	obs := make(chan raft.Observation, 64)
	r.observer = raft.NewObserver(obs, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	})
	for _, g := range r.cfg.Shards {
		g.Raft.Raft().RegisterObserver(r.observer)
	}
	r.reconcileShardSubs()
	r.wg.Add(1)
	go r.shardSubLoop(obs)
	return r.nc.Flush()
}

func (r *Router) subscribe(subject, queue string, h nats.MsgHandler) error {
	var s *nats.Subscription
	var err error
	if queue == "" {
		s, err = r.nc.Subscribe(subject, h)
	} else {
		s, err = r.nc.QueueSubscribe(subject, queue, h)
	}
	if err != nil {
		return fmt.Errorf("route: subscribe %s: %w", subject, err)
	}
	// Handlers hand off to goroutines at once; this bounds the backlog.
	if err := s.SetPendingLimits(65536, 64<<20); err != nil {
		return fmt.Errorf("route: pending limits %s: %w", subject, err)
	}
	r.subs = append(r.subs, s)
	return nil
}

// shardSubLoop keeps the shard subscriptions in step with leadership: on
// every leader change, and every 250 ms in case an observation was dropped.
func (r *Router) shardSubLoop(obs <-chan raft.Observation) {
	defer r.wg.Done()
	t := time.NewTicker(r.cfg.Timeouts.ShardSubCheck)
	defer t.Stop()
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-obs:
		case <-t.C:
		}
		r.reconcileShardSubs()
	}
}

// reconcileShardSubs subscribes the subjects of the shards this node leads
// and drains those of shards it no longer leads.
func (r *Router) reconcileShardSubs() {
	r.shardMu.Lock()
	defer r.shardMu.Unlock()
	if r.closing {
		return
	}
	for i, g := range r.cfg.Shards {
		name := ShardGroup(i)
		cur := r.shardSubs[name]
		lead := g.Raft.IsLeader()
		switch {
		case lead && cur == nil:
			s, err := r.nc.QueueSubscribe(syncproto.ShardSubject(r.cfg.Region, uint32(i)), syncproto.CoreQueue, r.onRequest(name))
			if err != nil {
				r.log.Warn("subscribe shard subject", "group", name, "err", err)
				continue
			}
			if err := s.SetPendingLimits(65536, 64<<20); err != nil {
				r.log.Warn("pending limits", "group", name, "err", err)
			}
			r.shardSubs[name] = s
		case !lead && cur != nil:
			// Drain answers what was already delivered, then unsubscribes.
			if err := cur.Drain(); err != nil {
				_ = cur.Unsubscribe()
			}
			delete(r.shardSubs, name)
		}
	}
}

// Close unsubscribes every subject, cancels the requests being served and
// waits for them. Idempotent.
func (r *Router) Close() {
	r.closeOnce.Do(func() {
		r.mu.Lock()
		r.stopped = true
		r.mu.Unlock()
		r.cancel()
		r.shardMu.Lock()
		r.closing = true
		for name, s := range r.shardSubs {
			_ = s.Unsubscribe()
			delete(r.shardSubs, name)
		}
		if r.observer != nil {
			for _, g := range r.groups {
				g.Raft.Raft().DeregisterObserver(r.observer)
			}
		}
		r.shardMu.Unlock()
		for _, s := range r.subs {
			_ = s.Unsubscribe()
		}
		r.wg.Wait()
	})
}
