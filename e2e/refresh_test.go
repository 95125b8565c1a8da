package e2e_test

// End-to-end tests of refresh-token rotation: a real serve system (the
// directory's Raft group on Badger), refreshes over real HTTP.

import (
	"encoding/json"
	"sync"
	"testing"

	"github.com/parley-chat/parley/client/rest"
	"github.com/parley-chat/parley/syncproto/syncpb"
	"github.com/parley-chat/parley/system"
)

type refreshed struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
}

// refresh presents token at POST /v1/sessions/refresh.
func (s *testSystem) refresh(t *testing.T, token string) (raw, refreshed) {
	t.Helper()
	r := s.do(t, "POST", "/v1/sessions/refresh", "", mustJSON(t, map[string]string{"refresh_token": token}))
	var out refreshed
	if r.status == 200 {
		if err := json.Unmarshal(r.body, &out); err != nil || out.RefreshToken == "" || out.AccessToken == "" {
			t.Fatalf("refresh answered %s", r.body)
		}
	}
	return r, out
}

// rotate refreshes with token, which must work.
func (s *testSystem) rotate(t *testing.T, token string) refreshed {
	t.Helper()
	r, out := s.refresh(t, token)
	if r.status != 200 {
		t.Fatalf("refresh: %d %s", r.status, r.body)
	}
	return out
}

func (s *testSystem) wantRefused(t *testing.T, token, code string) {
	t.Helper()
	if r, _ := s.refresh(t, token); r.status != 401 || r.code(t) != code {
		t.Fatalf("refresh answered %d %s, want 401 %s", r.status, r.body, code)
	}
}

// revoked reports whether the directory lists device id revoked, as
// GET /v1/devices answers another device of the user (access token).
func (s *testSystem) revoked(t *testing.T, access, id string) bool {
	t.Helper()
	r := s.do(t, "GET", "/v1/devices", access, nil)
	var out struct {
		Devices []rest.Device `json:"devices"`
	}
	if r.status != 200 || json.Unmarshal(r.body, &out) != nil {
		t.Fatalf("list devices: %d %s", r.status, r.body)
	}
	for _, d := range out.Devices {
		if d.ID == id {
			return d.Revoked
		}
	}
	t.Fatalf("device %s not listed", id)
	return false
}

// A used refresh token presented again revokes its device: neither the
// used token nor the newest refreshes again, and the directory lists the
// device revoked. The user's other device is untouched.
func TestAPIRefreshTokenReuseRevokesDevice(t *testing.T) {
	s := startTestSystem(t, "", nil)
	_, phone := s.User(t, "acme", "ana")
	laptop := rest.New(s.base)
	laptopS, err := laptop.Login(t.Context(), rest.LoginRequest{Workspace: "acme", Username: "ana", Password: testPassword, DeviceName: "laptop"})
	if err != nil {
		t.Fatal(err)
	}

	r2 := s.rotate(t, phone.RefreshToken)
	if r2.RefreshToken == phone.RefreshToken {
		t.Fatal("refresh answered the same refresh token")
	}
	if r := s.do(t, "GET", "/v1/me", r2.AccessToken, nil); r.status != 200 {
		t.Fatalf("new access token: %d %s", r.status, r.body)
	}
	r3 := s.rotate(t, r2.RefreshToken)

	// The first token again (two rotations ago, so past any grace).
	s.wantRefused(t, phone.RefreshToken, "refresh_token_reused")
	if !s.revoked(t, laptopS.AccessToken, phone.Device.ID) {
		t.Fatal("the directory does not list the device revoked")
	}
	// The revocation reaches every edge: the device's tokens are revoked.
	s.wantRefused(t, r3.RefreshToken, "revoked")
	s.wantRefused(t, r2.RefreshToken, "revoked")
	// A revoked device cannot be logged in as again.
	_, err = rest.New(s.base).Login(t.Context(), rest.LoginRequest{Workspace: "acme", Username: "ana", Password: testPassword, DeviceID: phone.Device.ID})
	if rest.Code(err) != syncpb.Code_CODE_FORBIDDEN {
		t.Fatalf("log-in as the revoked device: %v", err)
	}
	if s.revoked(t, laptopS.AccessToken, laptopS.Device.ID) {
		t.Fatal("the other device was revoked")
	}
	s.rotate(t, laptopS.RefreshToken)
}

