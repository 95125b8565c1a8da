package httpapi

import (
	"fmt"
	"strconv"
	"testing"
	"time"
)

// loginFrom tries user of workspace acme with password from ip.
func (e *testEnv) loginFrom(ip, user, password string) result {
	e.t.Helper()
	return e.doFrom(ip, "POST", "/v1/sessions", "", map[string]string{"workspace": "acme", "username": user, "password": password})
}

// retryAfter checks that r is a 429 rate_limited answer and returns its
// wait: the body's retry_after_ms, which the Retry-After header rounds up
// to whole seconds.
func retryAfter(t *testing.T, r result) time.Duration {
	t.Helper()
	if r.status != 429 || r.errCode(t) != "rate_limited" {
		t.Fatalf("want 429 rate_limited, got %d %s", r.status, r.body)
	}
	secs, err := strconv.Atoi(r.header.Get("Retry-After"))
	if err != nil || secs < 1 {
		t.Fatalf("Retry-After %q", r.header.Get("Retry-After"))
	}
	ms, _ := r.json(t)["error"].(map[string]any)["retry_after_ms"].(float64)
	wait := time.Duration(ms) * time.Millisecond
	if wait <= 0 || time.Duration(secs)*time.Second < wait {
		t.Fatalf("retry_after_ms %v with Retry-After %d", ms, secs)
	}
	return wait
}

// TestLoginThrottledPerAccountFromAnyIP: wrong passwords for one account,
// each from another IP, make that account's next attempts wait, doubling
// up to a cap of at most a minute; another account is not affected; the
// real user, from yet another IP, gets in once the capped wait is over,
// and that clears the account's delay. Failures are logged with the
// account and the IP.
func TestLoginThrottledPerAccountFromAnyIP(t *testing.T) {
	e := newTestEnv(t, nil)
	e.register("acme", "ana")
	e.register("acme", "bo")

	// Guess from a new IP each time, until twelve guesses have been held
	// back and the last one was checked (and failed).
	var waits []time.Duration
	checked := false
	for i := 0; len(waits) < 12 || !checked; i++ {
		if i == 100 {
			t.Fatalf("100 wrong passwords from 100 IPs: only %d throttled (waits %v)", len(waits), waits)
		}
		ip := fmt.Sprintf("127.0.0.%d", 10+i)
		r := e.loginFrom(ip, "ana", "guess-"+strconv.Itoa(i))
		checked = r.status == 401
		switch r.status {
		case 401:
		case 429:
			// Held back without checking the password; waiting out the
			// delay lets the next guess be checked.
			w := retryAfter(t, r)
			if w > time.Minute {
				t.Fatalf("guess %d: wait %v, more than a minute", i, w)
			}
			waits = append(waits, w)
			e.clock.Add(w)
		default:
			t.Fatalf("guess %d from %s: %d %s", i, ip, r.status, r.body)
		}
	}
	// The waits grow, and stop growing at the cap.
	capped := waits[len(waits)-1]
	if waits[0] >= capped || waits[len(waits)-2] != capped {
		t.Fatalf("waits %v: want growing to a cap", waits)
	}
	if rec := e.logs.find(func(m map[string]any) bool {
		return m["msg"] == "failed log-in" && m["username"] == "ana" && m["workspace"] == "acme" && m["ip"] == "127.0.0.10"
	}); rec == nil {
		t.Fatal("no failed log-in logged with the account and the IP")
	}

	// The next guess waits the full capped delay ...
	r := e.loginFrom("127.0.0.200", "ana", "guess")
	last := retryAfter(t, r)
	if last != capped {
		t.Fatalf("wait %v after the last failure, want the cap %v", last, capped)
	}
	// ... while another account, even from a guessing IP, is not held.
	e.want(e.loginFrom("127.0.0.10", "bo", "password-bo"), 200, nil)

	// The real user is held like anyone until the capped wait is over,
	// then gets in.
	retryAfter(t, e.loginFrom("127.0.0.201", "ana", "password-ana"))
	e.clock.Add(capped)
	e.want(e.loginFrom("127.0.0.201", "ana", "password-ana"), 200, nil)
	// That cleared the delay: a typo from anywhere is a plain 401.
	if r := e.loginFrom("127.0.0.202", "ana", "typo"); r.status != 401 {
		t.Fatalf("after a success, a wrong password: %d %s", r.status, r.body)
	}
}

// TestLoginFromKnownAddressNotHeldByGuesses: guesses from elsewhere do not
// hold up a user logging in from an address they logged in from before.
func TestLoginFromKnownAddressNotHeldByGuesses(t *testing.T) {
	e := newTestEnv(t, nil)
	e.register("acme", "ana")
	e.want(e.loginFrom("127.0.0.2", "ana", "password-ana"), 200, nil)
	for i := 0; i < 10; i++ {
		e.loginFrom(fmt.Sprintf("127.0.0.%d", 10+i), "ana", "guess")
	}
	retryAfter(t, e.loginFrom("127.0.0.30", "ana", "password-ana"))
	e.want(e.loginFrom("127.0.0.2", "ana", "password-ana"), 200, nil)
}

// TestFailedLoginsLoggedWithinBudget: a flood of failed log-ins does not
// flood the log; the next line logged says how many were held back.
func TestFailedLoginsLoggedWithinBudget(t *testing.T) {
	e := newTestEnv(t, nil)
	const n = loginLogBurst + 30
	for i := 0; i < n; i++ {
		e.do("POST", "/v1/sessions", "", map[string]string{"workspace": "acme", "username": "u" + strconv.Itoa(i), "password": "password"})
	}
	count := func() int {
		e.logs.mu.Lock()
		defer e.logs.mu.Unlock()
		c := 0
		for _, m := range e.logs.records {
			if m["msg"] == "failed log-in" {
				c++
			}
		}
		return c
	}
	if c := count(); c != loginLogBurst {
		t.Fatalf("%d failed log-ins logged %d lines, want the burst of %d", n, c, loginLogBurst)
	}
	e.clock.Add(time.Second)
	e.do("POST", "/v1/sessions", "", map[string]string{"workspace": "acme", "username": "late", "password": "password"})
	if rec := e.logs.find(func(m map[string]any) bool {
		return m["msg"] == "failed log-in" && m["username"] == "late"
	}); rec == nil || rec["held_back"] != int64(n-loginLogBurst) {
		t.Fatalf("line after the flood: %v, want held_back %d", rec, n-loginLogBurst)
	}
}
