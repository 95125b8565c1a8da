package shard

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

func TestSend(t *testing.T) {
	h := newTeam(t) // seq 1 is the roles_changed event
	attach := func(n int) *syncpb.CoreRequest {
		r := sendReq("c_team", fmt.Sprintf("att%d", n), "")
		for i := 0; i < n; i++ {
			r.GetSend().Attachments = append(r.GetSend().Attachments, &syncpb.Attachment{Id: fmt.Sprintf("a_%d", i), Name: "f.png", ContentType: "image/png", Size: 10})
		}
		return r
	}
	withContentType := func(ct string) *syncpb.CoreRequest {
		r := sendReq("c_team", "ct-"+fmt.Sprint(len(ct)), "x")
		r.GetSend().ContentType = ct
		return r
	}
	tests := []struct {
		name string
		by   string
		req  *syncpb.CoreRequest
		code syncpb.Code
		seq  uint64
		dup  bool
	}{
		{name: "first", by: "cy", req: sendReq("c_team", "m1", "hello"), seq: 2},
		{name: "second", by: "di", req: sendReq("c_team", "m2", "hi"), seq: 3},
		{name: "retry returns the first result", by: "cy", req: sendReq("c_team", "m1", "hello"), seq: 2, dup: true},
		{name: "attachments only", by: "cy", req: attach(2), seq: 4},
		{name: "largest body", by: "cy", req: sendReq("c_team", "big", strings.Repeat("b", syncproto.MaxBodySize)), seq: 5},
		{name: "body too large", by: "cy", req: sendReq("c_team", "huge", strings.Repeat("b", syncproto.MaxBodySize+1)), code: syncpb.Code_CODE_TOO_LARGE},
		{name: "too many attachments", by: "cy", req: attach(syncproto.MaxAttachments + 1), code: syncpb.Code_CODE_TOO_LARGE},
		{name: "empty", by: "cy", req: sendReq("c_team", "e", ""), code: syncpb.Code_CODE_INVALID_ARGUMENT},
		{name: "no client_msg_id", by: "cy", req: sendReq("c_team", "", "x"), code: syncpb.Code_CODE_INVALID_ARGUMENT},
		{name: "client_msg_id with a space", by: "cy", req: sendReq("c_team", "a b", "x"), code: syncpb.Code_CODE_INVALID_ARGUMENT},
		{name: "client_msg_id too long", by: "cy", req: sendReq("c_team", strings.Repeat("i", syncproto.MaxClientMsgIDLen+1), "x"), code: syncpb.Code_CODE_INVALID_ARGUMENT},
		{name: "content type", by: "cy", req: withContentType("text/markdown"), seq: 6},
		{name: "content type with control characters", by: "cy", req: withContentType("text/\n"), code: syncpb.Code_CODE_INVALID_ARGUMENT},
		{name: "non-member", by: "ed", req: sendReq("c_team", "n1", "x"), code: syncpb.Code_CODE_NOT_MEMBER},
		{name: "other workspace", by: "zed", req: sendReq("c_team", "n1", "x"), code: syncpb.Code_CODE_NOT_FOUND},
		{name: "missing conversation", by: "cy", req: sendReq("c_nope", "n1", "x"), code: syncpb.Code_CODE_NOT_FOUND},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp := h.do(caller(tc.by), tc.req)
			wantCode(t, resp, tc.code)
			if tc.code != syncpb.Code_CODE_OK {
				return
			}
			ack := resp.GetSendAck()
			if ack.Seq != tc.seq || ack.Duplicate != tc.dup || ack.ConvId != "c_team" ||
				ack.ClientMsgId != tc.req.GetSend().ClientMsgId || ack.MsgId != syncproto.MessageID("c_team", tc.seq) {
				t.Fatalf("ack %v, want seq %d dup %v", ack, tc.seq, tc.dup)
			}
			h.tick(time.Millisecond)
		})
	}
	// The stored messages match their acks and hold what was sent.
	msgs := mustOK(t, h.do(caller("ana"), historyReq("c_team", 1, 10, syncpb.Direction_DIRECTION_FORWARD))).GetHistory().GetMessages()
	if len(msgs) != 5 || string(msgs[0].Body) != "hello" || msgs[0].SenderUserId != "u_cy" || msgs[0].SenderDeviceId != "d_cy1" ||
		msgs[0].Kind != syncpb.MessageKind_MESSAGE_KIND_USER || len(msgs[2].Attachments) != 2 || msgs[4].ContentType != "text/markdown" {
		t.Fatalf("stored messages: %v", msgs)
	}
}

