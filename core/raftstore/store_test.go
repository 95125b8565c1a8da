package raftstore

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/hashicorp/raft"
)

// entries returns command entries at the given indexes, term 1.
func entries(idx ...uint64) []*raft.Log {
	out := make([]*raft.Log, len(idx))
	for i, x := range idx {
		out[i] = &raft.Log{Index: x, Term: 1, Type: raft.LogCommand, Data: fmt.Appendf(nil, "entry %d", x)}
	}
	return out
}

// span returns lo..hi.
func span(lo, hi uint64) []uint64 {
	var out []uint64
	for i := lo; i <= hi; i++ {
		out = append(out, i)
	}
	return out
}

// checkLog checks the store's bounds, that exactly want is stored between
// them, and that a store reopened from the DB agrees on the bounds.
func checkLog(t *testing.T, s *Store, want []uint64) {
	t.Helper()
	var first, last uint64
	if len(want) > 0 {
		first, last = want[0], want[len(want)-1]
	}
	for _, st := range []*Store{s, mustNew(t, s.db, s.syncer, s.group)} {
		if f, _ := st.FirstIndex(); f != first {
			t.Fatalf("FirstIndex = %d, want %d", f, first)
		}
		if l, _ := st.LastIndex(); l != last {
			t.Fatalf("LastIndex = %d, want %d", l, last)
		}
	}
	present := map[uint64]bool{}
	for _, i := range want {
		present[i] = true
	}
	lo, hi := first, last
	if lo > 0 {
		lo--
	}
	for i := lo; i <= hi+1; i++ {
		var l raft.Log
		err := s.GetLog(i, &l)
		switch {
		case present[i] && err != nil:
			t.Fatalf("GetLog(%d): %v", i, err)
		case present[i] && (l.Index != i || string(l.Data) != fmt.Sprintf("entry %d", i)):
			t.Fatalf("GetLog(%d) = %+v", i, l)
		case !present[i] && !errors.Is(err, raft.ErrLogNotFound):
			t.Fatalf("GetLog(%d) err = %v, want ErrLogNotFound", i, err)
		}
	}
}

func TestEmptyStore(t *testing.T) {
	s := newTestStore(t, "s0")
	checkLog(t, s, nil)
	var l raft.Log
	if err := s.GetLog(0, &l); err != raft.ErrLogNotFound {
		t.Fatalf("GetLog(0) = %v", err)
	}
	if _, err := s.Get([]byte("CurrentTerm")); err == nil || err.Error() != "not found" {
		t.Fatalf("Get missing = %v, want text \"not found\"", err)
	}
	if v, err := s.GetUint64([]byte("CurrentTerm")); v != 0 || err != nil {
		t.Fatalf("GetUint64 missing = %d, %v", v, err)
	}
	if err := s.DeleteRange(1, 100); err != nil {
		t.Fatalf("DeleteRange on empty: %v", err)
	}
	if err := s.StoreLogs(nil); err != nil {
		t.Fatalf("StoreLogs(nil): %v", err)
	}
	checkLog(t, s, nil)
}

func TestStoreLogs(t *testing.T) {
	tests := []struct {
		name    string
		batches [][]uint64
		want    []uint64
	}{
		{"one", [][]uint64{{1}}, []uint64{1}},
		{"batch", [][]uint64{span(1, 10)}, span(1, 10)},
		{"appends", [][]uint64{{1, 2}, {3}, {4, 5, 6}}, span(1, 6)},
		{"starts high", [][]uint64{{100, 101}}, []uint64{100, 101}},
		{"gap", [][]uint64{{1, 2, 3}, {10, 11}}, []uint64{1, 2, 3, 10, 11}},
		{"gap inside batch", [][]uint64{{5, 9}}, []uint64{5, 9}},
		{"unordered batch", [][]uint64{{3, 1, 2}}, []uint64{1, 2, 3}},
		{"overwrite", [][]uint64{{1, 2, 3}, {2, 3}}, []uint64{1, 2, 3}},
		{"lower later", [][]uint64{{10}, {5}}, []uint64{5, 10}},
		{"max index", [][]uint64{{1<<64 - 1}}, []uint64{1<<64 - 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestStore(t, "g")
			for _, b := range tt.batches {
				if err := s.StoreLogs(entries(b...)); err != nil {
					t.Fatalf("StoreLogs(%v): %v", b, err)
				}
			}
			checkLog(t, s, tt.want)
		})
	}
}

