package shard

import (
	"github.com/parley-chat/parley/core/internal/kvfsm"
	"github.com/parley-chat/parley/crdt"
	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// Receipts are not shard commands: they are max-register deltas merged by
// every node (core/receipts). The shard only checks them, and supplies the
// conversation facts unread counts are derived from.

// ReadPositions gives a user's user-level marks in a conversation as its
// devices reported them (core/receipts implements it). Called from reads;
// must not block long.
type ReadPositions interface {
	Reported(conv, user string) (crdt.Marks, error)
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

// position is the user's position in conv, the one every answer gives:
// what its devices reported, joined with its own last message
// (crdt.Marks.WithSent).
func (f *FSM) position(g kvfsm.Getter, conv, user string) (crdt.Marks, error) {
	sent, err := getSent(g, conv, user)
	if err != nil {
		return crdt.Marks{}, err
	}
	var m crdt.Marks
	if f.reads != nil {
		if m, err = f.reads.Reported(conv, user); err != nil {
			return crdt.Marks{}, err
		}
	}
	return m.WithSent(sent), nil
}

// Sent returns, for each user who sent a message in conv, its last one's
// seq and time (crdt.Marks.WithSent joins it into the user's position),
// from local state: the leader's is current as of its last apply.
func (f *FSM) Sent(conv string) (map[string]crdt.Register, error) {
	out := map[string]crdt.Register{}
	err := f.view(func(v *kvfsm.View) error {
		prefix := ownPrefix(conv)
		return v.Scan(prefix, nil, false, func(k, val []byte) (bool, error) {
			r, err := decodeSent(val)
			if err != nil {
				return false, err
			}
			out[string(k[len(prefix):])] = r
			return true, nil
		})
	})
	return out, err
}

// SentBy is Sent for one user (zero when it sent nothing in conv).
func (f *FSM) SentBy(conv, user string) (crdt.Register, error) {
	var r crdt.Register
	err := f.view(func(v *kvfsm.View) error {
		var err error
		r, err = getSent(v, conv, user)
		return err
	})
	return r, err
}