// Concurrent refreshes with one token rotate it once. Without a grace,
// exactly one succeeds and the others are reuse, which revokes the device;
// with the default grace, all get the same new refresh token, and the
// family goes on from it.
func TestAPIConcurrentRefreshesRotateOnce(t *testing.T) {
	const racers = 8
	race := func(t *testing.T, s *testSystem, token string) (ok []refreshed, codes []string) {
		t.Helper()
		var mu sync.Mutex
		var wg sync.WaitGroup
		for range racers {
			wg.Go(func() {
				r, out := s.refresh(t, token)
				mu.Lock()
				defer mu.Unlock()
				if r.status == 200 {
					ok = append(ok, out)
				} else {
					codes = append(codes, r.code(t))
				}
			})
		}
		wg.Wait()
		return ok, codes
	}
	t.Run("no grace", func(t *testing.T) {
		s := startTestSystem(t, "", func(c *system.Config) { c.Edge.Auth.RefreshGrace = -1 })
		_, ana := s.User(t, "acme", "ana")
		ok, codes := race(t, s, ana.RefreshToken)
		if len(ok) != 1 {
			t.Fatalf("%d of %d refreshes succeeded, want 1 (refused: %v)", len(ok), racers, codes)
		}
		// The first loser finds the token reused and revokes the device;
		// a later one may find the device revoked already.
		reused := 0
		for _, c := range codes {
			switch c {
			case "refresh_token_reused":
				reused++
			case "unauthenticated", "revoked":
			default:
				t.Fatalf("a losing refresh answered %s", c)
			}
		}
		if reused == 0 {
			t.Fatalf("no losing refresh was told of reuse: %v", codes)
		}
		s.wantRefused(t, ok[0].RefreshToken, "revoked")
	})
	t.Run("grace", func(t *testing.T) {
		s := startTestSystem(t, "", nil)
		_, ana := s.User(t, "acme", "ana")
		ok, codes := race(t, s, ana.RefreshToken)
		if len(ok) != racers {
			t.Fatalf("%d of %d refreshes succeeded within the grace (refused: %v)", len(ok), racers, codes)
		}
		for _, o := range ok[1:] {
			if o.RefreshToken != ok[0].RefreshToken {
				t.Fatal("refreshes with one token got different refresh tokens")
			}
		}
		next := s.rotate(t, ok[0].RefreshToken)
		s.rotate(t, next.RefreshToken)
	})
}

// Rotation is durable: after a restart the tokens already replaced are
// reuse, and the newest goes on.
func TestAPIRefreshRotationSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	s := startTestSystem(t, dir, nil)
	_, phone := s.User(t, "acme", "ana")
	laptop, err := rest.New(s.base).Login(t.Context(), rest.LoginRequest{Workspace: "acme", Username: "ana", Password: testPassword, DeviceName: "laptop"})
	if err != nil {
		t.Fatal(err)
	}
	p2 := s.rotate(t, phone.RefreshToken)
	s.rotate(t, p2.RefreshToken)
	l2 := s.rotate(t, laptop.RefreshToken)
	l3 := s.rotate(t, l2.RefreshToken)

	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
	s = startTestSystem(t, dir, nil)

	l4 := s.rotate(t, l3.RefreshToken)
	s.wantRefused(t, phone.RefreshToken, "refresh_token_reused")
	if !s.revoked(t, l4.AccessToken, phone.Device.ID) {
		t.Fatal("the directory does not list the device revoked")
	}
	s.rotate(t, l4.RefreshToken)
}
