package syncproto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/parley-chat/parley/syncproto/syncpb"
)

var update = flag.Bool("update", false, "rewrite testdata/golden and the seed corpora under testdata/fuzz")

const goldenDir = "testdata/golden"

// Fixed ids, so golden bytes never change by chance.
const (
	gWorkspace = "w_k5xq3ve2tjdbpn7ycmhzrw4a6f"
	gAna       = "u_m2hq7tvxa4cz6nwpkr3bjdyse5"
	gBo        = "u_t6bw2nzaxq5kcv7jpmrhd3yef4"
	gPhone     = "d_p3jx6wqcm2zt7vhkan5rbedy4s"
	gTeam      = "c_q7nmx2brk4dv6tzjwhc3pya5es"
	gAttach    = "a_r5cz2hkxq7mwbt3vnj6pdy4ae2"
)

var gDirect = DirectConversationID(gWorkspace, gAna, gBo)

// golden is one golden vector: a Frame (stored length-prefixed) or a
// CoreRequest/CoreResponse (stored as plain protobuf, as NATS carries it).
type golden struct {
	name string
	msg  proto.Message
	// raw, when set, is the file's content instead of the encoding of msg:
	// msg plus fields this version does not know. Decoding it must give msg.
	raw func(t *testing.T) []byte
}

func (g golden) framed() bool {
	_, ok := g.msg.(*syncpb.Frame)
	return ok
}

func (g golden) encode(t *testing.T) []byte {
	t.Helper()
	if g.raw != nil {
		return g.raw(t)
	}
	var b []byte
	var err error
	if f, ok := g.msg.(*syncpb.Frame); ok {
		b, err = AppendFrame(nil, f)
	} else {
		b, err = marshalOptions.Marshal(g.msg)
	}
	if err != nil {
		t.Fatalf("%s: encode: %v", g.name, err)
	}
	return b
}

// decode decodes a golden file the way a receiver would.
func (g golden) decode(b []byte) (proto.Message, error) {
	if g.framed() {
		f, _, err := DecodeFrame(b, DefaultMaxFrameSize)
		return f, err
	}
	m := g.msg.ProtoReflect().New().Interface()
	err := proto.UnmarshalOptions{DiscardUnknown: true}.Unmarshal(b, m)
	return m, err
}

// frame wraps body in the Frame field of its type (each message type is
// the body of one field).
func frame(id uint64, body proto.Message) *syncpb.Frame {
	f := &syncpb.Frame{Id: id}
	fields := f.ProtoReflect().Descriptor().Oneofs().ByName("body").Fields()
	for i := 0; i < fields.Len(); i++ {
		if fd := fields.Get(i); fd.Message().FullName() == body.ProtoReflect().Descriptor().FullName() {
			f.ProtoReflect().Set(fd, protoreflect.ValueOfMessage(body.ProtoReflect()))
			return f
		}
	}
	panic(fmt.Sprintf("frame: no body for %T", body))
}

func goldenHello() *syncpb.Hello {
	h := NewHello("AQFrMQAAAYvB8VwAAAGLwfFcAA.c2lnbmF0dXJl", gPhone)
	h.Position = &syncpb.SyncPosition{Watermarks: []*syncpb.Watermark{{ConvId: gTeam, Seq: 41}, {ConvId: gDirect, Seq: 7}}}
	h.ClientName = "parley-go/1.0 (linux)"
	return h
}

func goldenMessage(conv string, seq uint64, body string) *syncpb.Message {
	return &syncpb.Message{
		ConvId: conv, Seq: seq, MsgId: MessageID(conv, seq), ClientMsgId: fmt.Sprintf("cm-%d", seq),
		SenderUserId: gAna, SenderDeviceId: gPhone, TsUnixMs: 1_700_000_000_000 + int64(seq)*1000,
		Body: []byte(body), ContentType: "text/plain; charset=utf-8",
	}
}

func goldenSend() *syncpb.SendRequest {
	return &syncpb.SendRequest{
		ConvId: gTeam, ClientMsgId: "01J9Z8K6Q2-0042", Body: []byte("hello, team: the deploy is done"),
		ContentType: "text/plain; charset=utf-8",
		Attachments: []*syncpb.Attachment{{Id: gAttach, Name: "graph.png", ContentType: "image/png", Size: 48213, Meta: []byte{0x01, 0x02, 0x03}}},
	}
}

