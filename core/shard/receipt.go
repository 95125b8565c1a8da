package shard

import (
	"github.com/parley-chat/parley/core/internal/cmdpb"
	"github.com/parley-chat/parley/core/internal/kvfsm"
	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// Receipts are max-registers per (conversation, user, device): delivered
// and read watermarks that only move forward, read implying delivered. The
// user's position is the max over the user's devices.

// receiptState validates a report from caller and returns the device's
// current watermarks.
func receiptState(g kvfsm.Getter, caller *syncpb.Caller, req *syncpb.ReceiptReport) (receipts, error) {
	if req == nil {
		return receipts{}, syncproto.Errorf(syncpb.Code_CODE_MALFORMED, "empty request")
	}
	if req.Type != syncpb.ReceiptType_RECEIPT_TYPE_DELIVERED && req.Type != syncpb.ReceiptType_RECEIPT_TYPE_READ {
		return receipts{}, invalid("unknown receipt type")
	}
	if caller.DeviceId == "" {
		return receipts{}, invalid("receipts need a device")
	}
	meta, _, err := access(g, caller, req.ConvId)
	if err != nil {
		return receipts{}, err
	}
	if req.Seq > meta.LastSeq {
		return receipts{}, invalid("receipt beyond the conversation's last message")
	}
	return getReceipts(g, receiptKey(req.ConvId, caller.UserId, caller.DeviceId))
}

func (r receipts) of(t syncpb.ReceiptType) uint64 {
	if t == syncpb.ReceiptType_RECEIPT_TYPE_READ {
		return r.Read
	}
	return r.Delivered
}

// report is what a receipt report raises the device's watermarks to.
func report(req *syncpb.ReceiptReport) receipts {
	if req.Type == syncpb.ReceiptType_RECEIPT_TYPE_READ {
		return receipts{Read: req.Seq}
	}
	return receipts{Delivered: req.Seq}
}

func receiptAck(req *syncpb.ReceiptReport, r receipts) *syncpb.CoreResponse {
	return &syncpb.CoreResponse{Result: &syncpb.CoreResponse_ReceiptAck{ReceiptAck: &syncpb.ReceiptAck{
		ConvId: req.ConvId, Type: req.Type, Seq: r.of(req.Type),
	}}}
}

// prepareReceipt answers a stale report at once with the current value;
// only a report that moves a watermark is proposed.
func (f *FSM) prepareReceipt(caller *syncpb.Caller, req *syncpb.ReceiptReport, now int64) (*cmdpb.Command, *syncpb.CoreResponse, error) {
	var cur receipts
	err := f.view(func(v *kvfsm.View) error {
		var err error
		cur, err = receiptState(v, caller, req)
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	if cur.merge(report(req)) == cur {
		return nil, receiptAck(req, cur), nil
	}
	return &cmdpb.Command{Caller: caller, TsUnixMs: now, Op: &cmdpb.Command_Receipt{Receipt: req}}, nil, nil
}

func applyReceipt(tx *kvfsm.Tx, cmd *cmdpb.Command, req *syncpb.ReceiptReport) (*syncpb.CoreResponse, error) {
	caller := cmd.Caller
	cur, err := receiptState(tx, caller, req)
	if err != nil {
		return nil, err
	}
	next := cur.merge(report(req))
	if next == cur {
		return receiptAck(req, cur), nil
	}
	tx.Set(receiptKey(req.ConvId, caller.UserId, caller.DeviceId), next.marshal())
	user, err := getReceipts(tx, readKey(req.ConvId, caller.UserId))
	if err != nil {
		return nil, err
	}
	if u := user.merge(next); u != user {
		tx.Set(readKey(req.ConvId, caller.UserId), u.marshal())
	}
	return receiptAck(req, next), nil
}
