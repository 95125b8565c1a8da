package coremetrics

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func counter(name string) prometheus.Counter {
	return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: name + "."})
}

// The series come off together and may go on again.
func TestRegisterUnregister(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	a, b := counter("a_total"), counter("b_total")
	unregister, err := Register(reg, a, b)
	if err != nil {
		t.Fatal(err)
	}
	if n := gathered(t, reg); n != 2 {
		t.Fatalf("%d families registered, want 2", n)
	}
	unregister()
	unregister() // twice is harmless
	if n := gathered(t, reg); n != 0 {
		t.Fatalf("%d families after unregister, want 0", n)
	}
	if _, err := Register(reg, a, b); err != nil {
		t.Fatalf("Register again after unregister: %v", err)
	}
}

// A failure leaves none of the series behind.
func TestRegisterFailureUnregistersTheRest(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(counter("taken_total")); err != nil {
		t.Fatal(err)
	}
	unregister, err := Register(reg, counter("a_total"), counter("taken_total"))
	if err == nil || unregister != nil {
		t.Fatalf("Register over a taken name = %v, %v; want an error and no unregister", unregister != nil, err)
	}
	if n := gathered(t, reg); n != 1 {
		t.Fatalf("%d families after the failure, want only the one taken before", n)
	}
}

func TestRegisterNil(t *testing.T) {
	unregister, err := Register(nil, counter("a_total"))
	if err != nil {
		t.Fatal(err)
	}
	unregister()
}

// gathered is how many metric families reg has (counters show at 0).
func gathered(t *testing.T, reg *prometheus.Registry) int {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	return len(fams)
}
