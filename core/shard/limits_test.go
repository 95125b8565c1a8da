package shard

import (
	"bytes"
	"strings"
	"testing"

	"github.com/parley-chat/parley/core/internal/cmdpb"
	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// TestOldEntryReplaysAfterWireLimitChange applies log entries written
// before a wire rule tightened (an attachment name with a control
// character, which syncproto's validator now refuses, and a message at the
// state machine's limits): they apply, and replay into a fresh replica the
// same, because apply checks the shard's own frozen limits (limits.go),
// never syncproto's.
func TestOldEntryReplaysAfterWireLimitChange(t *testing.T) {
	h := newTeam(t)
	old := &syncpb.SendRequest{ConvId: "c_team", ClientMsgId: "old-1", Attachments: []*syncpb.Attachment{
		{Id: "a_1", Name: "a\x07.png", ContentType: "image/png"}}}
	if _, _, err := syncproto.CheckRequest(syncproto.NewRequest(caller("cy"), old)); err == nil {
		t.Fatal("the wire validator accepts the old entry's send; the test needs one it refuses")
	}
	atts := make([]*syncpb.Attachment, maxAttachments)
	for i := range atts {
		atts[i] = &syncpb.Attachment{Id: "a_" + strings.Repeat("x", i+1), Name: strings.Repeat("n", maxAttachmentNameLen),
			Meta: make([]byte, maxAttachmentMeta)}
	}
	full := &syncpb.SendRequest{ConvId: "c_team", ClientMsgId: "old-2", Body: make([]byte, maxBodySize), Attachments: atts}
	var seqs []uint64
	for _, s := range []*syncpb.SendRequest{old, full} {
		cmd := &cmdpb.Command{Caller: caller("cy"), TsUnixMs: h.now.UnixMilli(), Rules: currentRules, Op: &cmdpb.Command_Send{Send: s}}
		seqs = append(seqs, mustOK(t, h.propose(cmd)).GetSendAck().GetSeq())
	}
	if seqs[0] == 0 || seqs[1] != seqs[0]+1 {
		t.Fatalf("old entries applied at seqs %v", seqs)
	}
	// One over a frozen limit is refused at apply, whatever the wire says.
	over := &syncpb.SendRequest{ConvId: "c_team", ClientMsgId: "old-3", Body: make([]byte, maxBodySize+1)}
	wantCode(t, h.propose(&cmdpb.Command{Caller: caller("cy"), TsUnixMs: h.now.UnixMilli(), Rules: currentRules,
		Op: &cmdpb.Command_Send{Send: over}}), syncpb.Code_CODE_TOO_LARGE)

	db := openDB(t, 16<<20)
	replica := newFSM(t, db, newFakeDir())
	for _, l := range h.logs {
		replica.Apply(l)
	}
	if want, got := dumpGroup(t, h.db, group), dumpGroup(t, db, group); !bytes.Equal(want, got) {
		t.Fatal("the replayed replica differs from the original")
	}
}