func goldenSendAck() *syncpb.SendAck {
	return &syncpb.SendAck{ConvId: gTeam, Seq: 42, MsgId: MessageID(gTeam, 42), TsUnixMs: 1_700_000_042_000, ClientMsgId: "01J9Z8K6Q2-0042"}
}

func goldenHistory() *syncpb.HistoryRequest {
	return &syncpb.HistoryRequest{ConvId: gTeam, Cursor: 40, Limit: 2, Direction: syncpb.Direction_DIRECTION_BACKWARD}
}

func goldenHistoryResponse() *syncpb.HistoryResponse {
	return &syncpb.HistoryResponse{
		ConvId:     gTeam,
		Messages:   []*syncpb.Message{goldenMessage(gTeam, 38, "first"), goldenMessage(gTeam, 39, "second")},
		NextCursor: 38, LastSeq: 42,
	}
}

func goldenRevocation() *syncpb.Revocation {
	return &syncpb.Revocation{
		WorkspaceId: gWorkspace, UserId: gAna, DeviceIds: []string{gPhone, "d_x2kq7bwn5vzcm4jtrh6pdya3e5"},
		NotBeforeUnixMs: 1_700_000_000_000, Reason: syncpb.RevocationReason_REVOCATION_REASON_PASSWORD_CHANGED, RevokedUnixMs: 1_700_000_000_000,
	}
}

func goldenReceipt() *syncpb.ReceiptReport {
	return &syncpb.ReceiptReport{ConvId: gTeam, Seq: 42, Type: syncpb.ReceiptType_RECEIPT_TYPE_READ}
}

