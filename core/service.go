package core

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/hashicorp/raft"
	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// headerGroup names the target group of a request forwarded between nodes.
const headerGroup = "Parley-Group"

func (n *Node) nodeSubject(id string) string {
	return "parley." + n.cfg.Region + ".node." + id
}

// serve subscribes the request subjects: the API subject and every shard
// subject in the core queue group, and this node's own forward subject.
func (n *Node) serve() error {
	sub := func(subject, queue string, h nats.MsgHandler) error {
		var s *nats.Subscription
		var err error
		if queue == "" {
			s, err = n.nc.Subscribe(subject, h)
		} else {
			s, err = n.nc.QueueSubscribe(subject, queue, h)
		}
		if err != nil {
			return fmt.Errorf("core: subscribe %s: %w", subject, err)
		}
		// Handlers hand off to goroutines at once; this bounds the backlog.
		if err := s.SetPendingLimits(65536, 64<<20); err != nil {
			return fmt.Errorf("core: pending limits %s: %w", subject, err)
		}
		n.subs = append(n.subs, s)
		return nil
	}
	if err := sub(syncproto.APISubject(n.cfg.Region), syncproto.CoreQueue, n.onRequest("")); err != nil {
		return err
	}
	if err := sub(n.nodeSubject(n.cfg.NodeID), "", n.onForward); err != nil {
		return err
	}
	// Shard subjects are served by the shard's leader only, so an edge's
	// request reaches it in one hop. While leadership moves, a request may
	// find no responder (the edge retries) or a former leader (it forwards).
	obs := make(chan raft.Observation, 64)
	n.observer = raft.NewObserver(obs, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	})
	for i := 0; i < n.cfg.ShardCount; i++ {
		n.groups[shardGroup(i)].g.Raft().RegisterObserver(n.observer)
	}
	n.reconcileShardSubs()
	n.wg.Add(1)
	go n.shardSubLoop(obs)
	return n.nc.Flush()
}

// shardSubLoop keeps the shard subscriptions in step with leadership: on
// every leader change, and every Timeouts.ShardSubCheck in case an
// observation was dropped.
func (n *Node) shardSubLoop(obs <-chan raft.Observation) {
	defer n.wg.Done()
	t := time.NewTicker(n.cfg.Timeouts.ShardSubCheck)
	defer t.Stop()
	for {
		select {
		case <-n.stop:
			return
		case <-obs:
		case <-t.C:
		}
		n.reconcileShardSubs()
	}
}

// reconcileShardSubs subscribes the subjects of the shards this node leads
// and drains those of shards it no longer leads.
func (n *Node) reconcileShardSubs() {
	n.shardMu.Lock()
	defer n.shardMu.Unlock()
	if n.closing {
		return
	}
	for i := 0; i < n.cfg.ShardCount; i++ {
		name := shardGroup(i)
		cur := n.shardSubs[name]
		lead := n.groups[name].g.IsLeader()
		switch {
		case lead && cur == nil:
			s, err := n.nc.QueueSubscribe(syncproto.ShardSubject(n.cfg.Region, uint32(i)), syncproto.CoreQueue, n.onRequest(name))
			if err != nil {
				n.log.Warn("subscribe shard subject", "group", name, "err", err)
				continue
			}
			if err := s.SetPendingLimits(65536, 64<<20); err != nil {
				n.log.Warn("pending limits", "group", name, "err", err)
			}
			n.shardSubs[name] = s
		case !lead && cur != nil:
			// Drain answers what was already delivered, then unsubscribes.
			if err := cur.Drain(); err != nil {
				_ = cur.Unsubscribe()
			}
			delete(n.shardSubs, name)
		}
	}
}

// dropShardSubs unsubscribes every shard subject (on Close).
func (n *Node) dropShardSubs() {
	n.shardMu.Lock()
	defer n.shardMu.Unlock()
	n.closing = true
	for name, s := range n.shardSubs {
		_ = s.Unsubscribe()
		delete(n.shardSubs, name)
	}
	if n.observer != nil {
		for _, name := range n.order {
			n.groups[name].g.Raft().DeregisterObserver(n.observer)
		}
	}
}

// onRequest handles requests from edges. shardName is the shard of the
// subject, or "" for the API subject.
func (n *Node) onRequest(shardName string) nats.MsgHandler {
	return func(m *nats.Msg) {
		if shardName != "" && m.Reply == "" {
			n.onTyping(shardName, m) // no reply wanted: typing
			return
		}
		n.dispatch(m, func(ctx context.Context, req *syncpb.CoreRequest) *syncpb.CoreResponse {
			return n.handle(ctx, shardName, req)
		})
	}
}

