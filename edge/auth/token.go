package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/parley-chat/parley/syncproto"
)

// TokenType says what a token may be used for. A token of one type is
// never accepted where the other is wanted.
type TokenType uint8

const (
	// Access tokens authenticate API calls and sessions; short-lived.
	Access TokenType = 1
	// Refresh tokens buy a new pair at POST /v1/sessions/refresh; long-lived.
	Refresh TokenType = 2
)

func (t TokenType) String() string {
	switch t {
	case Access:
		return "access"
	case Refresh:
		return "refresh"
	}
	return fmt.Sprintf("token_type_%d", uint8(t))
}

// Token format, version 1:
//
//	token   = base64url(payload) "." base64url(mac)      (unpadded)
//	mac     = HMAC-SHA256(key, macContext || payload)
//	payload = version:u8(1) type:u8 kid:str iat_ms:i64be exp_ms:i64be
//	          token_id:[16]u8 workspace_id:str user_id:str device_id:str
//	str     = len:u8 bytes          (1..64 bytes of [a-z0-9_-]; kid 1..16 of [A-Za-z0-9_-])
//
// The kid names the key that signed the token, so keys can rotate: tokens
// are signed with the first configured key and verified with whichever
// key the kid names.
const (
	tokenVersion = 1
	// MaxTokenLen bounds the encoded token; longer input is rejected
	// before decoding.
	MaxTokenLen = 512
	// MaxKeyIDLen bounds key ids.
	MaxKeyIDLen = 16
	tokenIDLen  = 16
	macLen      = sha256.Size
	// maxFutureSkew is how far in the future a token's issue time may be
	// (clock skew between edges).
	maxFutureSkew = 5 * time.Minute
)

var macContext = []byte("parley token v1\n")

var b64url = base64.RawURLEncoding.Strict()

// ErrBadToken is wrapped by DecodeToken when the input is not a well-formed
// token. Verify reports it to callers as UNAUTHENTICATED.
var ErrBadToken = errors.New("auth: malformed token")

// Claims is what a token says. Verify returns them only after checking the
// signature, the type and the expiry.
type Claims struct {
	Type        TokenType
	KeyID       string
	WorkspaceID string
	UserID      string
	DeviceID    string
	IssuedAt    time.Time
	ExpiresAt   time.Time
	// TokenID is random per token (hex), for logs.
	TokenID string
}

// appendPayload encodes c. It fails when a field cannot be represented.
func appendPayload(b []byte, c *Claims) ([]byte, error) {
	if c.Type != Access && c.Type != Refresh {
		return nil, fmt.Errorf("auth: token type %d", c.Type)
	}
	if !validKeyID(c.KeyID) {
		return nil, fmt.Errorf("auth: invalid key id %q", c.KeyID)
	}
	tid, err := hex.DecodeString(c.TokenID)
	if err != nil || len(tid) != tokenIDLen {
		return nil, fmt.Errorf("auth: token id must be %d hex bytes", tokenIDLen)
	}
	for _, id := range []string{c.WorkspaceID, c.UserID, c.DeviceID} {
		if !syncproto.ValidID(id) {
			return nil, fmt.Errorf("auth: invalid id %q in claims", id)
		}
	}
	b = append(b, tokenVersion, byte(c.Type))
	b = appendStr(b, c.KeyID)
	b = binary.BigEndian.AppendUint64(b, uint64(c.IssuedAt.UnixMilli()))
	b = binary.BigEndian.AppendUint64(b, uint64(c.ExpiresAt.UnixMilli()))
	b = append(b, tid...)
	b = appendStr(b, c.WorkspaceID)
	b = appendStr(b, c.UserID)
	b = appendStr(b, c.DeviceID)
	return b, nil
}

func appendStr(b []byte, s string) []byte {
	b = append(b, byte(len(s)))
	return append(b, s...)
}

// decodePayload is the inverse of appendPayload. It accepts only what
// appendPayload can produce, so a decoded payload re-encodes identically.
func decodePayload(p []byte) (*Claims, error) {
	bad := func(what string) (*Claims, error) { return nil, fmt.Errorf("%w: %s", ErrBadToken, what) }
	if len(p) < 2 {
		return bad("short payload")
	}
	if p[0] != tokenVersion {
		return bad("unknown version")
	}
	c := &Claims{Type: TokenType(p[1])}
	if c.Type != Access && c.Type != Refresh {
		return bad("unknown type")
	}
	p = p[2:]
	str := func() (string, bool) {
		if len(p) < 1 || len(p) < 1+int(p[0]) {
			return "", false
		}
		s := string(p[1 : 1+int(p[0])])
		p = p[1+int(p[0]):]
		return s, true
	}
	var ok bool
	if c.KeyID, ok = str(); !ok || !validKeyID(c.KeyID) {
		return bad("key id")
	}
	if len(p) < 16+tokenIDLen {
		return bad("short payload")
	}
	c.IssuedAt = time.UnixMilli(int64(binary.BigEndian.Uint64(p)))
	c.ExpiresAt = time.UnixMilli(int64(binary.BigEndian.Uint64(p[8:])))
	c.TokenID = hex.EncodeToString(p[16 : 16+tokenIDLen])
	p = p[16+tokenIDLen:]
	for _, dst := range []*string{&c.WorkspaceID, &c.UserID, &c.DeviceID} {
		if *dst, ok = str(); !ok || !syncproto.ValidID(*dst) {
			return bad("id")
		}
	}
	if len(p) != 0 {
		return bad("trailing bytes")
	}
	return c, nil
}

// DecodeToken splits and decodes a token without checking its signature:
// the claims it returns are untrusted. It is exported for tools and fuzzing;
// servers use Auth.Verify. Errors wrap ErrBadToken; it never panics.
func DecodeToken(token string) (c *Claims, payload, mac []byte, err error) {
	if len(token) > MaxTokenLen {
		return nil, nil, nil, fmt.Errorf("%w: too long", ErrBadToken)
	}
	ps, ms, ok := strings.Cut(token, ".")
	if !ok || !isB64URL(ps) || !isB64URL(ms) {
		return nil, nil, nil, fmt.Errorf("%w: want base64url.base64url", ErrBadToken)
	}
	if payload, err = b64url.DecodeString(ps); err != nil {
		return nil, nil, nil, fmt.Errorf("%w: payload is not base64url", ErrBadToken)
	}
	if mac, err = b64url.DecodeString(ms); err != nil || len(mac) != macLen {
		return nil, nil, nil, fmt.Errorf("%w: bad mac", ErrBadToken)
	}
	if c, err = decodePayload(payload); err != nil {
		return nil, nil, nil, err
	}
	return c, payload, mac, nil
}

func computeMAC(secret, payload []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write(macContext)
	m.Write(payload)
	return m.Sum(nil)
}

func encodeToken(secret, payload []byte) string {
	return b64url.EncodeToString(payload) + "." + b64url.EncodeToString(computeMAC(secret, payload))
}

func validKeyID(s string) bool {
	if len(s) == 0 || len(s) > MaxKeyIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// isB64URL reports whether s holds only base64url characters (the decoder
// would skip '\r' and '\n', making two spellings of one token).
func isB64URL(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
