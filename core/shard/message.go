package shard

import (
	"fmt"
	"slices"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"

	"github.com/parley-chat/parley/core/internal/cmdpb"
	"github.com/parley-chat/parley/core/internal/kvfsm"
	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

const (
	// maxHistoryBytes bounds a history page, which must fit in one NATS
	// reply and one frame of syncproto.DefaultMaxFrameSize; a page holds at
	// least one message.
	maxHistoryBytes = syncproto.MaxSyncBytes
)

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// checkSend checks a send by the state machine's own limits (limits.go),
// when it is prepared and again when it applies.
func checkSend(req *syncpb.SendRequest) error {
	if req == nil {
		return syncproto.Errorf(syncpb.Code_CODE_MALFORMED, "empty request")
	}
	if err := checkConvID(req.ConvId); err != nil {
		return err
	}
	switch {
	case !syncproto.ValidClientMsgID(req.ClientMsgId):
		return invalid("invalid client_msg_id")
	case len(req.Body) > maxBodySize:
		return syncproto.Errorf(syncpb.Code_CODE_TOO_LARGE, "message body over %d bytes", maxBodySize)
	case len(req.Attachments) > maxAttachments:
		return syncproto.Errorf(syncpb.Code_CODE_TOO_LARGE, "more than %d attachments", maxAttachments)
	case len(req.Body) == 0 && len(req.Attachments) == 0:
		return invalid("empty message")
	case len(req.ContentType) > maxContentTypeLen || !printableASCII(req.ContentType):
		return invalid("invalid content type")
	}
	for _, a := range req.Attachments {
		switch {
		case !syncproto.ValidID(a.GetId()):
			return invalid("invalid attachment id")
		case len(a.Name) > maxAttachmentNameLen || !utf8.ValidString(a.Name):
			return invalid("invalid attachment name")
		case len(a.ContentType) > maxContentTypeLen || !printableASCII(a.ContentType):
			return invalid("invalid attachment content type")
		case len(a.Meta) > maxAttachmentMeta:
			return syncproto.Errorf(syncpb.Code_CODE_TOO_LARGE, "attachment metadata over %d bytes", maxAttachmentMeta)
		}
	}
	return nil
}

// dedupe answers a send whose client_msg_id was used before in the
// conversation, as rules say (see rulesSenderIDs): with the first result
// (Duplicate set) for a retry, CONFLICT for another message under the
// sender's id, and nil when the id is new. digest is the send's
// contentDigest (unused by rules 0).
func dedupe(g kvfsm.Getter, rules uint32, sender string, req *syncpb.SendRequest, digest [32]byte) (*syncpb.CoreResponse, error) {
	legacy := &syncpb.SendAck{}
	if rules == rulesLegacy {
		ok, err := getProto(g, legacyDedupeKey(req.ConvId, req.ClientMsgId), legacy)
		if err != nil || !ok {
			return nil, err
		}
		return duplicate(legacy), nil
	}
	b, ok, err := g.Get(sentKey(req.ConvId, sender, req.ClientMsgId))
	if err != nil {
		return nil, err
	}
	if ok {
		r, err := unmarshalSentRecord(b)
		if err != nil {
			return nil, err
		}
		if r.Digest != digest {
			return nil, reusedID(r.Ack.Seq)
		}
		return duplicate(r.Ack), nil
	}
	// An id recorded under rules 0 is this sender's when its message is.
	ok, err = getProto(g, legacyDedupeKey(req.ConvId, req.ClientMsgId), legacy)
	if err != nil || !ok {
		return nil, err
	}
	first := &syncpb.Message{}
	ok, err = getProto(g, msgKey(req.ConvId, legacy.Seq), first)
	switch {
	case err != nil:
		return nil, err
	case !ok:
		// Messages are never removed; without one, the rules 0 answer.
		return duplicate(legacy), nil
	case first.SenderUserId != sender:
		return nil, nil
	case contentDigest(first.Body, first.ContentType, first.Attachments) != digest:
		return nil, reusedID(legacy.Seq)
	}
	return duplicate(legacy), nil
}

func duplicate(ack *syncpb.SendAck) *syncpb.CoreResponse {
	ack.Duplicate = true
	return &syncpb.CoreResponse{Result: &syncpb.CoreResponse_SendAck{SendAck: ack}}
}

// reusedID is the CONFLICT of a client_msg_id that its sender used for
// another message (at seq): a client bug, not a retry.
func reusedID(seq uint64) error {
	return syncproto.Errorf(syncpb.Code_CODE_CONFLICT,
		"client_msg_id already used for a different message (seq %d) in this conversation; a new message needs a new client_msg_id", seq)
}

func (f *FSM) prepareSend(caller *syncpb.Caller, req *syncpb.SendRequest, now int64) (*cmdpb.Command, *syncpb.CoreResponse, error) {
	if err := checkSend(req); err != nil {
		return nil, nil, err
	}
	var resp *syncpb.CoreResponse
	err := f.view(func(v *kvfsm.View) error {
		if _, _, err := access(v, caller, req.ConvId); err != nil {
			return err
		}
		var err error
		resp, err = dedupe(v, currentRules, caller.UserId, req, contentDigest(req.Body, req.ContentType, req.Attachments))
		return err
	})
	if err != nil || resp != nil {
		return nil, resp, err
	}
	return &cmdpb.Command{Caller: caller, TsUnixMs: now, Op: &cmdpb.Command_Send{Send: req}}, nil, nil
}

// appendMessage gives msg the conversation's next seq, its id, and a ts no
// lower than the previous message's, and stores it. The caller writes meta.
func appendMessage(tx *kvfsm.Tx, c *Committed, conv string, meta *convMeta, msg *syncpb.Message, ts int64) error {
	meta.LastSeq++
	meta.LastMs = max(meta.LastMs, ts)
	msg.ConvId = conv
	msg.Seq = meta.LastSeq
	msg.MsgId = syncproto.MessageID(conv, msg.Seq)
	msg.TsUnixMs = meta.LastMs
	b, err := encode(msg)
	if err != nil {
		return err
	}
	tx.Set(msgKey(conv, msg.Seq), b)
	c.ConvID = conv
	c.Messages = append(c.Messages, msg)
	return nil
}

func applySend(tx *kvfsm.Tx, c *Committed, cmd *cmdpb.Command, req *syncpb.SendRequest) (*syncpb.CoreResponse, error) {
	if err := checkSend(req); err != nil {
		return nil, err
	}
	caller := cmd.Caller
	meta, _, err := access(tx, caller, req.ConvId)
	if err != nil {
		return nil, err
	}
	rules := min(cmd.Rules, currentRules)
	var digest [32]byte
	if rules != rulesLegacy {
		digest = contentDigest(req.Body, req.ContentType, req.Attachments)
	}
	// Two retries proposed concurrently: the second finds the first here.
	if resp, err := dedupe(tx, rules, caller.UserId, req, digest); err != nil || resp != nil {
		return resp, err
	}
	msg := &syncpb.Message{
		ClientMsgId: req.ClientMsgId, SenderUserId: caller.UserId, SenderDeviceId: caller.DeviceId,
		Body: req.Body, ContentType: req.ContentType, Attachments: req.Attachments,
		Kind: syncpb.MessageKind_MESSAGE_KIND_USER,
	}
	if err := appendMessage(tx, c, req.ConvId, meta, msg, cmd.TsUnixMs); err != nil {
		return nil, err
	}
	ack := &syncpb.SendAck{ConvId: req.ConvId, Seq: msg.Seq, MsgId: msg.MsgId, TsUnixMs: msg.TsUnixMs, ClientMsgId: req.ClientMsgId}
	if rules == rulesLegacy {
		b, err := encode(ack)
		if err != nil {
			return nil, err
		}
		tx.Set(legacyDedupeKey(req.ConvId, req.ClientMsgId), b)
	} else {
		r := &sentRecord{Digest: digest, Ack: ack}
		b, err := r.marshal()
		if err != nil {
			return nil, err
		}
		tx.Set(sentKey(req.ConvId, caller.UserId, req.ClientMsgId), b)
	}
	tx.Set(metaKey(req.ConvId), meta.marshal())
	// The sender has received and read what it sent (see position).
	own := encodeSent(msg.Seq, msg.TsUnixMs)
	if rules == rulesLegacy {
		own = own[:8]
	}
	tx.Set(ownKey(req.ConvId, caller.UserId), own)
	return &syncpb.CoreResponse{Result: &syncpb.CoreResponse_SendAck{SendAck: ack}}, nil
}

// history returns a page of messages, always in ascending seq order.
// BACKWARD returns the newest messages with seq < cursor (cursor 0: the
// newest of all) and next_cursor is the lowest seq returned; FORWARD
// returns the oldest with seq > cursor and next_cursor is the highest seq
// returned. next_cursor is 0 when nothing is left in that direction. A page
// stops early at maxHistoryBytes.
func (f *FSM) history(caller *syncpb.Caller, req *syncpb.HistoryRequest) (*syncpb.CoreResponse, error) {
	if req == nil {
		return nil, syncproto.Errorf(syncpb.Code_CODE_MALFORMED, "empty request")
	}
	limit := int(req.Limit)
	switch {
	case limit == 0:
		limit = syncproto.DefaultHistoryLimit
	case limit > syncproto.MaxHistoryLimit:
		limit = syncproto.MaxHistoryLimit
	}
	if req.Direction != syncpb.Direction_DIRECTION_BACKWARD && req.Direction != syncpb.Direction_DIRECTION_FORWARD {
		return nil, invalid("unknown direction")
	}
	out := &syncpb.HistoryResponse{ConvId: req.ConvId}
	err := f.view(func(v *kvfsm.View) error {
		meta, _, err := access(v, caller, req.ConvId)
		if err != nil {
			return err
		}
		out.LastSeq = meta.LastSeq
		size := 0
		collect := func(_, val []byte) (bool, error) {
			size += len(val)
			if len(out.Messages) > 0 && size > maxHistoryBytes {
				return false, nil
			}
			m := &syncpb.Message{}
			if err := proto.Unmarshal(val, m); err != nil {
				return false, fmt.Errorf("%w: message: %v", errCorrupt, err)
			}
			out.Messages = append(out.Messages, m)
			return len(out.Messages) < limit, nil
		}
		if req.Direction == syncpb.Direction_DIRECTION_FORWARD {
			if req.Cursor >= meta.LastSeq {
				return nil
			}
			if err := v.Scan(msgPrefix(req.ConvId), msgKey(req.ConvId, req.Cursor+1), false, collect); err != nil {
				return err
			}
			if n := len(out.Messages); n > 0 && out.Messages[n-1].Seq < meta.LastSeq {
				out.NextCursor = out.Messages[n-1].Seq
			}
			return nil
		}
		upper := meta.LastSeq
		if req.Cursor > 0 {
			upper = min(upper, req.Cursor-1)
		}
		if upper == 0 {
			return nil
		}
		if err := v.Scan(msgPrefix(req.ConvId), msgKey(req.ConvId, upper), true, collect); err != nil {
			return err
		}
		slices.Reverse(out.Messages)
		if len(out.Messages) > 0 && out.Messages[0].Seq > 1 {
			out.NextCursor = out.Messages[0].Seq
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &syncpb.CoreResponse{Result: &syncpb.CoreResponse_History{History: out}}, nil
}
