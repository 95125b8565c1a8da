package shard

import (
	"testing"

	"github.com/parley-chat/parley/core/internal/cmdpb"

	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// sendOK sends and returns the ack, failing on an error.
func sendOK(t *testing.T, h *harness, by string, req *syncpb.CoreRequest) *syncpb.SendAck {
	t.Helper()
	return mustOK(t, h.do(caller(by), req)).GetSendAck()
}

// A client_msg_id is the sender's own: bo reusing ana's id sends a message
// of his own, with its own seq, and each retry gets its sender's answer.
func TestSendIDIsScopedToTheSender(t *testing.T) {
	h := newTeam(t) // seq 1 is the roles_changed event
	ana := sendOK(t, h, "ana", sendReq("c_team", "m1", "from ana"))
	bo := sendOK(t, h, "bo", sendReq("c_team", "m1", "from bo"))
	if bo.Duplicate || bo.Seq != ana.Seq+1 || bo.MsgId == ana.MsgId || bo.ClientMsgId != "m1" {
		t.Fatalf("bo's send with ana's id answered %v (ana's %v): want a new message", bo, ana)
	}
	for _, tc := range []struct {
		by, body string
		want     *syncpb.SendAck
	}{{"ana", "from ana", ana}, {"bo", "from bo", bo}} {
		again := sendOK(t, h, tc.by, sendReq("c_team", "m1", tc.body))
		if !again.Duplicate || again.Seq != tc.want.Seq || again.MsgId != tc.want.MsgId || again.TsUnixMs != tc.want.TsUnixMs {
			t.Fatalf("%s's retry answered %v, want the first result %v", tc.by, again, tc.want)
		}
	}
	msgs := mustOK(t, h.do(caller("cy"), historyReq("c_team", 1, 10, syncpb.Direction_DIRECTION_FORWARD))).GetHistory().GetMessages()
	if len(msgs) != 2 || string(msgs[0].Body) != "from ana" || msgs[0].SenderUserId != "u_ana" ||
		string(msgs[1].Body) != "from bo" || msgs[1].SenderUserId != "u_bo" || msgs[1].Seq != bo.Seq {
		t.Fatalf("stored: %v", msgs)
	}
	// The id is the user's, not the device's: ana's other device retrying
	// gets the first answer.
	other := caller("ana")
	other.DeviceId = "d_ana2"
	if again := mustOK(t, h.do(other, sendReq("c_team", "m1", "from ana"))).GetSendAck(); !again.Duplicate || again.Seq != ana.Seq {
		t.Fatalf("ana's other device: %v", again)
	}
}

// The sender reusing an id for other content is a client bug: CONFLICT,
// and nothing stored, whatever part of the content differs.
func TestSendReusedIDWithOtherContentConflicts(t *testing.T) {
	h := newTeam(t)
	base := func() *syncpb.CoreRequest {
		r := sendReq("c_team", "m1", "hello")
		r.GetSend().ContentType = "text/plain"
		r.GetSend().Attachments = []*syncpb.Attachment{
			{Id: "a_1", Name: "a.png", ContentType: "image/png", Size: 10, Meta: []byte{1}},
			{Id: "a_2", Name: "b.png", ContentType: "image/png", Size: 20},
		}
		return r
	}
	first := sendOK(t, h, "cy", base())
	last := lastSeq(t, h)
	tests := []struct {
		name   string
		change func(*syncpb.SendRequest)
		dup    bool
	}{
		{"same content", func(*syncpb.SendRequest) {}, true},
		{"other body", func(r *syncpb.SendRequest) { r.Body = []byte("hello!") }, false},
		{"no body", func(r *syncpb.SendRequest) { r.Body = nil }, false},
		{"other content type", func(r *syncpb.SendRequest) { r.ContentType = "text/markdown" }, false},
		{"attachment left out", func(r *syncpb.SendRequest) { r.Attachments = r.Attachments[:1] }, false},
		{"attachments reordered", func(r *syncpb.SendRequest) { r.Attachments[0], r.Attachments[1] = r.Attachments[1], r.Attachments[0] }, false},
		{"attachment renamed", func(r *syncpb.SendRequest) { r.Attachments[0].Name = "c.png" }, false},
		{"other attachment size", func(r *syncpb.SendRequest) { r.Attachments[1].Size = 21 }, false},
		{"other attachment metadata", func(r *syncpb.SendRequest) { r.Attachments[0].Meta = []byte{2} }, false},
		{"metadata moved to the other attachment", func(r *syncpb.SendRequest) {
			r.Attachments[0].Meta, r.Attachments[1].Meta = nil, []byte{1}
		}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := base()
			tc.change(req.GetSend())
			resp := h.do(caller("cy"), req)
			if tc.dup {
				if ack := mustOK(t, resp).GetSendAck(); !ack.Duplicate || ack.Seq != first.Seq {
					t.Fatalf("retry answered %v", ack)
				}
				return
			}
			wantCode(t, resp, syncpb.Code_CODE_CONFLICT)
			if err := syncproto.FromProto(resp.GetError()); err.Retryable() || err.Message == "" {
				t.Fatalf("conflict %v: want a clear, non-retryable error", err)
			}
		})
	}
	if got := lastSeq(t, h); got != last {
		t.Fatalf("last seq %d after conflicts, want %d", got, last)
	}
}

