package core

import (
	"context"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// sync gathers a device's catch-up from every shard in one round: each
// shard's leader answers for the caller's conversations it holds (see
// shard's sync), and the merged response keeps to syncproto.MaxSyncBytes,
// trimming messages (and marking the delta truncated) where the shards'
// answers together exceed it. Deltas come in conversation id order.
func (n *Node) sync(ctx context.Context, req *syncpb.CoreRequest) *syncpb.CoreResponse {
	resps, err := n.everyShard(ctx, req)
	if err != nil {
		return &syncpb.CoreResponse{Error: err}
	}
	var all []*syncpb.ConversationDelta
	var large []string
	for _, r := range resps {
		all = append(all, r.GetSync().GetChanged()...)
		large = append(large, r.GetConversationSubjects()...)
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