func TestStoreLogFields(t *testing.T) {
	s := newTestStore(t, "g")
	want := raft.Log{Index: 7, Term: 3, Type: raft.LogConfiguration, Data: []byte("cfg"),
		Extensions: []byte("ext"), AppendedAt: time.Unix(1700000000, 42)}
	if err := s.StoreLog(&want); err != nil {
		t.Fatal(err)
	}
	var got raft.Log
	if err := s.GetLog(7, &got); err != nil {
		t.Fatal(err)
	}
	if !logsEqual(&got, &want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	// Overwriting at the same index replaces every field.
	want = raft.Log{Index: 7, Term: 4, Type: raft.LogNoop}
	if err := s.StoreLog(&want); err != nil {
		t.Fatal(err)
	}
	if err := s.GetLog(7, &got); err != nil || !logsEqual(&got, &want) {
		t.Fatalf("after overwrite: %+v, %v", got, err)
	}
}

func TestDeleteRange(t *testing.T) {
	full := span(1, 10)
	gappy := []uint64{1, 2, 3, 7, 8, 9, 20}
	without := func(all []uint64, lo, hi uint64) []uint64 {
		var out []uint64
		for _, i := range all {
			if i < lo || i > hi {
				out = append(out, i)
			}
		}
		return out
	}
	tests := []struct {
		name    string
		log     []uint64
		min     uint64
		max     uint64
		wantLog []uint64
	}{
		{"prefix", full, 1, 3, span(4, 10)},
		{"prefix from zero", full, 0, 3, span(4, 10)},
		{"first only", full, 1, 1, span(2, 10)},
		{"suffix", full, 8, 10, span(1, 7)},
		{"suffix past last", full, 8, 1<<64 - 1, span(1, 7)},
		{"last only", full, 10, 10, span(1, 9)},
		{"middle", full, 4, 6, without(full, 4, 6)},
		{"single middle", full, 5, 5, without(full, 5, 5)},
		{"all exact", full, 1, 10, nil},
		{"all wide", full, 0, 1<<64 - 1, nil},
		{"below", []uint64{5, 6}, 1, 4, []uint64{5, 6}},
		{"above", full, 11, 20, full},
		{"inverted", full, 6, 3, full},
		{"gap prefix ending in gap", gappy, 1, 5, []uint64{7, 8, 9, 20}},
		{"gap suffix starting in gap", gappy, 10, 20, []uint64{1, 2, 3, 7, 8, 9}},
		{"gap only", gappy, 4, 6, gappy},
		{"gap all", gappy, 1, 20, nil},
		{"gap suffix to middle", gappy, 8, 100, []uint64{1, 2, 3, 7}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestStore(t, "g")
			if err := s.StoreLogs(entries(tt.log...)); err != nil {
				t.Fatal(err)
			}
			if err := s.DeleteRange(tt.min, tt.max); err != nil {
				t.Fatalf("DeleteRange(%d, %d): %v", tt.min, tt.max, err)
			}
			checkLog(t, s, tt.wantLog)
			// The store keeps working after the delete.
			next := uint64(30)
			if err := s.StoreLog(entries(next)[0]); err != nil {
				t.Fatal(err)
			}
			checkLog(t, s, append(append([]uint64(nil), tt.wantLog...), next))
		})
	}
}

// smallMemtable makes Badger's transaction limit about 150 KiB.
func smallMemtable(o badger.Options) badger.Options {
	return o.WithMemTableSize(1 << 20).WithValueThreshold(64 << 10)
}