// Two retries both pass Prepare; the second Apply returns the first
// result and stores nothing.
func TestConcurrentRetriesStoreOnce(t *testing.T) {
	h := newTeam(t)
	c1, _ := h.prepare(caller("cy"), sendReq("c_team", "m1", "hello"))
	c2, _ := h.prepare(caller("cy"), sendReq("c_team", "m1", "hello"))
	if c1 == nil || c2 == nil {
		t.Fatal("both retries should be proposed")
	}
	a1 := mustOK(t, h.propose(c1)).GetSendAck()
	h.tick(time.Second)
	a2 := mustOK(t, h.propose(c2)).GetSendAck()
	if a1.Duplicate || !a2.Duplicate || a1.Seq != a2.Seq || a1.MsgId != a2.MsgId || a1.TsUnixMs != a2.TsUnixMs {
		t.Fatalf("acks %v and %v", a1, a2)
	}
	if got := lastSeq(t, h); got != a1.Seq {
		t.Fatalf("last seq %d after a duplicate", got)
	}
}

// Seqs are gapless and timestamps never go back, even when the leader's
// clock does.
func TestSeqGaplessAndTimeMonotonic(t *testing.T) {
	h := newHarness(t)
	mustOK(t, h.do(caller("ana"), groupReq("c_g", "bo")))
	var prevTs int64
	for i := 1; i <= 50; i++ {
		if i%10 == 0 {
			h.tick(-time.Minute) // a new leader with a slower clock
		} else {
			h.tick(time.Millisecond)
		}
		ack := mustOK(t, h.do(caller("bo"), sendReq("c_g", fmt.Sprint(i), "x"))).GetSendAck()
		if ack.Seq != uint64(i) {
			t.Fatalf("send %d got seq %d", i, ack.Seq)
		}
		if ack.TsUnixMs < prevTs {
			t.Fatalf("seq %d ts %d went back from %d", i, ack.TsUnixMs, prevTs)
		}
		prevTs = ack.TsUnixMs
	}
}

func TestHistory(t *testing.T) {
	h := newHarness(t)
	mustOK(t, h.do(caller("ana"), groupReq("c_h", "bo")))
	for i := 1; i <= 10; i++ {
		mustOK(t, h.do(caller("ana"), sendReq("c_h", fmt.Sprint(i), "x")))
	}
	mustOK(t, h.do(caller("ana"), groupReq("c_long")))
	for i := 1; i <= syncproto.MaxHistoryLimit+10; i++ {
		mustOK(t, h.do(caller("ana"), sendReq("c_long", fmt.Sprint(i), "x")))
	}
	const back, fwd = syncpb.Direction_DIRECTION_BACKWARD, syncpb.Direction_DIRECTION_FORWARD
	tests := []struct {
		name        string
		cursor      uint64
		limit       uint32
		dir         syncpb.Direction
		first, last uint64 // seqs returned, 0 0 for none
		next        uint64
		count       int
		conv, by    string
		code        syncpb.Code
	}{
		{name: "newest page", cursor: 0, limit: 3, dir: back, first: 8, last: 10, next: 8},
		{name: "older page", cursor: 8, limit: 3, dir: back, first: 5, last: 7, next: 5},
		{name: "oldest page", cursor: 3, limit: 3, dir: back, first: 1, last: 2, next: 0},
		{name: "before the first", cursor: 1, limit: 3, dir: back},
		{name: "cursor past the end", cursor: 99, limit: 2, dir: back, first: 9, last: 10, next: 9},
		{name: "all backward", cursor: 0, limit: 10, dir: back, first: 1, last: 10, next: 0},
		{name: "forward from the start", cursor: 0, limit: 4, dir: fwd, first: 1, last: 4, next: 4},
		{name: "forward to the end", cursor: 8, limit: 4, dir: fwd, first: 9, last: 10, next: 0},
		{name: "forward exactly to the end", cursor: 6, limit: 4, dir: fwd, first: 7, last: 10, next: 0},
		{name: "forward at the end", cursor: 10, limit: 4, dir: fwd},
		{name: "default limit", conv: "c_long", dir: back, count: syncproto.DefaultHistoryLimit},
		{name: "limit capped", conv: "c_long", limit: 100000, dir: fwd, count: syncproto.MaxHistoryLimit},
		{name: "unknown direction", dir: 7, code: syncpb.Code_CODE_INVALID_ARGUMENT},
		{name: "non-member", by: "cy", dir: back, code: syncpb.Code_CODE_NOT_MEMBER},
		{name: "missing conversation", conv: "c_nope", dir: back, code: syncpb.Code_CODE_NOT_FOUND},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			conv, by := tc.conv, tc.by
			if conv == "" {
				conv = "c_h"
			}
			if by == "" {
				by = "ana"
			}
			resp := h.do(caller(by), historyReq(conv, tc.cursor, tc.limit, tc.dir))
			wantCode(t, resp, tc.code)
			if tc.code != syncpb.Code_CODE_OK {
				return
			}
			hist := resp.GetHistory()
			msgs := hist.GetMessages()
			if tc.count > 0 {
				if len(msgs) != tc.count {
					t.Fatalf("%d messages, want %d", len(msgs), tc.count)
				}
				return
			}
			if hist.LastSeq != 10 || hist.ConvId != conv {
				t.Fatalf("last seq %d conv %s", hist.LastSeq, hist.ConvId)
			}
			var first, last uint64
			if len(msgs) > 0 {
				first, last = msgs[0].Seq, msgs[len(msgs)-1].Seq
			}
			for i := 1; i < len(msgs); i++ {
				if msgs[i].Seq != msgs[i-1].Seq+1 {
					t.Fatalf("page not ascending and gapless: %d after %d", msgs[i].Seq, msgs[i-1].Seq)
				}
			}
			if first != tc.first || last != tc.last || hist.NextCursor != tc.next {
				t.Fatalf("got seqs %d..%d next %d, want %d..%d next %d", first, last, hist.NextCursor, tc.first, tc.last, tc.next)
			}
		})
	}
}