// onForward handles a request another node forwarded because this node
// leads the target group. It never forwards again.
func (n *Node) onForward(m *nats.Msg) {
	name := m.Header.Get(headerGroup)
	n.dispatch(m, func(ctx context.Context, req *syncpb.CoreRequest) *syncpb.CoreResponse {
		mem, ok := n.groups[name]
		if !ok {
			return errorResponse(syncproto.Errorf(syncpb.Code_CODE_INVALID_ARGUMENT, "unknown group"))
		}
		return n.local(ctx, mem, req)
	})
}

// dispatch decodes m, runs h in its own goroutine under the in-flight bound
// and the request's deadline, and replies.
func (n *Node) dispatch(m *nats.Msg, h func(context.Context, *syncpb.CoreRequest) *syncpb.CoreResponse) {
	select {
	case n.sem <- struct{}{}:
	default:
		n.reply(m, errorResponse(&syncproto.Error{Code: syncpb.Code_CODE_UNAVAILABLE, Message: "core overloaded, retry", RetryAfter: n.cfg.Timeouts.OverloadRetryAfter}))
		return
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		defer func() { <-n.sem }()
		req := &syncpb.CoreRequest{}
		if err := proto.Unmarshal(m.Data, req); err != nil {
			n.reply(m, errorResponse(syncproto.Errorf(syncpb.Code_CODE_MALFORMED, "malformed core request")))
			return
		}
		limit := n.cfg.Timeouts.Request
		timeout := limit
		if req.DeadlineUnixMs > 0 {
			timeout = min(time.Until(time.UnixMilli(req.DeadlineUnixMs)), limit)
		}
		ctx, cancel := context.WithTimeout(n.stopCtx, timeout)
		defer cancel()
		n.reply(m, h(ctx, req))
	}()
}

func (n *Node) reply(m *nats.Msg, resp *syncpb.CoreResponse) {
	if m.Reply == "" {
		return
	}
	b, err := proto.Marshal(resp)
	if err != nil {
		n.log.Error("marshal core response", "err", err)
		return
	}
	r := nats.NewMsg(m.Reply)
	r.Header.Set(syncproto.HeaderNode, n.cfg.NodeID)
	r.Data = b
	if err := m.RespondMsg(r); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		n.log.Debug("respond", "err", err)
	}
}

func errorResponse(err error) *syncpb.CoreResponse {
	return &syncpb.CoreResponse{Error: syncproto.AsError(err).Proto()}
}

// handle routes an edge's request by its row in syncproto.Requests, after
// the row's validator accepted it: conversation requests (on their shard
// subject only) to their shard's group, directory requests to the
// directory group, and the rest to this node's regionRequests.
func (n *Node) handle(ctx context.Context, shardName string, req *syncpb.CoreRequest) *syncpb.CoreResponse {
	r, body, err := syncproto.CheckRequest(req)
	if err != nil {
		return errorResponse(err)
	}
	if r.NoReply {
		return errorResponse(syncproto.Errorf(syncpb.Code_CODE_INVALID_ARGUMENT, "%s is published without a reply", r.Op))
	}
	if shardName != "" {
		if r.Route != syncproto.RouteConversation {
			return errorResponse(syncproto.Errorf(syncpb.Code_CODE_INVALID_ARGUMENT, "this request does not belong on a shard subject"))
		}
		if want := n.ShardGroupOf(r.Conv(body)); want != shardName {
			return errorResponse(syncproto.Errorf(syncpb.Code_CODE_INVALID_ARGUMENT, "conversation belongs to another shard (shard count mismatch?)"))
		}
		return n.execute(ctx, shardName, req)
	}
	switch r.Route {
	case syncproto.RouteDirectory:
		return n.execute(ctx, dirGroup, req)
	case syncproto.RouteConversation:
		return errorResponse(syncproto.Errorf(syncpb.Code_CODE_INVALID_ARGUMENT, "this request belongs on a shard subject"))
	}
	h, ok := regionRequests[r.Op]
	if !ok {
		return errorResponse(syncproto.Errorf(syncpb.Code_CODE_INVALID_ARGUMENT, "this core does not serve %s", r.Op))
	}
	return h(n, ctx, req)
}

// regionRequests are the handlers of syncproto.RouteNone requests, which
// the node that gets them answers: by itself or by asking every shard.
var regionRequests = map[protoreflect.Name]func(n *Node, ctx context.Context, req *syncpb.CoreRequest) *syncpb.CoreResponse{
	"region_info":        func(n *Node, _ context.Context, _ *syncpb.CoreRequest) *syncpb.CoreResponse { return n.regionInfo() },
	"list_conversations": (*Node).listConversations,
	"sync":               (*Node).sync,
	"get_presence":       (*Node).getPresence,
}

