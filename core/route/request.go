package route

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

const (
	// headerGroup names the target group of a request forwarded between
	// nodes.
	headerGroup = "Parley-Group"
)

// Error is the response that carries err: its wire code, or INTERNAL.
func Error(err error) *syncpb.CoreResponse {
	return &syncpb.CoreResponse{Error: syncproto.AsError(err).Proto()}
}

// onRequest handles requests from edges. shard is the shard of the
// subject, or "" for the API subject.
func (r *Router) onRequest(shard string) nats.MsgHandler {
	return func(m *nats.Msg) {
		if shard != "" && m.Reply == "" {
			r.cfg.NoReply(shard, m)
			return
		}
		r.dispatch(m, func(ctx context.Context, req *syncpb.CoreRequest) *syncpb.CoreResponse {
			return r.handle(ctx, shard, req)
		})
	}
}

// onForward handles a request another node forwarded because this node
// leads the target group. It never forwards again.
func (r *Router) onForward(m *nats.Msg) {
	name := m.Header.Get(headerGroup)
	r.dispatch(m, func(ctx context.Context, req *syncpb.CoreRequest) *syncpb.CoreResponse {
		g, ok := r.groups[name]
		if !ok {
			return Error(syncproto.Errorf(syncpb.Code_CODE_INVALID_ARGUMENT, "unknown group"))
		}
		return r.local(ctx, name, g, req)
	})
}

// dispatch decodes m, runs h in its own goroutine under the in-flight bound
// and the request's deadline, and replies.
func (r *Router) dispatch(m *nats.Msg, h func(context.Context, *syncpb.CoreRequest) *syncpb.CoreResponse) {
	select {
	case r.sem <- struct{}{}:
	default:
		r.reply(m, Error(&syncproto.Error{Code: syncpb.Code_CODE_UNAVAILABLE, Message: "core overloaded, retry", RetryAfter: r.cfg.Timeouts.OverloadRetryAfter}))
		return
	}
	r.mu.Lock()
	if r.stopped {
		r.mu.Unlock()
		<-r.sem
		return
	}
	r.wg.Add(1)
	r.mu.Unlock()
	go func() {
		defer r.wg.Done()
		defer func() { <-r.sem }()
		req := &syncpb.CoreRequest{}
		if err := proto.Unmarshal(m.Data, req); err != nil {
			r.reply(m, Error(syncproto.Errorf(syncpb.Code_CODE_MALFORMED, "malformed core request")))
			return
		}
		timeout := r.cfg.Timeouts.Request
		if req.DeadlineUnixMs > 0 {
			timeout = min(time.Until(time.UnixMilli(req.DeadlineUnixMs)), r.cfg.Timeouts.Request)
		}
		ctx, cancel := context.WithTimeout(r.ctx, timeout)
		defer cancel()
		r.reply(m, h(ctx, req))
	}()
}

func (r *Router) reply(m *nats.Msg, resp *syncpb.CoreResponse) {
	if m.Reply == "" {
		return
	}
	b, err := proto.Marshal(resp)
	if err != nil {
		r.log.Error("marshal core response", "err", err)
		return
	}
	out := nats.NewMsg(m.Reply)
	out.Header.Set(syncproto.HeaderNode, r.cfg.NodeID)
	out.Data = b
	if err := m.RespondMsg(out); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		r.log.Debug("respond", "err", err)
	}
}

// handle routes an edge's request by its row in syncproto.Requests, after
// the row's validator accepted it: conversation requests (on their shard
// subject only) to their shard's group, directory requests to the
// directory group, and the rest to the router's gathered requests or the
// node's Config.Node handlers.
func (r *Router) handle(ctx context.Context, shard string, req *syncpb.CoreRequest) *syncpb.CoreResponse {
	row, body, err := syncproto.CheckRequest(req)
	if err != nil {
		return Error(err)
	}
	if row.NoReply {
		return Error(syncproto.Errorf(syncpb.Code_CODE_INVALID_ARGUMENT, "%s is published without a reply", row.Op))
	}
	if shard != "" {
		if row.Route != syncproto.RouteConversation {
			return Error(syncproto.Errorf(syncpb.Code_CODE_INVALID_ARGUMENT, "this request does not belong on a shard subject"))
		}
		if want := r.ShardOf(row.Conv(body)); want != shard {
			return Error(syncproto.Errorf(syncpb.Code_CODE_INVALID_ARGUMENT, "conversation belongs to another shard (shard count mismatch?)"))
		}
		return r.Execute(ctx, shard, req)
	}
	switch row.Route {
	case syncproto.RouteDirectory:
		return r.Execute(ctx, DirGroup, req)
	case syncproto.RouteConversation:
		return Error(syncproto.Errorf(syncpb.Code_CODE_INVALID_ARGUMENT, "this request belongs on a shard subject"))
	}
	if g, ok := gathered[row.Op]; ok {
		return g(r, ctx, req)
	}
	h, ok := r.cfg.Node[row.Op]
	if !ok {
		return Error(syncproto.Errorf(syncpb.Code_CODE_INVALID_ARGUMENT, "this core does not serve %s", row.Op))
	}
	return h(ctx, req)
}

