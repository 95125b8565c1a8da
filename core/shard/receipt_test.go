package shard

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/parley-chat/parley/core/internal/kvfsm"
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

func TestReceipts(t *testing.T) {
	h := newHarness(t)
	mustOK(t, h.do(caller("ana"), groupReq("c_r", "bo")))
	for i := 1; i <= 10; i++ {
		mustOK(t, h.do(caller("ana"), sendReq("c_r", fmt.Sprint(i), "x")))
	}
	phone, laptop := withDevice("bo", "d_phone"), withDevice("bo", "d_laptop")
	tests := []struct {
		name     string
		by       *syncpb.Caller
		seq      uint64
		typ      syncpb.ReceiptType
		code     syncpb.Code
		ack      uint64
		proposed bool
		userRead uint64 // bo's read_seq afterwards
	}{
		{name: "delivered", by: phone, seq: 3, typ: delivered, ack: 3, proposed: true},
		{name: "read below delivered", by: phone, seq: 2, typ: read, ack: 2, proposed: true, userRead: 2},
		{name: "stale delivered", by: phone, seq: 1, typ: delivered, ack: 3, userRead: 2},
		{name: "stale read", by: phone, seq: 2, typ: read, ack: 2, userRead: 2},
		{name: "read implies delivered", by: phone, seq: 5, typ: read, ack: 5, proposed: true, userRead: 5},
		{name: "delivered raised by read", by: phone, seq: 4, typ: delivered, ack: 5, userRead: 5},
		{name: "other device, lower read", by: laptop, seq: 4, typ: read, ack: 4, proposed: true, userRead: 5},
		{name: "other device overtakes", by: laptop, seq: 7, typ: read, ack: 7, proposed: true, userRead: 7},
		{name: "the last message", by: phone, seq: 10, typ: delivered, ack: 10, proposed: true, userRead: 7},
		{name: "zero is stale", by: phone, seq: 0, typ: read, ack: 5, userRead: 7},
		{name: "beyond the last message", by: phone, seq: 11, typ: read, code: syncpb.Code_CODE_INVALID_ARGUMENT},
		{name: "unknown type", by: phone, seq: 1, code: syncpb.Code_CODE_INVALID_ARGUMENT},
		{name: "no device", by: withDevice("bo", ""), seq: 1, typ: read, code: syncpb.Code_CODE_INVALID_ARGUMENT},
		{name: "non-member", by: caller("cy"), seq: 1, typ: read, code: syncpb.Code_CODE_NOT_MEMBER},
		{name: "other workspace", by: caller("zed"), seq: 1, typ: read, code: syncpb.Code_CODE_NOT_FOUND},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := receiptReq("c_r", tc.seq, tc.typ)
			cmd, resp := h.prepare(tc.by, req)
			if (cmd != nil) != tc.proposed {
				t.Fatalf("proposed %v, want %v", cmd != nil, tc.proposed)
			}
			if cmd != nil {
				resp = h.propose(cmd)
			}
			wantCode(t, resp, tc.code)
			if tc.code != syncpb.Code_CODE_OK {
				return
			}
			if ack := resp.GetReceiptAck(); ack.Seq != tc.ack || ack.Type != tc.typ || ack.ConvId != "c_r" {
				t.Fatalf("ack %v, want seq %d", ack, tc.ack)
			}
			if got := mustOK(t, h.do(caller("bo"), getReq("c_r"))).GetConversation().ReadSeq; got != tc.userRead {
				t.Fatalf("bo's read_seq %d, want %d", got, tc.userRead)
			}
		})
	}
	if got := mustOK(t, h.do(caller("ana"), getReq("c_r"))).GetConversation().ReadSeq; got != 0 {
		t.Fatalf("ana's read_seq %d", got)
	}
}

// Property: whatever order and mix of reports arrive (including stale and
// concurrently prepared ones), each device's watermarks never decrease,
// read never exceeds delivered, and the user's read position is the max
// over devices.
func TestReceiptWatermarksNeverDecrease(t *testing.T) {
	h := newHarness(t)
	mustOK(t, h.do(caller("ana"), groupReq("c_p", "bo")))
	const last = 40
	for i := 1; i <= last; i++ {
		mustOK(t, h.do(caller("ana"), sendReq("c_p", fmt.Sprint(i), "x")))
	}
	devices := []*syncpb.Caller{withDevice("bo", "d_1"), withDevice("bo", "d_2"), withDevice("bo", "d_3")}
	rng := rand.New(rand.NewPCG(1, 2))
	type marks struct{ delivered, read uint64 }
	cur := map[string]marks{}
	for step := 0; step < 600; step++ {
		dev := devices[rng.IntN(len(devices))]
		typ := delivered
		if rng.IntN(2) == 0 {
			typ = read
		}
		seq := uint64(rng.IntN(last + 1))
		// Sometimes hold a proposal back and apply it after others, as
		// when two reports race to the leader.
		cmd, resp := h.prepare(dev, receiptReq("c_p", seq, typ))
		if cmd != nil && rng.IntN(3) == 0 {
			other := devices[rng.IntN(len(devices))]
			if c2, r2 := h.prepare(other, receiptReq("c_p", uint64(rng.IntN(last+1)), read)); c2 != nil {
				mustOK(t, h.propose(c2))
			} else {
				mustOK(t, r2)
			}
		}
		if cmd != nil {
			resp = h.propose(cmd)
		}
		ack := mustOK(t, resp).GetReceiptAck()
		// Read back every device and check the invariants.
		var maxRead uint64
		for _, d := range devices {
			var m marks
			err := h.f.view(func(v *kvfsm.View) error {
				r, err := getReceipts(v, receiptKey("c_p", d.UserId, d.DeviceId))
				m = marks{r.Delivered, r.Read}
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			prev := cur[d.DeviceId]
			if m.delivered < prev.delivered || m.read < prev.read {
				t.Fatalf("step %d: %s went back from %v to %v", step, d.DeviceId, prev, m)
			}
			if m.read > m.delivered {
				t.Fatalf("step %d: %s read %d > delivered %d", step, d.DeviceId, m.read, m.delivered)
			}
			cur[d.DeviceId] = m
			maxRead = max(maxRead, m.read)
		}
		mine := cur[dev.DeviceId]
		want := mine.delivered
		if typ == read {
			want = mine.read
		}
		if ack.Seq != want || ack.Seq < seq {
			t.Fatalf("step %d: ack %d, device has %v, reported %d", step, ack.Seq, mine, seq)
		}
		if got := mustOK(t, h.do(caller("bo"), getReq("c_p"))).GetConversation().ReadSeq; got != maxRead {
			t.Fatalf("step %d: user read %d, max over devices %d", step, got, maxRead)
		}
	}
}
