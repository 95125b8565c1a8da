package auth

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

func newTestThrottle(t *testing.T, cfg ThrottleConfig) (*Throttle, *fakeClock) {
	t.Helper()
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	cfg.Now = clock.Now
	th, err := NewThrottle(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return th, clock
}

// admitted begins an attempt that must be let through.
func admitted(t *testing.T, th *Throttle, ws, user, addr string) *Attempt {
	t.Helper()
	a, err := th.Begin(ws, user, addr)
	if err != nil {
		t.Fatalf("%s/%s from %s refused: %v", ws, user, addr, err)
	}
	return a
}

// refused begins an attempt that must be refused and returns its wait.
func refused(t *testing.T, th *Throttle, ws, user, addr string) time.Duration {
	t.Helper()
	a, err := th.Begin(ws, user, addr)
	if err == nil {
		a.Cancel()
		t.Fatalf("%s/%s from %s admitted, want refused", ws, user, addr)
	}
	var e *syncproto.Error
	if !errors.As(err, &e) || e.Code != syncpb.Code_CODE_RATE_LIMITED || e.RetryAfter <= 0 {
		t.Fatalf("refusal %#v, want RATE_LIMITED with RetryAfter", err)
	}
	return e.RetryAfter
}

func addr(i int) string { return fmt.Sprintf("198.51.100.%d", i%250+1) }

// TestThrottleDelayDoublesToCap: free failures, then a wait that doubles
// with each failure and stops at MaxDelay; whatever the address.
func TestThrottleDelayDoublesToCap(t *testing.T) {
	th, clock := newTestThrottle(t, ThrottleConfig{FreeFailures: 2, BaseDelay: time.Second, MaxDelay: 10 * time.Second})
	want := []time.Duration{0, 0, time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second, 10 * time.Second}
	for i, w := range want {
		a := admitted(t, th, "acme", "ana", addr(i))
		n, d := a.Fail()
		if n != i+1 || d != w {
			t.Fatalf("failure %d: count %d, delay %v; want %d, %v", i+1, n, d, i+1, w)
		}
		if w == 0 {
			continue
		}
		// Refused from any address until the delay has passed.
		if got := refused(t, th, "ACME", "Ana", addr(i+100)); got != w {
			t.Fatalf("after failure %d: wait %v, want %v", i+1, got, w)
		}
		clock.Add(w - time.Millisecond)
		if got := refused(t, th, "acme", "ana", addr(i+200)); got != time.Millisecond {
			t.Fatalf("just before the end: wait %v", got)
		}
		clock.Add(time.Millisecond)
	}
	// Another account is not affected.
	admitted(t, th, "acme", "bo", addr(0)).Cancel()
	admitted(t, th, "other", "ana", addr(0)).Cancel()
	// A success clears the account-wide delay.
	admitted(t, th, "acme", "ana", addr(7)).Succeed()
	for i := 0; i < 2; i++ {
		if _, d := admitted(t, th, "acme", "ana", addr(8)).Fail(); d != 0 {
			t.Fatalf("failure %d after a success: delay %v, want none", i+1, d)
		}
	}
}

// TestThrottleForgets: the count is forgotten after ForgetAfter without a
// failure.
func TestThrottleForgets(t *testing.T) {
	th, clock := newTestThrottle(t, ThrottleConfig{FreeFailures: 1, MaxDelay: 4 * time.Second, ForgetAfter: time.Minute})
	for i := 0; i < 5; i++ {
		admitted(t, th, "acme", "ana", addr(i)).Fail()
		clock.Add(4 * time.Second)
	}
	if _, d := admitted(t, th, "acme", "ana", addr(9)).Fail(); d != 4*time.Second {
		t.Fatalf("delay %v, want the cap", d)
	}
	clock.Add(time.Minute)
	if n, d := admitted(t, th, "acme", "ana", addr(9)).Fail(); n != 1 || d != 0 {
		t.Fatalf("after ForgetAfter: count %d delay %v, want 1, none", n, d)
	}
}

// TestThrottleOneAtATime: once the free failures are used up, concurrent
// attempts are not let through together; a cancelled attempt counts for
// nothing.
func TestThrottleOneAtATime(t *testing.T) {
	th, clock := newTestThrottle(t, ThrottleConfig{FreeFailures: 2})
	a1 := admitted(t, th, "acme", "ana", addr(1))
	a2 := admitted(t, th, "acme", "ana", addr(2))
	refused(t, th, "acme", "ana", addr(3)) // two in flight may both fail
	a1.Cancel()
	a1.Fail() // a second report is ignored
	a3 := admitted(t, th, "acme", "ana", addr(3))
	a2.Fail()
	a3.Fail()
	clock.Add(time.Second) // no delay yet: two failures are free
	a4 := admitted(t, th, "acme", "ana", addr(4))
	refused(t, th, "acme", "ana", addr(5))
	if _, d := a4.Fail(); d != DefaultBaseDelay {
		t.Fatalf("third failure: delay %v", d)
	}
}

// TestThrottleKnownAddress: a user logging in from an address they used
// before is not held up by guesses from elsewhere, and guesses from that
// address get a delay of their own.
func TestThrottleKnownAddress(t *testing.T) {
	th, clock := newTestThrottle(t, ThrottleConfig{KnownAddrTTL: time.Hour})
	home := "2001:db8:1:2::10"
	admitted(t, th, "acme", "ana", home).Succeed()
	guess := func() {
		for i := 0; i < 20; i++ {
			a, err := th.Begin("acme", "ana", addr(i))
			if err == nil {
				a.Fail()
			}
			clock.Add(time.Second)
		}
	}
	guess()
	refused(t, th, "acme", "ana", addr(99))
	// Same /64, another interface id: known.
	admitted(t, th, "acme", "ana", "2001:db8:1:2::77").Succeed()
	// Guessing from the known address is throttled on its own line.
	for i := 0; i < DefaultFreeFailures+1; i++ {
		admitted(t, th, "acme", "ana", home).Fail()
	}
	refused(t, th, "acme", "ana", home)
	// An address stays known for KnownAddrTTL after its last success.
	clock.Add(time.Hour)
	guess()
	refused(t, th, "acme", "ana", "2001:db8:1:2::77")
}

// TestThrottleStaysBounded: at most MaxAccounts accounts are remembered,
// and a flood of guesses at many names evicts its own entries before the
// account under attack and the known addresses of users.
func TestThrottleStaysBounded(t *testing.T) {
	th, _ := newTestThrottle(t, ThrottleConfig{MaxAccounts: 100})
	admitted(t, th, "acme", "bo", addr(1)).Succeed()
	for i := 0; i < 10; i++ {
		a, err := th.Begin("acme", "ana", addr(i))
		if err == nil {
			a.Fail()
		}
	}
	for i := 0; i < 1000; i++ {
		admitted(t, th, "acme", fmt.Sprintf("u%d", i), addr(i)).Fail()
		if n := th.len(); n > 100 {
			t.Fatalf("%d accounts after %d names, bound is 100", n, i+1)
		}
	}
	refused(t, th, "acme", "ana", addr(3))
	th.mu.Lock()
	bo := th.accounts[accountKey("acme", "bo")]
	th.mu.Unlock()
	if bo == nil || len(bo.known) != 1 {
		t.Fatalf("bo's known address forgotten: %+v", bo)
	}
}

func TestThrottleOff(t *testing.T) {
	th, _ := newTestThrottle(t, ThrottleConfig{MaxDelay: -1})
	for i := 0; i < 100; i++ {
		if n, d := admitted(t, th, "acme", "ana", addr(1)).Fail(); n != 0 || d != 0 {
			t.Fatalf("off: %d, %v", n, d)
		}
	}
	if th.len() != 0 {
		t.Fatal("off throttle keeps state")
	}
}

func TestThrottleConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cfg   ThrottleConfig
		field string // "" for valid
	}{
		{"zero", ThrottleConfig{}, ""},
		{"off", ThrottleConfig{MaxDelay: -1, BaseDelay: time.Hour}, ""},
		{"negative free", ThrottleConfig{FreeFailures: -1}, "FreeFailures"},
		{"negative base", ThrottleConfig{BaseDelay: -1}, "BaseDelay"},
		{"base over max", ThrottleConfig{BaseDelay: 2 * time.Minute}, "BaseDelay"},
		{"forget within max", ThrottleConfig{MaxDelay: time.Minute, ForgetAfter: time.Minute}, "ForgetAfter"},
		{"negative ttl", ThrottleConfig{KnownAddrTTL: -1}, "KnownAddrTTL"},
		{"negative bound", ThrottleConfig{MaxAccounts: -1}, "MaxAccounts"},
	} {
		err := tc.cfg.Validate()
		switch {
		case tc.field == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.field != "" && (err == nil || !strings.Contains(err.Error(), tc.field)):
			t.Errorf("%s: Validate() = %v, want an error naming %s", tc.name, err, tc.field)
		}
	}
}