// groupRequests are the handlers of the requests a group's leader serves
// itself rather than through its state machine's Prepare.
var groupRequests = map[protoreflect.Name]func(n *Node, ctx context.Context, mem *member, req *syncpb.CoreRequest) *syncpb.CoreResponse{
	"receipt":      (*Node).receipt,
	"get_receipts": (*Node).getReceipts,
	"get_presence": func(n *Node, _ context.Context, mem *member, req *syncpb.CoreRequest) *syncpb.CoreResponse {
		return n.shardPresence(mem, req)
	},
}

// fail is the answer to req, run on group, that failed with err. An error
// without a wire code is logged, with the request's shard, conversation
// and user, before the caller is told INTERNAL.
func (n *Node) fail(group string, req *syncpb.CoreRequest, err error) *syncpb.CoreResponse {
	var werr *syncproto.Error
	if errors.As(err, &werr) {
		return &syncpb.CoreResponse{Error: werr.Proto()}
	}
	e := syncproto.AsError(err)
	if e.Code == syncpb.Code_CODE_INTERNAL {
		op, conv := "none", ""
		if r, body, rerr := syncproto.RequestOf(req); rerr == nil {
			op, conv = string(r.Name()), r.Conv(body)
		}
		n.log.Error("request failed", "shard", group, "conv", conv, "user", req.GetCaller().GetUserId(), "op", op, "err", err)
	}
	return &syncpb.CoreResponse{Error: e.Proto()}
}

// execute runs req on the leader of group name: here when this node leads,
// else forwarded to the leader. While the group has no leader, or the
// leader changes under the request, it retries until ctx ends.
func (n *Node) execute(ctx context.Context, name string, req *syncpb.CoreRequest) *syncpb.CoreResponse {
	mem, ok := n.groups[name]
	if !ok {
		return n.fail(name, req, fmt.Errorf("core: no group %s", name))
	}
	backoff := n.cfg.Timeouts.RetryMin
	for {
		var resp *syncpb.CoreResponse
		leader, _ := mem.g.Leader()
		switch {
		case leader == n.cfg.NodeID:
			resp = n.local(ctx, mem, req)
		case leader != "":
			resp = n.forward(ctx, leader, name, req)
		default:
			resp = errorResponse(syncproto.Errorf(syncpb.Code_CODE_UNAVAILABLE, "no leader yet, retry"))
		}
		if resp.GetError().GetCode() != syncpb.Code_CODE_UNAVAILABLE {
			return resp
		}
		select {
		case <-ctx.Done():
			return resp
		case <-n.stop:
			return resp
		case <-time.After(backoff):
		}
		if backoff < n.cfg.Timeouts.RetryMax {
			backoff *= 2
		}
	}
}

// forward sends req to the node that leads group name.
func (n *Node) forward(ctx context.Context, leader, name string, req *syncpb.CoreRequest) *syncpb.CoreResponse {
	b, err := proto.Marshal(req)
	if err != nil {
		return n.fail(name, req, err)
	}
	m := nats.NewMsg(n.nodeSubject(leader))
	m.Header.Set(headerGroup, name)
	m.Data = b
	// Bound one attempt so a dead leader costs a retry, not the deadline.
	actx, cancel := context.WithTimeout(ctx, n.cfg.Timeouts.Forward)
	defer cancel()
	r, err := n.nc.RequestMsgWithContext(actx, m)
	if err != nil {
		return errorResponse(&syncproto.Error{Code: syncpb.Code_CODE_UNAVAILABLE, Message: "leader unreachable, retry"})
	}
	resp := &syncpb.CoreResponse{}
	if err := proto.Unmarshal(r.Data, resp); err != nil {
		return n.fail(name, req, fmt.Errorf("core: forwarded response from %s: %w", leader, err))
	}
	return resp
}

// local serves req on this node, which should lead the group: reads
// after a read barrier, writes only while this node leads; through the
// op's groupRequests handler, or else the state machine (Prepare, then a
// proposal for a write).
func (n *Node) local(ctx context.Context, mem *member, req *syncpb.CoreRequest) *syncpb.CoreResponse {
	name := mem.g.Name()
	r, _, err := syncproto.RequestOf(req)
	if err != nil {
		return errorResponse(err)
	}
	if r.Read {
		if err := mem.g.ReadBarrier(ctx); err != nil {
			return n.fail(name, req, err)
		}
	} else if !mem.g.IsLeader() {
		return errorResponse(syncproto.ErrUnavailable)
	}
	if h, ok := groupRequests[r.Op]; ok {
		return h(n, ctx, mem, req)
	}
	cmd, resp, err := mem.sm.Prepare(ctx, req, n.cfg.Now())
	if err != nil {
		return n.fail(name, req, err)
	}
	if resp != nil {
		return resp
	}
	if cmd == nil {
		return n.fail(name, req, fmt.Errorf("core: group %s: Prepare returned nothing", name))
	}
	data, err := proto.Marshal(cmd)
	if err != nil {
		return n.fail(name, req, err)
	}
	start := time.Now()
	res, err := mem.g.Apply(ctx, data)
	n.metrics.observeApply(mem.g.Name(), start)
	if err != nil {
		return n.fail(name, req, err)
	}
	switch r := res.(type) {
	case *syncpb.CoreResponse:
		return r
	case error:
		return n.fail(name, req, r)
	default:
		return n.fail(name, req, fmt.Errorf("core: group %s: unexpected apply result %T", name, res))
	}
}

