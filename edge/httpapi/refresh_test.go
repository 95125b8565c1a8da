package httpapi

import (
	"testing"
	"time"

	"github.com/parley-chat/parley/edge/auth"
)

func (e *testEnv) refresh(token string) result {
	e.t.Helper()
	return e.do("POST", "/v1/sessions/refresh", "", map[string]string{"refresh_token": token})
}

// rotate refreshes with token, which must work, and returns the new pair.
func (e *testEnv) rotate(token string) sessionResponse {
	e.t.Helper()
	var s sessionResponse
	e.want(e.refresh(token), 200, &s)
	return s
}

func (e *testEnv) wantRefused(r result, code string) {
	e.t.Helper()
	if r.status != 401 || r.errCode(e.t) != code {
		e.t.Fatalf("refresh answered %d %s, want 401 %s", r.status, r.body, code)
	}
}

// advanceCore moves the fake core's clock (the directory leader's).
func (e *testEnv) advanceCore(d time.Duration) {
	e.core.mu.Lock()
	e.core.now += d.Milliseconds()
	e.core.mu.Unlock()
}

// deviceRevoked reports whether the directory has device id revoked, as
// other, a session of the device's user, lists it.
func (e *testEnv) deviceRevoked(other session, id string) bool {
	e.t.Helper()
	var devs devicesResponse
	e.want(e.do("GET", "/v1/devices", other.AccessToken, nil), 200, &devs)
	for _, d := range devs.Devices {
		if d.ID == id {
			return d.Revoked
		}
	}
	e.t.Fatalf("device %s not listed", id)
	return false
}

// Each refresh token works once: the refresh answers the next one, and a
// used one presented after the grace revokes the device, so that neither
// it nor the newest token refreshes again.
func TestRefreshRotatesAndDetectsReuse(t *testing.T) {
	e := newTestEnv(t, nil)
	s := e.newUser("acme", "ana")
	laptop := e.login("acme", "ana")

	r2 := e.rotate(s.RefreshToken)
	if r2.RefreshToken == s.RefreshToken || r2.Device == nil || r2.Device.ID != s.Device.ID {
		t.Fatalf("refresh answered %+v", r2)
	}
	e.want(e.do("GET", "/v1/me", r2.AccessToken, nil), 200, nil)
	r3 := e.rotate(r2.RefreshToken)

	e.advanceCore(e.auth.RefreshGrace() + time.Second)
	e.wantRefused(e.refresh(r2.RefreshToken), "refresh_token_reused")
	if !e.deviceRevoked(laptop, s.Device.ID) {
		t.Fatal("reuse did not revoke the device")
	}
	if e.deviceRevoked(laptop, laptop.Device.ID) {
		t.Fatal("reuse revoked the user's other device")
	}
	if e.logs.find(func(r map[string]any) bool {
		return r["msg"] == "refresh token reused; revoking the device" && r["device"] == s.Device.ID
	}) == nil {
		t.Error("reuse not logged")
	}
	// The newest token and the oldest are refused too.
	e.wantRefused(e.refresh(r3.RefreshToken), "unauthenticated")
	e.wantRefused(e.refresh(s.RefreshToken), "unauthenticated")
	// The other device's session is untouched.
	e.rotate(laptop.RefreshToken)
}

// Within the grace the replaced token gets the same refresh token again,
// and the family goes on from it; after the grace it is reuse.
func TestRefreshGrace(t *testing.T) {
	e := newTestEnv(t, nil)
	s := e.newUser("acme", "ana")
	r2 := e.rotate(s.RefreshToken)
	e.clock.Add(time.Second)
	e.advanceCore(e.auth.RefreshGrace() - time.Second)
	again := e.rotate(s.RefreshToken)
	if again.RefreshToken != r2.RefreshToken {
		t.Fatal("a retry within the grace got another refresh token")
	}
	if again.AccessToken == r2.AccessToken {
		t.Fatal("a retry within the grace got the same access token")
	}
	e.want(e.do("GET", "/v1/me", again.AccessToken, nil), 200, nil)
	r3 := e.rotate(again.RefreshToken)
	if r3.RefreshToken == r2.RefreshToken {
		t.Fatal("no rotation after a repeat")
	}
	// The first token is now two behind: reuse, whatever the time.
	e.wantRefused(e.refresh(s.RefreshToken), "refresh_token_reused")
	e.wantRefused(e.refresh(r3.RefreshToken), "unauthenticated")
}

// With the grace turned off, presenting the replaced token at once is
// reuse; the edge's own retry of a rotation whose answer the core lost is
// not.
func TestRefreshNoGrace(t *testing.T) {
	e := newTestEnvAuth(t, func(c *auth.Config) { c.RefreshGrace = -1 }, nil)
	s := e.newUser("acme", "ana")

	e.core.mu.Lock()
	e.core.dropRotate = 1
	e.core.mu.Unlock()
	r2 := e.rotate(s.RefreshToken) // corerpc retries the same rotation
	e.core.mu.Lock()
	if gen := e.core.devices[s.Device.ID].Refresh.Generation; gen != 2 {
		t.Errorf("generation %d after one rotation retried, want 2", gen)
	}
	e.core.mu.Unlock()

	e.wantRefused(e.refresh(s.RefreshToken), "refresh_token_reused")
	e.wantRefused(e.refresh(r2.RefreshToken), "unauthenticated")
}

// A revoked device's tokens are refused, and so are tokens that belong to
// no family (issued outside a log-in).
func TestRefreshRefused(t *testing.T) {
	e := newTestEnv(t, nil)
	s := e.newUser("acme", "ana")
	e.want(e.do("DELETE", "/v1/devices/"+s.Device.ID, s.AccessToken, nil), 200, nil)
	e.wantRefused(e.refresh(s.RefreshToken), "unauthenticated")

	bo := e.newUser("acme", "bo")
	loose, _, err := e.auth.Issue(auth.Refresh, auth.Identity{WorkspaceID: bo.User.WorkspaceID, UserID: bo.User.ID, DeviceID: bo.Device.ID})
	if err != nil {
		t.Fatal(err)
	}
	e.wantRefused(e.refresh(loose), "unauthenticated")
	e.rotate(bo.RefreshToken)
}
