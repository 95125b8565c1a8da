package httpapi

import (
	"strings"
	"testing"

	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

func TestPushRegistration(t *testing.T) {
	e := newTestEnv(t, nil)
	e.register("acme", "ana")
	ana := e.login("acme", "ana")
	e.register("acme", "bo")
	bo := e.login("acme", "bo")
	path := "/v1/devices/" + ana.Device.ID + "/push"
	sub := map[string]any{"web_push": map[string]any{"endpoint": "https://push.example/abc",
		"keys": map[string]string{"p256dh": "BPk", "auth": "au"}}}

	e.want(e.do("PUT", path, ana.AccessToken, sub), 204, nil)
	e.core.mu.Lock()
	got := e.core.pushTo[ana.Device.ID].GetWebPush()
	e.core.mu.Unlock()
	if got.GetEndpoint() != "https://push.example/abc" || got.GetP256Dh() != "BPk" || got.GetAuth() != "au" {
		t.Fatalf("stored target %v", got)
	}
	e.want(e.do("PUT", path, ana.AccessToken, map[string]any{"gateway": map[string]string{"gateway": "fcm", "push_key": "k", "app_id": "a"}}), 204, nil)
	e.want(e.do("DELETE", path, ana.AccessToken, nil), 204, nil)
	e.core.mu.Lock()
	n := len(e.core.pushTo)
	e.core.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d targets after DELETE", n)
	}
	for _, tc := range []struct {
		name  string
		token string
		body  any
		code  string
	}{
		{"both kinds", ana.AccessToken, map[string]any{"web_push": sub["web_push"], "gateway": map[string]string{"gateway": "fcm", "push_key": "k"}}, "invalid_argument"},
		{"neither", ana.AccessToken, map[string]any{}, "invalid_argument"},
		{"no keys", ana.AccessToken, map[string]any{"web_push": map[string]any{"endpoint": "https://push.example/x"}}, "invalid_argument"},
		{"not a url", ana.AccessToken, map[string]any{"web_push": map[string]any{"endpoint": "javascript:x", "keys": map[string]string{"p256dh": "k", "auth": "a"}}}, "invalid_argument"},
		{"another user's device", bo.AccessToken, sub, "not_found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if r := e.do("PUT", path, tc.token, tc.body); r.errCode(t) != tc.code {
				t.Fatalf("status %d %s, want %s", r.status, r.body, tc.code)
			}
		})
	}
}

func TestNotifyLevel(t *testing.T) {
	e := newTestEnv(t, nil)
	e.register("acme", "ana")
	ana := e.login("acme", "ana")
	cv := e.conv(ana, map[string]any{"type": "group", "title": "t"}, 201)
	path := "/v1/conversations/" + cv.ID + "/notify"
	e.want(e.do("PUT", path, ana.AccessToken, map[string]string{"level": "mentions"}), 204, nil)
	e.core.mu.Lock()
	level := e.core.levels[cv.ID+"/"+ana.User.ID]
	e.core.mu.Unlock()
	if level != syncpb.NotifyLevel_NOTIFY_LEVEL_MENTIONS {
		t.Fatalf("level %v", level)
	}
	if r := e.do("PUT", path, ana.AccessToken, map[string]string{"level": "loud"}); r.errCode(t) != "invalid_argument" {
		t.Fatalf("bad level: %d %s", r.status, r.body)
	}
}

func TestVAPIDKey(t *testing.T) {
	e := newTestEnv(t, nil)
	if r := e.do("GET", syncproto.VAPIDKeyPath, "", nil); r.status != 404 {
		t.Fatalf("without web push: %d %s", r.status, r.body)
	}
	e.core.mu.Lock()
	e.core.vapid = "BKey"
	e.core.mu.Unlock()
	r := e.do("GET", syncproto.VAPIDKeyPath, "", nil)
	if r.status != 200 || strings.TrimSpace(string(r.body)) != "BKey" || !strings.HasPrefix(r.header.Get("Content-Type"), "text/plain") {
		t.Fatalf("key: %d %q %v", r.status, r.body, r.header)
	}
}
