package syncproto

import (
	"math/rand/v2"
	"strings"
	"testing"
)

func TestNewID(t *testing.T) {
	seen := map[string]bool{}
	for _, prefix := range []string{PrefixWorkspace, PrefixUser, PrefixDevice, PrefixGroupConv, PrefixDirectConv, PrefixMessage} {
		for range 100 {
			id := NewID(prefix)
			if !strings.HasPrefix(id, prefix) || len(id) != len(prefix)+26 || !ValidID(id) {
				t.Fatalf("NewID(%q) = %q", prefix, id)
			}
			if seen[id] {
				t.Fatalf("NewID repeated %q", id)
			}
			seen[id] = true
		}
	}
	if id := NewConversationID(); !strings.HasPrefix(id, PrefixGroupConv) || !ValidID(id) {
		t.Fatalf("NewConversationID = %q", id)
	}
}

func TestDirectConversationID(t *testing.T) {
	ab := DirectConversationID("w_1", "u_a", "u_b")
	if ba := DirectConversationID("w_1", "u_b", "u_a"); ab != ba {
		t.Fatalf("not symmetric: %q vs %q", ab, ba)
	}
	if !strings.HasPrefix(ab, PrefixDirectConv) || len(ab) != len(PrefixDirectConv)+26 || !ValidID(ab) {
		t.Fatalf("DirectConversationID = %q", ab)
	}
	others := map[string]string{
		"other workspace": DirectConversationID("w_2", "u_a", "u_b"),
		"other pair":      DirectConversationID("w_1", "u_a", "u_c"),
		"self":            DirectConversationID("w_1", "u_a", "u_a"),
		// Separators keep the fields apart.
		"shifted": DirectConversationID("w_1u_a", "", "u_b"),
	}
	for name, id := range others {
		if id == ab {
			t.Errorf("%s gives the same id %q", name, id)
		}
	}
	// The golden vectors pin the derivation: every edge and core, of every
	// version, must derive the same id.
}

func TestMessageID(t *testing.T) {
	a := MessageID("c_x", 1)
	if a != MessageID("c_x", 1) || !strings.HasPrefix(a, PrefixMessage) || !ValidID(a) {
		t.Fatalf("MessageID = %q", a)
	}
	for _, other := range []string{MessageID("c_x", 2), MessageID("c_y", 1), MessageID("c_x", 1<<56)} {
		if other == a {
			t.Fatalf("collision with %q", a)
		}
	}
}

func TestShardOf(t *testing.T) {
	const shards, ids = 16, 10000
	// Deterministic random ids, formatted as NewID formats them.
	r := rand.New(rand.NewPCG(1, 2))
	counts := make([]int, shards)
	for range ids {
		var b [16]byte
		for i := range b {
			b[i] = byte(r.UintN(256))
		}
		id := PrefixGroupConv + idEncoding.EncodeToString(b[:])
		s := ShardOf(id, shards)
		if s >= shards {
			t.Fatalf("ShardOf = %d, want < %d", s, shards)
		}
		if ShardOf(id, shards) != s {
			t.Fatal("ShardOf not deterministic")
		}
		counts[s]++
	}
	// Each shard expects 625 (sd about 24); allow 20%.
	for s, n := range counts {
		if n < ids/shards*8/10 || n > ids/shards*12/10 {
			t.Errorf("shard %d got %d of %d ids: %v", s, n, ids, counts)
		}
	}
	if ShardOf("c_x", 0) != 0 || ShardOf("c_x", 1) != 0 {
		t.Error("ShardOf with 0 or 1 shards is not 0")
	}
	// Pinned: a changed hash would move stored conversations to other shards.
	if got := ShardOf("c_team", DefaultShardCount); got != 6 {
		t.Errorf("ShardOf(c_team, 16) = %d, want 6", got)
	}
}

func TestValidID(t *testing.T) {
	tests := []struct {
		s    string
		want bool
	}{
		{"", false},
		{"a", true},
		{"c_team", true},
		{"dm_abc-09", true},
		{"-", true},
		{"_", true},
		{strings.Repeat("a", MaxIDLen), true},
		{strings.Repeat("a", MaxIDLen+1), false},
		{"C_team", false},
		{"c team", false},
		{"c.team", false},
		{"c/team", false},
		{"c_té", false},
		{"c_\x00", false},
		{"c_\n", false},
	}
	for _, tt := range tests {
		if got := ValidID(tt.s); got != tt.want {
			t.Errorf("ValidID(%q) = %v, want %v", tt.s, got, tt.want)
		}
	}
}

func TestValidClientMsgID(t *testing.T) {
	tests := []struct {
		s    string
		want bool
	}{
		{"", false},
		{"1", true},
		{"01J9Z8K6Q2-0042", true},
		{"!~{}", true},
		{strings.Repeat("x", MaxClientMsgIDLen), true},
		{strings.Repeat("x", MaxClientMsgIDLen+1), false},
		{"a b", false},
		{"a\tb", false},
		{"a\x7f", false},
		{"é", false},
	}
	for _, tt := range tests {
		if got := ValidClientMsgID(tt.s); got != tt.want {
			t.Errorf("ValidClientMsgID(%q) = %v, want %v", tt.s, got, tt.want)
		}
	}
}

func TestTokenFamilyID(t *testing.T) {
	a, b := NewTokenFamilyID(), NewTokenFamilyID()
	if a == b || !ValidTokenFamilyID(a) || !ValidTokenFamilyID(b) {
		t.Fatalf("ids %q %q", a, b)
	}
	for _, bad := range []string{"", "0123456789abcde", "0123456789abcdef0", "0123456789ABCDEF", "0123456789abcdeg", "d_0123456789abcd"} {
		if ValidTokenFamilyID(bad) {
			t.Errorf("%q is valid", bad)
		}
	}
}