// goldens lists every golden vector. Every Frame body type has one, named
// after its field in Frame (TestGoldenCoversFrameBodies).
func goldens() []golden {
	system := goldenMessage(gTeam, 43, `{"event":"member_added","user_id":"`+gBo+`"}`)
	system.Kind = syncpb.MessageKind_MESSAGE_KIND_SYSTEM
	system.ContentType = "application/vnd.parley.system+json"
	deliver := &syncpb.Deliver{Messages: []*syncpb.Message{goldenMessage(gTeam, 42, "hello, team: the deploy is done"), system}}
	caller := &syncpb.Caller{WorkspaceId: gWorkspace, UserId: gAna, DeviceId: gPhone}
	const deadline = 1_700_000_005_000

	gs := []golden{
		{name: "hello", msg: frame(1, goldenHello())},
		{name: "welcome", msg: frame(1, &syncpb.Welcome{
			Version: ProtocolVersion, SessionId: "s_h4kx7qm2vzcb6tnwjrp3dya5e7", UserId: gAna, DeviceId: gPhone,
			WorkspaceId: gWorkspace, ServerTimeUnixMs: 1_700_000_000_000, MaxFrameSize: DefaultMaxFrameSize, KeepaliveMs: 30_000,
			TokenExpiresUnixMs: 1_700_000_900_000,
		})},
		{name: "reauth", msg: frame(9, &syncpb.Reauth{AccessToken: "AQFrMQAAAYvB_9wAAAGLwg3sAA.c2lnbmF0dXJlMg"})},
		{name: "reauth_ack", msg: frame(9, &syncpb.ReauthAck{TokenExpiresUnixMs: 1_700_001_700_000, ServerTimeUnixMs: 1_700_000_800_000})},
		{name: "send", msg: frame(2, goldenSend())},
		{name: "send_ack", msg: frame(2, goldenSendAck())},
		{name: "deliver", msg: frame(0, deliver)},
		{name: "sync_request", msg: frame(3, &syncpb.SyncRequest{
			Position:             &syncpb.SyncPosition{Watermarks: []*syncpb.Watermark{{ConvId: gTeam, Seq: 41}}},
			PerConversationLimit: 100,
		})},
		{name: "sync_response", msg: frame(3, &syncpb.SyncResponse{
			Changed: []*syncpb.ConversationDelta{
				{ConvId: gTeam, LastSeq: 43, Messages: deliver.Messages, ReadSeq: 41, Unread: 2},
				{ConvId: gDirect, LastSeq: 900, Truncated: true, ReadSeq: 7, Unread: 893},
			},
			Token: []byte("opaque-sync-token-v1"),
		})},
		{name: "history_request", msg: frame(4, goldenHistory())},
		{name: "history_response", msg: frame(4, goldenHistoryResponse())},
		{name: "search_request", msg: frame(8, &syncpb.SearchRequest{
			Query: `deploy "staging db" -rollback`, ConvId: gTeam, FromUserId: gAna, AfterUnixMs: 1_699_000_000_000,
			Sort: syncpb.SearchSort_SEARCH_SORT_RELEVANCE, Limit: 20,
		})},
		{name: "search_response", msg: frame(8, &syncpb.SearchResponse{
			Hits: []*syncpb.SearchHit{{
				ConvId: gTeam, Seq: 42, MsgId: MessageID(gTeam, 42), SenderId: gAna, TsUnixMs: 1_700_000_042_000,
				Snippet: "hello, team: the deploy is done", Marks: []*syncpb.TextRange{{Start: 17, End: 23}},
			}},
			Total: 1, NextCursor: "b3BhcXVlLWN1cnNvcg",
		})},
		{name: "receipt", msg: frame(5, goldenReceipt())},
		{name: "receipt_ack", msg: frame(5, &syncpb.ReceiptAck{ConvId: gTeam, Type: syncpb.ReceiptType_RECEIPT_TYPE_READ, Seq: 42})},
		{name: "receipt_update", msg: frame(0, &syncpb.ReceiptUpdate{
			ConvId: gTeam, UserId: gBo, DeviceId: "d_x2kq7bwn5vzcm4jtrh6pdya3e5", Type: syncpb.ReceiptType_RECEIPT_TYPE_DELIVERED, Seq: 42, Count: 3,
		})},
		{name: "presence", msg: frame(0, &syncpb.PresenceUpdate{UserId: gBo, Online: true, LastSeenUnixMs: 1_700_000_001_000})},
		{name: "presence_subscribe", msg: frame(6, &syncpb.PresenceSubscribe{UserIds: []string{gBo, gAna}})},
		{name: "typing", msg: frame(0, &syncpb.Typing{ConvId: gTeam, UserId: gAna, Typing: true, TtlMs: 5000})},
		{name: "error", msg: frame(2, (&Error{Code: syncpb.Code_CODE_RATE_LIMITED, Message: "too many messages; slow down", RetryAfter: 1500 * time.Millisecond}).Proto())},
		{name: "ping", msg: frame(7, &syncpb.Ping{Nonce: 0x1122334455667788})},
		{name: "pong", msg: frame(7, &syncpb.Pong{Nonce: 0x1122334455667788})},
		{name: "resync", msg: frame(0, &syncpb.Resync{Reason: "delivery queue overflowed"})},
		{name: "go_away", msg: frame(0, &syncpb.GoAway{Reason: "edge draining", Alternatives: []string{"edge-2.example.net:443", "edge-3.example.net:443"}})},

		{name: "core_request_send", msg: &syncpb.CoreRequest{Caller: caller, DeadlineUnixMs: deadline, Op: &syncpb.CoreRequest_Send{Send: goldenSend()}}},
		{name: "core_request_history", msg: &syncpb.CoreRequest{Caller: caller, DeadlineUnixMs: deadline, Op: &syncpb.CoreRequest_History{History: goldenHistory()}}},
		{name: "core_request_receipt", msg: &syncpb.CoreRequest{Caller: caller, DeadlineUnixMs: deadline, Op: &syncpb.CoreRequest_Receipt{Receipt: goldenReceipt()}}},
		{name: "core_request_change_members", msg: &syncpb.CoreRequest{Caller: caller, DeadlineUnixMs: deadline, Op: &syncpb.CoreRequest_ChangeMembers{ChangeMembers: &syncpb.ChangeMembersRequest{
			ConvId: gTeam, AddUserIds: []string{gBo},
			// A map: deterministic encoding sorts it by key.
			SetRoles: map[string]syncpb.Role{gBo: syncpb.Role_ROLE_ADMIN, gAna: syncpb.Role_ROLE_OWNER, "u_z": syncpb.Role_ROLE_MEMBER},
		}}}},
		{name: "core_response_send_ack", msg: &syncpb.CoreResponse{Result: &syncpb.CoreResponse_SendAck{SendAck: goldenSendAck()}}},
		{name: "core_response_history", msg: &syncpb.CoreResponse{Result: &syncpb.CoreResponse_History{History: goldenHistoryResponse()}}},
		{name: "revocation", msg: goldenRevocation()},
		{name: "core_request_change_password", msg: &syncpb.CoreRequest{Caller: caller, DeadlineUnixMs: deadline, Op: &syncpb.CoreRequest_ChangePassword{ChangePassword: &syncpb.ChangePasswordRequest{
			PasswordHash: "$argon2id$v=19$m=65536,t=3,p=2$bmV3c2FsdA$bmV3aGFzaA", PreviousHash: "$argon2id$v=19$m=65536,t=3,p=2$b2xkc2FsdA$b2xkaGFzaA",
		}}}},
		{name: "core_request_list_revocations", msg: &syncpb.CoreRequest{DeadlineUnixMs: deadline, Op: &syncpb.CoreRequest_ListRevocations{ListRevocations: &syncpb.ListRevocationsRequest{
			SinceUnixMs: 1_699_999_100_000, After: "0000018bcfe56800/00000000000002a1", Limit: 100,
		}}}},
		{name: "core_response_revocations", msg: &syncpb.CoreResponse{Result: &syncpb.CoreResponse_Revocations{Revocations: &syncpb.RevocationList{
			Revocations: []*syncpb.Revocation{goldenRevocation()}, Next: "0000018bcfe56800/00000000000002a2",
		}}}},
		{name: "core_response_error", msg: &syncpb.CoreResponse{Error: (&Error{Code: syncpb.Code_CODE_NOT_MEMBER, Message: "you are not a member of this conversation"}).Proto()}},
	}

	// Forward compatibility: what a newer peer might send.
	gs = append(gs,
		golden{name: "compat_hello_unknown_fields", msg: frame(1, goldenHello()), raw: func(t *testing.T) []byte {
			hello := mustMarshal(t, goldenHello())
			hello = protowire.AppendTag(hello, 50, protowire.BytesType)
			hello = protowire.AppendString(hello, "a field from protocol version 2")
			var p []byte
			p = protowire.AppendTag(p, 1, protowire.VarintType)
			p = protowire.AppendVarint(p, 1)
			p = protowire.AppendTag(p, 10, protowire.BytesType)
			p = protowire.AppendBytes(p, hello)
			p = protowire.AppendTag(p, 99, protowire.Fixed64Type)
			p = protowire.AppendFixed64(p, 42)
			return append(binary.AppendUvarint(nil, uint64(len(p))), p...)
		}},
		golden{name: "compat_unknown_body", msg: &syncpb.Frame{Id: 8}, raw: func(t *testing.T) []byte {
			var p []byte
			p = protowire.AppendTag(p, 1, protowire.VarintType)
			p = protowire.AppendVarint(p, 8)
			// A frame type from the future, as field 200 of the body oneof.
			p = protowire.AppendTag(p, 200, protowire.BytesType)
			p = protowire.AppendBytes(p, []byte{0x0a, 0x03, 'n', 'e', 'w'})
			return append(binary.AppendUvarint(nil, uint64(len(p))), p...)
		}},
		golden{name: "compat_core_request_unknown_fields", msg: &syncpb.CoreRequest{Caller: caller, DeadlineUnixMs: deadline, Op: &syncpb.CoreRequest_Send{Send: goldenSend()}}, raw: func(t *testing.T) []byte {
			b := mustMarshal(t, &syncpb.CoreRequest{Caller: caller, DeadlineUnixMs: deadline, Op: &syncpb.CoreRequest_Send{Send: goldenSend()}})
			b = protowire.AppendTag(b, 3, protowire.VarintType) // a new header field
			b = protowire.AppendVarint(b, 7)
			b = protowire.AppendTag(b, 90, protowire.BytesType) // a new op
			return protowire.AppendBytes(b, []byte("future op"))
		}},
	)
	return gs
}

