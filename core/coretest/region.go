// Package coretest runs a region of core nodes in one process for tests:
// real Raft groups over TCP, real Badger files, real NATS servers
// clustered by routes on loopback, with faults a test injects by node.
//
//	r := coretest.New(t, 3, coretest.Options{})
//	users := r.Users("ana", "bo")
//	conv := r.CreateGroup(users[0], users)
//	leader := r.LeaderOf(r.Node(0).ShardGroupOf(conv))
//	r.Kill(leader)     // or Stop: the others elect a new leader
//	r.Restart(leader)  // same data dir, same addresses
//	r.Partition(1)     // node 1 hears nobody and nobody hears it
//	r.Heal(1)
//
// The faults, and what they mean in one process:
//
//   - Stop(i) closes node i as `parley core` does on SIGTERM (core.Node.Close).
//   - Kill(i) first cuts node i off (its Raft traffic and NATS routes, as
//     Partition does), then closes it: nothing it does while closing reaches
//     the others (no last Raft RPCs, no route unsubscribes), so to them it
//     vanishes as a crashed process does. A process's unsynced writes cannot
//     be lost in-process; the node syncs each Raft write before it answers,
//     so a real crash loses nothing a Kill keeps either.
//   - Restart(i) starts a stopped or killed node again on the same data dir
//     and the same Raft, NATS client and route addresses.
//   - Partition(i) cuts node i from the others in both directions: every
//     node's Raft mux refuses and closes connections to and from i
//     (core.Node.Partition), and the proxies that carry every NATS route
//     between i and another node close their connections and refuse new
//     ones. NATS clients connected to i (edges) stay connected to it. A
//     partition belongs to the network: it lasts across Stop, Kill and
//     Restart until Heal(i).
//
// Routes: node i dials node j's route port through a Proxy of its own for
// the pair (i, j), and every node advertises, for gossip, a port that
// closes every connection (a cut Proxy; core.NATSConfig.ClusterAdvertise):
// a server that learns of another by gossip rather than from its Routes
// fails to reach it there, once, so every route is a proxied one.
//
// Every method must be called from the test's goroutine (they may call
// t.Fatal), except Node, Live, Conn, Config and Call. Everything is closed
// by t.Cleanup.
package coretest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/parley-chat/parley/core"
	"github.com/parley-chat/parley/core/group"
	"github.com/parley-chat/parley/core/internal/testaddr"
	"github.com/parley-chat/parley/core/natsembed"
	"github.com/parley-chat/parley/internal/poll"
	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// Timing keeps elections quick but tolerant of a loaded 2-core machine
// running -race: Options.Timing's default.
var Timing = group.Timing{
	HeartbeatTimeout:   500 * time.Millisecond,
	ElectionTimeout:    500 * time.Millisecond,
	LeaderLeaseTimeout: 250 * time.Millisecond,
}

// Defaults of Options.
const (
	DefaultShards          = 4
	DefaultBalanceInterval = 500 * time.Millisecond
	// ReadyTimeout bounds New's and WaitReady's wait for leaders.
	ReadyTimeout = 60 * time.Second
)

// Options configure a Region. Zero values mean the defaults.
type Options struct {
	// Base is every node's configuration before New sets NodeID, DataDir,
	// RaftAddr, Peers, NATS's addresses and Logger (Base.NATS.NoJetStream
	// is kept). Base.ShardCount defaults to DefaultShards, Base.Timing to
	// Timing and Base.BalanceInterval to DefaultBalanceInterval.
	Base core.Config
	// Dir holds node n1's data in Dir/n1 and so on (default t.TempDir()).
	Dir string
	// Logger (default: discard; with PARLEY_TEST_LOG set, debug to stderr).
	// Each node logs with node=<id>.
	Logger *slog.Logger
	// Node, when set, changes node i's configuration last (its own
	// Metrics registry, say).
	Node func(i int, cfg *core.Config)
	// Down are the nodes New leaves stopped, for Restart to start. With
	// any, New waits for no leaders (a minority may have none).
	Down []int
}

