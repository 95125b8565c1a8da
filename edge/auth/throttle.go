package auth

import (
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// Defaults for ThrottleConfig's zero values.
const (
	DefaultFreeFailures = 3
	DefaultBaseDelay    = time.Second
	DefaultMaxDelay     = time.Minute
	// DefaultForgetFactor: failures are forgotten after ForgetFactor
	// times MaxDelay without one (15 minutes by default).
	DefaultForgetFactor = 15
	DefaultKnownAddrTTL = 30 * 24 * time.Hour
	DefaultMaxAccounts  = 100_000
	// KnownAddrsPerAccount bounds the addresses remembered per account.
	KnownAddrsPerAccount = 4
)

// ThrottleConfig configures a Throttle. Zero values mean the defaults.
type ThrottleConfig struct {
	// FreeFailures is how many failed log-ins in a row an account may
	// have before its next attempt waits (default 3).
	FreeFailures int
	// BaseDelay is the wait after the first failure beyond the free
	// ones; each further failure doubles it, up to MaxDelay (defaults
	// 1 s and 1 min). A negative MaxDelay turns the throttle off.
	BaseDelay, MaxDelay time.Duration
	// ForgetAfter is how long without a failure clears an account's
	// count (default 15 × MaxDelay); it must be longer than MaxDelay.
	ForgetAfter time.Duration
	// KnownAddrTTL is how long an address a user logged in from stays
	// known (default 30 days).
	KnownAddrTTL time.Duration
	// MaxAccounts bounds the accounts the Throttle remembers (default
	// 100,000).
	MaxAccounts int
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Validate names the first bad field.
func (c ThrottleConfig) Validate() error {
	switch {
	case c.FreeFailures < 0:
		return fmt.Errorf("auth: ThrottleConfig.FreeFailures %d is negative", c.FreeFailures)
	case c.BaseDelay < 0:
		return fmt.Errorf("auth: ThrottleConfig.BaseDelay %v is negative", c.BaseDelay)
	case c.ForgetAfter < 0:
		return fmt.Errorf("auth: ThrottleConfig.ForgetAfter %v is negative", c.ForgetAfter)
	case c.KnownAddrTTL < 0:
		return fmt.Errorf("auth: ThrottleConfig.KnownAddrTTL %v is negative", c.KnownAddrTTL)
	case c.MaxAccounts < 0:
		return fmt.Errorf("auth: ThrottleConfig.MaxAccounts %d is negative", c.MaxAccounts)
	case c.MaxDelay < 0:
		return nil // off: the other fields do not matter
	}
	d := c.withDefaults()
	switch {
	case d.BaseDelay > d.MaxDelay:
		return fmt.Errorf("auth: ThrottleConfig.BaseDelay %v is longer than MaxDelay %v", d.BaseDelay, d.MaxDelay)
	case d.ForgetAfter <= d.MaxDelay:
		return fmt.Errorf("auth: ThrottleConfig.ForgetAfter %v must be longer than MaxDelay %v", d.ForgetAfter, d.MaxDelay)
	}
	return nil
}

func (c ThrottleConfig) withDefaults() ThrottleConfig {
	if c.FreeFailures == 0 {
		c.FreeFailures = DefaultFreeFailures
	}
	if c.BaseDelay == 0 {
		c.BaseDelay = DefaultBaseDelay
	}
	if c.MaxDelay == 0 {
		c.MaxDelay = DefaultMaxDelay
	}
	if c.ForgetAfter == 0 {
		c.ForgetAfter = DefaultForgetFactor * c.MaxDelay
	}
	if c.KnownAddrTTL == 0 {
		c.KnownAddrTTL = DefaultKnownAddrTTL
	}
	if c.MaxAccounts == 0 {
		c.MaxAccounts = DefaultMaxAccounts
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Throttle slows password guessing against one account, whatever the
// addresses the guesses come from. It is safe for concurrent use.
//
// An account is a workspace name and a username, compared without ASCII
// case as the core compares them; accounts that do not exist are throttled
// the same way, so the throttle tells nobody which accounts exist.
//
// Failures are counted per account. The first FreeFailures in a row cost
// nothing (typos); after each one beyond them the account's next attempt
// must wait BaseDelay, doubling with every further failure up to MaxDelay.
// An attempt made during the wait is refused with RATE_LIMITED and the
// time left as RetryAfter (HTTP 429 with Retry-After), without checking
// the password. Once the free failures are used up, attempts are also
// taken one at a time, so concurrent guesses cannot slip through together.
// The count is forgotten after ForgetAfter without a failure, and a
// successful log-in clears the delay it passed through.
//
// Nothing locks an account: the wait never exceeds MaxDelay, so a guesser
// gets at most one password check per MaxDelay per account, and the real
// user waits at most MaxDelay for a turn. To keep a guesser who never
// stops from taking every turn, the address (an IPv4 address, or an IPv6
// /64) of each successful log-in is remembered for KnownAddrTTL, up to
// KnownAddrsPerAccount per account: attempts from a known address have a
// delay of their own, apart from the account-wide one, so a user logging
// in from where they logged in before is not held up by guesses from
// elsewhere, while guesses from that address are slowed the same way.
//
// The Throttle keeps its state in memory, in this process: each edge
// throttles on its own, so with N edges a guesser spread across all of
// them gets N checks per MaxDelay, and a restart forgets the counts. At
// most MaxAccounts accounts are remembered; when full, the accounts with
// the fewest failures and no known addresses are forgotten first.
type Throttle struct {
	free        int
	base, max   time.Duration
	forget      time.Duration
	knownTTL    time.Duration
	maxAccounts int
	now         func() time.Time
	off         bool

	mu       sync.Mutex
	accounts map[string]*account
}

// account is the state of one workspace and username.
type account struct {
	wide  backoff     // attempts from addresses not known
	known []knownAddr // newest first
}

type knownAddr struct {
	prefix netip.Prefix
	seen   time.Time // last successful log-in from it
	b      backoff
}

// backoff counts the failures of one line of attempts.
type backoff struct {
	fails    int
	inflight int       // attempts admitted and not yet reported
	last     time.Time // of the last failure
	until    time.Time // no attempt before this
}

// NewThrottle returns a Throttle for cfg.
func NewThrottle(cfg ThrottleConfig) (*Throttle, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	off := cfg.MaxDelay < 0
	cfg = cfg.withDefaults()
	return &Throttle{
		free: cfg.FreeFailures, base: cfg.BaseDelay, max: cfg.MaxDelay, forget: cfg.ForgetAfter,
		knownTTL: cfg.KnownAddrTTL, maxAccounts: cfg.MaxAccounts, now: cfg.Now, off: off,
		accounts: map[string]*account{},
	}, nil
}

// Attempt is one log-in the Throttle let through. Report its outcome with
// one of Fail, Succeed or Cancel; only the first report counts, so
// `defer a.Cancel()` covers the paths that check no password. An Attempt
// is used by one goroutine.
type Attempt struct {
	t     *Throttle
	key   string
	addr  netip.Prefix // the client's address; zero when not an IP
	known bool         // it passed through addr's own line, not the account's
	done  bool
}

// Begin asks to check a password for the account (workspace, username)
// from the client address addr (an IP address; anything else counts as
// unknown). It returns an Attempt, or a *syncproto.Error RATE_LIMITED
// whose RetryAfter says how long the account's next attempt must wait.
func (t *Throttle) Begin(workspace, username, addr string) (*Attempt, error) {
	if t.off {
		return &Attempt{done: true}, nil // reports are no-ops
	}
	key := accountKey(workspace, username)
	prefix := addrPrefix(addr)
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	acc := t.accounts[key]
	if acc == nil {
		if len(t.accounts) >= t.maxAccounts {
			t.prune(now)
		}
		acc = &account{}
		t.accounts[key] = acc
	}
	b, known := acc.line(prefix, now, t.knownTTL)
	if wait := t.wait(b, now); wait > 0 {
		return nil, &syncproto.Error{Code: syncpb.Code_CODE_RATE_LIMITED,
			Message: "too many failed log-ins for this account; try again later", RetryAfter: wait}
	}
	b.inflight++
	return &Attempt{t: t, key: key, addr: prefix, known: known}, nil
}

// wait is how long b must wait before its next attempt; 0: admit now.
func (t *Throttle) wait(b *backoff, now time.Time) time.Duration {
	if b.fails > 0 && now.Sub(b.last) >= t.forget {
		b.fails, b.until = 0, time.Time{}
	}
	if d := b.until.Sub(now); d > 0 {
		return d
	}
	if b.inflight > 0 && b.fails+b.inflight >= t.free {
		// Another attempt is being checked and, were it to fail, would
		// make this one wait: it asks again shortly.
		return min(t.base, time.Second)
	}
	return 0
}

// delay is the wait after an account's fails-th failure in a row.
func (t *Throttle) delay(fails int) time.Duration {
	k := fails - t.free
	if k <= 0 {
		return 0
	}
	d := t.base
	for i := 1; i < k && d < t.max; i++ {
		d *= 2
	}
	return min(d, t.max)
}

// Fail reports that the password was wrong (or the account does not
// exist). It returns the account's failures in a row on this line of
// attempts and the wait it now imposes.
func (a *Attempt) Fail() (failures int, delay time.Duration) {
	if a.done {
		return 0, 0
	}
	a.done = true
	t := a.t
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.lineOf(a)
	b.inflight = max(b.inflight-1, 0)
	if b.fails > 0 && now.Sub(b.last) >= t.forget {
		b.fails = 0
	}
	b.fails++
	b.last = now
	d := t.delay(b.fails)
	b.until = now.Add(d)
	return b.fails, d
}

// Succeed reports that the password was right: the delay the attempt
// passed through is cleared, and the address becomes known for the
// account.
func (a *Attempt) Succeed() {
	if a.done {
		return
	}
	a.done = true
	t := a.t
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.lineOf(a)
	b.inflight = max(b.inflight-1, 0)
	b.fails, b.until, b.last = 0, time.Time{}, time.Time{}
	if a.addr.IsValid() {
		t.accounts[a.key].remember(a.addr, now, t.knownTTL)
	}
}

// Cancel reports that no password was checked (the core could not be
// asked, the request ended). It is a no-op after Fail or Succeed.
func (a *Attempt) Cancel() {
	if a.done {
		return
	}
	a.done = true
	t := a.t
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.lineOf(a)
	b.inflight = max(b.inflight-1, 0)
}

// lineOf finds the backoff a passed through, recreating the account if it
// was forgotten meanwhile.
func (t *Throttle) lineOf(a *Attempt) *backoff {
	acc := t.accounts[a.key]
	if acc == nil {
		acc = &account{}
		t.accounts[a.key] = acc
	}
	if a.known {
		for i := range acc.known {
			if acc.known[i].prefix == a.addr {
				return &acc.known[i].b
			}
		}
	}
	return &acc.wide
}

// line is the backoff that an attempt from prefix goes through: the known
// address's own (known true), or the account-wide one.
func (acc *account) line(prefix netip.Prefix, now time.Time, ttl time.Duration) (b *backoff, known bool) {
	if prefix.IsValid() {
		for i := range acc.known {
			k := &acc.known[i]
			if k.prefix == prefix && now.Sub(k.seen) < ttl {
				return &k.b, true
			}
		}
	}
	return &acc.wide, false
}

// remember makes prefix known, newest first, dropping expired and the
// oldest beyond KnownAddrsPerAccount.
func (acc *account) remember(prefix netip.Prefix, now time.Time, ttl time.Duration) {
	acc.known = slices.DeleteFunc(acc.known, func(k knownAddr) bool {
		return now.Sub(k.seen) >= ttl && k.b.inflight == 0
	})
	for i, k := range acc.known {
		if k.prefix == prefix {
			k.seen = now
			acc.known = slices.Delete(acc.known, i, i+1)
			acc.known = slices.Insert(acc.known, 0, k)
			return
		}
	}
	acc.known = slices.Insert(acc.known, 0, knownAddr{prefix: prefix, seen: now})
	if len(acc.known) > KnownAddrsPerAccount {
		acc.known = acc.known[:KnownAddrsPerAccount]
	}
}

// idle reports whether forgetting acc loses nothing: no failures still
// counted, no attempt in flight, no known address still valid.
func (acc *account) idle(now time.Time, forget, ttl time.Duration) bool {
	if !acc.wide.idle(now, forget) {
		return false
	}
	for _, k := range acc.known {
		if now.Sub(k.seen) < ttl || !k.b.idle(now, forget) {
			return false
		}
	}
	return true
}

func (b *backoff) idle(now time.Time, forget time.Duration) bool {
	return b.inflight == 0 && (b.fails == 0 || now.Sub(b.last) >= forget)
}

// busy reports whether acc has an attempt in flight.
func (acc *account) busy() bool {
	if acc.wide.inflight > 0 {
		return true
	}
	for _, k := range acc.known {
		if k.b.inflight > 0 {
			return true
		}
	}
	return false
}

// prune makes room: it forgets idle accounts; if that frees too little,
// it forgets accounts with no attempt in flight down to 3/4 of the bound,
// those without known addresses first, and among them those with the
// fewest failures, so that a flood of guesses at many names evicts the
// flood's own entries before an account under attack or a user's known
// addresses. Pruning runs at most once per MaxAccounts/4 new accounts.
func (t *Throttle) prune(now time.Time) {
	for k, acc := range t.accounts {
		if acc.idle(now, t.forget, t.knownTTL) {
			delete(t.accounts, k)
		}
	}
	target := t.maxAccounts * 3 / 4
	if len(t.accounts) <= target {
		return
	}
	type cand struct {
		key   string
		score int
	}
	cands := make([]cand, 0, len(t.accounts))
	for k, acc := range t.accounts {
		if acc.busy() {
			continue
		}
		score := acc.wide.fails
		if len(acc.known) > 0 {
			score += 1 << 30
		}
		cands = append(cands, cand{k, score})
	}
	slices.SortFunc(cands, func(a, b cand) int { return a.score - b.score })
	for _, c := range cands {
		if len(t.accounts) <= target {
			break
		}
		delete(t.accounts, c.key)
	}
}

// len is the number of accounts remembered (for tests).
func (t *Throttle) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.accounts)
}

// accountKey names an account: the workspace name and the username,
// ASCII lower-cased as the core compares them, split by a byte neither
// may hold.
func accountKey(workspace, username string) string {
	b := make([]byte, 0, len(workspace)+1+len(username))
	b = appendLower(b, workspace)
	b = append(b, 0)
	return string(appendLower(b, username))
}

func appendLower(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		b = append(b, c)
	}
	return b
}

// addrPrefix is the unit an address is known by: the IPv4 address, or
// the IPv6 /64 (a host's privacy addresses change within it). Zero for
// anything that is not an IP address.
func addrPrefix(addr string) netip.Prefix {
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		return netip.Prefix{}
	}
	ip = ip.Unmap().WithZone("")
	bits := 32
	if ip.Is6() {
		bits = 64
	}
	p, err := ip.Prefix(bits)
	if err != nil {
		return netip.Prefix{}
	}
	return p
}
