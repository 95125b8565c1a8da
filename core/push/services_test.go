package push

import (
	"encoding/json"
	"testing"

	"github.com/parley-chat/parley/core/push/pushtest"
)

// webPushService adapts pushtest's Web Push service to the harness.
type webPushService struct {
	t *testing.T
	s *pushtest.Service
}

func newPushService(t *testing.T, vapid VAPID) *webPushService {
	return &webPushService{t: t, s: pushtest.New(t, vapid.Public)}
}

func (w *webPushService) subscribe(id string) Target {
	sub := w.s.Subscribe(id)
	return Target{Kind: KindWebPush, Endpoint: sub.Endpoint, P256dh: sub.P256dh, Auth: sub.Auth}
}

func (w *webPushService) answer(id string, statuses ...int) { w.s.Answer(id, statuses...) }

func (w *webPushService) received() []Notification {
	var out []Notification
	for _, p := range w.s.Received() {
		var n Notification
		if err := json.Unmarshal(p.Payload, &n); err != nil {
			w.t.Fatalf("payload %s: %v", p.Payload, err)
		}
		out = append(out, n)
	}
	return out
}
