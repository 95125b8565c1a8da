package auth

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

func newTestRevocations(t *testing.T, clock *fakeClock, max int) *Revocations {
	t.Helper()
	r, err := NewRevocations(RevocationsConfig{TTL: time.Minute, MaxEntries: max, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	r.SetReady(true)
	return r
}

func revokeDevice(at time.Time, devices ...string) *syncpb.Revocation {
	return &syncpb.Revocation{WorkspaceId: "w_acme", UserId: "u_alice", DeviceIds: devices, NotBeforeUnixMs: syncproto.NotBeforeAll,
		Reason: syncpb.RevocationReason_REVOCATION_REASON_DEVICE_REVOKED, RevokedUnixMs: at.UnixMilli()}
}

func passwordChanged(at time.Time, devices ...string) *syncpb.Revocation {
	return &syncpb.Revocation{WorkspaceId: "w_acme", UserId: "u_alice", DeviceIds: devices, NotBeforeUnixMs: at.UnixMilli(),
		Reason: syncpb.RevocationReason_REVOCATION_REASON_PASSWORD_CHANGED, RevokedUnixMs: at.UnixMilli()}
}

// Verify refuses the tokens a revocation names, from the moment it is
// added until they would have expired anyway, and only those.
func TestVerifyRevoked(t *testing.T) {
	clock := &fakeClock{t: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}
	revs := newTestRevocations(t, clock, 0)
	a, err := New(Config{Keys: []Key{testKey("k1", 1)}, Argon2: tiny, AccessTTL: time.Minute, Revocations: revs, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	issue := func(typ TokenType, dev string) string {
		tok, _, err := a.Issue(typ, Identity{WorkspaceID: "w_acme", UserID: "u_alice", DeviceID: dev})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	phone, phoneRefresh, tablet, laptop := issue(Access, "d_phone"), issue(Refresh, "d_phone"), issue(Access, "d_tablet"), issue(Access, "d_laptop")
	clock.Add(time.Second)
	if !revs.Add(revokeDevice(clock.Now(), "d_phone")) || !revs.Add(passwordChanged(clock.Now(), "d_tablet")) {
		t.Fatal("new revocations changed nothing")
	}
	if revs.Add(revokeDevice(clock.Now(), "d_phone")) {
		t.Fatal("a revocation heard again changed the set")
	}
	clock.Add(time.Millisecond)
	tabletAfter := issue(Access, "d_tablet") // after the password change
	for name, tc := range map[string]struct {
		tok  string
		typ  TokenType
		want *syncproto.Error
	}{
		"revoked device":                {phone, Access, syncproto.ErrRevoked},
		"revoked device, refresh token": {phoneRefresh, Refresh, syncproto.ErrRevoked},
		"issued before the change":      {tablet, Access, syncproto.ErrRevoked},
		"issued after the change":       {tabletAfter, Access, nil},
		"another device":                {laptop, Access, nil},
	} {
		_, err := a.Verify(tc.tok, tc.typ)
		if (tc.want == nil) != (err == nil) || (tc.want != nil && !errors.Is(err, tc.want)) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
	}
	revs.SetReady(false)
	if _, err := a.Verify(laptop, Access); !errors.Is(err, syncproto.ErrUnavailable) || syncproto.AsError(err).RetryAfter == 0 {
		t.Errorf("not ready: %v, want UNAVAILABLE with a retry hint", err)
	}
	revs.SetReady(true)
	// Past the access lifetime and the skew Verify allows, the entry goes.
	clock.Add(time.Minute + maxFutureSkew)
	if revs.Revoked("d_phone", clock.Now().Add(-time.Hour)) {
		t.Fatal("the revocation outlived every token it names")
	}
	revs.Add(revokeDevice(clock.Now(), "d_other"))
	if n := revs.Len(); n != 1 {
		t.Fatalf("%d entries after expiry, want 1", n)
	}
	// A revocation whose tokens have all expired is not added.
	if revs.Add(revokeDevice(clock.Now().Add(-time.Hour), "d_old")) || revs.Revoked("d_old", time.Time{}) {
		t.Fatal("a stale revocation was added")
	}
}

// A later password change moves a device's not-before on; an earlier one
// heard late does not move it back.
func TestRevocationsKeepLatestNotBefore(t *testing.T) {
	clock := &fakeClock{t: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}
	revs := newTestRevocations(t, clock, 0)
	t0 := clock.Now()
	revs.Add(passwordChanged(t0.Add(2*time.Second), "d_tablet"))
	if revs.Add(passwordChanged(t0.Add(time.Second), "d_tablet")) {
		t.Fatal("an earlier not-before changed the set")
	}
	if !revs.Revoked("d_tablet", t0.Add(1500*time.Millisecond)) || revs.Revoked("d_tablet", t0.Add(2*time.Second)) {
		t.Fatal("not-before is not the latest")
	}
	if !revs.Add(revokeDevice(t0.Add(3*time.Second), "d_tablet")) || !revs.Revoked("d_tablet", t0.Add(time.Hour)) {
		t.Fatal("revoking the device after a password change")
	}
}

// The set holds at most MaxEntries devices, dropping the oldest first.
func TestRevocationsBounded(t *testing.T) {
	clock := &fakeClock{t: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}
	revs := newTestRevocations(t, clock, 100)
	for i := range 1000 {
		revs.Add(revokeDevice(clock.Now(), fmt.Sprintf("d_%d", i)))
		revs.Add(passwordChanged(clock.Now(), fmt.Sprintf("d_%d", i))) // stale queue items too
		clock.Add(time.Millisecond)
	}
	if n := revs.Len(); n != 100 {
		t.Fatalf("%d entries, want 100", n)
	}
	if len(revs.order) > 2*revs.max+1 {
		t.Fatalf("queue of %d for %d entries", len(revs.order), revs.max)
	}
	if !revs.Revoked("d_999", time.Time{}) || revs.Revoked("d_0", time.Time{}) {
		t.Fatal("the newest entries were not kept")
	}
}

func TestRevocationsConfigValidate(t *testing.T) {
	for _, cfg := range []RevocationsConfig{{TTL: -1}, {MaxEntries: -1}} {
		if _, err := NewRevocations(cfg); err == nil {
			t.Errorf("%+v accepted", cfg)
		}
	}
	r, err := NewRevocations(RevocationsConfig{})
	if err != nil || r.Ready() {
		t.Fatalf("a new set: %v, ready %v; want not ready", err, r.Ready())
	}
}
