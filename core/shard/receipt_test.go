package shard

import (
	"fmt"
	"testing"
	"time"

	"github.com/parley-chat/parley/core/internal/cmdpb"
	"github.com/parley-chat/parley/crdt"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

const (
	delivered = syncpb.ReceiptType_RECEIPT_TYPE_DELIVERED
	read      = syncpb.ReceiptType_RECEIPT_TYPE_READ
)

func withDevice(user, device string) *syncpb.Caller {
	c := caller(user)
	c.DeviceId = device
	return c
}

func TestCheckReceipt(t *testing.T) {
	h := newHarness(t)
	mustOK(t, h.do(caller("ana"), groupReq("c_r", "bo")))
	for i := 1; i <= 10; i++ {
		mustOK(t, h.do(caller("ana"), sendReq("c_r", fmt.Sprint(i), "x")))
	}
	phone := withDevice("bo", "d_phone")
	for _, tc := range []struct {
		name string
		by   *syncpb.Caller
		seq  uint64
		typ  syncpb.ReceiptType
		code syncpb.Code
	}{
		{name: "delivered", by: phone, seq: 3, typ: delivered},
		{name: "read", by: phone, seq: 10, typ: read},
		{name: "zero", by: phone, seq: 0, typ: read, code: syncpb.Code_CODE_INVALID_ARGUMENT}, // messages start at 1
		{name: "beyond the last message", by: phone, seq: 11, typ: read, code: syncpb.Code_CODE_INVALID_ARGUMENT},
		{name: "unknown type", by: phone, seq: 1, code: syncpb.Code_CODE_INVALID_ARGUMENT},
		{name: "no device", by: withDevice("bo", ""), seq: 1, typ: read, code: syncpb.Code_CODE_INVALID_ARGUMENT},
		{name: "non-member", by: withDevice("cy", "d_x"), seq: 1, typ: read, code: syncpb.Code_CODE_NOT_MEMBER},
		{name: "other workspace", by: withDevice("zed", "d_x"), seq: 1, typ: read, code: syncpb.Code_CODE_NOT_FOUND},
		{name: "unknown conversation", by: phone, seq: 1, typ: read, code: syncpb.Code_CODE_NOT_FOUND},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conv := "c_r"
			if tc.name == "unknown conversation" {
				conv = "c_nope"
			}
			last, err := h.f.CheckReceipt(tc.by, &syncpb.ReceiptReport{ConvId: conv, Seq: tc.seq, Type: tc.typ})
			resp := &syncpb.CoreResponse{}
			if err != nil {
				resp = errResp(err)
			}
			wantCode(t, resp, tc.code)
			if tc.code == syncpb.Code_CODE_OK && last != 10 {
				t.Fatalf("last seq %d, want 10", last)
			}
		})
	}
}

// Unread counts come from the read positions and the user's own messages:
// a sender has read what it answers.
func TestUnreadCounts(t *testing.T) {
	h := newHarness(t)
	mustOK(t, h.do(caller("ana"), groupReq("c_u", "bo")))
	for i := 1; i <= 5; i++ {
		mustOK(t, h.do(caller("ana"), sendReq("c_u", fmt.Sprint(i), "x")))
	}
	unread := func(user string) (uint64, uint64) {
		c := mustOK(t, h.do(caller(user), getReq("c_u"))).GetConversation()
		return c.Unread, c.ReadSeq
	}
	if n, r := unread("bo"); n != 5 || r != 0 {
		t.Fatalf("bo: unread %d read %d, want 5 0", n, r)
	}
	if n, _ := unread("ana"); n != 0 {
		t.Fatalf("ana's own messages unread: %d", n)
	}
	mustOK(t, h.do(withDevice("bo", "d_phone"), receiptReq("c_u", 3, read)))
	if n, r := unread("bo"); n != 2 || r != 3 {
		t.Fatalf("bo after reading 3: unread %d read %d", n, r)
	}
	mustOK(t, h.do(caller("bo"), sendReq("c_u", "b1", "reply")))
	if n, r := unread("bo"); n != 0 || r != 6 {
		t.Fatalf("bo after replying: unread %d read %d", n, r)
	}
	if n, _ := unread("ana"); n != 1 {
		t.Fatalf("ana: unread %d, want 1 (bo's reply)", n)
	}
	s := mustOK(t, h.do(caller("ana"), &syncpb.CoreRequest{Op: &syncpb.CoreRequest_Sync{Sync: &syncpb.SyncRequest{}}})).GetSync()
	if s.UnreadTotal != 1 || s.UnreadConversations != 1 {
		t.Fatalf("ana's sync totals %d/%d, want 1/1", s.UnreadTotal, s.UnreadConversations)
	}
}

// Sent gives each sender's last message, the register that every
// position joins in; conversation reads and sync give the same read_seq
// from it. A rules 0 send left no time.
func TestSentPositions(t *testing.T) {
	h := newHarness(t)
	mustOK(t, h.do(caller("ana"), groupReq("c_s", "bo", "cy")))
	h.tick(time.Second)
	a1 := sendOK(t, h, "ana", sendReq("c_s", "a1", "x"))
	h.tick(time.Second)
	a2 := sendOK(t, h, "ana", sendReq("c_s", "a2", "x"))
	h.propose(&cmdpb.Command{Caller: caller("bo"), TsUnixMs: h.now.UnixMilli(), Op: &cmdpb.Command_Send{Send: sendReq("c_s", "b1", "x").GetSend()}})
	sent, err := h.f.Sent("c_s")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]crdt.Register{"u_ana": {Value: a2.Seq, At: a2.TsUnixMs}, "u_bo": {Value: a2.Seq + 1}}
	if len(sent) != len(want) || sent["u_ana"] != want["u_ana"] || sent["u_bo"] != want["u_bo"] {
		t.Fatalf("Sent = %v, want %v", sent, want)
	}
	if r, err := h.f.SentBy("c_s", "u_cy"); err != nil || r != (crdt.Register{}) {
		t.Fatalf("cy sent nothing: %v %v", r, err)
	}
	if a1.Seq >= a2.Seq {
		t.Fatalf("seqs %d %d", a1.Seq, a2.Seq)
	}
	sync := mustOK(t, h.do(caller("ana"), &syncpb.CoreRequest{Op: &syncpb.CoreRequest_Sync{Sync: &syncpb.SyncRequest{}}})).GetSync()
	conv := mustOK(t, h.do(caller("ana"), getReq("c_s"))).GetConversation()
	if len(sync.Changed) != 1 || sync.Changed[0].ReadSeq != a2.Seq || conv.ReadSeq != a2.Seq || conv.Unread != 1 {
		t.Fatalf("ana's read_seq: sync %v, conversation %d (unread %d); want %d", sync.Changed, conv.ReadSeq, conv.Unread, a2.Seq)
	}
}
