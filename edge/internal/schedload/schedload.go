// Package schedload tells whether this process is short of CPU, from the
// Go scheduler's own measure: how long runnable goroutines waited to run
// (runtime/metrics /sched/latencies:seconds). When many wait long, every
// piece of work is late, and work whose value decays fast (typing
// indicators) is better dropped than done late at the expense of the rest.
package schedload

import (
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults for Config's zero values.
const (
	DefaultWindow    = 100 * time.Millisecond
	DefaultThreshold = 5 * time.Millisecond
	DefaultFraction  = 0.10
)

// Config tunes a Monitor. Zero values mean the defaults.
type Config struct {
	// Window is how often the scheduler is sampled, at most (default
	// 100 ms); Overloaded reports on the last whole window.
	Window time.Duration
	// The process is overloaded when at least Fraction (default 10%) of
	// the goroutine wake-ups in a window waited Threshold (default 5 ms)
	// or more to run.
	Threshold time.Duration
	Fraction  float64
	// Now is the clock (default time.Now).
	Now func() time.Time
	// read returns the cumulative latency histogram (tests replace it).
	read func() *metrics.Float64Histogram
}

const metric = "/sched/latencies:seconds"

// Monitor samples scheduling latency lazily: a caller of Overloaded that
// finds the last sample a Window old takes the next one. No goroutine.
// Safe for concurrent use.
type Monitor struct {
	cfg  Config
	over atomic.Bool
	last atomic.Int64 // UnixNano of the last sample

	mu     sync.Mutex // held while sampling
	prev   []uint64
	sample []metrics.Sample
}

// New returns a Monitor for cfg.
func New(cfg Config) *Monitor {
	if cfg.Window <= 0 {
		cfg.Window = DefaultWindow
	}
	if cfg.Threshold <= 0 {
		cfg.Threshold = DefaultThreshold
	}
	if cfg.Fraction <= 0 {
		cfg.Fraction = DefaultFraction
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	m := &Monitor{cfg: cfg, sample: []metrics.Sample{{Name: metric}}}
	if m.cfg.read == nil {
		m.cfg.read = m.readRuntime
	}
	m.prev = m.counts()
	m.last.Store(cfg.Now().UnixNano())
	return m
}

func (m *Monitor) readRuntime() *metrics.Float64Histogram {
	metrics.Read(m.sample)
	if m.sample[0].Value.Kind() != metrics.KindFloat64Histogram {
		return nil
	}
	return m.sample[0].Value.Float64Histogram()
}

// counts copies the histogram's counts (nil when the runtime has none).
func (m *Monitor) counts() []uint64 {
	h := m.cfg.read()
	if h == nil {
		return nil
	}
	return append([]uint64(nil), h.Counts...)
}

// Overloaded reports whether, in the last sampled window, at least
// Fraction of goroutine wake-ups waited Threshold or more. It costs a
// clock read, and a runtime/metrics read once per Window.
func (m *Monitor) Overloaded() bool {
	now := m.cfg.Now().UnixNano()
	if now-m.last.Load() < int64(m.cfg.Window) || !m.mu.TryLock() {
		return m.over.Load()
	}
	defer m.mu.Unlock()
	if now-m.last.Load() < int64(m.cfg.Window) {
		return m.over.Load() // another caller just sampled
	}
	h := m.cfg.read()
	if h == nil {
		return false
	}
	var total, late uint64
	limit := m.cfg.Threshold.Seconds()
	for i, c := range h.Counts {
		d := c
		if i < len(m.prev) {
			d -= m.prev[i]
		}
		total += d
		if h.Buckets[i] >= limit {
			late += d
		}
	}
	m.prev = append(m.prev[:0], h.Counts...)
	m.last.Store(now)
	over := total > 0 && float64(late) >= m.cfg.Fraction*float64(total)
	m.over.Store(over)
	return over
}