func mustMarshal(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := marshalOptions.Marshal(m)
	if err != nil {
		t.Fatalf("marshal %T: %v", m, err)
	}
	return b
}

// readGolden returns the bytes of every file in testdata/golden by name
// (without .bin).
func readGolden(tb testing.TB) map[string][]byte {
	tb.Helper()
	paths, err := filepath.Glob(filepath.Join(goldenDir, "*.bin"))
	if err != nil {
		tb.Fatal(err)
	}
	out := make(map[string][]byte, len(paths))
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			tb.Fatal(err)
		}
		out[strings.TrimSuffix(filepath.Base(p), ".bin")] = b
	}
	if len(out) == 0 {
		tb.Fatalf("no golden files in %s", goldenDir)
	}
	return out
}

func TestGolden(t *testing.T) {
	gs := goldens()
	if *update {
		if err := os.MkdirAll(goldenDir, 0o755); err != nil {
			t.Fatal(err)
		}
		old, _ := filepath.Glob(filepath.Join(goldenDir, "*.bin"))
		for _, p := range old {
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
		}
		for _, g := range gs {
			if err := os.WriteFile(filepath.Join(goldenDir, g.name+".bin"), g.encode(t), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	files := readGolden(t)
	for _, g := range gs {
		t.Run(g.name, func(t *testing.T) {
			b, ok := files[g.name]
			if !ok {
				t.Fatalf("missing %s/%s.bin; run go test ./syncproto -run Golden -update", goldenDir, g.name)
			}
			delete(files, g.name)
			if want := g.encode(t); !bytes.Equal(b, want) {
				t.Fatalf("%s.bin differs from the encoding of the vector:\n file %x\n want %x\n(an incompatible wire change? if intended, run with -update)", g.name, b, want)
			}
			got, err := g.decode(b)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if !proto.Equal(got, g.msg) {
				t.Fatalf("decoded %v\nwant %v", got, g.msg)
			}
		})
	}
	for name := range files {
		t.Errorf("%s/%s.bin has no vector in goldens(); delete it or run -update", goldenDir, name)
	}
}

// TestGoldenCompat checks that the forward-compatibility vectors really
// carry something this version does not know.
func TestGoldenCompat(t *testing.T) {
	files := readGolden(t)
	f, _, err := DecodeFrame(files["compat_unknown_body"], 0)
	if err != nil || Known(f) || f.Id != 8 {
		t.Fatalf("unknown body: frame %v, Known %v, err %v; want id 8, not Known", f, Known(f), err)
	}
	if f, _, err := DecodeFrame(files["hello"], 0); err != nil || !Known(f) {
		t.Fatalf("hello: Known %v, err %v", Known(f), err)
	}
	if len(files["compat_hello_unknown_fields"]) <= len(files["hello"]) {
		t.Fatal("compat_hello_unknown_fields carries no extra bytes")
	}
	// proto.Unmarshal keeps unknown fields; they re-encode unchanged.
	var req syncpb.CoreRequest
	b := files["compat_core_request_unknown_fields"]
	if err := proto.Unmarshal(b, &req); err != nil {
		t.Fatal(err)
	}
	if len(req.ProtoReflect().GetUnknown()) == 0 || req.GetSend() == nil {
		t.Fatalf("core request: unknown %x, send %v", req.ProtoReflect().GetUnknown(), req.GetSend())
	}
	if again := mustMarshal(t, &req); !bytes.Equal(again, b) {
		t.Fatalf("re-encoded core request with unknown fields:\n got %x\nwant %x", again, b)
	}
}

func TestGoldenCoversFrameBodies(t *testing.T) {
	have := map[string]bool{}
	for _, g := range goldens() {
		if g.framed() && g.raw == nil {
			have[g.name] = true
		}
	}
	fields := (&syncpb.Frame{}).ProtoReflect().Descriptor().Oneofs().ByName("body").Fields()
	for i := 0; i < fields.Len(); i++ {
		name := string(fields.Get(i).Name())
		if !have[name] {
			t.Errorf("Frame body %q has no golden vector named %q", name, name)
		}
		delete(have, name)
	}
	for name := range have {
		t.Errorf("golden frame %q is not named after a Frame body field", name)
	}
}

// fuzzSeeds are the committed seed corpora: the interesting inputs each
// fuzz target replays on every go test (the golden files are added too,
// with f.Add).
func fuzzSeeds() map[string]map[string][]byte {
	frameOf := func(payload ...byte) []byte {
		return append(binary.AppendUvarint(nil, uint64(len(payload))), payload...)
	}
	ping := frameOf(0x08, 0x01, 0xc2, 0x01, 0x02, 0x08, 0x05) // id 1, ping{nonce 5}
	unknownField := frameOf(0x08, 0x01, 0xc2, 0x01, 0x02, 0x08, 0x05, 0x98, 0x06, 0x01)
	badUTF8 := frameOf(0x08, 0x01, 0xd2, 0x01, 0x03, 0x0a, 0x01, 0xff) // resync{reason "\xff"}
	return map[string]map[string][]byte{
		"FuzzDecodeFrame": {
			"oversize_length":    binary.AppendUvarint(nil, MaxFrameSize+1),
			"empty":              {},
			"zero_length":        {0x00},
			"truncated":          ping[:len(ping)-2],
			"unknown_field":      unknownField,
			"overlong_varint":    {0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01},
			"overflowing_varint": {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02},
			"nonminimal_varint":  append([]byte{0x87, 0x00}, ping[1:]...),
			"trailing_bytes":     append(slices.Clone(ping), 0x00),
			"invalid_utf8":       badUTF8,
		},
		"FuzzFrameReader": {
			"frames_then_truncated": slices.Concat(ping, unknownField, ping[:3]),
			"oversize_length":       slices.Concat(ping, binary.AppendUvarint(nil, 5000), make([]byte, 16)),
			"zero_length":           slices.Concat(ping, []byte{0x00}, ping),
			"unknown_field":         slices.Concat(unknownField, unknownField),
		},
		"FuzzCoreRequest": {
			"unknown_field":         {0x10, 0x05, 0xd0, 0x05, 0x01},                                                             // deadline 5, field 90
			"invalid_utf8":          {0x0a, 0x03, 0x0a, 0x01, 0xff},                                                             // caller{workspace_id "\xff"}
			"map_duplicate_key":     {0xba, 0x01, 0x0c, 0x22, 0x04, 0x0a, 0x00, 0x10, 0x01, 0x22, 0x04, 0x0a, 0x00, 0x10, 0x02}, // change_members.set_roles{"":1, "":2}
			"two_ops":               {0xf2, 0x01, 0x00, 0xfa, 0x01, 0x00},                                                       // send{} then history{}
			"wrong_wire_type_known": {0x15, 0x01, 0x02, 0x03, 0x04},                                                             // deadline as fixed32
		},
		"FuzzRevocation": {
			"unknown_field":  {0x0a, 0x01, 'w', 0xa0, 0x06, 0x01}, // workspace_id "w", field 100
			"no_devices":     {0x0a, 0x01, 'w', 0x12, 0x01, 'u', 0x20, 0x01, 0x30, 0x01},
			"bad_device_id":  {0x0a, 0x01, 'w', 0x12, 0x01, 'u', 0x1a, 0x01, 'D', 0x20, 0x01, 0x30, 0x01},
			"negative_times": {0x0a, 0x01, 'w', 0x12, 0x01, 'u', 0x1a, 0x01, 'd', 0x20, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0x30, 0x01},
			"truncated":      {0x0a, 0x05, 'w'},
		},
		"FuzzCoreResponse": {
			"unknown_field":    {0x0a, 0x02, 0x08, 0x0e, 0xa0, 0x06, 0x01}, // error{not_member}, field 100
			"error_and_result": {0x0a, 0x02, 0x08, 0x05, 0xf2, 0x01, 0x02, 0x10, 0x01},
			"truncated":        {0x0a, 0x05, 0x08},
		},
	}
}

func TestGoldenFuzzSeeds(t *testing.T) {
	for target, seeds := range fuzzSeeds() {
		dir := filepath.Join("testdata", "fuzz", target)
		for name, data := range seeds {
			path := filepath.Join(dir, name)
			want := fmt.Appendf(nil, "go test fuzz v1\n[]byte(%q)\n", data)
			if *update {
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, want, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, err := os.ReadFile(path)
			if errors.Is(err, os.ErrNotExist) {
				t.Errorf("missing seed %s; run go test ./syncproto -run Golden -update", path)
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("seed %s differs from fuzzSeeds(); run -update", path)
			}
		}
	}
}
