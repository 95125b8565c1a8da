package core

import (
	"context"
	"errors"

	"github.com/parley-chat/parley/core/fanout"
	"github.com/parley-chat/parley/core/receipts"
	"github.com/parley-chat/parley/core/route"
	"github.com/parley-chat/parley/core/shard"
	"github.com/parley-chat/parley/crdt"
	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// Receipts: the conversation's shard leader checks a report (member,
// device, seq at most the last) and publishes it as a delta on the
// receipt stream (core/receipts); it answers once JetStream has stored
// it. Every node merges the stream into its own state. A user's position,
// in every answer (conversation reads, sync, receipt lists, counts and
// updates), is its devices' merged marks joined with its own last message
// in the conversation (the shard's, crdt.Marks.WithSent): a sender has
// received and read what it sent, and the message itself tells the
// members so. What a merge moves is told by core/fanout.

// receipt serves a receipt report on the shard's leader.
func (n *Node) receipt(ctx context.Context, mem *member, req *syncpb.CoreRequest) *syncpb.CoreResponse {
	if n.receipts == nil {
		return route.Error(syncproto.Errorf(syncpb.Code_CODE_UNAVAILABLE, "receipts need JetStream, which is off on this node"))
	}
	fsm := mem.shard
	if fsm == nil {
		return route.Error(syncproto.Errorf(syncpb.Code_CODE_INVALID_ARGUMENT, "not a conversation group"))
	}
	caller, rr := req.Caller, req.GetReceipt()
	_, err := fsm.CheckReceipt(caller, rr)
	if errors.Is(err, shard.ErrBeyondLast) {
		// A new leader may not have applied the message yet.
		if err := mem.g.ReadBarrier(ctx); err != nil {
			return n.router.Fail(mem.g.Name(), req, err)
		}
		_, err = fsm.CheckReceipt(caller, rr)
	}
	if err != nil {
		return n.router.Fail(mem.g.Name(), req, err)
	}
	// The answer is the device's merged position once this node has merged
	// everything stored before it (Barrier, or the delta's own sequence),
	// so answers never go back, whichever node gave the earlier ones.
	cur, err := n.receipts.Device(rr.ConvId, caller.UserId, caller.DeviceId)
	if err != nil {
		return n.router.Fail(mem.g.Name(), req, err)
	}
	if rr.Seq <= markOf(cur, rr.Type) {
		// Stale or repeated: nothing to store.
		if err := n.receipts.Barrier(ctx); err != nil {
			return n.router.Fail(mem.g.Name(), req, err)
		}
	} else {
		delta := &syncpb.ReceiptUpdate{ConvId: rr.ConvId, UserId: caller.UserId, DeviceId: caller.DeviceId,
			Type: rr.Type, Seq: rr.Seq, AtUnixMs: n.cfg.Now().UnixMilli()}
		seq, err := n.receipts.Publish(ctx, delta)
		if err != nil {
			return n.router.Fail(mem.g.Name(), req, err)
		}
		if err := n.receipts.WaitApplied(ctx, seq); err != nil {
			return n.router.Fail(mem.g.Name(), req, err)
		}
	}
	if cur, err = n.receipts.Device(rr.ConvId, caller.UserId, caller.DeviceId); err != nil {
		return n.router.Fail(mem.g.Name(), req, err)
	}
	return receiptAck(rr, markOf(cur, rr.Type))
}

func markOf(m crdt.Marks, t syncpb.ReceiptType) uint64 {
	if t == syncpb.ReceiptType_RECEIPT_TYPE_READ {
		return m.Read.Value
	}
	return m.DeliveredUpTo().Value
}

func receiptAck(rr *syncpb.ReceiptReport, seq uint64) *syncpb.CoreResponse {
	return &syncpb.CoreResponse{Result: &syncpb.CoreResponse_ReceiptAck{ReceiptAck: &syncpb.ReceiptAck{ConvId: rr.ConvId, Type: rr.Type, Seq: seq}}}
}

// readPositions gives shards the users' merged device marks; the shard
// joins in what they sent.
type readPositions struct{ n *Node }

func (r readPositions) Reported(conv, user string) (crdt.Marks, error) {
	if r.n.receipts == nil {
		return crdt.Marks{}, nil
	}
	return r.n.receipts.User(conv, user)
}

// getReceipts answers a member's question "who has received and read what"
// for conv: per member in groups up to LargeGroup, counts above.
func (n *Node) getReceipts(ctx context.Context, mem *member, req *syncpb.CoreRequest) *syncpb.CoreResponse {
	if n.receipts == nil {
		return route.Error(syncproto.Errorf(syncpb.Code_CODE_UNAVAILABLE, "receipts need JetStream, which is off on this node"))
	}
	fsm := mem.shard
	if fsm == nil {
		return route.Error(syncproto.Errorf(syncpb.Code_CODE_INVALID_ARGUMENT, "not a conversation group"))
	}
	conv := req.GetGetReceipts().GetConvId()
	// What users sent is read first, so no position is past the last seq
	// of the conversation read after.
	sent, err := fsm.Sent(conv)
	if err != nil {
		return n.router.Fail(mem.g.Name(), req, err)
	}
	// The conversation read checks membership and lists the members.
	get := &syncpb.CoreRequest{Caller: req.Caller, Op: &syncpb.CoreRequest_GetConversation{GetConversation: &syncpb.GetConversationRequest{ConvId: conv}}}
	_, resp, err := fsm.Prepare(ctx, get, n.cfg.Now())
	if err != nil {
		return n.router.Fail(mem.g.Name(), req, err)
	}
	c := resp.GetConversation()
	out := &syncpb.ReceiptList{ConvId: conv, LastSeq: c.GetLastSeq(), MemberCount: uint32(len(c.GetMembers()))}
	large := fanout.LargeGroup(n.cfg.LargeGroup).Is(len(c.GetMembers()))
	users := make([]string, len(c.GetMembers()))
	for i, m := range c.GetMembers() {
		users[i] = m.UserId
	}
	pos, err := n.receipts.Positions(conv, users, sent)
	if err != nil {
		return n.router.Fail(mem.g.Name(), req, err)
	}
	out.ReadCount, out.DeliveredCount = receipts.CountAt(pos, out.LastSeq)
	if !large {
		for _, u := range users {
			m := pos[u]
			out.Members = append(out.Members, &syncpb.MemberReceipts{UserId: u, DeliveredSeq: m.Delivered.Value, ReadSeq: m.Read.Value,
				DeliveredAtUnixMs: m.Delivered.At, ReadAtUnixMs: m.Read.At})
		}
	}
	return &syncpb.CoreResponse{Result: &syncpb.CoreResponse_Receipts{Receipts: out}}
}

// Receipts is the node's receipt service (nil when JetStream is off), for
// stats and tests.
func (n *Node) Receipts() *receipts.Service { return n.receipts }
