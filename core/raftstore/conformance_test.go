package raftstore

import (
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/hashicorp/raft"
)

// stores builds the implementations under test; raft's InmemStore is the
// reference that the WAL's store must agree with.
var stores = []struct {
	name string
	new  func(t *testing.T) interface {
		raft.LogStore
		raft.StableStore
	}
}{
	{"inmem", func(*testing.T) interface {
		raft.LogStore
		raft.StableStore
	} {
		return raft.NewInmemStore()
	}},
	{"wal", func(t *testing.T) interface {
		raft.LogStore
		raft.StableStore
	} {
		return newTestWALStore(t, "conf")
	}},
}

func testRaftLog(idx uint64, data string) *raft.Log {
	return &raft.Log{Data: []byte(data), Index: idx}
}

// TestConformance mirrors raft-boltdb's store tests, run against both.
func TestConformance(t *testing.T) {
	for _, impl := range stores {
		t.Run(impl.name, func(t *testing.T) {
			t.Run("FirstIndex", func(t *testing.T) {
				s := impl.new(t)
				if idx, err := s.FirstIndex(); err != nil || idx != 0 {
					t.Fatalf("empty: %d, %v", idx, err)
				}
				if err := s.StoreLogs([]*raft.Log{testRaftLog(1, "log1"), testRaftLog(2, "log2"), testRaftLog(3, "log3")}); err != nil {
					t.Fatal(err)
				}
				if idx, err := s.FirstIndex(); err != nil || idx != 1 {
					t.Fatalf("got %d, %v", idx, err)
				}
			})
			t.Run("LastIndex", func(t *testing.T) {
				s := impl.new(t)
				if idx, err := s.LastIndex(); err != nil || idx != 0 {
					t.Fatalf("empty: %d, %v", idx, err)
				}
				if err := s.StoreLogs([]*raft.Log{testRaftLog(1, "log1"), testRaftLog(2, "log2"), testRaftLog(3, "log3")}); err != nil {
					t.Fatal(err)
				}
				if idx, err := s.LastIndex(); err != nil || idx != 3 {
					t.Fatalf("got %d, %v", idx, err)
				}
			})
			t.Run("GetLog", func(t *testing.T) {
				s := impl.new(t)
				log := new(raft.Log)
				if err := s.GetLog(1, log); err != raft.ErrLogNotFound {
					t.Fatalf("missing: %v", err)
				}
				logs := []*raft.Log{testRaftLog(1, "log1"), testRaftLog(2, "log2"), testRaftLog(3, "log3")}
				if err := s.StoreLogs(logs); err != nil {
					t.Fatal(err)
				}
				if err := s.GetLog(2, log); err != nil || !logsEqual(log, logs[1]) {
					t.Fatalf("got %+v, %v", log, err)
				}
			})
			t.Run("SetLog", func(t *testing.T) {
				s := impl.new(t)
				in := &raft.Log{Data: []byte("log1"), Index: 1}
				if err := s.StoreLog(in); err != nil {
					t.Fatal(err)
				}
				out := new(raft.Log)
				if err := s.GetLog(1, out); err != nil || !logsEqual(in, out) {
					t.Fatalf("got %+v, %v", out, err)
				}
			})
			t.Run("SetLogs", func(t *testing.T) {
				s := impl.new(t)
				logs := []*raft.Log{testRaftLog(1, "log1"), testRaftLog(2, "log2")}
				if err := s.StoreLogs(logs); err != nil {
					t.Fatal(err)
				}
				for _, want := range logs {
					got := new(raft.Log)
					if err := s.GetLog(want.Index, got); err != nil || !logsEqual(got, want) {
						t.Fatalf("index %d: %+v, %v", want.Index, got, err)
					}
				}
			})
			t.Run("DeleteRange", func(t *testing.T) {
				s := impl.new(t)
				logs := []*raft.Log{testRaftLog(1, "log1"), testRaftLog(2, "log2"), testRaftLog(3, "log3")}
				if err := s.StoreLogs(logs); err != nil {
					t.Fatal(err)
				}
				if err := s.DeleteRange(1, 2); err != nil {
					t.Fatal(err)
				}
				for _, idx := range []uint64{1, 2} {
					if err := s.GetLog(idx, new(raft.Log)); err != raft.ErrLogNotFound {
						t.Fatalf("index %d: %v", idx, err)
					}
				}
				if idx, _ := s.FirstIndex(); idx != 3 {
					t.Fatalf("FirstIndex %d", idx)
				}
			})
			t.Run("Set_Get", func(t *testing.T) {
				s := impl.new(t)
				_, err := s.Get([]byte("bad"))
				// raft compares the text: raft.go and api.go test
				// err.Error() != "not found".
				if err == nil || err.Error() != "not found" {
					t.Fatalf("missing: %v", err)
				}
				k, v := []byte("hello"), []byte("world")
				if err := s.Set(k, v); err != nil {
					t.Fatal(err)
				}
				if got, err := s.Get(k); err != nil || string(got) != string(v) {
					t.Fatalf("got %q, %v", got, err)
				}
			})
			t.Run("SetUint64_GetUint64", func(t *testing.T) {
				s := impl.new(t)
				if v, err := s.GetUint64([]byte("bad")); err != nil || v != 0 {
					t.Fatalf("missing: %d, %v", v, err)
				}
				if err := s.SetUint64([]byte("abc"), 123); err != nil {
					t.Fatal(err)
				}
				if v, err := s.GetUint64([]byte("abc")); err != nil || v != 123 {
					t.Fatalf("got %d, %v", v, err)
				}
			})
			t.Run("HasExistingState", func(t *testing.T) {
				s := impl.new(t)
				snaps := raft.NewInmemSnapshotStore()
				if has, err := raft.HasExistingState(s, s, snaps); err != nil || has {
					t.Fatalf("fresh: %v, %v", has, err)
				}
				if err := s.SetUint64([]byte("CurrentTerm"), 1); err != nil {
					t.Fatal(err)
				}
				if has, err := raft.HasExistingState(s, s, snaps); err != nil || !has {
					t.Fatalf("with a term: %v, %v", has, err)
				}
			})
		})
	}
}

