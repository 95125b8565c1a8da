// Package auth is the edge's authentication: argon2id password hashes in
// PHC string format, and HMAC-SHA256 signed access and refresh tokens.
//
// The core stores password hashes but never sees passwords, and never
// checks tokens: the edge verifies a token and passes the identity it
// names to the core as the request's caller.
package auth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime"
	"time"

	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// MinSecretLen is the shortest accepted token key, in bytes.
const MinSecretLen = 32

// Defaults for Config's zero values.
const (
	DefaultAccessTTL    = 15 * time.Minute
	DefaultRefreshTTL   = 30 * 24 * time.Hour
	DefaultRefreshGrace = 30 * time.Second
)

// Key is one token signing key.
type Key struct {
	// ID names the key inside tokens: 1..16 bytes of [A-Za-z0-9_-].
	ID string
	// Secret is at least MinSecretLen random bytes.
	Secret []byte
}

// GenerateKey returns a key with a fresh random 32-byte secret.
func GenerateKey(id string) (Key, error) {
	k := Key{ID: id, Secret: make([]byte, MinSecretLen)}
	if _, err := rand.Read(k.Secret); err != nil {
		return Key{}, fmt.Errorf("auth: generate key: %w", err)
	}
	return k, nil
}

// Config configures an Auth. Zero values mean the defaults, except Keys,
// which must name at least one key.
type Config struct {
	// Keys verify tokens; the first also signs them. Put a new key first
	// and keep the old ones until their tokens have expired to rotate.
	Keys []Key
	// AccessTTL is the lifetime of access tokens (default 15 minutes).
	AccessTTL time.Duration
	// RefreshTTL is the lifetime of refresh tokens (default 30 days).
	RefreshTTL time.Duration
	// RefreshGrace is how long after a refresh the refresh token it
	// replaced still buys the same new refresh token, for a client whose
	// answer was lost (default 30 s, at most syncproto.MaxRefreshGrace;
	// negative: none, so presenting it again revokes the device).
	RefreshGrace time.Duration
	// Argon2 are the cost parameters for new password hashes. Existing
	// hashes are checked with the parameters they carry.
	Argon2 Argon2Params
	// MaxConcurrentHashes bounds argon2 runs at once, and so the memory
	// they take (default GOMAXPROCS).
	MaxConcurrentHashes int
	// Revocations, when set, is consulted by Verify: a token it revokes is
	// REVOKED, and while it is not ready every token is UNAVAILABLE.
	Revocations *Revocations
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Validate names the first bad field.
func (c Config) Validate() error {
	if len(c.Keys) == 0 {
		return errors.New("auth: Keys: at least one token key is required")
	}
	seen := map[string]bool{}
	for i, k := range c.Keys {
		if !validKeyID(k.ID) {
			return fmt.Errorf("auth: Keys[%d].ID %q: want 1..%d characters of [A-Za-z0-9_-]", i, k.ID, MaxKeyIDLen)
		}
		if seen[k.ID] {
			return fmt.Errorf("auth: Keys[%d].ID %q: duplicate key id", i, k.ID)
		}
		seen[k.ID] = true
		if len(k.Secret) < MinSecretLen {
			return fmt.Errorf("auth: Keys[%d].Secret: %d bytes, want at least %d", i, len(k.Secret), MinSecretLen)
		}
	}
	if c.AccessTTL < 0 {
		return fmt.Errorf("auth: AccessTTL %v is negative", c.AccessTTL)
	}
	if c.RefreshTTL < 0 {
		return fmt.Errorf("auth: RefreshTTL %v is negative", c.RefreshTTL)
	}
	if c.RefreshGrace > syncproto.MaxRefreshGrace {
		return fmt.Errorf("auth: RefreshGrace %v is longer than %v", c.RefreshGrace, syncproto.MaxRefreshGrace)
	}
	if c.AccessTTL > 0 && c.RefreshTTL > 0 && c.RefreshTTL < c.AccessTTL {
		return fmt.Errorf("auth: RefreshTTL %v is shorter than AccessTTL %v", c.RefreshTTL, c.AccessTTL)
	}
	if c.MaxConcurrentHashes < 0 {
		return fmt.Errorf("auth: MaxConcurrentHashes %d is negative", c.MaxConcurrentHashes)
	}
	return c.Argon2.Validate()
}

// Auth hashes and checks passwords and issues and verifies tokens. It is
// safe for concurrent use.
type Auth struct {
	keys   map[string][]byte
	signer Key
	access time.Duration
	refr   time.Duration
	grace  time.Duration
	argon  Argon2Params
	now    func() time.Time
	sem    chan struct{}
	dummy  string
	revs   *Revocations // nil: no revocation checks
}

// New returns an Auth for cfg. It computes one hash up front (the dummy
// that unknown users are checked against).
func New(cfg Config) (*Auth, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	a := &Auth{
		keys:   make(map[string][]byte, len(cfg.Keys)),
		signer: cfg.Keys[0],
		access: cfg.AccessTTL,
		refr:   cfg.RefreshTTL,
		grace:  cfg.RefreshGrace,
		argon:  cfg.Argon2.withDefaults(),
		now:    cfg.Now,
		revs:   cfg.Revocations,
	}
	for _, k := range cfg.Keys {
		a.keys[k.ID] = append([]byte(nil), k.Secret...)
	}
	if a.access == 0 {
		a.access = DefaultAccessTTL
	}
	if a.refr == 0 {
		a.refr = DefaultRefreshTTL
	}
	switch {
	case a.grace == 0:
		a.grace = DefaultRefreshGrace
	case a.grace < 0:
		a.grace = 0
	}
	if a.now == nil {
		a.now = time.Now
	}
	n := cfg.MaxConcurrentHashes
	if n == 0 {
		n = runtime.GOMAXPROCS(0)
	}
	a.sem = make(chan struct{}, n)
	var secret [16]byte
	if _, err := rand.Read(secret[:]); err != nil {
		return nil, fmt.Errorf("auth: dummy password: %w", err)
	}
	var err error
	if a.dummy, err = HashPassword(hex.EncodeToString(secret[:]), a.argon); err != nil {
		return nil, err
	}
	return a, nil
}

// AccessTTL is the lifetime of the access tokens a issues.
func (a *Auth) AccessTTL() time.Duration { return a.access }

// RefreshTTL is the lifetime of the refresh tokens a issues.
func (a *Auth) RefreshTTL() time.Duration { return a.refr }

// RefreshGrace is how long a replaced refresh token still buys the current
// one (0: not at all); see Config.RefreshGrace.
func (a *Auth) RefreshGrace() time.Duration { return a.grace }

func (a *Auth) acquire(ctx context.Context) error {
	select {
	case a.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// HashPassword hashes password with the configured parameters. It waits
// for a hashing slot until ctx ends.
func (a *Auth) HashPassword(ctx context.Context, password string) (string, error) {
	if err := a.acquire(ctx); err != nil {
		return "", err
	}
	defer func() { <-a.sem }()
	return HashPassword(password, a.argon)
}

// CheckPassword is CheckPassword under the concurrency bound: nil on a
// match, ErrPasswordMismatch, an error wrapping ErrBadHash, or ctx's error.
func (a *Auth) CheckPassword(ctx context.Context, password, encoded string) error {
	if err := a.acquire(ctx); err != nil {
		return err
	}
	defer func() { <-a.sem }()
	return CheckPassword(password, encoded)
}

// CheckDummy spends the time of a password check against a hash no
// password matches, so that an unknown user takes as long to reject as a
// wrong password. It always returns ErrPasswordMismatch or ctx's error.
func (a *Auth) CheckDummy(ctx context.Context, password string) error {
	if err := a.CheckPassword(ctx, password, a.dummy); err != nil {
		return err
	}
	return ErrPasswordMismatch
}

// Identity is who a token speaks for.
type Identity struct {
	WorkspaceID string
	UserID      string
	DeviceID    string
}

// Issue signs a token of type typ for id with the first key, issued now,
// with a random TokenID. A refresh token issued so belongs to no family,
// so it is never accepted for a refresh: sessions get theirs from
// IssuePair.
func (a *Auth) Issue(typ TokenType, id Identity) (string, *Claims, error) {
	var tid [tokenIDLen]byte
	if _, err := rand.Read(tid[:]); err != nil {
		return "", nil, fmt.Errorf("auth: token id: %w", err)
	}
	return a.issue(typ, id, a.now(), hex.EncodeToString(tid[:]))
}

func (a *Auth) issue(typ TokenType, id Identity, at time.Time, tokenID string) (string, *Claims, error) {
	ttl := a.access
	if typ == Refresh {
		ttl = a.refr
	}
	c := &Claims{
		Type: typ, KeyID: a.signer.ID,
		WorkspaceID: id.WorkspaceID, UserID: id.UserID, DeviceID: id.DeviceID,
		IssuedAt: at, ExpiresAt: at.Add(ttl), TokenID: tokenID,
	}
	payload, err := appendPayload(make([]byte, 0, 128), c)
	if err != nil {
		return "", nil, err
	}
	// Report the times as encoded (millisecond precision).
	c.IssuedAt, c.ExpiresAt = time.UnixMilli(c.IssuedAt.UnixMilli()), time.UnixMilli(c.ExpiresAt.UnixMilli())
	return encodeToken(a.signer.Secret, payload), c, nil
}

// Family places a refresh token in its device's token family, as the
// directory keeps it (syncpb.TokenFamily).
type Family struct {
	// ID is the family's id, syncproto.TokenFamilyIDLen hex digits.
	ID string
	// Generation is the token's place in the family, from 1.
	Generation uint64
	// IssuedAt is when the generation was issued (zero: now).
	IssuedAt time.Time
}

// Pair is an access token and a refresh token issued together.
type Pair struct {
	Access, Refresh  string
	AccessExpiresAt  time.Time
	RefreshExpiresAt time.Time
}

// IssuePair issues an access token for id, issued now, and the refresh
// token of fam's generation. The refresh token depends only on id, fam
// and the signing key, so issuing it again (a repeated refresh) gives the
// same token.
func (a *Auth) IssuePair(id Identity, fam Family) (*Pair, error) {
	if !syncproto.ValidTokenFamilyID(fam.ID) || fam.Generation == 0 {
		return nil, fmt.Errorf("auth: invalid token family %q generation %d", fam.ID, fam.Generation)
	}
	at, ac, err := a.Issue(Access, id)
	if err != nil {
		return nil, err
	}
	issued := fam.IssuedAt
	if issued.IsZero() {
		issued = a.now()
	}
	tid := fam.ID + hex.EncodeToString(binary.BigEndian.AppendUint64(nil, fam.Generation))
	rt, rc, err := a.issue(Refresh, id, issued, tid)
	if err != nil {
		return nil, err
	}
	return &Pair{
		Access: at, Refresh: rt,
		AccessExpiresAt: ac.ExpiresAt, RefreshExpiresAt: rc.ExpiresAt,
	}, nil
}

// Verify checks token's signature, type, expiry and revocation and
// returns its claims. Errors are *syncproto.Error: TOKEN_EXPIRED for a
// genuine but expired token of the wanted type, REVOKED for one the
// Revocations set refuses (UNAVAILABLE while the set is not ready), and
// UNAUTHENTICATED for anything else (malformed, unknown key, bad
// signature, wrong type, issued in the future).
func (a *Auth) Verify(token string, want TokenType) (*Claims, error) {
	c, payload, mac, err := DecodeToken(token)
	if err != nil {
		return nil, syncproto.Errorf(syncpb.Code_CODE_UNAUTHENTICATED, "invalid token")
	}
	secret, ok := a.keys[c.KeyID]
	if !ok || !hmac.Equal(mac, computeMAC(secret, payload)) {
		return nil, syncproto.Errorf(syncpb.Code_CODE_UNAUTHENTICATED, "invalid token")
	}
	if c.Type != want {
		return nil, syncproto.Errorf(syncpb.Code_CODE_UNAUTHENTICATED, "wrong token type: want an %s token", want)
	}
	now := a.now()
	if c.IssuedAt.After(now.Add(maxFutureSkew)) || !c.ExpiresAt.After(c.IssuedAt) {
		return nil, syncproto.Errorf(syncpb.Code_CODE_UNAUTHENTICATED, "invalid token")
	}
	if !now.Before(c.ExpiresAt) {
		return nil, syncproto.Errorf(syncpb.Code_CODE_TOKEN_EXPIRED, "%s token expired", want)
	}
	if a.revs != nil {
		if err := a.revs.Check(c); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// Revocations is the set Verify consults (nil without one).
func (a *Auth) Revocations() *Revocations { return a.revs }