// Logger is Options.Logger's default: discard, or debug to stderr when
// PARLEY_TEST_LOG is set.
func Logger() *slog.Logger {
	if os.Getenv("PARLEY_TEST_LOG") == "" {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// Region is n core nodes n1..nn clustered on loopback. Node indexes are
// 0-based: Node(0) is n1.
type Region struct {
	t     testing.TB
	cfgs  []core.Config
	nc    *nats.Conn
	sinks []*Proxy
	// routes[i][j] carries node i's route to node j (nil when i == j).
	routes [][]*Proxy

	mu          sync.Mutex
	nodes       []*core.Node // nil while stopped
	partitioned map[int]bool
}

// New starts n nodes (but Options.Down), waits as WaitReady does (unless
// some are down), and registers their cleanup. It fails the test on
// an error.
func New(t testing.TB, n int, opts Options) *Region {
	t.Helper()
	if n < 1 {
		t.Fatalf("coretest: %d nodes", n)
	}
	base := opts.Base
	if base.ShardCount == 0 {
		base.ShardCount = DefaultShards
	}
	if base.Timing == (group.Timing{}) {
		base.Timing = Timing
	}
	if base.BalanceInterval == 0 {
		base.BalanceInterval = DefaultBalanceInterval
	}
	dir := opts.Dir
	if dir == "" {
		dir = t.TempDir()
	}
	log := opts.Logger
	if log == nil {
		log = Logger()
	}
	r := &Region{t: t, nodes: make([]*core.Node, n), partitioned: map[int]bool{}, routes: make([][]*Proxy, n)}
	var peers []core.Peer
	var clusters []string
	for i := range n {
		peers = append(peers, core.Peer{ID: fmt.Sprintf("n%d", i+1), RaftAddr: testaddr.Free(t)})
		clusters = append(clusters, testaddr.Free(t))
	}
	for i := range n {
		r.routes[i] = make([]*Proxy, n)
		var routes []string
		for j := range n {
			if j != i && n > 1 {
				r.routes[i][j] = NewProxy(t, clusters[j])
				routes = append(routes, r.routes[i][j].Addr())
			}
		}
		cfg := base
		cfg.NodeID, cfg.DataDir, cfg.RaftAddr, cfg.Peers = peers[i].ID, filepath.Join(dir, peers[i].ID), peers[i].RaftAddr, peers
		cfg.Logger = log.With("node", peers[i].ID)
		cfg.NATS.ClientAddr, cfg.NATS.ClusterAddr, cfg.NATS.Routes = testaddr.Free(t), "", nil
		if n > 1 {
			sink := NewProxy(t, "127.0.0.1:1")
			sink.Cut()
			r.sinks = append(r.sinks, sink)
			cfg.NATS.ClusterAddr, cfg.NATS.Routes, cfg.NATS.ClusterAdvertise = clusters[i], routes, sink.Addr()
		}
		if opts.Node != nil {
			opts.Node(i, &cfg)
		}
		r.cfgs = append(r.cfgs, cfg)
	}
	t.Cleanup(r.close)
	// Start all nodes concurrently: clustered JetStream waits for routes.
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		if !slices.Contains(opts.Down, i) {
			wg.Go(func() { errs[i] = r.start(i) })
		}
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(strings.Join(r.NATSURLs(), ","), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	r.nc = nc
	if len(opts.Down) == 0 {
		r.WaitReady()
	}
	return r
}

func (r *Region) close() {
	if r.nc != nil {
		r.nc.Close()
	}
	for i := range r.nodes {
		if n := r.take(i); n != nil {
			if err := n.Close(); err != nil {
				r.t.Logf("close %s: %v", r.cfgs[i].NodeID, err)
			}
		}
	}
}

// start runs node i, retrying while its addresses are still held by a
// socket closing (a restart binds the addresses it had).
func (r *Region) start(i int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var node *core.Node
	var err error
	_ = poll.Wait(ctx, func(context.Context) error {
		node, err = core.New(r.cfgs[i])
		if errors.Is(err, syscall.EADDRINUSE) || errors.Is(err, natsembed.ErrListen) {
			return err // try again
		}
		return nil // started, or failed for good
	})
	if err != nil {
		return fmt.Errorf("coretest: start %s: %w", r.cfgs[i].NodeID, err)
	}
	r.mu.Lock()
	r.nodes[i] = node
	r.mu.Unlock()
	r.applyPartitions()
	return nil
}

// take removes and returns node i (nil when stopped).
func (r *Region) take(i int) *core.Node {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := r.nodes[i]
	r.nodes[i] = nil
	return n
}

// Len is the number of nodes, running or not.
func (r *Region) Len() int { return len(r.cfgs) }

// Node is node i, nil while it is stopped. Safe from any goroutine.
func (r *Region) Node(i int) *core.Node {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.nodes[i]
}

// Live lists the running nodes in index order. Safe from any goroutine.
func (r *Region) Live() []*core.Node {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*core.Node
	for _, n := range r.nodes {
		if n != nil {
			out = append(out, n)
		}
	}
	return out
}

// Config is node i's configuration as New completed it (DataDir,
// addresses, peers). Safe from any goroutine.
func (r *Region) Config(i int) core.Config { return r.cfgs[i] }

// NATSURLs are the nodes' NATS client URLs, for edges; each stays the
// node's across restarts.
func (r *Region) NATSURLs() []string {
	urls := make([]string, len(r.cfgs))
	for i, c := range r.cfgs {
		urls[i] = "nats://" + c.NATS.ClientAddr
	}
	return urls
}

// Conn is a NATS connection to the region (any node, reconnecting) that
// the test may use from any goroutine; Call sends on it.
func (r *Region) Conn() *nats.Conn { return r.nc }

// ShardSubject is the NATS subject of conv's shard.
func (r *Region) ShardSubject(conv string) string {
	return syncproto.ShardSubject(syncproto.DefaultRegion, syncproto.ShardOf(conv, uint32(r.cfgs[0].ShardCount)))
}

// Stop closes node i gracefully (core.Node.Close). It fails the test when
// the node is not running.
func (r *Region) Stop(i int) {
	r.t.Helper()
	n := r.take(i)
	if n == nil {
		r.t.Fatalf("coretest: Stop(%d): %s is not running", i, r.cfgs[i].NodeID)
	}
	if err := n.Close(); err != nil {
		r.t.Logf("close %s: %v", r.cfgs[i].NodeID, err)
	}
}

// Kill cuts node i off from the others (Raft and NATS routes) and then
// closes it, so that nothing it says while closing reaches them; see the
// package doc. It fails the test when the node is not running.
func (r *Region) Kill(i int) {
	r.t.Helper()
	n := r.take(i)
	if n == nil {
		r.t.Fatalf("coretest: Kill(%d): %s is not running", i, r.cfgs[i].NodeID)
	}
	n.Partition(r.raftAddrs(func(j int) bool { return j != i })...)
	for j := range r.cfgs {
		if j != i {
			r.routes[i][j].Cut()
			r.routes[j][i].Cut()
		}
	}
	if err := n.Close(); err != nil {
		r.t.Logf("close %s: %v", r.cfgs[i].NodeID, err)
	}
	r.applyPartitions()
}

// Restart starts node i again, stopped or killed, on its data dir and
// addresses; it does not wait for leaders (see WaitReady). It fails the
// test when the node is running or does not start.
func (r *Region) Restart(i int) {
	r.t.Helper()
	if r.Node(i) != nil {
		r.t.Fatalf("coretest: Restart(%d): %s is running", i, r.cfgs[i].NodeID)
	}
	if err := r.start(i); err != nil {
		r.t.Fatal(err)
	}
}

// Partition cuts node i from every other node, in both directions, until
// Heal(i); see the package doc. Partitions add up.
func (r *Region) Partition(i int) {
	r.mu.Lock()
	r.partitioned[i] = true
	r.mu.Unlock()
	r.applyPartitions()
}

// Heal undoes Partition(i).
func (r *Region) Heal(i int) {
	r.mu.Lock()
	delete(r.partitioned, i)
	r.mu.Unlock()
	r.applyPartitions()
}

// cut reports whether traffic between nodes a and b is cut.
func (r *Region) cut(a, b int) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return a != b && (r.partitioned[a] || r.partitioned[b])
}

func (r *Region) raftAddrs(which func(j int) bool) []string {
	var out []string
	for j, c := range r.cfgs {
		if which(j) {
			out = append(out, c.RaftAddr)
		}
	}
	return out
}

// applyPartitions makes every running node's Raft mux and every route
// proxy match the partitioned set.
func (r *Region) applyPartitions() {
	for a := range r.cfgs {
		for b := range r.cfgs {
			if p := r.routes[a][b]; p != nil {
				if r.cut(a, b) {
					p.Cut()
				} else {
					p.Restore()
				}
			}
		}
		if n := r.Node(a); n != nil {
			n.Heal()
			if addrs := r.raftAddrs(func(b int) bool { return r.cut(a, b) }); len(addrs) > 0 {
				n.Partition(addrs...)
			}
		}
	}
}

// WaitReady waits until every group of every running node knows a
// leader, every running node hears what every other one it is not cut
// from publishes (the NATS routes are up), and the region answers
// region_info.
func (r *Region) WaitReady() {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), ReadyTimeout)
	defer cancel()
	for _, n := range r.Live() {
		if err := n.WaitReady(ctx); err != nil {
			r.t.Fatalf("coretest: %s: %v", n.NodeID(), err)
		}
	}
	r.waitRoutes()
	if _, err := r.Call(ctx, syncproto.APISubject(syncproto.DefaultRegion), &syncpb.CoreRequest{
		Op: &syncpb.CoreRequest_RegionInfo{RegionInfo: &syncpb.RegionInfoRequest{}}}); err != nil {
		r.t.Fatalf("coretest: region_info: %v", err)
	}
}