func (n *Node) regionInfo() *syncpb.CoreResponse {
	ids := make([]string, 0, len(n.peers))
	for _, p := range n.peers {
		ids = append(ids, p.ID)
	}
	leaders := make([]string, n.cfg.ShardCount)
	for i := range leaders {
		leaders[i], _ = n.groups[shardGroup(i)].g.Leader()
	}
	dirLeader, _ := n.groups[dirGroup].g.Leader()
	return &syncpb.CoreResponse{Result: &syncpb.CoreResponse_RegionInfo{RegionInfo: &syncpb.RegionInfo{
		Region: n.cfg.Region, ShardCount: uint32(n.cfg.ShardCount), Nodes: ids,
		ShardLeaders: leaders, DirectoryLeader: dirLeader,
	}}}
}

// everyShard runs req on every shard's leader at once and returns their
// responses, or the first error one of them answered.
func (n *Node) everyShard(ctx context.Context, req *syncpb.CoreRequest) ([]*syncpb.CoreResponse, *syncpb.Error) {
	results := make(chan *syncpb.CoreResponse, n.cfg.ShardCount)
	for i := 0; i < n.cfg.ShardCount; i++ {
		go func(name string) { results <- n.execute(ctx, name, req) }(shardGroup(i))
	}
	out := make([]*syncpb.CoreResponse, 0, n.cfg.ShardCount)
	var firstErr *syncpb.Error
	for i := 0; i < n.cfg.ShardCount; i++ {
		r := <-results
		if e := r.GetError(); e != nil && firstErr == nil {
			firstErr = e
		}
		out = append(out, r)
	}
	if firstErr != nil {
		return nil, firstErr
	}
	return out, nil
}

// listConversations gathers the caller's conversations from every shard.
func (n *Node) listConversations(ctx context.Context, req *syncpb.CoreRequest) *syncpb.CoreResponse {
	resps, err := n.everyShard(ctx, req)
	if err != nil {
		return &syncpb.CoreResponse{Error: err}
	}
	var all []*syncpb.Conversation
	for _, r := range resps {
		all = append(all, r.GetConversations().GetConversations()...)
	}
	sort.Slice(all, func(i, j int) bool {
		if all[i].CreatedUnixMs != all[j].CreatedUnixMs {
			return all[i].CreatedUnixMs > all[j].CreatedUnixMs
		}
		return all[i].Id < all[j].Id
	})
	if lim := int(req.GetListConversations().GetLimit()); lim > 0 && len(all) > lim {
		all = all[:lim]
	}
	return &syncpb.CoreResponse{Result: &syncpb.CoreResponse_Conversations{Conversations: &syncpb.ConversationList{Conversations: all}}}
}

// directoryClient gives shard state machines leader reads of the directory.
type directoryClient struct{ n *Node }

func (d directoryClient) LookupUsers(ctx context.Context, workspaceID string, userIDs []string) ([]*syncpb.User, error) {
	resp := d.n.execute(ctx, dirGroup, &syncpb.CoreRequest{
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
			ctx, cancel := context.WithTimeout(context.Background(), n.cfg.Timeouts.LeaderTransfer)
			err := mem.g.TransferLeadership(ctx, want.ID, want.RaftAddr)
			cancel()
			if err != nil {
				// The preferred node is down or behind: try again later.
				retryAt[name] = time.Now().Add(n.cfg.Timeouts.LeaderTransferRetry)
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
	mem, ok := n.groups[name]
	if !ok {
		return errorResponse(syncproto.Errorf(syncpb.Code_CODE_INVALID_ARGUMENT, "unknown group"))
	}
	if r, _, err := syncproto.RequestOf(req); err != nil || !r.Read {
		return errorResponse(syncproto.Errorf(syncpb.Code_CODE_INVALID_ARGUMENT, "ReadLocal serves reads only"))
	}
	_, resp, err := mem.sm.Prepare(ctx, req, n.cfg.Now())
	if err != nil {
		return n.fail(name, req, err)
	}
	return resp
}

// ShardGroupOf names the group that sequences a conversation.
func (n *Node) ShardGroupOf(convID string) string {
	return shardGroup(int(syncproto.ShardOf(convID, uint32(n.cfg.ShardCount))))
}
