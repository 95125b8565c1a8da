package httpapi

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/syncproto/syncpb"
)

// revocationLog records what the API hands to Config.Revoked.
type revocationLog struct {
	mu   sync.Mutex
	revs []*syncpb.Revocation
}

func (l *revocationLog) add(rv *syncpb.Revocation) {
	l.mu.Lock()
	l.revs = append(l.revs, rv)
	l.mu.Unlock()
}

func (l *revocationLog) all() []*syncpb.Revocation {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.revs)
}

func TestChangePassword(t *testing.T) {
	revoked := &revocationLog{}
	e := newTestEnv(t, func(c *Config) { c.Revoked = revoked.add })
	phone := e.newUser("acme", "ana")
	tablet := e.login("acme", "ana")
	path := "/v1/me/password"
	for name, tc := range map[string]struct {
		body   map[string]string
		status int
		code   string
	}{
		"wrong current password": {map[string]string{"current_password": "nope-nope", "new_password": "a new password"}, 403, "forbidden"},
		"no current password":    {map[string]string{"new_password": "a new password"}, 400, "invalid_argument"},
		"new password too short": {map[string]string{"current_password": phone.password, "new_password": "short"}, 400, "invalid_argument"},
	} {
		if r := e.do("POST", path, phone.AccessToken, tc.body); r.status != tc.status || r.errCode(t) != tc.code {
			t.Errorf("%s: %d %s, want %d %s", name, r.status, r.body, tc.status, tc.code)
		}
	}
	if r := e.do("POST", path, "", map[string]string{}); r.status != 401 {
		t.Fatalf("without a token: %d", r.status)
	}
	e.want(e.do("POST", path, phone.AccessToken, map[string]string{"current_password": phone.password, "new_password": "a new password"}), 204, nil)

	// The tablet's tokens are revoked, the phone's are not.
	revs := revoked.all()
	if len(revs) != 1 || !slices.Equal(revs[0].DeviceIds, []string{tablet.Device.ID}) || revs[0].Reason != syncpb.RevocationReason_REVOCATION_REASON_PASSWORD_CHANGED {
		t.Fatalf("revoked %v", revs)
	}
	if r := e.do("POST", "/v1/sessions/refresh", "", map[string]string{"refresh_token": tablet.RefreshToken}); r.status != 401 || r.errCode(t) != "revoked" {
		t.Fatalf("the tablet's refresh: %d %s, want 401 revoked", r.status, r.body)
	}
	e.want(e.do("POST", "/v1/sessions/refresh", "", map[string]string{"refresh_token": phone.RefreshToken}), 200, nil)
	// The old password no longer logs in; the new one does.
	if r := e.do("POST", "/v1/sessions", "", map[string]string{"workspace": "acme", "username": "ana", "password": phone.password}); r.status != 401 {
		t.Fatalf("log-in with the old password: %d", r.status)
	}
	e.clock.Add(time.Second)
	var again sessionResponse
	e.want(e.do("POST", "/v1/sessions", "", map[string]string{"workspace": "acme", "username": "ana", "password": "a new password", "device_id": tablet.Device.ID}), 200, &again)
	e.want(e.do("POST", "/v1/sessions/refresh", "", map[string]string{"refresh_token": again.RefreshToken}), 200, nil)
}

func TestRevokeDeviceHandsOverTheRevocation(t *testing.T) {
	revoked := &revocationLog{}
	e := newTestEnv(t, func(c *Config) { c.Revoked = revoked.add })
	phone := e.newUser("acme", "ana")
	e.want(e.do("DELETE", "/v1/devices/"+phone.Device.ID, phone.AccessToken, nil), 200, nil)
	if revs := revoked.all(); len(revs) != 1 || !slices.Equal(revs[0].DeviceIds, []string{phone.Device.ID}) {
		t.Fatalf("revoked %v", revs)
	}
}

// TestChangePasswordThrottled: guessing the current password with a stolen
// access token is held back like guessing at log-in (429 with Retry-After,
// before the password is checked); once the wait is over the real password
// works, and that clears the delay.
func TestChangePasswordThrottled(t *testing.T) {
	e := newTestEnv(t, nil)
	ana := e.newUser("acme", "ana")
	path := "/v1/me/password"
	var waits []time.Duration
	for i := 0; len(waits) < 3; i++ {
		if i == 50 {
			t.Fatalf("50 wrong current passwords: only %d throttled", len(waits))
		}
		r := e.do("POST", path, ana.AccessToken, map[string]string{"current_password": "guess-guess", "new_password": "a new password"})
		switch r.status {
		case 403:
		case 429:
			waits = append(waits, retryAfter(t, r))
			e.clock.Add(waits[len(waits)-1])
		default:
			t.Fatalf("guess %d: %d %s", i, r.status, r.body)
		}
	}
	if rec := e.logs.find(func(m map[string]any) bool {
		return m["msg"] == "password change with a wrong current password" && m["user"] == ana.User.ID && m["ip"] != nil
	}); rec == nil {
		t.Fatal("no wrong current password logged with the user and the IP")
	}
	// The wait is over: a guess is checked again, and fails ...
	if r := e.do("POST", path, ana.AccessToken, map[string]string{"current_password": "guess-guess", "new_password": "a new password"}); r.status != 403 {
		t.Fatalf("a guess after the wait: %d %s", r.status, r.body)
	}
	// ... so the next attempt is held back before its password is
	// checked, even the right one ...
	r := e.do("POST", path, ana.AccessToken, map[string]string{"current_password": ana.password, "new_password": "a new password"})
	wait := retryAfter(t, r)
	// ... until the wait is over.
	e.clock.Add(wait)
	e.want(e.do("POST", path, ana.AccessToken, map[string]string{"current_password": ana.password, "new_password": "a new password"}), 204, nil)
	if r := e.do("POST", path, ana.AccessToken, map[string]string{"current_password": "typo-typo", "new_password": "another one"}); r.status != 403 {
		t.Fatalf("after a success, a wrong password: %d %s", r.status, r.body)
	}
}
