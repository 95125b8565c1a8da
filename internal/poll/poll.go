// Package poll is the tests' one way to wait for a condition: it checks
// it until it holds or a deadline passes, and fails the test with what it
// was waiting for. Tests wait with a deadline, never with a fixed sleep.
package poll

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// interval bounds how often a condition is checked: the first checks come
// quickly, later ones back off to maxInterval.
const (
	minInterval = time.Millisecond
	maxInterval = 20 * time.Millisecond
)

// Until checks cond until it returns true. If d passes first it fails tb
// with "<what>: not within <d>".
func Until(tb testing.TB, d time.Duration, what string, cond func() bool) {
	tb.Helper()
	NoError(tb, d, what, func() error {
		if cond() {
			return nil
		}
		return errFalse
	})
}

// NoError calls f until it returns nil. If d passes first it fails tb
// with what and f's last error.
func NoError(tb testing.TB, d time.Duration, what string, f func() error) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if err := Wait(ctx, func(context.Context) error { return f() }); err != nil {
		msg := fmt.Sprintf("not within %s", d)
		if what != "" {
			msg = what + ": " + msg
		}
		if err != errFalse {
			msg += ": " + err.Error()
		}
		tb.Fatal(msg)
	}
}

// Wait calls f until it returns nil or ctx ends; it returns f's last error
// (or ctx's, if f never ran). f gets ctx for its own blocking calls.
func Wait(ctx context.Context, f func(context.Context) error) error {
	wait := minInterval
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		err := f(ctx)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return err
		}
		t.Reset(wait)
		select {
		case <-ctx.Done():
			return err
		case <-t.C:
		}
		wait = min(2*wait, maxInterval)
	}
}

type falseError struct{}

func (falseError) Error() string { return "condition is false" }

var errFalse error = falseError{}
