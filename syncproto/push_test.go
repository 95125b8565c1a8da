package syncproto

import (
	"strings"
	"testing"

	"github.com/parley-chat/parley/syncproto/syncpb"
)

func TestValidateSetPushTarget(t *testing.T) {
	wp := func(ep, p, a string) *syncpb.PushTarget {
		return &syncpb.PushTarget{Target: &syncpb.PushTarget_WebPush{WebPush: &syncpb.WebPushSubscription{Endpoint: ep, P256Dh: p, Auth: a}}}
	}
	gw := func(name, key string) *syncpb.PushTarget {
		return &syncpb.PushTarget{Target: &syncpb.PushTarget_Gateway{Gateway: &syncpb.GatewayTarget{Gateway: name, PushKey: key}}}
	}
	for _, tc := range []struct {
		name string
		r    *syncpb.SetPushTargetRequest
		code syncpb.Code
	}{
		{"web push", &syncpb.SetPushTargetRequest{DeviceId: "d_1", Target: wp("https://push.example/x", "k", "a")}, 0},
		{"gateway", &syncpb.SetPushTargetRequest{DeviceId: "d_1", Target: gw("fcm", "key")}, 0},
		{"remove", &syncpb.SetPushTargetRequest{DeviceId: "d_1"}, 0},
		{"missing", nil, syncpb.Code_CODE_MALFORMED},
		{"bad device", &syncpb.SetPushTargetRequest{DeviceId: "D!"}, syncpb.Code_CODE_INVALID_ARGUMENT},
		{"no keys", &syncpb.SetPushTargetRequest{DeviceId: "d_1", Target: wp("https://push.example/x", "", "")}, syncpb.Code_CODE_INVALID_ARGUMENT},
		{"not a url", &syncpb.SetPushTargetRequest{DeviceId: "d_1", Target: wp("ftp://x", "k", "a")}, syncpb.Code_CODE_INVALID_ARGUMENT},
		{"long endpoint", &syncpb.SetPushTargetRequest{DeviceId: "d_1", Target: wp("https://"+strings.Repeat("a", MaxPushEndpointLen), "k", "a")}, syncpb.Code_CODE_TOO_LARGE},
		{"empty target", &syncpb.SetPushTargetRequest{DeviceId: "d_1", Target: &syncpb.PushTarget{}}, syncpb.Code_CODE_INVALID_ARGUMENT},
		{"gateway without key", &syncpb.SetPushTargetRequest{DeviceId: "d_1", Target: gw("fcm", "")}, syncpb.Code_CODE_INVALID_ARGUMENT},
		{"bad if_target", &syncpb.SetPushTargetRequest{DeviceId: "d_1", IfTarget: gw("", "k")}, syncpb.Code_CODE_INVALID_ARGUMENT},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkCode(t, ValidateSetPushTarget(tc.r), tc.code)
		})
	}
}

func TestValidateSetNotifyLevel(t *testing.T) {
	checkCode(t, ValidateSetNotifyLevel(&syncpb.SetNotifyLevelRequest{ConvId: "c_1", Level: syncpb.NotifyLevel_NOTIFY_LEVEL_MENTIONS}), 0)
	checkCode(t, ValidateSetNotifyLevel(nil), syncpb.Code_CODE_MALFORMED)
	checkCode(t, ValidateSetNotifyLevel(&syncpb.SetNotifyLevelRequest{ConvId: ""}), syncpb.Code_CODE_INVALID_ARGUMENT)
	checkCode(t, ValidateSetNotifyLevel(&syncpb.SetNotifyLevelRequest{ConvId: "c_1", Level: 9}), syncpb.Code_CODE_INVALID_ARGUMENT)
}

func checkCode(t *testing.T, err error, want syncpb.Code) {
	t.Helper()
	if want == 0 {
		if err != nil {
			t.Fatalf("err %v, want nil", err)
		}
		return
	}
	e, ok := AsError(err), err != nil
	if !ok || e.Code != want {
		t.Fatalf("err %v, want code %v", err, want)
	}
}
