package core

import (
	"context"
	"errors"
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
// it. Every node merges the stream into its own state. A user's position,
// in every answer (conversation reads, sync, receipt lists, counts and
// updates), is its devices' merged marks joined with its own last message
// in the conversation (the shard's, crdt.Marks.WithSent): a sender has
// received and read what it sent, and the message itself tells the
// members so. The node that leads the conversation's shard when a merge
// moves a user's position tells the members (and the user's other
// devices) on their user subjects; in large groups only the user's
// devices hear of each read, and the members get aggregate counts at most
// once per aggregate interval on the conversation subject.

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
	if errors.Is(err, shard.ErrBeyondLast) {
		// A new leader may not have applied the message yet.
		if err := mem.g.ReadBarrier(ctx); err != nil {
			return n.fail(mem.g.Name(), req, err)
		}
		_, err = fsm.CheckReceipt(caller, rr)
	}
	if err != nil {
		return n.fail(mem.g.Name(), req, err)
	}
	// The answer is the device's merged position once this node has merged
	// everything stored before it (Barrier, or the delta's own sequence),
	// so answers never go back, whichever node gave the earlier ones.
	cur, err := n.receipts.Device(rr.ConvId, caller.UserId, caller.DeviceId)
	if err != nil {
		return n.fail(mem.g.Name(), req, err)
	}
	if rr.Seq <= markOf(cur, rr.Type) {
		// Stale or repeated: nothing to store.
		if err := n.receipts.Barrier(ctx); err != nil {
			return n.fail(mem.g.Name(), req, err)
		}
	} else {
		delta := &syncpb.ReceiptUpdate{ConvId: rr.ConvId, UserId: caller.UserId, DeviceId: caller.DeviceId,
			Type: rr.Type, Seq: rr.Seq, AtUnixMs: n.cfg.Now().UnixMilli()}
		seq, err := n.receipts.Publish(ctx, delta)
		if err != nil {
			return n.fail(mem.g.Name(), req, err)
		}
		if err := n.receipts.WaitApplied(ctx, seq); err != nil {
			return n.fail(mem.g.Name(), req, err)
		}
	}
	if cur, err = n.receipts.Device(rr.ConvId, caller.UserId, caller.DeviceId); err != nil {
		return n.fail(mem.g.Name(), req, err)
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
	byConv := map[string][]receipts.Change{}
	var order []string
	for _, c := range changes {
		if !n.leads(c.Conv) {
			continue
		}
		if _, ok := byConv[c.Conv]; !ok {
			order = append(order, c.Conv)
		}
		byConv[c.Conv] = append(byConv[c.Conv], c)
	}
	for _, conv := range order {
		fsm := n.groups[n.ShardGroupOf(conv)].shard
		ups := positionUpdates(fsm, byConv[conv])
		if len(ups) == 0 {
			continue
		}
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

// positionUpdates are the updates of one conversation's changes: a
// change moves the user's position (its devices' marks joined with its
// own last message, as every answer gives it) or tells nothing; a report
// below what the user sent moves nothing.
func positionUpdates(fsm *shard.FSM, changes []receipts.Change) []*syncpb.ReceiptUpdate {
	var ups []*syncpb.ReceiptUpdate
	for _, c := range changes {
		sent, err := fsm.SentBy(c.Conv, c.User)
		if err != nil {
			continue
		}
		before, after := c.Before.WithSent(sent), c.After.WithSent(sent)
		if after.Read != before.Read {
			ups = append(ups, update(c, syncpb.ReceiptType_RECEIPT_TYPE_READ, after.Read))
		}
		if after.Delivered != before.Delivered {
			ups = append(ups, update(c, syncpb.ReceiptType_RECEIPT_TYPE_DELIVERED, after.Delivered))
		}
	}
	return ups
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
	fsm := n.groups[n.ShardGroupOf(conv)].shard
	// What users sent is read first, so no position is past the last seq.
	sent, err := fsm.Sent(conv)
	if err != nil {
		return
	}
	info, ok, err := fsm.Info(conv)
	if err != nil || !ok {
		return
	}
	members, err := fsm.Members(conv)
	if err != nil {
		return
	}
	pos, err := n.positions(conv, members, sent)
	if err != nil {
		n.log.Warn("receipt aggregate", "conv", conv, "err", err)
		return
	}
	readN, delivN := countAt(pos, info.LastSeq)
	f.publish([]*syncpb.ReceiptUpdate{
		{ConvId: conv, Type: syncpb.ReceiptType_RECEIPT_TYPE_READ, Seq: info.LastSeq, Count: readN},
		{ConvId: conv, Type: syncpb.ReceiptType_RECEIPT_TYPE_DELIVERED, Seq: info.LastSeq, Count: delivN},
	}, syncproto.ConvSubject(n.cfg.Region, conv))
}

// positions returns the position in conv of each of users: what its
// devices reported (core/receipts) joined with its own last message
// (sent, from the shard), the rule the shard's read positions follow too
// (crdt.Marks.WithSent).
func (n *Node) positions(conv string, users []string, sent map[string]crdt.Register) (map[string]crdt.Marks, error) {
	out := make(map[string]crdt.Marks, len(users))
	for _, u := range users {
		out[u] = crdt.Marks{}
	}
	err := n.receipts.Scan(conv, func(user string, m crdt.Marks) bool {
		if _, ok := out[user]; ok {
			out[user] = m
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	for u, m := range out {
		out[u] = m.WithSent(sent[u])
	}
	return out, nil
}

// countAt counts the positions that have read and received seq (none
// when seq is 0: there is nothing to read).
func countAt(pos map[string]crdt.Marks, seq uint64) (read, delivered uint32) {
	if seq == 0 {
		return 0, 0
	}
	for _, m := range pos {
		if m.Read.Value >= seq {
			read++
		}
		if m.Delivered.Value >= seq {
			delivered++
		}
	}
	return read, delivered
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
	fsm := mem.shard
	if fsm == nil {
		return errorResponse(syncproto.Errorf(syncpb.Code_CODE_INVALID_ARGUMENT, "not a conversation group"))
	}
	conv := req.GetGetReceipts().GetConvId()
	// What users sent is read first, so no position is past the last seq
	// of the conversation read after.
	sent, err := fsm.Sent(conv)
	if err != nil {
		return n.fail(mem.g.Name(), req, err)
	}
	// The conversation read checks membership and lists the members.
	get := &syncpb.CoreRequest{Caller: req.Caller, Op: &syncpb.CoreRequest_GetConversation{GetConversation: &syncpb.GetConversationRequest{ConvId: conv}}}
	_, resp, err := fsm.Prepare(ctx, get, n.cfg.Now())
	if err != nil {
		return n.fail(mem.g.Name(), req, err)
	}
	c := resp.GetConversation()
	out := &syncpb.ReceiptList{ConvId: conv, LastSeq: c.GetLastSeq(), MemberCount: uint32(len(c.GetMembers()))}
	large := n.cfg.LargeGroup > 0 && len(c.GetMembers()) > n.cfg.LargeGroup
	users := make([]string, len(c.GetMembers()))
	for i, m := range c.GetMembers() {
		users[i] = m.UserId
	}
	pos, err := n.positions(conv, users, sent)
	if err != nil {
		return n.fail(mem.g.Name(), req, err)
	}
	out.ReadCount, out.DeliveredCount = countAt(pos, out.LastSeq)
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