// Two sends under one id with different content both pass Prepare (neither
// is committed yet); the one applied second is CONFLICT and stores nothing.
func TestConcurrentReuseWithOtherContentStoresOnce(t *testing.T) {
	h := newTeam(t)
	c1, _ := h.prepare(caller("cy"), sendReq("c_team", "m1", "hello"))
	c2, _ := h.prepare(caller("cy"), sendReq("c_team", "m1", "goodbye"))
	if c1 == nil || c2 == nil {
		t.Fatal("both sends should be proposed")
	}
	if c1.Rules != currentRules {
		t.Fatalf("proposed under rules %d, want %d", c1.Rules, currentRules)
	}
	a1 := mustOK(t, h.propose(c1)).GetSendAck()
	wantCode(t, h.propose(c2), syncpb.Code_CODE_CONFLICT)
	if got := lastSeq(t, h); got != a1.Seq {
		t.Fatalf("last seq %d, want %d", got, a1.Seq)
	}
}

// Commands of rules 0 (from a leader that predates numbered rules) apply
// by those rules even after newer ones: conversation-wide ids, any reuse
// a duplicate. Ids they record still dedupe their sender's retries under
// the current rules, and only the sender's.
func TestRulesZeroCommandsKeepTheirMeaning(t *testing.T) {
	h := newTeam(t)
	// What an old leader proposes (its Prepare would have answered some
	// of these itself; applying them checks the same rules).
	legacy := func(by string, req *syncpb.CoreRequest) *syncpb.CoreResponse {
		t.Helper()
		return h.propose(&cmdpb.Command{Caller: caller(by), TsUnixMs: h.now.UnixMilli(), Op: &cmdpb.Command_Send{Send: req.GetSend()}})
	}
	ana := mustOK(t, legacy("ana", sendReq("c_team", "old-1", "hello"))).GetSendAck()
	last := lastSeq(t, h)
	// Under rules 0, bo's reuse and ana's reuse with other content are
	// both duplicates of ana's message.
	for _, tc := range []struct{ by, body string }{{"bo", "bo's"}, {"ana", "other"}} {
		if ack := mustOK(t, legacy(tc.by, sendReq("c_team", "old-1", tc.body))).GetSendAck(); !ack.Duplicate || ack.Seq != ana.Seq {
			t.Fatalf("rules 0 reuse by %s answered %v", tc.by, ack)
		}
	}
	if got := lastSeq(t, h); got != last {
		t.Fatalf("rules 0 reuses stored messages: last seq %d, want %d", got, last)
	}
	// The current rules: ana's retry is a duplicate, other content a
	// conflict, and bo's reuse a message of his own.
	if ack := sendOK(t, h, "ana", sendReq("c_team", "old-1", "hello")); !ack.Duplicate || ack.Seq != ana.Seq || ack.MsgId != ana.MsgId {
		t.Fatalf("ana's retry of a rules 0 id answered %v", ack)
	}
	wantCode(t, h.do(caller("ana"), sendReq("c_team", "old-1", "other")), syncpb.Code_CODE_CONFLICT)
	bo := sendOK(t, h, "bo", sendReq("c_team", "old-1", "bo's"))
	if bo.Duplicate || bo.Seq != last+1 {
		t.Fatalf("bo's reuse of ana's rules 0 id answered %v", bo)
	}
	if again := sendOK(t, h, "bo", sendReq("c_team", "old-1", "bo's")); !again.Duplicate || again.Seq != bo.Seq {
		t.Fatalf("bo's retry answered %v", again)
	}
	// A rules 0 entry applied after all that still finds ana's record.
	if ack := mustOK(t, legacy("cy", sendReq("c_team", "old-1", "cy's"))).GetSendAck(); !ack.Duplicate || ack.Seq != ana.Seq {
		t.Fatalf("a late rules 0 reuse answered %v", ack)
	}
}

func TestContentDigest(t *testing.T) {
	att := func(id, name string) *syncpb.Attachment { return &syncpb.Attachment{Id: id, Name: name} }
	// Field boundaries count: moving bytes from one field to the next
	// changes the digest.
	pairs := [][2][32]byte{
		{contentDigest([]byte("ab"), "c", nil), contentDigest([]byte("a"), "bc", nil)},
		{contentDigest(nil, "", []*syncpb.Attachment{att("a_1", "x")}), contentDigest(nil, "", []*syncpb.Attachment{att("a_1x", "")})},
		{contentDigest([]byte("x"), "", nil), contentDigest([]byte("x"), "", []*syncpb.Attachment{{}})},
	}
	for i, p := range pairs {
		if p[0] == p[1] {
			t.Errorf("pair %d: same digest", i)
		}
	}
	// Nil and empty are the same content.
	if contentDigest(nil, "", nil) != contentDigest([]byte{}, "", []*syncpb.Attachment{}) {
		t.Error("nil and empty differ")
	}
}
