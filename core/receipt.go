package core

import (
	"context"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/parley-chat/parley/core/receipts"
	"github.com/parley-chat/parley/core/shard"
	"github.com/parley-chat/parley/crdt"
	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// Receipts: the conversation's shard leader checks a report (member,
// device, seq at most the last) and publishes it as a delta on the
// receipt stream (core/receipts); it answers once JetStream has stored
// it. Every node merges the stream into its own state. The node that leads
// the conversation's shard when a merge moves a user's position tells the
// members (and the user's other devices) on their user subjects; in large
// groups only the user's devices hear of each read, and the members get
// aggregate counts at most once per aggregate interval on the
// conversation subject.

// receipt serves a receipt report on the shard's leader.
func (n *Node) receipt(ctx context.Context, mem *member, req *syncpb.CoreRequest) *syncpb.CoreResponse {
	if n.receipts == nil {
		return errorResponse(syncproto.Errorf(syncpb.Code_CODE_UNAVAILABLE, "receipts need JetStream, which is off on this node"))
	}
	fsm := mem.shard
	if fsm == nil {
		return errorResponse(syncproto.Errorf(syncpb.Code_CODE_INVALID_ARGUMENT, "not a conversation group"))
	}
	caller, rr := req.Caller, req.GetReceipt()
	_, err := fsm.CheckReceipt(caller, rr)
	if err == shard.ErrBeyondLast { //nolint:errorlint // this sentinel, not every INVALID_ARGUMENT (syncproto errors match by code)
		// A new leader may not have applied the message yet.
		if err := mem.g.ReadBarrier(ctx); err != nil {
			return errorResponse(err)
		}
		_, err = fsm.CheckReceipt(caller, rr)
	}
	if err != nil {
		return errorResponse(err)
	}
	// The answer is the device's merged position once this node has merged
	// everything stored before it (Barrier, or the delta's own sequence),
	// so answers never go back, whichever node gave the earlier ones.
	cur, err := n.receipts.Device(rr.ConvId, caller.UserId, caller.DeviceId)
	if err != nil {
		return errorResponse(err)
	}
	if rr.Seq <= markOf(cur, rr.Type) {
		// Stale or repeated: nothing to store.
		if err := n.receipts.Barrier(ctx); err != nil {
			return errorResponse(err)
		}
	} else {
		delta := &syncpb.ReceiptUpdate{ConvId: rr.ConvId, UserId: caller.UserId, DeviceId: caller.DeviceId,
			Type: rr.Type, Seq: rr.Seq, AtUnixMs: n.cfg.Now().UnixMilli()}
		seq, err := n.receipts.Publish(ctx, delta)
		if err != nil {
			return errorResponse(err)
		}
		if err := n.receipts.WaitApplied(ctx, seq); err != nil {
			return errorResponse(err)
		}
	}
	if cur, err = n.receipts.Device(rr.ConvId, caller.UserId, caller.DeviceId); err != nil {
		return errorResponse(err)
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

// readPositions gives shards the merged read positions.
type readPositions struct{ n *Node }

func (r readPositions) ReadSeq(conv, user string) (uint64, error) {
	if r.n.receipts == nil {
		return 0, nil
	}
	m, err := r.n.receipts.User(conv, user)
	return m.Read.Value, err
}

// receiptFanout publishes merged receipt changes; it runs on the merge
// loop of core/receipts.
type receiptFanout struct {
	n *Node

	mu    sync.Mutex
	dirty map[string]struct{} // large groups owed an aggregate
}

// maxDirty bounds the large groups waiting for an aggregate.
const maxDirty = 65536

func (f *receiptFanout) changed(changes []receipts.Change) {
	n := f.n
	byConv := map[string][]*syncpb.ReceiptUpdate{}
	var order []string
	for _, c := range changes {
		if !n.leads(c.Conv) {
			continue
		}
		if _, ok := byConv[c.Conv]; !ok {
			order = append(order, c.Conv)
		}
		if c.After.Read != c.Before.Read {
			byConv[c.Conv] = append(byConv[c.Conv], update(c, syncpb.ReceiptType_RECEIPT_TYPE_READ, c.After.Read))
		}
		if c.After.Delivered != c.Before.Delivered {
			byConv[c.Conv] = append(byConv[c.Conv], update(c, syncpb.ReceiptType_RECEIPT_TYPE_DELIVERED, c.After.Delivered))
		}
	}
	for _, conv := range order {
		ups := byConv[conv]
		if len(ups) == 0 {
			continue
		}
		fsm := n.groups[n.ShardGroupOf(conv)].shard
		info, ok, err := fsm.Info(conv)
		if err != nil || !ok {
			continue
		}
		if n.cfg.LargeGroup > 0 && info.Members > n.cfg.LargeGroup {
			// Each user's own devices still hear of its reads.
			byUser := map[string][]*syncpb.ReceiptUpdate{}
			for _, u := range ups {
				byUser[u.UserId] = append(byUser[u.UserId], u)
			}
			for user, us := range byUser {
				f.publish(us, syncproto.UserSubject(n.cfg.Region, user))
			}
			f.mu.Lock()
			if len(f.dirty) < maxDirty {
				f.dirty[conv] = struct{}{}
			}
			f.mu.Unlock()
			continue
		}
		members, err := fsm.Members(conv)
		if err != nil {
			continue
		}
		subjects := make([]string, len(members))
		for i, m := range members {
			subjects[i] = syncproto.UserSubject(n.cfg.Region, m)
		}
		f.publish(ups, subjects...)
	}
}

func update(c receipts.Change, t syncpb.ReceiptType, r crdt.Register) *syncpb.ReceiptUpdate {
	return &syncpb.ReceiptUpdate{ConvId: c.Conv, UserId: c.User, DeviceId: c.Device, Type: t, Seq: r.Value, AtUnixMs: r.At}
}

// publish sends ups, encoded once, to each subject.
func (f *receiptFanout) publish(ups []*syncpb.ReceiptUpdate, subjects ...string) {
	b, err := proto.Marshal(&syncpb.Deliver{Receipts: ups})
	if err != nil {
		return
	}
	for _, subject := range subjects {
		if err := f.n.nc.PublishMsg(&nats.Msg{Subject: subject, Data: b}); err != nil {
			f.n.log.Debug("publish receipt update", "subject", subject, "err", err)
		}
	}
}

// aggregateLoop publishes, every interval, the counts of the large groups
// whose receipts moved.
func (f *receiptFanout) aggregateLoop(every time.Duration) {
	defer f.n.wg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-f.n.stop:
			return
		case <-t.C:
		}
		f.mu.Lock()
		dirty := f.dirty
		f.dirty = map[string]struct{}{}
		f.mu.Unlock()
		for conv := range dirty {
			if f.n.leads(conv) {
				f.aggregate(conv)
			}
		}
	}
}

// aggregate publishes how many members received and read the last message.
func (f *receiptFanout) aggregate(conv string) {
	n := f.n
	info, ok, err := n.groups[n.ShardGroupOf(conv)].shard.Info(conv)
	if err != nil || !ok {
		return
	}
	var readN, delivN uint32
	err = n.receipts.Scan(conv, func(_ string, m crdt.Marks) bool {
		if m.Read.Value >= info.LastSeq {
			readN++
		}
		if m.Delivered.Value >= info.LastSeq {
			delivN++
		}
		return true
	})
	if err != nil {
		n.log.Warn("receipt aggregate", "conv", conv, "err", err)
		return
	}
	f.publish([]*syncpb.ReceiptUpdate{
		{ConvId: conv, Type: syncpb.ReceiptType_RECEIPT_TYPE_READ, Seq: info.LastSeq, Count: readN},
		{ConvId: conv, Type: syncpb.ReceiptType_RECEIPT_TYPE_DELIVERED, Seq: info.LastSeq, Count: delivN},
	}, syncproto.ConvSubject(n.cfg.Region, conv))
}

// leads reports whether this node leads conv's shard.
func (n *Node) leads(conv string) bool {
	return n.groups[n.ShardGroupOf(conv)].g.IsLeader()
}

// getReceipts answers a member's question "who has received and read what"
// for conv: per member in groups up to LargeGroup, counts above.
func (n *Node) getReceipts(ctx context.Context, mem *member, req *syncpb.CoreRequest) *syncpb.CoreResponse {
	if n.receipts == nil {
		return errorResponse(syncproto.Errorf(syncpb.Code_CODE_UNAVAILABLE, "receipts need JetStream, which is off on this node"))
	}
	conv := req.GetGetReceipts().GetConvId()
	// The conversation read checks membership and lists the members.
	get := &syncpb.CoreRequest{Caller: req.Caller, Op: &syncpb.CoreRequest_GetConversation{GetConversation: &syncpb.GetConversationRequest{ConvId: conv}}}
	_, resp, err := mem.sm.Prepare(ctx, get, n.cfg.Now())
	if err != nil {
		return errorResponse(err)
	}
	c := resp.GetConversation()
	out := &syncpb.ReceiptList{ConvId: conv, LastSeq: c.GetLastSeq(), MemberCount: uint32(len(c.GetMembers()))}
	large := n.cfg.LargeGroup > 0 && len(c.GetMembers()) > n.cfg.LargeGroup
	members := map[string]bool{}
	for _, m := range c.GetMembers() {
		members[m.UserId] = true
	}
	byUser := map[string]*syncpb.MemberReceipts{}
	err = n.receipts.Scan(conv, func(user string, m crdt.Marks) bool {
		if !members[user] {
			return true // a former member
		}
		if m.Read.Value >= out.LastSeq && out.LastSeq > 0 {
			out.ReadCount++
		}
		if m.Delivered.Value >= out.LastSeq && out.LastSeq > 0 {
			out.DeliveredCount++
		}
		if !large {
			byUser[user] = &syncpb.MemberReceipts{UserId: user, DeliveredSeq: m.Delivered.Value, ReadSeq: m.Read.Value,
				DeliveredAtUnixMs: m.Delivered.At, ReadAtUnixMs: m.Read.At}
		}
		return true
	})
	if err != nil {
		return errorResponse(err)
	}
	if !large {
		for _, m := range c.GetMembers() {
			r := byUser[m.UserId]
			if r == nil {
				r = &syncpb.MemberReceipts{UserId: m.UserId}
			}
			out.Members = append(out.Members, r)
		}
	}
	return &syncpb.CoreResponse{Result: &syncpb.CoreResponse_Receipts{Receipts: out}}
}

// Receipts is the node's receipt service (nil when JetStream is off), for
// stats and tests.
func (n *Node) Receipts() *receipts.Service { return n.receipts }