// LeaderOf waits for a running node to lead group name ("dir", "s0"...)
// and returns its index.
func (r *Region) LeaderOf(name string) int {
	r.t.Helper()
	leader := -1
	poll.Until(r.t, 20*time.Second, "group "+name+" has a leader", func() bool {
		for i := range r.cfgs {
			if n := r.Node(i); n != nil && n.Group(name).IsLeader() {
				leader = i
				return true
			}
		}
		return false
	})
	return leader
}

// Call sends one request on Conn, retrying UNAVAILABLE and other
// retryable errors, timeouts and missing responders until ctx ends, as an
// edge does. A non-retryable error comes back with its response. Safe
// from any goroutine.
func (r *Region) Call(ctx context.Context, subject string, req *syncpb.CoreRequest) (*syncpb.CoreResponse, error) {
	b, err := proto.Marshal(req)
	if err != nil {
		return nil, err
	}
	backoff := 10 * time.Millisecond
	for {
		actx, cancel := context.WithTimeout(ctx, 3*time.Second)
		m, err := r.nc.RequestWithContext(actx, subject, b)
		cancel()
		if err == nil {
			resp := &syncpb.CoreResponse{}
			if err := proto.Unmarshal(m.Data, resp); err != nil {
				return nil, err
			}
			e := syncproto.FromProto(resp.Error)
			if e == nil {
				return resp, nil
			}
			if !e.Retryable() {
				return resp, e
			}
			err = e
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w (last: %v)", ctx.Err(), err)
		case <-time.After(backoff):
		}
		if backoff < 200*time.Millisecond {
			backoff *= 2
		}
	}
}

