package raftstore

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/poll"
)

// gatedSyncer returns a Syncer whose fsyncs each block until released
// through the returned channel; started receives each fsync's number.
func gatedSyncer(t *testing.T, fail func(n int) error) (s *Syncer, started <-chan int, release chan<- struct{}) {
	t.Helper()
	st := make(chan int, 100)
	rel := make(chan struct{})
	n := 0
	s = &Syncer{sync: func() error {
		n++ // only one fsync runs at a time
		st <- n
		<-rel
		if fail != nil {
			return fail(n)
		}
		return nil
	}}
	s.cond = sync.NewCond(&s.mu)
	return s, st, rel
}

// waiting returns when k Sync calls are blocked behind a running fsync.
func waiting(t *testing.T, s *Syncer, k uint64) {
	t.Helper()
	poll.NoError(t, 5*time.Second, "", func() error {
		if _, calls := s.stats(); calls < k {
			return fmt.Errorf("%d of %d callers arrived", calls, k)
		}
		return nil
	})
}

func TestSyncerCoalesces(t *testing.T) {
	s, started, release := gatedSyncer(t, nil)
	results := make(chan error, 20)
	go func() { results <- s.Sync() }()
	if n := <-started; n != 1 {
		t.Fatalf("first fsync is #%d", n)
	}
	// Ten callers arrive while fsync #1 runs: it may have missed their
	// writes, so none may return when it finishes.
	for i := 0; i < 10; i++ {
		go func() { results <- s.Sync() }()
	}
	waiting(t, s, 11)
	release <- struct{}{}
	if err := <-results; err != nil {
		t.Fatal(err)
	}
	// Exactly one more fsync serves all ten.
	if n := <-started; n != 2 {
		t.Fatalf("second fsync is #%d", n)
	}
	select {
	case err := <-results:
		t.Fatalf("a caller returned before its fsync finished: %v", err)
	default:
	}
	release <- struct{}{}
	for i := 0; i < 10; i++ {
		if err := <-results; err != nil {
			t.Fatal(err)
		}
	}
	if fsyncs, calls := s.stats(); fsyncs != 2 || calls != 11 {
		t.Fatalf("fsyncs %d, calls %d; want 2, 11", fsyncs, calls)
	}
	select {
	case n := <-started:
		t.Fatalf("unexpected fsync #%d", n)
	default:
	}
}

func TestSyncerErrorSticks(t *testing.T) {
	boom := errors.New("disk on fire")
	s, started, release := gatedSyncer(t, func(n int) error {
		if n == 1 {
			return boom
		}
		return nil
	})
	results := make(chan error, 3)
	go func() { results <- s.Sync() }()
	<-started
	go func() { results <- s.Sync() }()
	waiting(t, s, 2)
	release <- struct{}{}
	for i := 0; i < 2; i++ {
		if err := <-results; !errors.Is(err, ErrSyncFailed) || !errors.Is(err, boom) {
			t.Fatalf("Sync = %v, want ErrSyncFailed wrapping the cause", err)
		}
	}
	// No more fsyncs run: the failure sticks.
	if err := s.Sync(); !errors.Is(err, ErrSyncFailed) {
		t.Fatalf("later Sync = %v", err)
	}
	if fsyncs, _ := s.stats(); fsyncs != 1 {
		t.Fatalf("%d fsyncs after a failure", fsyncs)
	}
}

func TestSyncerClose(t *testing.T) {
	s, started, release := gatedSyncer(t, nil)
	results := make(chan error, 3)
	go func() { results <- s.Sync() }()
	<-started
	go func() { results <- s.Sync() }() // waits for fsync #2, which never starts
	waiting(t, s, 2)
	closed := make(chan struct{})
	go func() { s.Close(); close(closed) }()
	// Close waits for the running fsync.
	select {
	case <-closed:
		t.Fatal("Close returned while an fsync was running")
	case err := <-results:
		if !errors.Is(err, ErrSyncerClosed) {
			t.Fatalf("queued caller got %v, want ErrSyncerClosed", err)
		}
	}
	release <- struct{}{}
	<-closed
	if err := <-results; err != nil {
		t.Fatalf("caller of the finished fsync got %v", err)
	}
	if err := s.Sync(); !errors.Is(err, ErrSyncerClosed) {
		t.Fatalf("Sync after Close = %v", err)
	}
	s.Close() // idempotent
}

func TestSyncerRealDB(t *testing.T) {
	_, s := openTestDB(t, t.TempDir(), nil)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 20; j++ {
				if err := s.Sync(); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	fsyncs, calls := s.stats()
	if calls != 160 || fsyncs == 0 || fsyncs > calls {
		t.Fatalf("fsyncs %d, calls %d", fsyncs, calls)
	}
	t.Logf("%d calls, %d fsyncs", calls, fsyncs)
}
