package auth

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Sentinels returned by the password functions.
var (
	// ErrPasswordMismatch is returned by CheckPassword and
	// Auth.CheckPassword when the password does not match the hash.
	ErrPasswordMismatch = errors.New("auth: password mismatch")
	// ErrBadHash is wrapped by ParseHash (and so CheckPassword) when the
	// stored hash is not an argon2id PHC string this package accepts.
	ErrBadHash = errors.New("auth: malformed password hash")
)

// Bounds on hashes read back from storage, so a corrupt or hostile hash
// cannot make a check allocate or spin without limit.
const (
	MaxArgon2Memory  = 1 << 20 // KiB (1 GiB)
	MaxArgon2Time    = 100
	MinSaltLen       = 8
	MaxSaltLen       = 64
	MinKeyLen        = 16
	MaxKeyLen        = 64
	maxEncodedLength = 256
)

// Argon2Params are argon2id cost parameters. A zero field means its default
// (OWASP's recommendation: m=19456 KiB, t=2, p=1, 16-byte salt, 32-byte key).
type Argon2Params struct {
	Memory  uint32 // KiB
	Time    uint32 // passes
	Threads uint8
	SaltLen uint32 // bytes
	KeyLen  uint32 // bytes
}

// DefaultArgon2Params returns the defaults.
func DefaultArgon2Params() Argon2Params {
	return Argon2Params{Memory: 19456, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}
}

// withDefaults fills zero fields.
func (p Argon2Params) withDefaults() Argon2Params {
	d := DefaultArgon2Params()
	if p.Memory == 0 {
		p.Memory = d.Memory
	}
	if p.Time == 0 {
		p.Time = d.Time
	}
	if p.Threads == 0 {
		p.Threads = d.Threads
	}
	if p.SaltLen == 0 {
		p.SaltLen = d.SaltLen
	}
	if p.KeyLen == 0 {
		p.KeyLen = d.KeyLen
	}
	return p
}

// Validate checks p after defaults are applied.
func (p Argon2Params) Validate() error {
	p = p.withDefaults()
	switch {
	case p.Memory < 8*uint32(p.Threads) || p.Memory > MaxArgon2Memory:
		return fmt.Errorf("auth: Argon2.Memory %d KiB: want %d..%d", p.Memory, 8*uint32(p.Threads), MaxArgon2Memory)
	case p.Time > MaxArgon2Time:
		return fmt.Errorf("auth: Argon2.Time %d: want 1..%d", p.Time, MaxArgon2Time)
	case p.SaltLen < MinSaltLen || p.SaltLen > MaxSaltLen:
		return fmt.Errorf("auth: Argon2.SaltLen %d: want %d..%d", p.SaltLen, MinSaltLen, MaxSaltLen)
	case p.KeyLen < MinKeyLen || p.KeyLen > MaxKeyLen:
		return fmt.Errorf("auth: Argon2.KeyLen %d: want %d..%d", p.KeyLen, MinKeyLen, MaxKeyLen)
	}
	return nil
}

// Hash is a parsed argon2id hash.
type Hash struct {
	Memory  uint32
	Time    uint32
	Threads uint8
	Salt    []byte
	Key     []byte
}

var b64 = base64.RawStdEncoding.Strict()

// String returns h in PHC string format:
// $argon2id$v=19$m=19456,t=2,p=1$<salt>$<key> (unpadded standard base64).
func (h *Hash) String() string {
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, h.Memory, h.Time, h.Threads, b64.EncodeToString(h.Salt), b64.EncodeToString(h.Key))
}

// HashPassword hashes password with fresh random salt and returns the PHC
// string. It runs argon2 synchronously; Auth.HashPassword bounds how many
// run at once.
func HashPassword(password string, p Argon2Params) (string, error) {
	if err := p.Validate(); err != nil {
		return "", err
	}
	p = p.withDefaults()
	salt := make([]byte, p.SaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("auth: salt: %w", err)
	}
	h := &Hash{Memory: p.Memory, Time: p.Time, Threads: p.Threads, Salt: salt}
	h.Key = argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, p.KeyLen)
	return h.String(), nil
}

