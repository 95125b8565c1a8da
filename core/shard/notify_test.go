package shard

import (
	"testing"

	"github.com/parley-chat/parley/syncproto/syncpb"
)

func notifyReq(conv string, level syncpb.NotifyLevel) *syncpb.CoreRequest {
	return &syncpb.CoreRequest{Op: &syncpb.CoreRequest_SetNotifyLevel{SetNotifyLevel: &syncpb.SetNotifyLevelRequest{ConvId: conv, Level: level}}}
}

func TestNotifyLevel(t *testing.T) {
	h := newHarness(t)
	mustOK(t, h.do(caller("ana"), groupReq("c_team", "bo", "cy")))
	level := func(user string) syncpb.NotifyLevel {
		t.Helper()
		l, err := h.f.NotifyLevel("c_team", "u_"+user)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	if level("bo") != syncpb.NotifyLevel_NOTIFY_LEVEL_ALL {
		t.Fatal("default is not all")
	}
	mustOK(t, h.do(caller("bo"), notifyReq("c_team", syncpb.NotifyLevel_NOTIFY_LEVEL_NONE)))
	mustOK(t, h.do(caller("cy"), notifyReq("c_team", syncpb.NotifyLevel_NOTIFY_LEVEL_MENTIONS)))
	if level("bo") != syncpb.NotifyLevel_NOTIFY_LEVEL_NONE || level("cy") != syncpb.NotifyLevel_NOTIFY_LEVEL_MENTIONS || level("ana") != syncpb.NotifyLevel_NOTIFY_LEVEL_ALL {
		t.Fatalf("levels %v %v %v", level("bo"), level("cy"), level("ana"))
	}
	mustOK(t, h.do(caller("bo"), notifyReq("c_team", syncpb.NotifyLevel_NOTIFY_LEVEL_ALL)))
	if level("bo") != syncpb.NotifyLevel_NOTIFY_LEVEL_ALL {
		t.Fatal("all not restored")
	}
	wantCode(t, h.do(caller("di"), notifyReq("c_team", syncpb.NotifyLevel_NOTIFY_LEVEL_NONE)), syncpb.Code_CODE_NOT_MEMBER)
	wantCode(t, h.do(caller("bo"), notifyReq("c_nope", syncpb.NotifyLevel_NOTIFY_LEVEL_NONE)), syncpb.Code_CODE_NOT_FOUND)
	wantCode(t, h.do(caller("bo"), notifyReq("c_team", 7)), syncpb.Code_CODE_INVALID_ARGUMENT)
	// Leaving forgets the level: rejoining starts from all.
	mustOK(t, h.do(caller("cy"), changeReq("c_team", change{leave: true})))
	if level("cy") != syncpb.NotifyLevel_NOTIFY_LEVEL_ALL {
		t.Fatal("level kept after leaving")
	}
	if title, typ, ok, err := h.f.Title("c_team"); err != nil || !ok || typ != syncpb.ConversationType_CONVERSATION_TYPE_GROUP || title == "" {
		t.Fatalf("Title %q %v %v %v", title, typ, ok, err)
	}
}
