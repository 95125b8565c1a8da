package shard

import (
	"github.com/parley-chat/parley/core/internal/kvfsm"
	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// Receipts are not shard commands: they are max-register deltas merged by
// every node (core/receipts). The shard only checks them, and supplies the
// conversation facts unread counts are derived from.

// ReadPositions gives a user's user-level read position in a conversation
// (core/receipts implements it). Called from reads; must not block long.
type ReadPositions interface {
	ReadSeq(conv, user string) (uint64, error)
}

// CheckReceipt validates a report from caller against local state: the
// caller is a member, has a device, and seq is at most the conversation's
// last seq. It returns that last seq. The leader's state is current as of
// its last apply; a report beyond it may be for a message still being
// applied, so callers retry after a read barrier.
func (f *FSM) CheckReceipt(caller *syncpb.Caller, req *syncpb.ReceiptReport) (uint64, error) {
	if err := syncproto.ValidateReceipt(req); err != nil {
		return 0, err
	}
	if caller.GetDeviceId() == "" {
		return 0, invalid("receipts need a device")
	}
	var last uint64
	err := f.view(func(v *kvfsm.View) error {
		meta, _, err := access(v, caller, req.ConvId)
		if err != nil {
			return err
		}
		last = meta.LastSeq
		if req.Seq > meta.LastSeq {
			return ErrBeyondLast
		}
		return nil
	})
	return last, err
}

// ErrBeyondLast is returned by CheckReceipt for a report beyond the
// conversation's last message.
var ErrBeyondLast = syncproto.Errorf(syncpb.Code_CODE_INVALID_ARGUMENT, "receipt beyond the conversation's last message")

// ConvInfo is what the receipt fan-out needs of a conversation.
type ConvInfo struct {
	LastSeq uint64
	Members int
}

// Info returns conv's last seq and member count from local state (ok false
// when it does not exist).
func (f *FSM) Info(conv string) (info ConvInfo, ok bool, err error) {
	err = f.view(func(v *kvfsm.View) error {
		meta, found, err := getMeta(v, conv)
		if err != nil || !found {
			return err
		}
		info, ok = ConvInfo{LastSeq: meta.LastSeq, Members: int(meta.Members)}, true
		return nil
	})
	return info, ok, err
}

// effectiveRead is the user's read position for unread counts: what the
// user's devices reported, and at least the user's own last message.
func (f *FSM) effectiveRead(g kvfsm.Getter, conv, user string) (uint64, error) {
	own, err := getSeq(g, ownKey(conv, user))
	if err != nil {
		return 0, err
	}
	if f.reads == nil {
		return own, nil
	}
	r, err := f.reads.ReadSeq(conv, user)
	if err != nil {
		return 0, err
	}
	return max(r, own), nil
}
