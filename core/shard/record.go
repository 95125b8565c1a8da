package shard

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/parley-chat/parley/core/internal/kvfsm"
	"github.com/parley-chat/parley/crdt"
	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
	"google.golang.org/protobuf/proto"
)

// Keys, relative to the group's prefix "f/<G>/". Ids are [a-z0-9_-], so
// '/' separates components unambiguously; a client_msg_id is always last.
//
//	c/<conv>                 conversation metadata (convMeta)
//	m/<conv>/<user>          member (syncpb.Member)
//	u/<user>/<conv>          the user's conversations (empty value)
//	g/<conv>/<seq be64>      message (syncpb.Message)
//	s/<conv>/<user>/<client_msg_id>
//	                         dedupe of the user's send: the first result
//	                         and the content's digest (sentRecord)
//	d/<conv>/<client_msg_id> dedupe of a rules 0 send: the first result
//	                         (syncpb.SendAck), whoever sent it
//	o/<conv>/<user>          the user's last message: seq, then ts
//	                         (be64 each; seq alone from rules 0 sends)
//	n/<conv>/<user>          the member's notification level (notify.go)
func metaKey(conv string) []byte               { return []byte("c/" + conv) }
func memberPrefix(conv string) []byte          { return []byte("m/" + conv + "/") }
func memberKey(conv, user string) []byte       { return []byte("m/" + conv + "/" + user) }
func userConvPrefix(user string) []byte        { return []byte("u/" + user + "/") }
func userConvKey(user, conv string) []byte     { return []byte("u/" + user + "/" + conv) }
func msgPrefix(conv string) []byte             { return []byte("g/" + conv + "/") }
func legacyDedupeKey(conv, cmid string) []byte { return []byte("d/" + conv + "/" + cmid) }
func sentKey(conv, user, cmid string) []byte   { return []byte("s/" + conv + "/" + user + "/" + cmid) }
func ownPrefix(conv string) []byte             { return []byte("o/" + conv + "/") }
func ownKey(conv, user string) []byte          { return []byte("o/" + conv + "/" + user) }

func msgKey(conv string, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(msgPrefix(conv), seq)
}

// errCorrupt is returned (wrapped) when a stored record fails to decode: a
// storage failure, never the client's fault.
var errCorrupt = errors.New("shard: corrupt record")

// convMeta is a conversation's metadata. Members and Owners count the
// member records, so membership rules need no scan.
type convMeta struct {
	Type        syncpb.ConversationType
	WorkspaceID string
	Title       string
	CreatedBy   string
	CreatedMs   int64
	LastSeq     uint64
	LastMs      int64 // newest message's ts; message ts never go below it
	Members     uint64
	Owners      uint64
}

const convMetaVersion = 1

func (c *convMeta) marshal() []byte {
	b := make([]byte, 0, 64+len(c.WorkspaceID)+len(c.Title)+len(c.CreatedBy))
	b = append(b, convMetaVersion, byte(c.Type))
	b = binary.AppendUvarint(b, c.LastSeq)
	b = binary.AppendVarint(b, c.CreatedMs)
	b = binary.AppendVarint(b, c.LastMs)
	b = binary.AppendUvarint(b, c.Members)
	b = binary.AppendUvarint(b, c.Owners)
	for _, s := range []string{c.WorkspaceID, c.Title, c.CreatedBy} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return b
}

func unmarshalConvMeta(b []byte) (*convMeta, error) {
	if len(b) < 2 || b[0] != convMetaVersion {
		return nil, fmt.Errorf("%w: conversation version", errCorrupt)
	}
	c := &convMeta{Type: syncpb.ConversationType(b[1])}
	b = b[2:]
	uv := func(dst *uint64) bool {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			return false
		}
		*dst, b = v, b[n:]
		return true
	}
	sv := func(dst *int64) bool {
		v, n := binary.Varint(b)
		if n <= 0 {
			return false
		}
		*dst, b = v, b[n:]
		return true
	}
	str := func(dst *string) bool {
		var n uint64
		if !uv(&n) || n > uint64(len(b)) {
			return false
		}
		*dst, b = string(b[:n]), b[n:]
		return true
	}
	if !uv(&c.LastSeq) || !sv(&c.CreatedMs) || !sv(&c.LastMs) || !uv(&c.Members) || !uv(&c.Owners) ||
		!str(&c.WorkspaceID) || !str(&c.Title) || !str(&c.CreatedBy) || len(b) != 0 {
		return nil, fmt.Errorf("%w: conversation", errCorrupt)
	}
	return c, nil
}

// sentRecord is the dedupe record of one user's send: the answer it got
// and the digest of what it asked to store (contentDigest).
type sentRecord struct {
	Digest [sha256.Size]byte
	Ack    *syncpb.SendAck
}

