package directory

import (
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/parley-chat/parley/core/internal/cmdpb"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

func setPresenceOff(off bool) *syncpb.CoreRequest {
	return &syncpb.CoreRequest{Op: &syncpb.CoreRequest_UpdateWorkspace{UpdateWorkspace: &syncpb.UpdateWorkspaceRequest{PresenceOff: proto.Bool(off)}}}
}

var getWorkspaceReq = &syncpb.CoreRequest{Op: &syncpb.CoreRequest_GetWorkspace{GetWorkspace: &syncpb.GetWorkspaceRequest{}}}

func TestWorkspaceSettings(t *testing.T) {
	h := newHarness(t)
	ana := callerOf(mustOK(t, h.do(nil, register("acme", "ana", hash))).GetUser()) // owner
	bo := callerOf(mustOK(t, h.do(nil, register("acme", "bo", hash))).GetUser())
	zed := callerOf(mustOK(t, h.do(nil, register("other", "zed", hash))).GetUser())

	wantCode(t, h.do(bo, setPresenceOff(true)), syncpb.Code_CODE_FORBIDDEN)
	wantCode(t, h.do(nil, setPresenceOff(true)), syncpb.Code_CODE_UNAUTHENTICATED)
	if ws := mustOK(t, h.do(ana, setPresenceOff(true))).GetWorkspace(); !ws.PresenceOff || ws.Id != ana.WorkspaceId {
		t.Fatalf("after the owner's change: %v", ws)
	}
	if ws := mustOK(t, h.do(bo, getWorkspaceReq)).GetWorkspace(); !ws.PresenceOff {
		t.Fatalf("a member reads %v", ws)
	}
	if off, err := h.f.PresenceOff(ana.WorkspaceId); err != nil || !off {
		t.Fatalf("PresenceOff = %v, %v", off, err)
	}
	if off, _ := h.f.PresenceOff(zed.WorkspaceId); off {
		t.Fatal("another workspace's presence is off")
	}
	// The same setting again proposes nothing.
	if cmd, resp := h.prepare(ana, setPresenceOff(true)); cmd != nil || !resp.GetWorkspace().PresenceOff {
		t.Fatalf("a no-op change proposed %v", cmd)
	}
	// Apply checks ownership again: a command from a member does nothing.
	resp := h.propose(&cmdpb.Command{Caller: bo, Op: &cmdpb.Command_UpdateWorkspace{UpdateWorkspace: &syncpb.UpdateWorkspaceRequest{PresenceOff: proto.Bool(false)}}})
	wantCode(t, resp, syncpb.Code_CODE_FORBIDDEN)
	if off, _ := h.f.PresenceOff(ana.WorkspaceId); !off {
		t.Fatal("a member's command changed the setting")
	}
}