// MustCall is Call within 30 s that fails the test on an error.
func (r *Region) MustCall(subject string, req *syncpb.CoreRequest) *syncpb.CoreResponse {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := r.Call(ctx, subject, req)
	if err != nil {
		r.t.Fatalf("%T: %v", req.Op, err)
	}
	return resp
}

// Users registers users in workspace "acme", each with one device, and
// returns their callers.
func (r *Region) Users(names ...string) []*syncpb.Caller {
	r.t.Helper()
	api := syncproto.APISubject(syncproto.DefaultRegion)
	var out []*syncpb.Caller
	for _, name := range names {
		u := r.MustCall(api, &syncpb.CoreRequest{
			Op: &syncpb.CoreRequest_RegisterUser{RegisterUser: &syncpb.RegisterUserRequest{
				WorkspaceName: "acme", Username: name, DisplayName: name, PasswordHash: "$argon2id$test"}}}).GetUser()
		dev := r.MustCall(api, &syncpb.CoreRequest{
			Caller: &syncpb.Caller{WorkspaceId: u.WorkspaceId, UserId: u.Id},
			Op:     &syncpb.CoreRequest_RegisterDevice{RegisterDevice: &syncpb.RegisterDeviceRequest{Name: "phone"}}})
		out = append(out, &syncpb.Caller{WorkspaceId: u.WorkspaceId, UserId: u.Id, DeviceId: dev.GetDevice().GetId()})
	}
	return out
}

