package raftstore

import (
	"bytes"
	"log/slog"
	"sync"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"github.com/hashicorp/raft"
)

// testWriter sends log lines to t.Log until the test ends.
type testWriter struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(string(bytes.TrimRight(p, "\n")))
	}
	return len(p), nil
}

// testLogger logs at Info and above to t.Log.
func testLogger(t testing.TB) *slog.Logger {
	t.Helper()
	w := &testWriter{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// openTestDB opens a Badger DB in dir with OpenDB's options changed by
// with, and closes it (and its Syncer) at cleanup unless closed already.
func openTestDB(t testing.TB, dir string, with func(badger.Options) badger.Options) (*badger.DB, *Syncer) {
	t.Helper()
	opts := dbOptions(dir, testLogger(t))
	if with != nil {
		opts = with(opts)
	}
	db, err := badger.Open(opts)
	if err != nil {
		t.Fatalf("open badger: %v", err)
	}
	s := NewSyncer(db)
	t.Cleanup(func() {
		s.Close()
		if !db.IsClosed() {
			if err := db.Close(); err != nil {
				t.Errorf("close badger: %v", err)
			}
		}
	})
	return db, s
}

// openTestWAL opens a WAL and closes it at cleanup.
func openTestWAL(t testing.TB, cfg WALConfig) *WAL {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	w, err := OpenWAL(cfg)
	if err != nil {
		t.Fatalf("OpenWAL: %v", err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

func mustStore(t testing.TB, w *WAL, group string) *WALStore {
	t.Helper()
	s, err := w.Store(group)
	if err != nil {
		t.Fatalf("Store(%q): %v", group, err)
	}
	return s
}

// newTestWALStore returns a store of group in a fresh WAL.
func newTestWALStore(t testing.TB, group string) *WALStore {
	t.Helper()
	return mustStore(t, openTestWAL(t, WALConfig{Dir: t.TempDir(), SegmentSize: 1 << 20}), group)
}

// bounds is a store's first and last index.
func bounds(s raft.LogStore) (uint64, uint64) {
	f, _ := s.FirstIndex()
	l, _ := s.LastIndex()
	return f, l
}
