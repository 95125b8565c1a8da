package session

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/edge/auth"
	"github.com/parley-chat/parley/internal/poll"
	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// testClock is a settable clock for auth and the session server.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// newAccessEnv is an env whose tokens live a minute on clock, with a
// revocation set, and a sweep every 75 ms.
func newAccessEnv(t *testing.T) (*env, *testClock, *auth.Revocations) {
	t.Helper()
	clock := &testClock{t: time.Now()}
	revs, err := auth.NewRevocations(auth.RevocationsConfig{TTL: time.Minute, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	revs.SetReady(true)
	e := newEnvAuth(t, func(c *auth.Config) { c.AccessTTL, c.Now, c.Revocations = time.Minute, clock.Now, revs },
		func(c *Config) { c.Now, c.KeepAlive = clock.Now, time.Second })
	return e, clock, revs
}

// sweeps waits until the server has swept n more times.
func (e *env) sweeps(n uint64) {
	e.t.Helper()
	want := e.srv.swept.Load() + n
	poll.Until(e.t, 10*time.Second, fmt.Sprintf("%d sweeps", n), func() bool { return e.srv.swept.Load() >= want })
}

// ping checks that the session still answers.
func ping(t *testing.T, p *pipeConn, id uint64) {
	t.Helper()
	p.send(&syncpb.Frame{Id: id, Body: &syncpb.Frame_Ping{Ping: &syncpb.Ping{Nonce: id}}})
	for {
		f := p.next(t)
		if f.Id == id {
			if f.GetPong() == nil {
				t.Fatalf("ping answered %v", f)
			}
			return
		}
		if f.GetError() != nil {
			t.Fatalf("the session ended: %v", f)
		}
	}
}

// until reads frames until one satisfies ok (pushes in between are skipped).
func until(t *testing.T, p *pipeConn, ok func(*syncpb.Frame) bool) *syncpb.Frame {
	t.Helper()
	for {
		if f := p.next(t); ok(f) {
			return f
		}
	}
}

func endsWith(t *testing.T, p *pipeConn, done chan error, code syncpb.Code) {
	t.Helper()
	wantError(t, until(t, p, func(f *syncpb.Frame) bool { return f.GetError() != nil }), 0, code)
	select {
	case err := <-done:
		if syncproto.CodeOf(err) != code {
			t.Fatalf("Serve returned %v, want %v", err, code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the session did not end within 10s")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if syncproto.CodeOf(p.err) != code {
		t.Fatalf("connection closed with %v, want %v", p.err, code)
	}
}

func TestSessionEndsWhenTokenExpires(t *testing.T) {
	e, clock, _ := newAccessEnv(t)
	p, done := e.start(16)
	p.send(hello(e.token("u_a", "d_a"), "d_a", nil))
	w := p.next(t).GetWelcome()
	if want := clock.Now().Add(time.Minute).UnixMilli(); w.GetTokenExpiresUnixMs() != want {
		t.Fatalf("welcome says the token expires at %d, want %d", w.GetTokenExpiresUnixMs(), want)
	}
	e.sweeps(2)
	ping(t, p, 2)
	clock.Add(time.Minute)
	endsWith(t, p, done, syncpb.Code_CODE_TOKEN_EXPIRED)
}

func TestReauthExtendsSession(t *testing.T) {
	e, clock, _ := newAccessEnv(t)
	p, done := e.start(16)
	p.send(hello(e.token("u_a", "d_a"), "d_a", nil))
	if p.next(t).GetWelcome() == nil {
		t.Fatal("no welcome")
	}
	reauth := func(id uint64, tok string) *syncpb.Frame {
		p.send(&syncpb.Frame{Id: id, Body: &syncpb.Frame_Reauth{Reauth: &syncpb.Reauth{AccessToken: tok}}})
		return until(t, p, func(f *syncpb.Frame) bool { return f.Id == id })
	}
	// Tokens of another device or user, and bad ones, are refused; the
	// session carries on.
	wantError(t, reauth(2, e.token("u_a", "d_b")), 2, syncpb.Code_CODE_UNAUTHENTICATED)
	wantError(t, reauth(3, e.token("u_b", "d_a")), 3, syncpb.Code_CODE_UNAUTHENTICATED)
	wantError(t, reauth(4, "garbage"), 4, syncpb.Code_CODE_UNAUTHENTICATED)
	wantError(t, reauth(5, ""), 5, syncpb.Code_CODE_UNAUTHENTICATED)
	clock.Add(30 * time.Second)
	a := reauth(6, e.token("u_a", "d_a")).GetReauthAck()
	if want := clock.Now().Add(time.Minute).UnixMilli(); a.GetTokenExpiresUnixMs() != want || a.GetServerTimeUnixMs() != clock.Now().UnixMilli() {
		t.Fatalf("reauth ack %v, want expiry %d", a, want)
	}
	// Past the first token's expiry, within the second's: still up.
	clock.Add(40 * time.Second)
	e.sweeps(2)
	ping(t, p, 7)
	clock.Add(20 * time.Second)
	endsWith(t, p, done, syncpb.Code_CODE_TOKEN_EXPIRED)
}

func TestRevokeEndsSessions(t *testing.T) {
	e, clock, revs := newAccessEnv(t)
	start := func(user, device string) (*pipeConn, chan error) {
		p, done := e.start(16)
		p.send(hello(e.token(user, device), device, nil))
		if p.next(t).GetWelcome() == nil {
			t.Fatal("no welcome")
		}
		return p, done
	}
	phone, phoneDone := start("u_a", "d_phone")
	tablet, tabletDone := start("u_a", "d_tablet")
	other, _ := start("u_b", "d_other")
	revoke := func(rv *syncpb.Revocation) int {
		revs.Add(rv) // as the edge's revocation follower does
		return e.srv.Revoke(rv)
	}
	now := clock.Now().UnixMilli()
	if n := revoke(&syncpb.Revocation{WorkspaceId: "w_1", UserId: "u_a", DeviceIds: []string{"d_phone"}, NotBeforeUnixMs: syncproto.NotBeforeAll,
		Reason: syncpb.RevocationReason_REVOCATION_REASON_DEVICE_REVOKED, RevokedUnixMs: now}); n != 1 {
		t.Fatalf("revoking the phone ended %d sessions, want 1", n)
	}
	endsWith(t, phone, phoneDone, syncpb.Code_CODE_REVOKED)
	ping(t, tablet, 2)
	// A token of the revoked device no longer opens a session.
	p, done := e.start(8)
	p.send(hello(e.token("u_a", "d_phone"), "d_phone", nil))
	wantError(t, p.next(t), 1, syncpb.Code_CODE_REVOKED)
	if err := <-done; !errors.Is(err, syncproto.ErrRevoked) {
		t.Fatalf("Serve returned %v", err)
	}
	// A password change revokes tokens issued before it: the tablet's
	// session ends; a token issued after opens one.
	clock.Add(time.Second)
	if n := revoke(&syncpb.Revocation{WorkspaceId: "w_1", UserId: "u_a", DeviceIds: []string{"d_tablet"}, NotBeforeUnixMs: clock.Now().UnixMilli(),
		Reason: syncpb.RevocationReason_REVOCATION_REASON_PASSWORD_CHANGED, RevokedUnixMs: clock.Now().UnixMilli()}); n != 1 {
		t.Fatalf("the password change ended %d sessions, want 1", n)
	}
	endsWith(t, tablet, tabletDone, syncpb.Code_CODE_REVOKED)
	again, _ := start("u_a", "d_tablet")
	ping(t, again, 2)
	ping(t, other, 2)
}