// CreateGroup creates a group conversation owned by owner with members
// (owner among them or not) and returns its id.
func (r *Region) CreateGroup(owner *syncpb.Caller, members []*syncpb.Caller) string {
	r.t.Helper()
	conv := syncproto.NewConversationID()
	var ids []string
	for _, m := range members {
		if m.UserId != owner.UserId {
			ids = append(ids, m.UserId)
		}
	}
	r.MustCall(r.ShardSubject(conv), &syncpb.CoreRequest{Caller: owner,
		Op: &syncpb.CoreRequest_CreateConversation{CreateConversation: &syncpb.CreateConversationRequest{
			ConvId: conv, Type: syncpb.ConversationType_CONVERSATION_TYPE_GROUP, Title: "t", MemberUserIds: ids}}})
	return conv
}

// waitRoutes waits until a message published on each running node
// reaches a subscriber on each other running node it is not cut from.
func (r *Region) waitRoutes() {
	r.t.Helper()
	type end struct {
		i  int
		nc *nats.Conn
	}
	var ends []end
	defer func() {
		for _, e := range ends {
			e.nc.Close()
		}
	}()
	for i := range r.cfgs {
		if n := r.Node(i); n != nil {
			nc, err := n.ConnectNATS("coretest-routes")
			if err != nil {
				r.t.Fatalf("coretest: %s: %v", n.NodeID(), err)
			}
			ends = append(ends, end{i, nc})
		}
	}
	for _, to := range ends {
		subject := fmt.Sprintf("_coretest.routes.%d", to.i)
		heard := make(chan string, 64)
		sub, err := to.nc.Subscribe(subject, func(m *nats.Msg) {
			select {
			case heard <- string(m.Data):
			default:
			}
		})
		if err != nil {
			r.t.Fatal(err)
		}
		for _, from := range ends {
			if from.i == to.i || r.cut(from.i, to.i) {
				continue
			}
			got := map[string]bool{}
			poll.Until(r.t, ReadyTimeout, fmt.Sprintf("%s hears %s over NATS", r.cfgs[to.i].NodeID, r.cfgs[from.i].NodeID), func() bool {
				_ = from.nc.Publish(subject, []byte(r.cfgs[from.i].NodeID))
				_ = from.nc.Flush()
				for {
					select {
					case id := <-heard:
						got[id] = true
					default:
						return got[r.cfgs[from.i].NodeID]
					}
				}
			})
		}
		_ = sub.Unsubscribe()
	}
}