// Paging to the end in either direction visits every message once.
func TestHistoryPagesCoverEverything(t *testing.T) {
	h := newHarness(t)
	mustOK(t, h.do(caller("ana"), groupReq("c_p")))
	for i := 1; i <= 23; i++ {
		mustOK(t, h.do(caller("ana"), sendReq("c_p", fmt.Sprint(i), "x")))
	}
	for _, dir := range []syncpb.Direction{syncpb.Direction_DIRECTION_BACKWARD, syncpb.Direction_DIRECTION_FORWARD} {
		seen := map[uint64]bool{}
		var cursor uint64
		for pages := 0; ; pages++ {
			if pages > 10 {
				t.Fatalf("%v: paging does not end", dir)
			}
			hist := mustOK(t, h.do(caller("ana"), historyReq("c_p", cursor, 5, dir))).GetHistory()
			for _, m := range hist.Messages {
				if seen[m.Seq] {
					t.Fatalf("%v: seq %d twice", dir, m.Seq)
				}
				seen[m.Seq] = true
			}
			if hist.NextCursor == 0 {
				break
			}
			cursor = hist.NextCursor
		}
		if len(seen) != 23 {
			t.Fatalf("%v: saw %d messages", dir, len(seen))
		}
	}
}

// Pages of large messages stop at the byte budget and still page through.
func TestHistoryPageByteBudget(t *testing.T) {
	h := newHarness(t)
	mustOK(t, h.do(caller("ana"), groupReq("c_big")))
	body := strings.Repeat("b", syncproto.MaxBodySize)
	n := maxHistoryBytes/syncproto.MaxBodySize + 20
	for i := 1; i <= n; i++ {
		mustOK(t, h.do(caller("ana"), sendReq("c_big", fmt.Sprint(i), body)))
	}
	for _, dir := range []syncpb.Direction{syncpb.Direction_DIRECTION_BACKWARD, syncpb.Direction_DIRECTION_FORWARD} {
		hist := mustOK(t, h.do(caller("ana"), historyReq("c_big", 0, syncproto.MaxHistoryLimit, dir))).GetHistory()
		if len(hist.Messages) == 0 || len(hist.Messages) >= n || hist.NextCursor == 0 {
			t.Fatalf("%v: page of %d messages, next %d", dir, len(hist.Messages), hist.NextCursor)
		}
		size := 0
		for _, m := range hist.Messages {
			size += len(m.Body)
		}
		if size > maxHistoryBytes {
			t.Fatalf("%v: page of %d bytes", dir, size)
		}
	}
}
