package syncproto

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"hash/fnv"
)

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// Id prefixes. An id is a prefix followed by 26 base32 characters.
const (
	PrefixWorkspace        = "w_"
	PrefixUser             = "u_"
	PrefixDevice           = "d_"
	PrefixGroupConv        = "c_"
	PrefixDirectConv       = "dm_"
	PrefixMessage          = "m_"
	MaxIDLen               = 64
	MaxClientMsgIDLen      = 64
	DefaultShardCount      = 16
	DefaultRegion          = "local"
	MaxShardCount          = 1024
	MaxConversationMembers = 10000
)

// NewID returns prefix followed by 128 random bits.
func NewID(prefix string) string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("syncproto: crypto/rand failed: " + err.Error())
	}
	return prefix + idEncoding.EncodeToString(b[:])
}

// TokenFamilyIDLen is the length of a refresh-token family's id: 16
// lower-case hex digits (8 bytes, as refresh tokens carry it).
const TokenFamilyIDLen = 16

// NewTokenFamilyID returns a random refresh-token family id.
func NewTokenFamilyID() string {
	var b [TokenFamilyIDLen / 2]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("syncproto: crypto/rand failed: " + err.Error())
	}
	return hex.EncodeToString(b[:])
}

// ValidTokenFamilyID reports whether s has the form NewTokenFamilyID
// returns.
func ValidTokenFamilyID(s string) bool {
	if len(s) != TokenFamilyIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// NewClientMsgID returns a random client_msg_id (128 bits), for clients
// that do not name their messages themselves.
func NewClientMsgID() string { return NewID("") }

// NewConversationID returns a fresh group conversation id.
func NewConversationID() string { return NewID(PrefixGroupConv) }

// DirectConversationID is the id of the one 1:1 conversation between two
// users of a workspace: the same whichever of them asks.
func DirectConversationID(workspaceID, userA, userB string) string {
	if userB < userA {
		userA, userB = userB, userA
	}
	h := sha256.New()
	for _, s := range []string{workspaceID, userA, userB} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return PrefixDirectConv + idEncoding.EncodeToString(h.Sum(nil)[:16])
}

// MessageID derives a message's id from its conversation and seq, so every
// replica names a message identically.
func MessageID(convID string, seq uint64) string {
	h := sha256.New()
	h.Write([]byte(convID))
	var b [9]byte
	b[0] = 0
	for i := 0; i < 8; i++ {
		b[1+i] = byte(seq >> (56 - 8*i))
	}
	h.Write(b[:])
	return PrefixMessage + idEncoding.EncodeToString(h.Sum(nil)[:16])
}

// ShardOf maps a conversation to one of shards Raft groups (FNV-1a 64).
// Every edge and core must use the same shard count.
func ShardOf(convID string, shards uint32) uint32 {
	if shards == 0 {
		return 0
	}
	h := fnv.New64a()
	h.Write([]byte(convID))
	return uint32(h.Sum64() % uint64(shards))
}

// ValidID reports whether s is a plausible id: 1..MaxIDLen characters of
// [a-z0-9_-]. Ids from the network are checked with it before use as keys.
func ValidID(s string) bool {
	if len(s) == 0 || len(s) > MaxIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// ValidClientMsgID reports whether s is an acceptable client_msg_id:
// 1..MaxClientMsgIDLen printable ASCII characters.
func ValidClientMsgID(s string) bool {
	if len(s) == 0 || len(s) > MaxClientMsgIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
