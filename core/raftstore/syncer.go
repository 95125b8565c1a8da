package raftstore

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
)

var (
	// ErrSyncerClosed is returned by Sync after Close, and to callers still
	// waiting for an fsync when Close was called.
	ErrSyncerClosed = errors.New("raftstore: syncer closed")
	// ErrSyncFailed is returned (wrapping the cause) by every Sync after one
	// fsync of the DB failed: what reached the disk is then unknown, so the
	// node must stop and restart from what is there.
	ErrSyncFailed = errors.New("raftstore: fsync failed")
)

// Syncer coalesces fsyncs of one DB (group commit). Callers share one
// db.Sync: while an fsync runs, callers that arrive queue, and exactly one
// following fsync serves all of them. There is no background goroutine: the
// first caller of a batch runs the fsync itself.
//
// Badger's Sync covers the active memtable's WAL and value log. A write
// that lands in a memtable which is rotated out before the Sync is durable
// only once Badger has flushed that memtable to a (synced) L0 table,
// usually well under a second later; Badger v4.9.6 has no call to sync the
// rotated WAL. A process crash loses nothing (the page cache survives);
// only an OS crash or power loss inside that window can.
type Syncer struct {
	db   *badger.DB
	sync func() error   // db.Sync; replaced in tests
	m    *syncerMetrics // nil: not measured

	mu      sync.Mutex
	cond    *sync.Cond
	running bool   // an fsync is in progress
	started uint64 // fsyncs started
	done    uint64 // fsyncs finished (done == started, or started-1 while running)
	calls   uint64 // Sync calls (for stats)
	served  uint64 // calls counted into a started fsync
	err     error  // sticky failure
	closed  bool
}

// NewSyncer returns a Syncer for db. Close it before closing db.
func NewSyncer(db *badger.DB) *Syncer {
	s := &Syncer{db: db, sync: db.Sync, m: newSyncerMetrics()}
	s.cond = sync.NewCond(&s.mu)
	return s
}

// Sync returns when every write to the DB that completed before the call is
// durable. It returns ErrSyncFailed (wrapped) once any fsync has failed and
// ErrSyncerClosed after Close. Safe for concurrent use.
func (s *Syncer) Sync() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	// The fsync that started before this call may have missed our writes;
	// the next one to start will not.
	target := s.started + 1
	for s.done < target {
		switch {
		case s.err != nil:
			return s.err
		case s.closed:
			return ErrSyncerClosed
		case !s.running:
			s.running = true
			s.started++
			gen := s.started
			waiting := s.calls - s.served
			s.mu.Unlock()
			start := time.Now()
			err := s.sync()
			if s.m != nil {
				s.m.fsync.Observe(time.Since(start).Seconds())
				s.m.batch.Observe(float64(waiting))
			}
			s.mu.Lock()
			s.served += waiting
			s.running = false
			s.done = gen
			if err != nil && s.err == nil {
				s.err = fmt.Errorf("%w: %w", ErrSyncFailed, err)
			}
			s.cond.Broadcast()
		default:
			s.cond.Wait()
		}
	}
	return s.err
}

// stats returns the number of fsyncs run and Sync calls made.
func (s *Syncer) stats() (fsyncs, calls uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.done, s.calls
}

// Close makes later Syncs fail with ErrSyncerClosed and waits for a running
// fsync to finish. Callers that were waiting for a later fsync get
// ErrSyncerClosed. Idempotent.
func (s *Syncer) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	s.cond.Broadcast()
	for s.running {
		s.cond.Wait()
	}
}
