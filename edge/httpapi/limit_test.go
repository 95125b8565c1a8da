package httpapi

import (
	"strconv"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

func TestLimitersThrottleAndRefill(t *testing.T) {
	clock := &fakeClock{t: time.Unix(0, 0)}
	l := newLimiters(rate.Limit(2), 3, 100, clock.Now)
	for i := 0; i < 3; i++ {
		if ok, _ := l.allow("ana"); !ok {
			t.Fatalf("call %d within the burst refused", i)
		}
	}
	ok, wait := l.allow("ana")
	if ok || wait <= 0 || wait > 500*time.Millisecond {
		t.Fatalf("over the burst: ok=%v wait=%v, want refused with wait <= 500ms", ok, wait)
	}
	if ok, _ := l.allow("bo"); !ok {
		t.Fatal("one key's limit throttled another")
	}
	clock.Add(wait)
	if ok, _ := l.allow("ana"); !ok {
		t.Fatal("refused after waiting the advertised time")
	}
}

func TestLimitersStayBounded(t *testing.T) {
	clock := &fakeClock{t: time.Unix(0, 0)}
	l := newLimiters(rate.Every(time.Hour), 2, 100, clock.Now)
	for i := 0; i < 1000; i++ {
		l.allow("k" + strconv.Itoa(i))
		if n := l.len(); n > 100 {
			t.Fatalf("%d limiters after %d keys, bound is 100", n, i+1)
		}
	}
	// Buckets that refilled are forgotten first; a bucket in use is kept.
	clock.Add(2 * time.Hour)
	l.allow("new")
	l.mu.Lock()
	l.prune(clock.Now())
	_, kept := l.m["new"]
	n := len(l.m)
	l.mu.Unlock()
	if n != 1 || !kept {
		t.Fatalf("after prune: %d buckets (new kept: %v), want only the one in use", n, kept)
	}
	// Unlimited keeps no state.
	inf := newLimiters(rate.Inf, 0, 10, clock.Now)
	for i := 0; i < 100; i++ {
		if ok, _ := inf.allow(strconv.Itoa(i)); !ok {
			t.Fatal("rate.Inf refused")
		}
	}
	if inf.len() != 0 {
		t.Fatal("rate.Inf limiter stored keys")
	}
}
