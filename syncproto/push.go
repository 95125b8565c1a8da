package syncproto

import (
	"strings"

	"github.com/parley-chat/parley/syncproto/syncpb"
)

// VAPIDKeyPath is where an edge serves the region's VAPID public key
// (text/plain, base64url), for a browser's PushManager.subscribe
// applicationServerKey.
const VAPIDKeyPath = "/.well-known/parley/vapid-public-key"

// Limits of push registration (docs/push.md).
const (
	// MaxPushEndpointLen bounds a Web Push endpoint URL.
	MaxPushEndpointLen = 2048
	// MaxPushKeyLen bounds a subscription key, a gateway push key or an
	// app id.
	MaxPushKeyLen = 512
	// MaxGatewayNameLen bounds a gateway's name.
	MaxGatewayNameLen = 64
)

// ValidateSetPushTarget checks a SetPushTargetRequest: a valid device id,
// and a target (or if_target) that is a Web Push subscription with an
// endpoint and both keys, or a gateway name and push key, each within its
// limit. Whether the endpoint is an acceptable address and the gateway
// one the operator configured is the core's to check.
func ValidateSetPushTarget(r *syncpb.SetPushTargetRequest) error {
	switch {
	case r == nil:
		return Errorf(syncpb.Code_CODE_MALFORMED, "set_push_target request is missing")
	case !ValidID(r.DeviceId):
		return invalid("device_id is not a valid id")
	}
	for _, t := range []*syncpb.PushTarget{r.Target, r.IfTarget} {
		if t == nil {
			continue
		}
		if err := checkPushTarget(t); err != nil {
			return err
		}
	}
	return nil
}

func checkPushTarget(t *syncpb.PushTarget) error {
	switch x := t.Target.(type) {
	case *syncpb.PushTarget_WebPush:
		w := x.WebPush
		switch {
		case w == nil || w.Endpoint == "" || w.P256Dh == "" || w.Auth == "":
			return invalid("a web push subscription needs an endpoint and the p256dh and auth keys")
		case len(w.Endpoint) > MaxPushEndpointLen:
			return Errorf(syncpb.Code_CODE_TOO_LARGE, "endpoint is longer than %d bytes", MaxPushEndpointLen)
		case len(w.P256Dh) > MaxPushKeyLen || len(w.Auth) > MaxPushKeyLen:
			return Errorf(syncpb.Code_CODE_TOO_LARGE, "a key is longer than %d bytes", MaxPushKeyLen)
		case !strings.HasPrefix(w.Endpoint, "https://") && !strings.HasPrefix(w.Endpoint, "http://"):
			return invalid("endpoint must be an https URL")
		}
	case *syncpb.PushTarget_Gateway:
		g := x.Gateway
		switch {
		case g == nil || g.Gateway == "" || g.PushKey == "":
			return invalid("a gateway target needs a gateway and a push key")
		case len(g.Gateway) > MaxGatewayNameLen || !cleanText(g.Gateway):
			return invalid("gateway must be a name of at most %d characters", MaxGatewayNameLen)
		case len(g.PushKey) > MaxPushKeyLen || len(g.AppId) > MaxPushKeyLen:
			return Errorf(syncpb.Code_CODE_TOO_LARGE, "push key or app id is longer than %d bytes", MaxPushKeyLen)
		}
	default:
		return invalid("target must be a web push subscription or a gateway")
	}
	return nil
}

// ValidateSetNotifyLevel checks a SetNotifyLevelRequest: a valid conv_id
// and a known level.
func ValidateSetNotifyLevel(r *syncpb.SetNotifyLevelRequest) error {
	switch {
	case r == nil:
		return Errorf(syncpb.Code_CODE_MALFORMED, "set_notify_level request is missing")
	case !ValidID(r.ConvId):
		return invalid("conv_id is not a valid id")
	case r.Level < syncpb.NotifyLevel_NOTIFY_LEVEL_ALL || r.Level > syncpb.NotifyLevel_NOTIFY_LEVEL_NONE:
		return invalid("level must be all, mentions or none")
	}
	return nil
}
