package httpapi

import (
	"net/http"

	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// Push registration (docs/push.md): a device's push target, a member's
// notification level, and the VAPID public key browsers subscribe with.

// pushTargetRequest is the body of PUT /v1/devices/{id}/push: exactly
// one of web_push (a browser's PushSubscription.toJSON()) and gateway.
type pushTargetRequest struct {
	WebPush *struct {
		Endpoint string `json:"endpoint"`
		Keys     struct {
			P256dh string `json:"p256dh"`
			Auth   string `json:"auth"`
		} `json:"keys"`
	} `json:"web_push"`
	Gateway *struct {
		Gateway string `json:"gateway"`
		PushKey string `json:"push_key"`
		AppID   string `json:"app_id"`
	} `json:"gateway"`
}

// setPushTarget: PUT /v1/devices/{id}/push, one of the caller's devices.
// A device has one target; a new one replaces the old.
func (a *API) setPushTarget(c *call) error {
	id := c.r.PathValue("id")
	if err := checkID("device id", id); err != nil {
		return err
	}
	var req pushTargetRequest
	if err := c.decode(&req); err != nil {
		return err
	}
	t := &syncpb.PushTarget{}
	switch {
	case req.WebPush != nil && req.Gateway == nil:
		w := req.WebPush
		t.Target = &syncpb.PushTarget_WebPush{WebPush: &syncpb.WebPushSubscription{Endpoint: w.Endpoint, P256Dh: w.Keys.P256dh, Auth: w.Keys.Auth}}
	case req.Gateway != nil && req.WebPush == nil:
		g := req.Gateway
		t.Target = &syncpb.PushTarget_Gateway{Gateway: &syncpb.GatewayTarget{Gateway: g.Gateway, PushKey: g.PushKey, AppId: g.AppID}}
	default:
		return invalid("give exactly one of web_push and gateway")
	}
	return a.pushTarget(c, id, t)
}

// removePushTarget: DELETE /v1/devices/{id}/push.
func (a *API) removePushTarget(c *call) error {
	id := c.r.PathValue("id")
	if err := checkID("device id", id); err != nil {
		return err
	}
	return a.pushTarget(c, id, nil)
}

func (a *API) pushTarget(c *call, id string, t *syncpb.PushTarget) error {
	if _, err := a.callCore(c, &syncpb.CoreRequest{Op: &syncpb.CoreRequest_SetPushTarget{SetPushTarget: &syncpb.SetPushTargetRequest{
		DeviceId: id, Target: t}}}); err != nil {
		return err
	}
	c.w.WriteHeader(http.StatusNoContent)
	return nil
}

var notifyLevels = map[string]syncpb.NotifyLevel{
	"all":      syncpb.NotifyLevel_NOTIFY_LEVEL_ALL,
	"mentions": syncpb.NotifyLevel_NOTIFY_LEVEL_MENTIONS,
	"none":     syncpb.NotifyLevel_NOTIFY_LEVEL_NONE,
}

// setNotifyLevel: PUT /v1/conversations/{id}/notify {"level": "all" |
// "mentions" | "none"}, the caller's own level in a conversation it is a
// member of.
func (a *API) setNotifyLevel(c *call) error {
	id := c.r.PathValue("id")
	if err := checkID("conversation id", id); err != nil {
		return err
	}
	var req struct {
		Level string `json:"level"`
	}
	if err := c.decode(&req); err != nil {
		return err
	}
	level, ok := notifyLevels[req.Level]
	if !ok {
		return invalid("level must be all, mentions or none")
	}
	if _, err := a.callCore(c, &syncpb.CoreRequest{Op: &syncpb.CoreRequest_SetNotifyLevel{SetNotifyLevel: &syncpb.SetNotifyLevelRequest{
		ConvId: id, Level: level}}}); err != nil {
		return err
	}
	c.w.WriteHeader(http.StatusNoContent)
	return nil
}

// vapidKey: GET /.well-known/parley/vapid-public-key, the region's VAPID
// public key as text (404 when Web Push is off).
func (a *API) vapidKey(c *call) error {
	info, err := a.core.RegionInfo(c.ctx)
	if err != nil {
		return err
	}
	if info.GetVapidPublicKey() == "" {
		return syncproto.Errorf(syncpb.Code_CODE_NOT_FOUND, "web push is not configured on this server")
	}
	h := c.w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "public, max-age=300")
	c.w.WriteHeader(http.StatusOK)
	_, _ = c.w.Write([]byte(info.GetVapidPublicKey() + "\n"))
	return nil
}
