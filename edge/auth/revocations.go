package auth

import (
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// DefaultMaxRevocations is RevocationsConfig.MaxEntries when unset.
const DefaultMaxRevocations = 100_000

// RevocationsConfig configures a Revocations set.
type RevocationsConfig struct {
	// TTL is how long a revoked device is remembered after its revocation:
	// the access token lifetime, so that every token it names has expired
	// by then (default DefaultAccessTTL; the set adds the clock skew that
	// Verify allows). Refresh tokens outlive it: the refresh endpoint asks
	// the directory.
	TTL time.Duration
	// MaxEntries bounds the devices remembered (default
	// DefaultMaxRevocations). When full, the entry closest to expiry is
	// dropped, and a warning logged.
	MaxEntries int
	Logger     *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Validate names the first bad field.
func (c RevocationsConfig) Validate() error {
	switch {
	case c.TTL < 0:
		return fmt.Errorf("auth: RevocationsConfig.TTL %v is negative", c.TTL)
	case c.MaxEntries < 0:
		return fmt.Errorf("auth: RevocationsConfig.MaxEntries %d is negative", c.MaxEntries)
	}
	return nil
}

// Revocations is an edge's short-lived set of revoked tokens, fed from the
// directory's revocations (syncpb.Revocation): per device, the time
// before which its tokens were issued are refused. Verify consults it.
// Until SetReady(true) (the edge has read what it may have missed) every
// check answers UNAVAILABLE. Safe for concurrent use.
type Revocations struct {
	ttl   int64 // ms, skew included
	max   int
	now   func() time.Time
	log   *slog.Logger
	ready atomic.Bool

	mu      sync.RWMutex
	devices map[string]revoked
	order   []queued // by insertion, so roughly by expiry
	dropped uint64   // entries dropped early for room
}

type revoked struct {
	notBefore int64 // unix ms; tokens issued before are refused
	expires   int64 // unix ms; the entry counts until then
}

type queued struct {
	device  string
	expires int64
}

// NewRevocations returns an empty set, not ready.
func NewRevocations(cfg RevocationsConfig) (*Revocations, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r := &Revocations{max: cfg.MaxEntries, now: cfg.Now, log: cfg.Logger, devices: map[string]revoked{}}
	ttl := cfg.TTL
	if ttl == 0 {
		ttl = DefaultAccessTTL
	}
	r.ttl = (ttl + maxFutureSkew).Milliseconds()
	if r.max == 0 {
		r.max = DefaultMaxRevocations
	}
	if r.now == nil {
		r.now = time.Now
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	return r, nil
}

// SetReady says whether the set holds every revocation that can still
// matter (see Revocations); while it is not, checks answer UNAVAILABLE.
func (r *Revocations) SetReady(ready bool) { r.ready.Store(ready) }

// Ready reports what SetReady last said.
func (r *Revocations) Ready() bool { return r.ready.Load() }

// Add records rv and reports whether that changed the set (a device not
// yet revoked, or a later not-before): a revocation heard again, or one
// whose tokens have all expired, changes nothing. rv must be valid
// (syncproto.ValidateRevocation).
func (r *Revocations) Add(rv *syncpb.Revocation) bool {
	now := r.now().UnixMilli()
	// Every token the revocation refuses was issued before not_before,
	// and (a revoked device getting none after) about when it was made.
	expires := min(rv.NotBeforeUnixMs, rv.RevokedUnixMs) + r.ttl
	if expires <= now {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pruneLocked(now)
	changed := false
	for _, d := range rv.DeviceIds {
		e, ok := r.devices[d]
		if ok && e.expires > now && e.notBefore >= rv.NotBeforeUnixMs && e.expires >= expires {
			continue
		}
		if ok && e.expires > now {
			e = revoked{notBefore: max(e.notBefore, rv.NotBeforeUnixMs), expires: max(e.expires, expires)}
		} else {
			e = revoked{notBefore: rv.NotBeforeUnixMs, expires: expires}
		}
		for !ok && len(r.devices) >= r.max {
			r.dropOldestLocked()
		}
		r.devices[d] = e
		r.order = append(r.order, queued{device: d, expires: e.expires})
		changed = true
	}
	if len(r.order) > 2*r.max {
		r.compactLocked()
	}
	return changed
}

// pruneLocked forgets the entries that expired.
func (r *Revocations) pruneLocked(now int64) {
	n := 0
	for n < len(r.order) && r.order[n].expires <= now {
		q := r.order[n]
		if e, ok := r.devices[q.device]; ok && e.expires == q.expires {
			delete(r.devices, q.device)
		}
		n++
	}
	r.order = r.order[n:]
}

// dropOldestLocked forgets the entry queued first, to make room.
func (r *Revocations) dropOldestLocked() {
	for len(r.order) > 0 {
		q := r.order[0]
		r.order = r.order[1:]
		if e, ok := r.devices[q.device]; ok && e.expires == q.expires {
			delete(r.devices, q.device)
			r.dropped++
			if r.dropped&(r.dropped-1) == 0 { // 1, 2, 4, ...: a rate-limited warning
				r.log.Warn("revocation set full: revoked devices dropped before their tokens expired", "dropped", r.dropped, "max", r.max)
			}
			return
		}
	}
}

// compactLocked drops the queue's stale items (entries updated since).
func (r *Revocations) compactLocked() {
	out := r.order[:0]
	for _, q := range r.order {
		if e, ok := r.devices[q.device]; ok && e.expires == q.expires {
			out = append(out, q)
		}
	}
	clear(r.order[len(out):])
	r.order = out
}

// Len is the number of devices remembered.
func (r *Revocations) Len() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.devices)
}

// errCatchingUp is Check's answer while the set is not ready.
var errCatchingUp = &syncproto.Error{Code: syncpb.Code_CODE_UNAVAILABLE,
	Message: "this edge is catching up on revoked tokens; retry", RetryAfter: 200 * time.Millisecond}

// ErrRevoked is the error Check returns (matched with errors.Is as
// syncproto.ErrRevoked) for a token the set revokes.
var ErrRevoked = syncproto.Errorf(syncpb.Code_CODE_REVOKED, "this device's access was revoked; log in again")

// Check reports whether the token c may still be used: nil, ErrRevoked,
// or UNAVAILABLE while the set is not ready.
func (r *Revocations) Check(c *Claims) error {
	if !r.ready.Load() {
		return errCatchingUp
	}
	if r.Revoked(c.DeviceID, c.IssuedAt) {
		return ErrRevoked
	}
	return nil
}

// Revoked reports whether the set refuses tokens of device issued at
// issuedAt (whether or not it is ready).
func (r *Revocations) Revoked(device string, issuedAt time.Time) bool {
	now := r.now().UnixMilli()
	r.mu.RLock()
	e, ok := r.devices[device]
	r.mu.RUnlock()
	return ok && now < e.expires && issuedAt.UnixMilli() < e.notBefore
}
