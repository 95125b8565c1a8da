package core

import (
	"context"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/parley-chat/parley/core/fanout"
	"github.com/parley-chat/parley/core/route"
	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// The node's part of the request service (core/route): the handlers of
// the requests the node answers itself, and those a group's leader serves
// outside its state machine.

// nodeRequests are the handlers of the syncproto.RouteNone requests the
// node answers (list_conversations and sync are the router's).
var nodeRequests = map[protoreflect.Name]func(n *Node, ctx context.Context, req *syncpb.CoreRequest) *syncpb.CoreResponse{
	"region_info":  func(n *Node, _ context.Context, _ *syncpb.CoreRequest) *syncpb.CoreResponse { return n.regionInfo() },
	"get_presence": (*Node).getPresence,
	"search":       (*Node).search,
}

// leaderRequests are the handlers of the requests a group's leader serves
// itself rather than through its state machine's Prepare.
var leaderRequests = map[protoreflect.Name]func(n *Node, ctx context.Context, mem *member, req *syncpb.CoreRequest) *syncpb.CoreResponse{
	"receipt":      (*Node).receipt,
	"get_receipts": (*Node).getReceipts,
	"get_presence": func(n *Node, _ context.Context, mem *member, req *syncpb.CoreRequest) *syncpb.CoreResponse {
		return n.shardPresence(mem, req)
	},
}

// newRouter builds the node's request service over its groups.
func (n *Node) newRouter() (*route.Router, error) {
	tm := n.cfg.Timeouts
	cfg := route.Config{
		Region: n.cfg.Region, NodeID: n.cfg.NodeID, Conn: n.nc,
		Node: map[protoreflect.Name]route.Handler{}, Leader: map[protoreflect.Name]route.LeaderHandler{},
		NoReply: n.onTyping, MaxInFlight: n.cfg.MaxInFlight, OnApply: n.metrics.observeApply,
		Timeouts: tm.Timeouts,
		Now:      n.cfg.Now, Logger: n.log,
	}
	for _, name := range n.order {
		mem := n.groups[name]
		g := route.Group{Raft: mem.g, SM: mem.sm}
		if name == route.DirGroup {
			cfg.Directory = g
		} else {
			cfg.Shards = append(cfg.Shards, g)
		}
	}
	for op, h := range nodeRequests {
		cfg.Node[op] = func(ctx context.Context, req *syncpb.CoreRequest) *syncpb.CoreResponse { return h(n, ctx, req) }
	}
	for op, h := range leaderRequests {
		cfg.Leader[op] = func(ctx context.Context, name string, req *syncpb.CoreRequest) *syncpb.CoreResponse {
			return h(n, ctx, n.groups[name], req)
		}
	}
	return route.New(cfg)
}

// onTyping takes what an edge published on the subject of shard
// shardName without a reply subject (typing) to the fanout, which checks
// it against the shard's members while this node leads it.
func (n *Node) onTyping(shardName string, m *nats.Msg) {
	n.fanout.Typing(m.Data, func(conv string) fanout.Source {
		mem := n.groups[shardName]
		if n.ShardGroupOf(conv) != shardName || mem.shard == nil || !mem.g.IsLeader() {
			return nil
		}
		return mem.shard
	})
}

func (n *Node) regionInfo() *syncpb.CoreResponse {
	leaders := make([]string, n.cfg.ShardCount)
	for i := range leaders {
		leaders[i], _ = n.groups[route.ShardGroup(i)].g.Leader()
	}
	dirLeader, _ := n.groups[route.DirGroup].g.Leader()
	var vapid string
	if n.cfg.Push != nil {
		vapid = n.cfg.Push.VAPID.Public
	}
	return &syncpb.CoreResponse{Result: &syncpb.CoreResponse_RegionInfo{RegionInfo: &syncpb.RegionInfo{
		Region: n.cfg.Region, ShardCount: uint32(n.cfg.ShardCount), Nodes: peerIDs(n.peers),
		ShardLeaders: leaders, DirectoryLeader: dirLeader, VapidPublicKey: vapid,
	}}}
}

// directoryClient gives shard state machines leader reads of the directory.
type directoryClient struct{ n *Node }

func (d directoryClient) LookupUsers(ctx context.Context, workspaceID string, userIDs []string) ([]*syncpb.User, error) {
	resp := d.n.router.Execute(ctx, route.DirGroup, &syncpb.CoreRequest{
		Caller: &syncpb.Caller{WorkspaceId: workspaceID},
		Op:     &syncpb.CoreRequest_LookupUsers{LookupUsers: &syncpb.LookupUsersRequest{UserIds: userIDs}},
	})
	if err := syncproto.FromProto(resp.GetError()); err != nil {
		return nil, err
	}
	return resp.GetUsers().GetUsers(), nil
}

// balanceLoop hands each group this node leads to its preferred leader
// (group index mod node count), so leaders spread across the region.
func (n *Node) balanceLoop() {
	defer n.wg.Done()
	t := time.NewTicker(n.cfg.BalanceInterval)
	defer t.Stop()
	retryAt := map[string]time.Time{}
	for {
		select {
		case <-n.stop:
			return
		case <-t.C:
		}
		for _, name := range n.order {
			mem := n.groups[name]
			want := n.peers[mem.index%len(n.peers)]
			if want.ID == n.cfg.NodeID || !mem.g.IsLeader() || time.Now().Before(retryAt[name]) {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			err := mem.g.TransferLeadership(ctx, want.ID, want.RaftAddr)
			cancel()
			if err != nil {
				// The preferred node is down or behind: try again later.
				retryAt[name] = time.Now().Add(30 * time.Second)
				n.log.Debug("leadership transfer failed", "group", name, "to", want.ID, "err", err)
				continue
			}
			n.log.Debug("leadership transferred", "group", name, "to", want.ID)
		}
	}
}

// ReadLocal answers a read from this node's own copy of the group's state,
// without asking the leader: it may be stale. For diagnostics and tests
// that compare replicas.
func (n *Node) ReadLocal(ctx context.Context, name string, req *syncpb.CoreRequest) *syncpb.CoreResponse {
	return n.router.ReadLocal(ctx, name, req)
}

// ShardGroupOf names the group that sequences a conversation.
func (n *Node) ShardGroupOf(convID string) string {
	return route.ShardGroup(int(syncproto.ShardOf(convID, uint32(n.cfg.ShardCount))))
}
