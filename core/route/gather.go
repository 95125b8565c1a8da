package route

import (
	"context"
	"slices"
	"sort"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// gathered are the RouteNone requests the router answers by asking
// every shard's leader and merging the answers.
var gathered = map[protoreflect.Name]func(r *Router, ctx context.Context, req *syncpb.CoreRequest) *syncpb.CoreResponse{
	"list_conversations": (*Router).listConversations,
	"sync":               (*Router).sync,
}

// EveryShard runs req on every shard's leader at once and returns their
// responses, or the first error one of them answered.
func (r *Router) EveryShard(ctx context.Context, req *syncpb.CoreRequest) ([]*syncpb.CoreResponse, *syncpb.Error) {
	n := len(r.cfg.Shards)
	results := make(chan *syncpb.CoreResponse, n)
	for i := range n {
		go func(name string) { results <- r.Execute(ctx, name, req) }(ShardGroup(i))
	}
	out := make([]*syncpb.CoreResponse, 0, n)
	var firstErr *syncpb.Error
	for range n {
		resp := <-results
		if e := resp.GetError(); e != nil && firstErr == nil {
			firstErr = e
		}
		out = append(out, resp)
	}
	if firstErr != nil {
		return nil, firstErr
	}
	return out, nil
}

// listConversations gathers the caller's conversations from every shard.
func (r *Router) listConversations(ctx context.Context, req *syncpb.CoreRequest) *syncpb.CoreResponse {
	resps, err := r.EveryShard(ctx, req)
	if err != nil {
		return &syncpb.CoreResponse{Error: err}
	}
	var all []*syncpb.Conversation
	for _, resp := range resps {
		all = append(all, resp.GetConversations().GetConversations()...)
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

// sync gathers a device's catch-up from every shard in one round: each
// shard's leader answers for the caller's conversations it holds (see
// shard's sync), and the merged response keeps to syncproto.MaxSyncBytes,
// trimming messages (and marking the delta truncated) where the shards'
// answers together exceed it. Deltas come in conversation id order.
func (r *Router) sync(ctx context.Context, req *syncpb.CoreRequest) *syncpb.CoreResponse {
	resps, err := r.EveryShard(ctx, req)
	if err != nil {
		return &syncpb.CoreResponse{Error: err}
	}
	var all []*syncpb.ConversationDelta
	var large []string
	for _, resp := range resps {
		all = append(all, resp.GetSync().GetChanged()...)
		large = append(large, resp.GetConversationSubjects()...)
	}
	slices.SortFunc(all, func(a, b *syncpb.ConversationDelta) int { return strings.Compare(a.ConvId, b.ConvId) })
	trimDeltas(all, syncproto.MaxSyncBytes)
	slices.Sort(large)
	return &syncpb.CoreResponse{Result: &syncpb.CoreResponse_Sync{Sync: &syncpb.SyncResponse{Changed: all}}, ConversationSubjects: large}
}

// trimDeltas cuts the deltas' messages to budget encoded bytes, keeping
// each delta's messages a prefix (so the device's watermark stays gapless)
// and marking a cut delta truncated.
func trimDeltas(ds []*syncpb.ConversationDelta, budget int) {
	size := 0
	for _, d := range ds {
		size += len(d.ConvId) + 32
		for i, m := range d.Messages {
			size += proto.Size(m) + 4
			if size > budget {
				d.Messages = d.Messages[:i]
				d.Truncated = true
				break
			}
		}
	}
}
