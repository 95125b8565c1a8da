package shard

import (
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/parley-chat/parley/core/internal/kvfsm"
	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// sync answers a device's catch-up on this shard: every conversation of the
// caller here whose last seq is beyond the device's watermark (a missing
// watermark is 0), with the messages after the watermark in ascending seq
// order, at most the per-conversation limit and syncproto.MaxSyncBytes in
// all. A delta whose messages stop before last_seq is truncated: the device
// continues with history from its new watermark. One scan of the caller's
// conversation index, however many conversations the caller is in. The
// unread totals count every conversation of the caller here, changed or
// not.
func (f *FSM) sync(caller *syncpb.Caller, req *syncpb.SyncRequest) (*syncpb.CoreResponse, error) {
	if err := syncproto.ValidateSync(req); err != nil {
		return nil, err
	}
	limit := syncproto.SyncLimit(req.PerConversationLimit)
	marks := make(map[string]uint64, len(req.GetPosition().GetWatermarks()))
	for _, w := range req.GetPosition().GetWatermarks() {
		marks[w.ConvId] = w.Seq
	}
	out := &syncpb.SyncResponse{}
	var large []string
	err := f.view(func(v *kvfsm.View) error {
		convs, err := userConvs(v, caller.UserId)
		if err != nil {
			return err
		}
		size := 0
		for _, conv := range convs {
			meta, ok, err := getMeta(v, conv)
			if err != nil {
				return err
			}
			if !ok || meta.WorkspaceID != caller.WorkspaceId {
				continue
			}
			if f.large > 0 && meta.Members > f.large {
				large = append(large, conv)
			}
			pos, err := f.position(v, conv, caller.UserId)
			if err != nil {
				return err
			}
			read := pos.Read.Value
			var unread uint64
			if meta.LastSeq > read {
				unread = meta.LastSeq - read
				out.UnreadTotal += unread
				out.UnreadConversations++
			}
			if meta.LastSeq <= marks[conv] {
				continue
			}
			d := &syncpb.ConversationDelta{ConvId: conv, LastSeq: meta.LastSeq, ReadSeq: read, Unread: unread}
			from := marks[conv] + 1
			err = v.Scan(msgPrefix(conv), msgKey(conv, from), false, func(_, val []byte) (bool, error) {
				if len(d.Messages) >= limit || size+len(val) > syncproto.MaxSyncBytes {
					return false, nil
				}
				m := &syncpb.Message{}
				if err := proto.Unmarshal(val, m); err != nil {
					return false, fmt.Errorf("%w: message: %v", errCorrupt, err)
				}
				size += len(val)
				d.Messages = append(d.Messages, m)
				return true, nil
			})
			if err != nil {
				return err
			}
			n := uint64(len(d.Messages))
			d.Truncated = marks[conv]+n < meta.LastSeq
			size += len(conv) + 32
			out.Changed = append(out.Changed, d)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &syncpb.CoreResponse{Result: &syncpb.CoreResponse_Sync{Sync: out}, ConversationSubjects: large}, nil
}

// Members lists the user ids of conv's members from local state (the
// leader's is current as of its last apply). Unknown conversations have
// none.
func (f *FSM) Members(conv string) ([]string, error) {
	var users []string
	err := f.view(func(v *kvfsm.View) error {
		prefix := memberPrefix(conv)
		return v.Scan(prefix, nil, false, func(k, _ []byte) (bool, error) {
			users = append(users, string(k[len(prefix):]))
			return true, nil
		})
	})
	return users, err
}