func TestLargeBatchesSplit(t *testing.T) {
	db, sy := openTestDB(t, t.TempDir(), smallMemtable)
	s := mustNew(t, db, sy, "big")
	const n = 600
	logs := make([]*raft.Log, n)
	for i := range logs {
		logs[i] = &raft.Log{Index: uint64(i + 1), Term: 1, Data: make([]byte, 2048)}
		logs[i].Data[0] = byte(i)
	}
	// 600 x 2 KiB is far above the limit: one call, several transactions.
	txn := db.NewTransaction(true)
	var tooBig bool
	for _, l := range logs {
		if err := txn.Set(s.logKey(l.Index), appendLog(nil, l)); errors.Is(err, badger.ErrTxnTooBig) {
			tooBig = true
			break
		}
	}
	txn.Discard()
	if !tooBig {
		t.Fatal("test batch fits one transaction; it should not")
	}
	if err := s.StoreLogs(logs); err != nil {
		t.Fatalf("StoreLogs: %v", err)
	}
	for _, i := range []uint64{1, 300, 600} {
		var l raft.Log
		if err := s.GetLog(i, &l); err != nil || l.Data[0] != byte(i-1) || len(l.Data) != 2048 {
			t.Fatalf("GetLog(%d): %v", i, err)
		}
	}
	if f, l := bounds(s); f != 1 || l != n {
		t.Fatalf("bounds %d..%d", f, l)
	}

	// More keys than deleteChunk, and more deletes than fit one transaction.
	many := make([]*raft.Log, 0, 3*deleteChunk)
	for i := uint64(n + 1); i <= n+3*deleteChunk; i++ {
		many = append(many, &raft.Log{Index: i, Term: 1})
	}
	if err := s.StoreLogs(many); err != nil {
		t.Fatal(err)
	}
	last := uint64(n + 3*deleteChunk)
	if err := s.DeleteRange(0, last-10); err != nil {
		t.Fatalf("DeleteRange prefix: %v", err)
	}
	if f, l := bounds(s); f != last-9 || l != last {
		t.Fatalf("after prefix delete: bounds %d..%d", f, l)
	}
	if err := s.StoreLogs(entries(span(last+1, last+2*deleteChunk)...)); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteRange(last+5, 1<<64-1); err != nil {
		t.Fatalf("DeleteRange suffix: %v", err)
	}
	if f, l := bounds(s); f != last-9 || l != last+4 {
		t.Fatalf("after suffix delete: bounds %d..%d", f, l)
	}
	re := mustNew(t, db, sy, "big")
	if f, l := bounds(re); f != last-9 || l != last+4 {
		t.Fatalf("reopened: bounds %d..%d", f, l)
	}
}

func bounds(s raft.LogStore) (uint64, uint64) {
	f, _ := s.FirstIndex()
	l, _ := s.LastIndex()
	return f, l
}

func TestStable(t *testing.T) {
	s := newTestStore(t, "g")
	tests := []struct {
		key, val string
	}{
		{"CurrentTerm", "x"},
		{"LastVoteCand", "node-1"},
		{"empty", ""},
		{"binary\x00key", "\x00\xff"},
		{"LastVoteCand", "node-2"}, // overwrite
	}
	for _, tt := range tests {
		if err := s.Set([]byte(tt.key), []byte(tt.val)); err != nil {
			t.Fatalf("Set(%q): %v", tt.key, err)
		}
		got, err := s.Get([]byte(tt.key))
		if err != nil || string(got) != tt.val || got == nil {
			t.Fatalf("Get(%q) = %q, %v; want %q", tt.key, got, err, tt.val)
		}
	}
	uints := []struct {
		key string
		val uint64
	}{{"CurrentTerm", 0}, {"CurrentTerm", 5}, {"LastVoteTerm", 1<<64 - 1}}
	for _, tt := range uints {
		if err := s.SetUint64([]byte(tt.key), tt.val); err != nil {
			t.Fatal(err)
		}
		if v, err := s.GetUint64([]byte(tt.key)); v != tt.val || err != nil {
			t.Fatalf("GetUint64(%q) = %d, %v; want %d", tt.key, v, err, tt.val)
		}
	}
	if _, err := s.GetUint64([]byte("LastVoteCand")); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("GetUint64 of a 6-byte value: %v, want ErrCorrupt", err)
	}
	// Stable keys do not show up as log entries and vice versa.
	checkLog(t, s, nil)
}

func TestCorruptLog(t *testing.T) {
	s := newTestStore(t, "g")
	if err := s.StoreLogs(entries(1, 2)); err != nil {
		t.Fatal(err)
	}
	put := func(idx uint64, v []byte) {
		t.Helper()
		if err := s.db.Update(func(txn *badger.Txn) error { return txn.Set(s.logKey(idx), v) }); err != nil {
			t.Fatal(err)
		}
	}
	put(1, []byte{logVersion, 1})
	put(2, appendLog(nil, &raft.Log{Index: 99, Term: 1}))
	for _, i := range []uint64{1, 2} {
		var l raft.Log
		if err := s.GetLog(i, &l); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("GetLog(%d) = %v, want ErrCorrupt", i, err)
		}
	}
}

