package httpapi

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// limiters is a bounded map of token buckets, one per key (a user, an IP).
type limiters struct {
	mu    sync.Mutex
	m     map[string]*rate.Limiter
	rate  rate.Limit
	burst int
	max   int
	now   func() time.Time
}

func newLimiters(r rate.Limit, burst, max int, now func() time.Time) *limiters {
	return &limiters{m: map[string]*rate.Limiter{}, rate: r, burst: burst, max: max, now: now}
}

// allow takes a token from key's bucket. When it is empty it returns false
// and how long until a token is available.
func (l *limiters) allow(key string) (bool, time.Duration) {
	if l.rate == rate.Inf {
		return true, 0
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	lim := l.m[key]
	if lim == nil {
		if len(l.m) >= l.max {
			l.prune(now)
		}
		lim = rate.NewLimiter(l.rate, l.burst)
		l.m[key] = lim
	}
	res := lim.ReserveN(now, 1)
	if !res.OK() {
		return false, time.Second
	}
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return false, d
	}
	return true, 0
}

// prune makes room: first it drops buckets that have refilled (forgetting
// a full bucket loses nothing); if that frees too little, because that many
// keys are active at once, it drops arbitrary buckets down to 3/4 of the
// bound, so pruning runs at most once per max/4 new keys.
func (l *limiters) prune(now time.Time) {
	for k, lim := range l.m {
		if lim.TokensAt(now) >= float64(l.burst) {
			delete(l.m, k)
		}
	}
	for k := range l.m {
		if len(l.m) <= l.max*3/4 {
			break
		}
		delete(l.m, k)
	}
}

func (l *limiters) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.m)
}

// logBudget rate-limits a log line on a path a client can flood, and
// counts the lines it held back so the next one can say how many.
type logBudget struct {
	mu      sync.Mutex
	lim     *rate.Limiter
	dropped int
}

func newLogBudget(r rate.Limit, burst int) *logBudget {
	return &logBudget{lim: rate.NewLimiter(r, burst)}
}

// take reports whether a line may be logged at now and, if so, how many
// were held back since the last one.
func (b *logBudget) take(now time.Time) (ok bool, dropped int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.lim.AllowN(now, 1) {
		b.dropped++
		return false, 0
	}
	dropped, b.dropped = b.dropped, 0
	return true, dropped
}
