package fanout

import (
	"slices"
	"sync"
	"time"

	"github.com/parley-chat/parley/core/shard"
)

// Source reads a conversation's workspace and members (*shard.FSM does).
// It may run concurrently with the shard's apply loop.
type Source interface {
	MembersOf(conv string) (workspace string, users []string, err error)
}

var _ Source = (*shard.FSM)(nil)

// Members are a conversation's workspace and members, sorted.
type Members struct {
	Workspace string
	Users     []string
}

const (
	// memberCacheSize bounds the conversations whose members are kept.
	memberCacheSize = 16384
	// DefaultMemberTTL is Config.MemberTTL's default.
	DefaultMemberTTL = 30 * time.Second
)

// memberCache is the one member cache of every notice kind. A list is
// kept until its conversation is forgotten (a membership change) or
// its TTL passes; a list read while a forget happened is not kept,
// since it may predate the change.
type memberCache struct {
	now func() time.Time
	ttl time.Duration

	mu      sync.Mutex
	gen     uint64 // bumped by forget
	entries map[string]cachedMembers
}

type cachedMembers struct {
	m  Members
	at time.Time
}

func newMemberCache(now func() time.Time, ttl time.Duration) *memberCache {
	return &memberCache{now: now, ttl: ttl, entries: map[string]cachedMembers{}}
}

func (c *memberCache) forget(conv string) {
	c.mu.Lock()
	c.gen++
	delete(c.entries, conv)
	c.mu.Unlock()
}

// get returns conv's members from the cache or src.
func (c *memberCache) get(src Source, conv string) (Members, error) {
	now := c.now()
	c.mu.Lock()
	e, ok := c.entries[conv]
	gen := c.gen
	c.mu.Unlock()
	if ok && now.Sub(e.at) < c.ttl {
		return e.m, nil
	}
	ws, users, err := src.MembersOf(conv)
	if err != nil {
		return Members{}, err
	}
	users = slices.Clone(users)
	slices.Sort(users)
	m := Members{Workspace: ws, Users: users}
	c.mu.Lock()
	if c.gen == gen {
		if len(c.entries) >= memberCacheSize {
			clear(c.entries)
		}
		c.entries[conv] = cachedMembers{m: m, at: now}
	}
	c.mu.Unlock()
	return m, nil
}