func TestReopen(t *testing.T) {
	dir := t.TempDir()
	db, sy := openTestDB(t, dir, nil)
	s := mustNew(t, db, sy, "dir")
	if err := s.StoreLogs(entries(span(1, 20)...)); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteRange(1, 5); err != nil {
		t.Fatal(err)
	}
	if err := s.SetUint64([]byte("CurrentTerm"), 9); err != nil {
		t.Fatal(err)
	}
	if err := s.Set([]byte("LastVoteCand"), []byte("n2")); err != nil {
		t.Fatal(err)
	}
	sy.Close()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db2, sy2 := openTestDB(t, dir, nil)
	s2 := mustNew(t, db2, sy2, "dir")
	checkLog(t, s2, span(6, 20))
	if v, err := s2.GetUint64([]byte("CurrentTerm")); v != 9 || err != nil {
		t.Fatalf("CurrentTerm = %d, %v", v, err)
	}
	if v, err := s2.Get([]byte("LastVoteCand")); string(v) != "n2" || err != nil {
		t.Fatalf("LastVoteCand = %q, %v", v, err)
	}
}

func TestGroupsIsolated(t *testing.T) {
	db, sy := openTestDB(t, t.TempDir(), nil)
	// "s1" is a prefix of "s10": the trailing '/' keeps them apart.
	a, b, c := mustNew(t, db, sy, "s1"), mustNew(t, db, sy, "s10"), mustNew(t, db, sy, "s2")
	if err := a.StoreLogs(entries(1, 2, 3)); err != nil {
		t.Fatal(err)
	}
	if err := b.StoreLogs(entries(10, 11)); err != nil {
		t.Fatal(err)
	}
	if err := a.SetUint64([]byte("CurrentTerm"), 4); err != nil {
		t.Fatal(err)
	}
	if err := b.DeleteRange(0, 1<<64-1); err != nil {
		t.Fatal(err)
	}
	checkLog(t, a, []uint64{1, 2, 3})
	checkLog(t, b, nil)
	checkLog(t, c, nil)
	for _, s := range []*Store{b, c} {
		if v, err := s.GetUint64([]byte("CurrentTerm")); v != 0 || err != nil {
			t.Fatalf("%s sees CurrentTerm %d, %v", s.Group(), v, err)
		}
	}
	// State machine keys under f/<G>/ are not log entries.
	if err := db.Update(func(txn *badger.Txn) error { return txn.Set([]byte("f/s1/l/x"), []byte("y")) }); err != nil {
		t.Fatal(err)
	}
	checkLog(t, mustNew(t, db, sy, "s1"), []uint64{1, 2, 3})
}

func TestNewValidates(t *testing.T) {
	db, sy := openTestDB(t, t.TempDir(), nil)
	for _, g := range []string{"", "S0", "a/b", "dir ", "é", "abcdefghijklmnopqrstuvwxyz0123456"} {
		if _, err := New(db, sy, g); !errors.Is(err, ErrBadGroup) {
			t.Errorf("New(%q) = %v, want ErrBadGroup", g, err)
		}
	}
	for _, g := range []string{"dir", "s15", "a_b-c", "abcdefghijklmnopqrstuvwxyz012345"} {
		if _, err := New(db, sy, g); err != nil {
			t.Errorf("New(%q): %v", g, err)
		}
	}
	if _, err := New(nil, sy, "g"); err == nil {
		t.Error("New with nil DB succeeded")
	}
}

func TestConcurrent(t *testing.T) {
	db, sy := openTestDB(t, t.TempDir(), nil)
	const groups, batches, per = 4, 20, 8
	var wg sync.WaitGroup
	errs := make(chan error, groups*3)
	for g := 0; g < groups; g++ {
		s := mustNew(t, db, sy, fmt.Sprintf("s%d", g))
		wg.Add(3)
		go func() { // writer
			defer wg.Done()
			for b := uint64(0); b < batches; b++ {
				if err := s.StoreLogs(entries(span(b*per+1, b*per+per)...)); err != nil {
					errs <- err
					return
				}
			}
		}()
		go func() { // compactor, like raft's snapshot goroutine
			defer wg.Done()
			for i := 0; i < batches; i++ {
				last, _ := s.LastIndex()
				if last > 4 {
					if err := s.DeleteRange(0, last-4); err != nil {
						errs <- err
						return
					}
				}
			}
		}()
		go func() { // reader
			defer wg.Done()
			for i := 0; i < batches*per; i++ {
				first, _ := s.FirstIndex()
				last, _ := s.LastIndex()
				if first > last {
					errs <- fmt.Errorf("first %d > last %d", first, last)
					return
				}
				var l raft.Log
				if err := s.GetLog(last, &l); err != nil && !errors.Is(err, raft.ErrLogNotFound) {
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
	for g := 0; g < groups; g++ {
		s := mustNew(t, db, sy, fmt.Sprintf("s%d", g))
		if l, _ := s.LastIndex(); l != batches*per {
			t.Fatalf("s%d: last %d", g, l)
		}
	}
}