// TestDifferential runs raft-shaped operations (append, truncate the
// tail, compact the head) on raft's InmemStore and on each store, and
// compares them after each; the WAL is also reopened now and then.
func TestDifferential(t *testing.T) {
	t.Run("wal", func(t *testing.T) {
		dir := t.TempDir()
		w := openTestWAL(t, WALConfig{Dir: dir, SegmentSize: 64 << 10})
		reopen := func() logStore {
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			w = openTestWAL(t, WALConfig{Dir: dir, SegmentSize: 64 << 10})
			return mustStore(t, w, "diff")
		}
		differential(t, mustStore(t, w, "diff"), reopen)
	})
}

type logStore interface {
	raft.LogStore
	raft.StableStore
}

func differential(t *testing.T, s logStore, reopen func() logStore) {
	ref := raft.NewInmemStore()
	rng := rand.New(rand.NewPCG(1, 2))
	next := uint64(1)
	for step := 0; step < 300; step++ {
		first, _ := ref.FirstIndex()
		last, _ := ref.LastIndex()
		var err, refErr error
		switch op := rng.IntN(10); {
		case op < 6 || last == 0: // append a batch
			var logs []*raft.Log
			for n := rng.IntN(5) + 1; n > 0; n-- {
				logs = append(logs, &raft.Log{Index: next, Term: uint64(step), Data: []byte{byte(step)}})
				next++
			}
			refErr, err = ref.StoreLogs(logs), s.StoreLogs(logs)
		case op < 8: // truncate a conflicting tail
			from := first + rng.Uint64N(last-first+1)
			refErr, err = ref.DeleteRange(from, last), s.DeleteRange(from, last)
			next = from
		default: // compact the head
			to := first + rng.Uint64N(last-first+1)
			refErr, err = ref.DeleteRange(first, to), s.DeleteRange(first, to)
		}
		if reopen != nil && step%50 == 49 {
			s = reopen()
		}
		if err != nil || refErr != nil {
			t.Fatalf("step %d: %v / %v", step, err, refErr)
		}
		rf, _ := ref.FirstIndex()
		rl, _ := ref.LastIndex()
		if f, l := bounds(s); f != rf || l != rl {
			t.Fatalf("step %d: bounds %d..%d, reference %d..%d", step, f, l, rf, rl)
		}
		for i := rf; i <= rl && rf > 0; i++ {
			var a, b raft.Log
			if errors.Join(ref.GetLog(i, &a), s.GetLog(i, &b)) != nil || !logsEqual(&a, &b) {
				t.Fatalf("step %d index %d: %+v vs %+v", step, i, a, b)
			}
		}
	}
}