// Fail is the answer to req, run on group, that failed with err. An error
// without a wire code is logged, with the request's shard, conversation
// and user, before the caller is told INTERNAL.
func (r *Router) Fail(group string, req *syncpb.CoreRequest, err error) *syncpb.CoreResponse {
	var werr *syncproto.Error
	if errors.As(err, &werr) {
		return &syncpb.CoreResponse{Error: werr.Proto()}
	}
	e := syncproto.AsError(err)
	if e.Code == syncpb.Code_CODE_INTERNAL {
		op, conv := "none", ""
		if row, body, rerr := syncproto.RequestOf(req); rerr == nil {
			op, conv = string(row.Name()), row.Conv(body)
		}
		r.log.Error("request failed", "shard", group, "conv", conv, "user", req.GetCaller().GetUserId(), "op", op, "err", err)
	}
	return &syncpb.CoreResponse{Error: e.Proto()}
}

// Execute runs req on the leader of group name: here when this node
// leads, else forwarded to the leader. While the group has no leader, or
// the leader changes under the request, it retries until ctx ends.
func (r *Router) Execute(ctx context.Context, name string, req *syncpb.CoreRequest) *syncpb.CoreResponse {
	g, ok := r.groups[name]
	if !ok {
		return r.Fail(name, req, fmt.Errorf("route: no group %s", name))
	}
	backoff := r.cfg.Timeouts.RetryMin
	for {
		var resp *syncpb.CoreResponse
		leader, _ := g.Raft.Leader()
		switch {
		case leader == r.cfg.NodeID:
			resp = r.local(ctx, name, g, req)
		case leader != "":
			resp = r.forward(ctx, leader, name, req)
		default:
			resp = Error(syncproto.Errorf(syncpb.Code_CODE_UNAVAILABLE, "no leader yet, retry"))
		}
		if resp.GetError().GetCode() != syncpb.Code_CODE_UNAVAILABLE {
			return resp
		}
		select {
		case <-ctx.Done():
			return resp
		case <-r.ctx.Done():
			return resp
		case <-time.After(backoff):
		}
		if backoff < r.cfg.Timeouts.RetryMax {
			backoff *= 2
		}
	}
}

// forward sends req to the node that leads group name.
func (r *Router) forward(ctx context.Context, leader, name string, req *syncpb.CoreRequest) *syncpb.CoreResponse {
	b, err := proto.Marshal(req)
	if err != nil {
		return r.Fail(name, req, err)
	}
	m := nats.NewMsg(r.nodeSubject(leader))
	m.Header.Set(headerGroup, name)
	m.Data = b
	// Bound one attempt so a dead leader costs a retry, not the deadline.
	actx, cancel := context.WithTimeout(ctx, r.cfg.Timeouts.Forward)
	defer cancel()
	out, err := r.nc.RequestMsgWithContext(actx, m)
	if err != nil {
		return Error(&syncproto.Error{Code: syncpb.Code_CODE_UNAVAILABLE, Message: "leader unreachable, retry"})
	}
	resp := &syncpb.CoreResponse{}
	if err := proto.Unmarshal(out.Data, resp); err != nil {
		return r.Fail(name, req, fmt.Errorf("route: forwarded response from %s: %w", leader, err))
	}
	return resp
}

// local serves req on this node, which should lead the group: reads
// after a read barrier, writes only while this node leads; through the
// op's Config.Leader handler, or else the state machine (Prepare, then a
// proposal for a write).
func (r *Router) local(ctx context.Context, name string, g Group, req *syncpb.CoreRequest) *syncpb.CoreResponse {
	row, _, err := syncproto.RequestOf(req)
	if err != nil {
		return Error(err)
	}
	if row.Read {
		if err := g.Raft.ReadBarrier(ctx); err != nil {
			return r.Fail(name, req, err)
		}
	} else if !g.Raft.IsLeader() {
		return Error(syncproto.ErrUnavailable)
	}
	if h, ok := r.cfg.Leader[row.Op]; ok {
		return h(ctx, name, req)
	}
	cmd, resp, err := g.SM.Prepare(ctx, req, r.cfg.Now())
	if err != nil {
		return r.Fail(name, req, err)
	}
	if resp != nil {
		return resp
	}
	if cmd == nil {
		return r.Fail(name, req, fmt.Errorf("route: group %s: Prepare returned nothing", name))
	}
	data, err := proto.Marshal(cmd)
	if err != nil {
		return r.Fail(name, req, err)
	}
	start := time.Now()
	res, err := g.Raft.Apply(ctx, data)
	r.cfg.OnApply(name, start)
	if err != nil {
		return r.Fail(name, req, err)
	}
	switch res := res.(type) {
	case *syncpb.CoreResponse:
		return res
	case error:
		return r.Fail(name, req, res)
	default:
		return r.Fail(name, req, fmt.Errorf("route: group %s: unexpected apply result %T", name, res))
	}
}

// ReadLocal answers a read from this node's own copy of group name's
// state, without asking the leader: it may be stale. For diagnostics and
// tests that compare replicas.
func (r *Router) ReadLocal(ctx context.Context, name string, req *syncpb.CoreRequest) *syncpb.CoreResponse {
	g, ok := r.groups[name]
	if !ok {
		return Error(syncproto.Errorf(syncpb.Code_CODE_INVALID_ARGUMENT, "unknown group"))
	}
	if row, _, err := syncproto.RequestOf(req); err != nil || !row.Read {
		return Error(syncproto.Errorf(syncpb.Code_CODE_INVALID_ARGUMENT, "ReadLocal serves reads only"))
	}
	_, resp, err := g.SM.Prepare(ctx, req, r.cfg.Now())
	if err != nil {
		return r.Fail(name, req, err)
	}
	return resp
}