// CheckPassword reports whether password matches encoded: nil when it
// does, ErrPasswordMismatch when it does not, and an error wrapping
// ErrBadHash when encoded cannot be parsed. The key comparison is constant
// time.
func CheckPassword(password, encoded string) error {
	h, err := ParseHash(encoded)
	if err != nil {
		return err
	}
	key := argon2.IDKey([]byte(password), h.Salt, h.Time, h.Memory, h.Threads, uint32(len(h.Key)))
	if subtle.ConstantTimeCompare(key, h.Key) != 1 {
		return ErrPasswordMismatch
	}
	return nil
}

// ParseHash parses an argon2id PHC string. It accepts only the canonical
// form String produces (version 19, decimal numbers without leading zeros,
// strict unpadded base64), with parameters inside this package's bounds,
// so that a parsed hash re-encodes to exactly its input. It never panics.
func ParseHash(encoded string) (*Hash, error) {
	bad := func(what string) error { return fmt.Errorf("%w: %s", ErrBadHash, what) }
	if len(encoded) > maxEncodedLength {
		return nil, bad("too long")
	}
	parts := strings.Split(encoded, "$")
	// "", "argon2id", "v=19", "m=..,t=..,p=..", salt, key
	if len(parts) != 6 || parts[0] != "" {
		return nil, bad("want 5 $-separated fields")
	}
	if parts[1] != "argon2id" {
		return nil, bad("algorithm is not argon2id")
	}
	v, ok := strings.CutPrefix(parts[2], "v=")
	if !ok {
		return nil, bad("missing version")
	}
	if n, err := parseUint(v, 32); err != nil || n != argon2.Version {
		return nil, bad("unsupported version")
	}
	params := strings.Split(parts[3], ",")
	if len(params) != 3 {
		return nil, bad("want m, t and p")
	}
	var nums [3]uint64
	for i, name := range []string{"m=", "t=", "p="} {
		s, ok := strings.CutPrefix(params[i], name)
		if !ok {
			return nil, bad("want m, t and p in order")
		}
		n, err := parseUint(s, 32)
		if err != nil {
			return nil, bad("bad number")
		}
		nums[i] = n
	}
	h := &Hash{Memory: uint32(nums[0]), Time: uint32(nums[1])}
	if nums[2] < 1 || nums[2] > 255 {
		return nil, bad("p out of range")
	}
	h.Threads = uint8(nums[2])
	if h.Time < 1 || h.Time > MaxArgon2Time {
		return nil, bad("t out of range")
	}
	if h.Memory < 8*uint32(h.Threads) || h.Memory > MaxArgon2Memory {
		return nil, bad("m out of range")
	}
	// The decoder skips '\r' and '\n'; accept only the alphabet.
	if !isB64(parts[4]) || !isB64(parts[5]) {
		return nil, bad("salt or key is not base64")
	}
	var err error
	if h.Salt, err = b64.DecodeString(parts[4]); err != nil {
		return nil, bad("salt is not base64")
	}
	if len(h.Salt) < MinSaltLen || len(h.Salt) > MaxSaltLen {
		return nil, bad("salt length out of range")
	}
	if h.Key, err = b64.DecodeString(parts[5]); err != nil {
		return nil, bad("key is not base64")
	}
	if len(h.Key) < MinKeyLen || len(h.Key) > MaxKeyLen {
		return nil, bad("key length out of range")
	}
	return h, nil
}

// parseUint parses a canonical decimal: digits only, no leading zero.
func parseUint(s string, bits int) (uint64, error) {
	if s == "" || (len(s) > 1 && s[0] == '0') {
		return 0, strconv.ErrSyntax
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, strconv.ErrSyntax
		}
	}
	return strconv.ParseUint(s, 10, bits)
}

func isB64(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/') {
			return false
		}
	}
	return true
}
