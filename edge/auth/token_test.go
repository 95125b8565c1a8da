package auth

import (
	"bytes"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/syncproto"
)

// fakeClock is a settable clock for Config.Now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func testKey(id string, fill byte) Key {
	return Key{ID: id, Secret: bytes.Repeat([]byte{fill}, MinSecretLen)}
}

func newTestAuth(t testing.TB, now func() time.Time, keys ...Key) *Auth {
	t.Helper()
	if len(keys) == 0 {
		keys = []Key{testKey("k1", 1)}
	}
	a, err := New(Config{Keys: keys, Argon2: tiny, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

var alice = Identity{WorkspaceID: "w_acme", UserID: "u_alice", DeviceID: "d_phone"}

func TestVerify(t *testing.T) {
	clock := &fakeClock{t: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}
	a := newTestAuth(t, clock.Now)
	access, _, err := a.Issue(Access, alice)
	if err != nil {
		t.Fatal(err)
	}
	refresh, _, err := a.Issue(Refresh, alice)
	if err != nil {
		t.Fatal(err)
	}
	other := newTestAuth(t, clock.Now, testKey("k1", 2)) // same id, other secret
	forged, _, err := other.Issue(Access, alice)
	if err != nil {
		t.Fatal(err)
	}
	payload, mac, _ := strings.Cut(access, ".")
	flip := func(s string) string {
		b := []byte(s)
		if b[3] == 'A' {
			b[3] = 'B'
		} else {
			b[3] = 'A'
		}
		return string(b)
	}

	for _, tc := range []struct {
		name    string
		token   string
		want    TokenType
		advance time.Duration
		code    error // nil means valid
	}{
		{"access ok", access, Access, 0, nil},
		{"refresh ok", refresh, Refresh, 0, nil},
		{"refresh is not access", refresh, Access, 0, syncproto.ErrUnauthenticated},
		{"access is not refresh", access, Refresh, 0, syncproto.ErrUnauthenticated},
		{"just before expiry", access, Access, DefaultAccessTTL - time.Millisecond, nil},
		{"at expiry", access, Access, DefaultAccessTTL, syncproto.ErrTokenExpired},
		{"refresh outlives access", refresh, Refresh, DefaultAccessTTL + time.Hour, nil},
		{"refresh expired", refresh, Refresh, DefaultRefreshTTL, syncproto.ErrTokenExpired},
		{"expired refresh used as access", refresh, Access, DefaultRefreshTTL, syncproto.ErrUnauthenticated},
		{"issued in the future", access, Access, -time.Hour, syncproto.ErrUnauthenticated},
		{"forged with another secret", forged, Access, 0, syncproto.ErrUnauthenticated},
		{"payload tampered", flip(payload) + "." + mac, Access, 0, syncproto.ErrUnauthenticated},
		{"mac tampered", payload + "." + flip(mac), Access, 0, syncproto.ErrUnauthenticated},
		{"mac missing", payload + ".", Access, 0, syncproto.ErrUnauthenticated},
		{"no dot", payload, Access, 0, syncproto.ErrUnauthenticated},
		{"empty", "", Access, 0, syncproto.ErrUnauthenticated},
		{"garbage", "not a token at all", Access, 0, syncproto.ErrUnauthenticated},
		{"newline inside", access[:10] + "\n" + access[10:], Access, 0, syncproto.ErrUnauthenticated},
		{"too long", access + strings.Repeat("A", MaxTokenLen), Access, 0, syncproto.ErrUnauthenticated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock.Add(tc.advance)
			defer clock.Add(-tc.advance)
			c, err := a.Verify(tc.token, tc.want)
			if tc.code == nil {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if c.WorkspaceID != alice.WorkspaceID || c.UserID != alice.UserID || c.DeviceID != alice.DeviceID || c.Type != tc.want {
					t.Fatalf("claims %+v", c)
				}
				return
			}
			if !errors.Is(err, tc.code) {
				t.Fatalf("Verify = %v, want %v", err, tc.code)
			}
			var se *syncproto.Error
			if !errors.As(err, &se) {
				t.Fatalf("error %T is not *syncproto.Error", err)
			}
		})
	}
}

func TestKeyRotation(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	oldKey, newKey := testKey("old", 1), testKey("new", 2)
	before := newTestAuth(t, clock.Now, oldKey)
	during := newTestAuth(t, clock.Now, newKey, oldKey)
	after := newTestAuth(t, clock.Now, newKey)

	oldTok, _, err := before.Issue(Access, alice)
	if err != nil {
		t.Fatal(err)
	}
	newTok, c, err := during.Issue(Access, alice)
	if err != nil {
		t.Fatal(err)
	}
	if c.KeyID != "new" {
		t.Fatalf("signed with %q, want the first key", c.KeyID)
	}
	if _, err := during.Verify(oldTok, Access); err != nil {
		t.Fatalf("old token during rotation: %v", err)
	}
	if _, err := after.Verify(newTok, Access); err != nil {
		t.Fatalf("new token after rotation: %v", err)
	}
	if _, err := after.Verify(oldTok, Access); !errors.Is(err, syncproto.ErrUnauthenticated) {
		t.Fatalf("old token after its key was dropped: %v", err)
	}
	if _, err := before.Verify(newTok, Access); !errors.Is(err, syncproto.ErrUnauthenticated) {
		t.Fatalf("token of an unknown key: %v", err)
	}
}

var aliceFamily = Family{ID: "0123456789abcdef", Generation: 7}

func TestIssuePair(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	a := newTestAuth(t, clock.Now)
	p, err := a.IssuePair(alice, aliceFamily)
	if err != nil {
		t.Fatal(err)
	}
	if !p.AccessExpiresAt.Equal(clock.Now().Add(DefaultAccessTTL)) || !p.RefreshExpiresAt.Equal(clock.Now().Add(DefaultRefreshTTL)) {
		t.Fatalf("expiries %v %v", p.AccessExpiresAt, p.RefreshExpiresAt)
	}
	ac, err := a.Verify(p.Access, Access)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := a.Verify(p.Refresh, Refresh)
	if err != nil {
		t.Fatal(err)
	}
	if ac.TokenID == rc.TokenID {
		t.Fatal("access and refresh share a token id")
	}
	if id, gen := rc.Family(); id != aliceFamily.ID || gen != aliceFamily.Generation {
		t.Fatalf("refresh token's family %q generation %d", id, gen)
	}
	if _, _, err := a.Issue(Access, Identity{WorkspaceID: "w", UserID: "U!", DeviceID: "d"}); err == nil {
		t.Fatal("issued a token for an invalid user id")
	}
	for _, bad := range []Family{{}, {ID: aliceFamily.ID}, {ID: "0123456789ABCDEF", Generation: 1}, {ID: "0123", Generation: 1}} {
		if _, err := a.IssuePair(alice, bad); err == nil {
			t.Errorf("issued a pair in family %+v", bad)
		}
	}
}

// A generation's refresh token, issued again (later, on another edge with
// the same keys), is the same token; the next generation's is another.
func TestIssuePairRepeats(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	fam := aliceFamily
	fam.IssuedAt = clock.Now().Add(-time.Minute)
	p1, err := newTestAuth(t, clock.Now).IssuePair(alice, fam)
	if err != nil {
		t.Fatal(err)
	}
	clock.Add(10 * time.Second)
	p2, err := newTestAuth(t, clock.Now).IssuePair(alice, fam)
	if err != nil {
		t.Fatal(err)
	}
	if p1.Refresh != p2.Refresh || !p1.RefreshExpiresAt.Equal(fam.IssuedAt.Add(DefaultRefreshTTL)) {
		t.Fatalf("repeated refresh token differs: %s / %s (expires %v)", p1.Refresh, p2.Refresh, p1.RefreshExpiresAt)
	}
	if p1.Access == p2.Access {
		t.Fatal("access tokens repeat")
	}
	fam.Generation++
	p3, err := newTestAuth(t, clock.Now).IssuePair(alice, fam)
	if err != nil {
		t.Fatal(err)
	}
	if p3.Refresh == p1.Refresh {
		t.Fatal("the next generation has the same refresh token")
	}
}

func TestRefreshGrace(t *testing.T) {
	k := testKey("k", 1)
	for _, tc := range []struct {
		set, want time.Duration
	}{{0, DefaultRefreshGrace}, {-1, 0}, {time.Second, time.Second}, {syncproto.MaxRefreshGrace, syncproto.MaxRefreshGrace}} {
		a, err := New(Config{Keys: []Key{k}, Argon2: tiny, RefreshGrace: tc.set})
		if err != nil {
			t.Fatal(err)
		}
		if got := a.RefreshGrace(); got != tc.want {
			t.Errorf("RefreshGrace %v: %v, want %v", tc.set, got, tc.want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	k := testKey("k", 1)
	for _, tc := range []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"ok", Config{Keys: []Key{k}}, true},
		{"no keys", Config{}, false},
		{"short secret", Config{Keys: []Key{{ID: "k", Secret: make([]byte, 31)}}}, false},
		{"bad key id", Config{Keys: []Key{{ID: "k.1", Secret: k.Secret}}}, false},
		{"long key id", Config{Keys: []Key{{ID: strings.Repeat("k", 17), Secret: k.Secret}}}, false},
		{"duplicate key id", Config{Keys: []Key{k, k}}, false},
		{"negative ttl", Config{Keys: []Key{k}, AccessTTL: -1}, false},
		{"refresh shorter than access", Config{Keys: []Key{k}, AccessTTL: time.Hour, RefreshTTL: time.Minute}, false},
		{"no refresh grace", Config{Keys: []Key{k}, RefreshGrace: -1}, true},
		{"refresh grace too long", Config{Keys: []Key{k}, RefreshGrace: syncproto.MaxRefreshGrace + 1}, false},
		{"bad argon2", Config{Keys: []Key{k}, Argon2: Argon2Params{SaltLen: 1}}, false},
	} {
		if err := tc.cfg.Validate(); (err == nil) != tc.ok {
			t.Errorf("%s: Validate() = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

func FuzzDecodeToken(f *testing.F) {
	a := newTestAuth(f, func() time.Time { return time.Unix(1_700_000_000, 0) })
	for _, typ := range []TokenType{Access, Refresh} {
		tok, _, err := a.Issue(typ, alice)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(tok)
	}
	f.Add("")
	f.Add(".")
	f.Add("AQE.AAAA")
	f.Fuzz(func(t *testing.T, s string) {
		c, payload, mac, err := DecodeToken(s)
		if err != nil {
			if !errors.Is(err, ErrBadToken) {
				t.Fatalf("error %v does not wrap ErrBadToken", err)
			}
			if _, verr := a.Verify(s, Access); verr == nil {
				t.Fatal("Verify accepted what DecodeToken rejected")
			}
			return
		}
		// Decoding is canonical: the claims re-encode to the same payload.
		re, err := appendPayload(nil, c)
		if err != nil {
			t.Fatalf("decoded claims do not re-encode: %v", err)
		}
		if !bytes.Equal(re, payload) {
			t.Fatalf("re-encoded payload differs:\n%x\n%x", re, payload)
		}
		if len(mac) != macLen {
			t.Fatalf("mac length %d", len(mac))
		}
		// Whatever the input, Verify never panics and accepts only tokens
		// whose mac is right.
		if _, err := a.Verify(s, c.Type); err == nil && !bytes.Equal(mac, computeMAC(a.keys[c.KeyID], payload)) {
			t.Fatal("Verify accepted a bad mac")
		}
	})
}

func BenchmarkIssue(b *testing.B) {
	a := newTestAuth(b, time.Now)
	for b.Loop() {
		if _, _, err := a.Issue(Access, alice); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	a := newTestAuth(b, time.Now)
	tok, _, err := a.Issue(Access, alice)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := a.Verify(tok, Access); err != nil {
			b.Fatal(err)
		}
	}
}
