package devcert

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"
)

// startRun runs m.Run in the background and returns a func that cancels
// it and returns its error.
func startRun(t *testing.T, m *Manager) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	return func() error {
		cancel()
		return <-done
	}
}

// TestRotationBeforeExpiry runs Run on synctest's clock: the certificate
// is replaced exactly RenewBefore before it expires, the previous hash is
// published until the previous certificate expires, and the new one is
// rotated in its turn.
func TestRotationBeforeExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := newTestManager(t, Config{CheckInterval: time.Hour})
		stop := startRun(t, m)
		synctest.Wait()

		first, firstLeaf := hashOf(t, m), leafOf(t, m)
		wantHashes(t, m, first)
		renewAt := firstLeaf.NotAfter.Add(-DefaultLifetime / 3)

		time.Sleep(time.Until(renewAt) - time.Second)
		synctest.Wait()
		wantHashes(t, m, first)

		time.Sleep(time.Second)
		synctest.Wait()
		second, secondLeaf := hashOf(t, m), leafOf(t, m)
		if second == first {
			t.Fatal("no rotation at RenewBefore before notAfter")
		}
		wantHashes(t, m, second, first) // the overlap
		if p := secondLeaf.NotAfter.Sub(secondLeaf.NotBefore); p > MaxLifetime {
			t.Errorf("new certificate valid for %v", p)
		}
		if now := time.Now(); !secondLeaf.NotBefore.Before(now) || !now.Before(firstLeaf.NotAfter) {
			t.Errorf("rotated at %v: want it inside the new validity and before the old expiry %v", now, firstLeaf.NotAfter)
		}

		time.Sleep(time.Until(firstLeaf.NotAfter) - time.Second)
		synctest.Wait()
		wantHashes(t, m, second, first)
		time.Sleep(time.Second)
		synctest.Wait()
		wantHashes(t, m, second) // the previous certificate expired

		time.Sleep(time.Until(secondLeaf.NotAfter.Add(-DefaultLifetime / 3)))
		synctest.Wait()
		third := hashOf(t, m)
		if third == second || third == first {
			t.Fatal("the second certificate was not rotated in its turn")
		}
		wantHashes(t, m, third, second)

		if err := stop(); err != nil {
			t.Errorf("Run = %v, want nil after ctx ends", err)
		}
	})
}

// TestHandshakeKicksRotation: a handshake that finds the certificate due
// (as after a suspend, when Run's timer fires late) wakes Run at once.
func TestHandshakeKicksRotation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clock := &testClock{now: time.Now()}
		m := newTestManager(t, Config{Now: clock.Now, CheckInterval: 365 * 24 * time.Hour})
		stop := startRun(t, m)
		defer stop()
		synctest.Wait()
		first := hashOf(t, m)

		clock.Advance(10 * 24 * time.Hour) // Run's timer, on synctest's clock, has not fired
		synctest.Wait()
		if hashOf(t, m) != first { // this handshake gets the old one and kicks Run
			t.Fatal("rotated before any handshake or timer")
		}
		synctest.Wait()
		second := hashOf(t, m)
		if second == first {
			t.Fatal("a handshake with a due certificate did not wake Run")
		}
		wantHashes(t, m, second, first)
	})
}

func TestRunAndClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := newTestManager(t, Config{})
		done := make(chan error, 1)
		go func() { done <- m.Run(t.Context()) }()
		synctest.Wait()
		if err := m.Run(t.Context()); !errors.Is(err, ErrClosed) {
			t.Errorf("second Run = %v, want ErrClosed", err)
		}
		m.Close()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run after Close = %v, want nil", err)
			}
		default:
			t.Fatal("Close returned before Run did")
		}
		m.Close() // idempotent
		if err := m.Run(t.Context()); !errors.Is(err, ErrClosed) {
			t.Errorf("Run after Close = %v, want ErrClosed", err)
		}
		if leafOf(t, m) == nil || len(m.Hashes()) != 1 {
			t.Error("the certificate is gone after Close")
		}
	})
}

// TestReloadRotatesWhenDue: Reload in dev mode rotates only a due
// certificate.
func TestReloadRotatesWhenDue(t *testing.T) {
	clock := newTestClock()
	m := newTestManager(t, Config{Now: clock.Now})
	first := hashOf(t, m)
	if err := m.Reload(); err != nil {
		t.Fatal(err)
	}
	wantHashes(t, m, first)
	clock.Advance(DefaultLifetime - DefaultLifetime/3)
	if err := m.Reload(); err != nil {
		t.Fatal(err)
	}
	if hashOf(t, m) == first {
		t.Fatal("Reload did not rotate a due certificate")
	}
}

// TestClockBehindRotates: a clock set back before notBefore makes the
// certificate due, since browsers would refuse it.
func TestClockBehindRotates(t *testing.T) {
	clock := newTestClock()
	m := newTestManager(t, Config{Now: clock.Now})
	first := hashOf(t, m)
	clock.Advance(-2 * Backdate)
	if err := m.Reload(); err != nil {
		t.Fatal(err)
	}
	second := hashOf(t, m)
	if second == first {
		t.Fatal("a certificate not yet valid was kept")
	}
	if nb := leafOf(t, m).NotBefore; !nb.Before(clock.Now()) {
		t.Errorf("new NotBefore %v not before now %v", nb, clock.Now())
	}
	wantHashes(t, m, second) // the first is not valid now: not published
}
