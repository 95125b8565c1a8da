package directory

import (
	"testing"

	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

func webPush(ep string) *syncpb.PushTarget {
	return &syncpb.PushTarget{Target: &syncpb.PushTarget_WebPush{WebPush: &syncpb.WebPushSubscription{Endpoint: ep, P256Dh: "k", Auth: "a"}}}
}

func setTarget(dev string, t, ifT *syncpb.PushTarget) *syncpb.CoreRequest {
	return &syncpb.CoreRequest{Op: &syncpb.CoreRequest_SetPushTarget{SetPushTarget: &syncpb.SetPushTargetRequest{DeviceId: dev, Target: t, IfTarget: ifT}}}
}

func TestPushTargets(t *testing.T) {
	h := newHarness(t)
	h.f.checkPT = func(t *syncpb.PushTarget) error {
		if t.GetWebPush().GetEndpoint() == "https://10.0.0.1/x" {
			return syncproto.Errorf(syncpb.Code_CODE_INVALID_ARGUMENT, "endpoint address is not public")
		}
		return nil
	}
	ana := callerOf(mustOK(t, h.do(nil, register("acme", "ana", hash))).GetUser())
	bo := callerOf(mustOK(t, h.do(nil, register("acme", "bo", hash))).GetUser())
	phone := mustOK(t, h.do(ana, registerDevice("phone"))).GetDevice()
	laptop := mustOK(t, h.do(ana, registerDevice("laptop"))).GetDevice()
	targets := func() map[string]string {
		t.Helper()
		ts, err := h.f.PushTargets(ana.WorkspaceId, []string{ana.UserId, bo.UserId, "u_ghost"})
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for _, d := range ts {
			out[d.DeviceId] = d.Target.GetWebPush().GetEndpoint()
		}
		return out
	}

	mustOK(t, h.do(ana, setTarget(phone.Id, webPush("https://push.example/1"), nil)))
	if got := targets(); len(got) != 1 || got[phone.Id] != "https://push.example/1" {
		t.Fatalf("targets %v", got)
	}
	// One target a device: a new one replaces it.
	mustOK(t, h.do(ana, setTarget(phone.Id, webPush("https://push.example/2"), nil)))
	// A removal of the old one (its service said gone) keeps the new one.
	mustOK(t, h.do(ana, setTarget(phone.Id, nil, webPush("https://push.example/1"))))
	if got := targets(); got[phone.Id] != "https://push.example/2" {
		t.Fatalf("targets %v", got)
	}
	mustOK(t, h.do(ana, setTarget(phone.Id, nil, webPush("https://push.example/2"))))
	if got := targets(); len(got) != 0 {
		t.Fatalf("targets %v", got)
	}
	wantCode(t, h.do(ana, setTarget(phone.Id, webPush("https://10.0.0.1/x"), nil)), syncpb.Code_CODE_INVALID_ARGUMENT)
	wantCode(t, h.do(bo, setTarget(phone.Id, webPush("https://push.example/3"), nil)), syncpb.Code_CODE_NOT_FOUND)
	wantCode(t, h.do(nil, setTarget(phone.Id, webPush("https://push.example/3"), nil)), syncpb.Code_CODE_UNAUTHENTICATED)

	// Revoking (logging out) removes the target; a revoked device gets none.
	mustOK(t, h.do(ana, setTarget(laptop.Id, webPush("https://push.example/l"), nil)))
	mustOK(t, h.do(ana, setTarget(phone.Id, webPush("https://push.example/p"), nil)))
	mustOK(t, h.do(ana, revoke(laptop.Id)))
	if got := targets(); len(got) != 1 || got[phone.Id] == "" {
		t.Fatalf("targets after revoke %v", got)
	}
	wantCode(t, h.do(ana, setTarget(laptop.Id, webPush("https://push.example/l"), nil)), syncpb.Code_CODE_FORBIDDEN)
	// Another workspace sees none of them.
	if ts, err := h.f.PushTargets("w_other", []string{ana.UserId}); err != nil || len(ts) != 0 {
		t.Fatalf("other workspace: %v %v", ts, err)
	}
}

func TestPushNoContent(t *testing.T) {
	h := newHarness(t)
	ana := callerOf(mustOK(t, h.do(nil, register("acme", "ana", hash))).GetUser())
	on := true
	ws := mustOK(t, h.do(ana, &syncpb.CoreRequest{Op: &syncpb.CoreRequest_UpdateWorkspace{UpdateWorkspace: &syncpb.UpdateWorkspaceRequest{PushNoContent: &on}}})).GetWorkspace()
	if !ws.PushNoContent {
		t.Fatalf("workspace %v", ws)
	}
	if off, err := h.f.PushNoContent(ana.WorkspaceId); err != nil || !off {
		t.Fatalf("PushNoContent %v %v", off, err)
	}
}