const sentRecordVersion = 1

// marshal encodes r: version byte | digest | SendAck (protobuf).
func (r *sentRecord) marshal() ([]byte, error) {
	ack, err := encode(r.Ack)
	if err != nil {
		return nil, err
	}
	b := make([]byte, 0, 1+len(r.Digest)+len(ack))
	b = append(b, sentRecordVersion)
	b = append(b, r.Digest[:]...)
	return append(b, ack...), nil
}

func unmarshalSentRecord(b []byte) (*sentRecord, error) {
	if len(b) < 1+sha256.Size || b[0] != sentRecordVersion {
		return nil, fmt.Errorf("%w: sent record version", errCorrupt)
	}
	r := &sentRecord{Ack: &syncpb.SendAck{}}
	copy(r.Digest[:], b[1:])
	if err := proto.Unmarshal(b[1+sha256.Size:], r.Ack); err != nil {
		return nil, fmt.Errorf("%w: sent record: %v", errCorrupt, err)
	}
	return r, nil
}

// contentDigest is the SHA-256 of what a send asks to store (body,
// content type, attachments), in a length-prefixed encoding of parley's
// own, so it stays the same across protobuf versions. A retry has the
// digest of the first send; another message under its id does not.
func contentDigest(body []byte, contentType string, atts []*syncpb.Attachment) [sha256.Size]byte {
	h := sha256.New()
	var buf [binary.MaxVarintLen64]byte
	uv := func(v uint64) { h.Write(buf[:binary.PutUvarint(buf[:], v)]) }
	field := func(b []byte) { uv(uint64(len(b))); h.Write(b) }
	h.Write([]byte("parley send content 1\x00"))
	field(body)
	field([]byte(contentType))
	uv(uint64(len(atts)))
	for _, a := range atts {
		field([]byte(a.GetId()))
		field([]byte(a.GetName()))
		field([]byte(a.GetContentType()))
		uv(a.GetSize())
		field(a.GetMeta())
	}
	var d [sha256.Size]byte
	h.Sum(d[:0])
	return d
}

// encodeSent is the o/ value of a user's last message.
func encodeSent(seq uint64, ts int64) []byte {
	return binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(make([]byte, 0, 16), seq), uint64(ts))
}

// decodeSent reads an o/ value; a rules 0 value has no time (At 0,
// unknown).
func decodeSent(b []byte) (crdt.Register, error) {
	switch len(b) {
	case 8:
		return crdt.Register{Value: binary.BigEndian.Uint64(b)}, nil
	case 16:
		return crdt.Register{Value: binary.BigEndian.Uint64(b), At: int64(binary.BigEndian.Uint64(b[8:]))}, nil
	}
	return crdt.Register{}, fmt.Errorf("%w: last message", errCorrupt)
}

// getSent reads the user's last message in conv (zero when none).
func getSent(g kvfsm.Getter, conv, user string) (crdt.Register, error) {
	b, ok, err := g.Get(ownKey(conv, user))
	if err != nil || !ok {
		return crdt.Register{}, err
	}
	return decodeSent(b)
}

func getMeta(g kvfsm.Getter, conv string) (*convMeta, bool, error) {
	b, ok, err := g.Get(metaKey(conv))
	if err != nil || !ok {
		return nil, false, err
	}
	m, err := unmarshalConvMeta(b)
	if err != nil {
		return nil, false, err
	}
	return m, true, nil
}

func getMember(g kvfsm.Getter, conv, user string) (*syncpb.Member, bool, error) {
	b, ok, err := g.Get(memberKey(conv, user))
	if err != nil || !ok {
		return nil, false, err
	}
	m := &syncpb.Member{}
	if err := proto.Unmarshal(b, m); err != nil {
		return nil, false, fmt.Errorf("%w: member: %v", errCorrupt, err)
	}
	return m, true, nil
}

// getProto reads key into msg.
func getProto(g kvfsm.Getter, key []byte, msg proto.Message) (bool, error) {
	b, ok, err := g.Get(key)
	if err != nil || !ok {
		return false, err
	}
	if err := proto.Unmarshal(b, msg); err != nil {
		return false, fmt.Errorf("%w: %s: %v", errCorrupt, key, err)
	}
	return true, nil
}

var marshalOpts = proto.MarshalOptions{Deterministic: true}

// encode marshals a record. Marshalling fails only on invalid UTF-8, which
// decoding the command already excluded; it is rejected deterministically.
func encode(m proto.Message) ([]byte, error) {
	b, err := marshalOpts.Marshal(m)
	if err != nil {
		return nil, syncproto.Errorf(syncpb.Code_CODE_INTERNAL, "cannot encode record")
	}
	return b, nil
}
