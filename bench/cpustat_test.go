package bench

import (
	"math"
	"testing"
)

func TestParseCPUTimes(t *testing.T) {
	a, err := parseCPUTimes([]byte("cpu  100 0 50 800 10 0 0 40 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\nintr 1\n"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := parseCPUTimes([]byte("cpu  160 0 70 900 30 5 5 80 0 0\n"))
	if err != nil {
		t.Fatal(err)
	}
	got := b.shareSince(a)
	// busy 60+20+5+5 = 90, idle 100, iowait 20, steal 40: total 250.
	want := CPUShare{Busy: 36, IOWait: 8, Steal: 16}
	if math.Abs(got.Busy-want.Busy) > 1e-9 || math.Abs(got.IOWait-want.IOWait) > 1e-9 || math.Abs(got.Steal-want.Steal) > 1e-9 {
		t.Fatalf("share = %+v, want %+v", got, want)
	}
	if z := a.shareSince(a); z != (CPUShare{}) {
		t.Fatalf("empty window = %+v", z)
	}
	for _, bad := range []string{"", "cpu 1 2 3\n", "cpu 1 2 3 4 5 6 7 x 9\n", "cpu0 1 2 3 4 5 6 7 8\n"} {
		if _, err := parseCPUTimes([]byte(bad)); err == nil {
			t.Errorf("parseCPUTimes(%q) = nil error", bad)
		}
	}
	if _, err := readCPUTimes(); err != nil {
		t.Logf("no /proc/stat here: %v", err)
	}
}

func FuzzParseCPUTimes(f *testing.F) {
	f.Add([]byte("cpu  100 0 50 800 10 0 0 40 0 0\n"))
	f.Add([]byte("cpu 18446744073709551615 0 0 0 0 0 0 0\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := parseCPUTimes(b)
		if err != nil {
			return
		}
		s := a.shareSince(cpuTimes{})
		if s.Busy < 0 || s.Busy > 100 || s.Steal < 0 || s.Steal > 100 || s.IOWait < 0 || s.IOWait > 100 {
			t.Fatalf("share out of range: %+v", s)
		}
	})
}
