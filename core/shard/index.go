package shard

import (
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/parley-chat/parley/core/internal/kvfsm"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// Reads for the search indexer (core/search/indexer), from local state:
// on a follower they may lag the leader by a few entries.

// ConvSeq is a conversation and its last seq.
type ConvSeq struct {
	ConvID  string
	LastSeq uint64
}

// Conversations lists every conversation of the shard with its last seq,
// in id order.
func (f *FSM) Conversations() ([]ConvSeq, error) {
	var out []ConvSeq
	err := f.view(func(v *kvfsm.View) error {
		prefix := []byte("c/")
		return v.Scan(prefix, nil, false, func(k, val []byte) (bool, error) {
			meta, err := unmarshalConvMeta(val)
			if err != nil {
				return false, err
			}
			out = append(out, ConvSeq{ConvID: string(k[len(prefix):]), LastSeq: meta.LastSeq})
			return true, nil
		})
	})
	return out, err
}

// MessagesAfter returns conv's workspace and up to limit of its messages
// with seq > after, in seq order ("" and none for an unknown
// conversation).
func (f *FSM) MessagesAfter(conv string, after uint64, limit int) (workspace string, msgs []*syncpb.Message, err error) {
	err = f.view(func(v *kvfsm.View) error {
		meta, ok, err := getMeta(v, conv)
		if err != nil || !ok || after >= meta.LastSeq {
			return err
		}
		workspace = meta.WorkspaceID
		return v.Scan(msgPrefix(conv), msgKey(conv, after+1), false, func(_, val []byte) (bool, error) {
			m := &syncpb.Message{}
			if err := proto.Unmarshal(val, m); err != nil {
				return false, fmt.Errorf("%w: message: %v", errCorrupt, err)
			}
			msgs = append(msgs, m)
			return len(msgs) < limit, nil
		})
	})
	return workspace, msgs, err
}

// HasMessage says whether conv holds a message at seq in local state.
func (f *FSM) HasMessage(conv string, seq uint64) (bool, error) {
	var ok bool
	err := f.view(func(v *kvfsm.View) error {
		_, found, err := v.Get(msgKey(conv, seq))
		ok = found
		return err
	})
	return ok, err
}
