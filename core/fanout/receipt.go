package fanout

import (
	"context"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/parley-chat/parley/core/receipts"
	"github.com/parley-chat/parley/core/shard"
	"github.com/parley-chat/parley/crdt"
	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// Receipt updates: the node that leads the conversation's shard when a
// merge (core/receipts) moves a user's position tells the members, and
// the user's other devices, on their user subjects. In a large group
// only the user's devices hear of each move, and the members get
// aggregate counts, at most once per Config.ReceiptAggregate, on the
// conversation subject. A position is the user's devices' marks joined
// with its own last message (crdt.Marks.WithSent), as every answer gives
// it.

// ReceiptSource is what receipt updates read of a conversation's shard
// (*shard.FSM does).
type ReceiptSource interface {
	Source
	// SentBy is user's own last message in conv; Sent is every member's.
	SentBy(conv, user string) (crdt.Register, error)
	Sent(conv string) (map[string]crdt.Register, error)
	// Info is conv's last seq and member count; ok is false when conv
	// does not exist.
	Info(conv string) (info shard.ConvInfo, ok bool, err error)
}

var _ ReceiptSource = (*shard.FSM)(nil)

// maxDirty bounds the large groups waiting for an aggregate.
const maxDirty = 65536

type receiptNotices struct {
	mu    sync.Mutex
	dirty map[string]struct{} // large groups owed an aggregate
}

func (r *receiptNotices) init() { r.dirty = map[string]struct{}{} }

// ReceiptsChanged tells what a receipt merge moved (core/receipts'
// Config.OnChange); it runs on the merge loop and publishes at once.
func (f *Fanout) ReceiptsChanged(changes []receipts.Change) {
	if f.cfg.Positions == nil {
		return
	}
	byConv := map[string][]receipts.Change{}
	srcs := map[string]ReceiptSource{}
	var order []string
	for _, c := range changes {
		if _, ok := srcs[c.Conv]; !ok {
			src := f.cfg.Shard(c.Conv)
			if src == nil {
				continue
			}
			srcs[c.Conv] = src
			order = append(order, c.Conv)
		}
		byConv[c.Conv] = append(byConv[c.Conv], c)
	}
	for _, conv := range order {
		src := srcs[conv]
		ups := positionUpdates(src, byConv[conv])
		if len(ups) == 0 {
			continue
		}
		m, err := f.members.get(src, conv)
		if err != nil {
			continue
		}
		if !f.cfg.LargeGroup.Is(len(m.Users)) {
			f.publishReceipts(ups, f.userSubjects(m.Users)...)
			continue
		}
		// Each user's own devices still hear of its moves.
		byUser := map[string][]*syncpb.ReceiptUpdate{}
		for _, u := range ups {
			byUser[u.UserId] = append(byUser[u.UserId], u)
		}
		for user, us := range byUser {
			f.publishReceipts(us, syncproto.UserSubject(f.cfg.Region, user))
		}
		f.receipts.mu.Lock()
		if len(f.receipts.dirty) < maxDirty {
			f.receipts.dirty[conv] = struct{}{}
		}
		f.receipts.mu.Unlock()
	}
}

// positionUpdates are the updates of one conversation's changes: a
// change moves the user's position or tells nothing; a report below what
// the user sent moves nothing.
func positionUpdates(src ReceiptSource, changes []receipts.Change) []*syncpb.ReceiptUpdate {
	var ups []*syncpb.ReceiptUpdate
	for _, c := range changes {
		sent, err := src.SentBy(c.Conv, c.User)
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

// publishReceipts sends ups, encoded once, to each subject.
func (f *Fanout) publishReceipts(ups []*syncpb.ReceiptUpdate, subjects ...string) {
	b, err := proto.Marshal(&syncpb.Deliver{Receipts: ups})
	if err != nil {
		return
	}
	f.send("receipt update", b, "", "", subjects...)
}

// aggregateLoop publishes, every ReceiptAggregate, the counts of the
// large groups whose receipts moved.
func (f *Fanout) aggregateLoop(ctx context.Context) {
	t := time.NewTicker(f.cfg.ReceiptAggregate)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		f.receipts.mu.Lock()
		dirty := f.receipts.dirty
		f.receipts.dirty = map[string]struct{}{}
		f.receipts.mu.Unlock()
		for conv := range dirty {
			if src := f.cfg.Shard(conv); src != nil {
				f.aggregate(src, conv)
			}
		}
	}
}

// aggregate publishes how many members received and read the last message.
func (f *Fanout) aggregate(src ReceiptSource, conv string) {
	// What users sent is read first, so no position is past the last seq.
	sent, err := src.Sent(conv)
	if err != nil {
		return
	}
	info, ok, err := src.Info(conv)
	if err != nil || !ok {
		return
	}
	m, err := f.members.get(src, conv)
	if err != nil {
		return
	}
	pos, err := f.cfg.Positions(conv, m.Users, sent)
	if err != nil {
		f.log.Warn("receipt aggregate", "conv", conv, "err", err)
		return
	}
	readN, delivN := receipts.CountAt(pos, info.LastSeq)
	f.publishReceipts([]*syncpb.ReceiptUpdate{
		{ConvId: conv, Type: syncpb.ReceiptType_RECEIPT_TYPE_READ, Seq: info.LastSeq, Count: readN},
		{ConvId: conv, Type: syncpb.ReceiptType_RECEIPT_TYPE_DELIVERED, Seq: info.LastSeq, Count: delivN},
	}, syncproto.ConvSubject(f.cfg.Region, conv))
}
