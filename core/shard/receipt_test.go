package shard

import (
	"fmt"
	"testing"

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
		{name: "zero", by: phone, seq: 0, typ: read},
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
