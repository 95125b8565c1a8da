package poll

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

func TestUntilReturnsOnceTrue(t *testing.T) {
	var n atomic.Int32
	Until(t, 10*time.Second, "third call", func() bool { return n.Add(1) >= 3 })
	if got := n.Load(); got != 3 {
		t.Fatalf("cond ran %d times, want 3", got)
	}
}

func TestWaitReturnsLastError(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Millisecond)
	defer cancel()
	var n atomic.Int32
	err := Wait(ctx, func(context.Context) error { return fmt.Errorf("try %d", n.Add(1)) })
	if err == nil || err.Error() != fmt.Sprintf("try %d", n.Load()) {
		t.Fatalf("Wait = %v after %d tries, want the last try's error", err, n.Load())
	}
}

func TestWaitStopsOnNil(t *testing.T) {
	want := errors.New("not yet")
	var n atomic.Int32
	err := Wait(t.Context(), func(context.Context) error {
		if n.Add(1) < 5 {
			return want
		}
		return nil
	})
	if err != nil || n.Load() != 5 {
		t.Fatalf("Wait = %v after %d tries, want nil after 5", err, n.Load())
	}
}

// recorder is a testing.TB whose Fatalf records the message and stops the
// goroutine, as testing's does.
type recorder struct {
	testing.TB
	msg string
}

func (r *recorder) Helper() {}
func (r *recorder) Fatal(args ...any) {
	r.msg = fmt.Sprint(args...)
	runtime.Goexit()
}

func TestUntilFailsWithWhat(t *testing.T) {
	for _, tc := range []struct {
		name string
		run  func(tb testing.TB)
		want string
	}{
		{"Until", func(tb testing.TB) { Until(tb, 20*time.Millisecond, "the flag", func() bool { return false }) }, "the flag: not within 20ms"},
		{"NoError", func(tb testing.TB) {
			NoError(tb, 20*time.Millisecond, "the row", func() error { return errors.New("no row") })
		}, "the row: not within 20ms: no row"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &recorder{TB: t}
			done := make(chan struct{})
			go func() { defer close(done); tc.run(r) }()
			<-done
			if r.msg != tc.want {
				t.Fatalf("failure message %q, want %q", r.msg, tc.want)
			}
		})
	}
}
