package schedload

import (
	"runtime/metrics"
	"testing"
	"time"
)

// fakeRuntime is a cumulative latency histogram a test moves by hand.
type fakeRuntime struct {
	h metrics.Float64Histogram
}

func (f *fakeRuntime) read() *metrics.Float64Histogram {
	return &metrics.Float64Histogram{Counts: append([]uint64(nil), f.h.Counts...), Buckets: f.h.Buckets}
}

func TestOverloaded(t *testing.T) {
	// Buckets: [0,1ms) [1ms,5ms) [5ms,10ms) [10ms,inf)
	rt := &fakeRuntime{h: metrics.Float64Histogram{Counts: make([]uint64, 4), Buckets: []float64{0, 0.001, 0.005, 0.010, 1e9}}}
	now := time.Unix(0, 0)
	m := New(Config{Now: func() time.Time { return now }, read: rt.read})
	step := func(counts ...uint64) bool {
		for i, c := range counts {
			rt.h.Counts[i] += c
		}
		now = now.Add(DefaultWindow)
		return m.Overloaded()
	}
	if step(1000, 50, 0, 0) {
		t.Fatal("fast wake-ups: overloaded")
	}
	if !step(800, 50, 100, 50) { // 150 of 1000 waited >= 5 ms
		t.Fatal("15% late: not overloaded")
	}
	// Within the window the answer stands, whatever happens meanwhile.
	rt.h.Counts[0] += 1e6
	now = now.Add(DefaultWindow / 2)
	if !m.Overloaded() {
		t.Fatal("re-sampled within the window")
	}
	now = now.Add(DefaultWindow / 2)
	if m.Overloaded() {
		t.Fatal("1e6 fast wake-ups since: still overloaded")
	}
	if step(0, 0, 0, 0) {
		t.Fatal("an idle window: overloaded")
	}
}

// The real runtime metric exists and an idle test process is not
// overloaded (a sanity check of the metric's name and kind).
func TestRuntimeMetric(t *testing.T) {
	m := New(Config{Window: time.Nanosecond})
	if m.counts() == nil {
		t.Fatalf("no %s histogram", metric)
	}
	_ = m.Overloaded() // must not panic; its answer depends on the machine
}
