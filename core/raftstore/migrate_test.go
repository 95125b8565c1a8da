package raftstore

import (
	"errors"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"github.com/hashicorp/raft"
)

// TestMigrateBadger moves two groups' logs and stable values from the
// Badger Store into a WAL, leaves other keys alone, and does nothing the
// second time.
func TestMigrateBadger(t *testing.T) {
	db, syncer := openTestDB(t, t.TempDir(), nil)
	a, b := mustNew(t, db, syncer, "s0"), mustNew(t, db, syncer, "dir")
	must(t, a.StoreLogs(logsData(1, 3000, "a")))
	must(t, a.DeleteRange(1, 100))
	must(t, b.StoreLogs([]*raft.Log{{Index: 5, Term: 2, Type: raft.LogConfiguration, Data: []byte("conf"), Extensions: []byte("x")}}))
	must(t, a.SetUint64([]byte("CurrentTerm"), 9))
	must(t, b.Set([]byte("LastVoteCand"), []byte("n1")))
	must(t, db.Update(func(txn *badger.Txn) error { return txn.Set([]byte("f/s0/applied"), []byte("keep")) }))

	w := openTestWAL(t, WALConfig{Dir: t.TempDir()})
	// A run cut short earlier left partial state: replaced, not merged.
	must(t, mustStore(t, w, "s0").StoreLogs(logsData(1, 5000, "stale")))
	groups, err := MigrateBadger(db, w)
	if err != nil || len(groups) != 2 {
		t.Fatalf("groups %v, %v", groups, err)
	}
	wa, wb := mustStore(t, w, "s0"), mustStore(t, w, "dir")
	if f, l := bounds(wa); f != 101 || l != 3000 {
		t.Fatalf("s0 bounds %d..%d", f, l)
	}
	for i := uint64(101); i <= 3000; i++ {
		var got, want raft.Log
		must(t, wa.GetLog(i, &got))
		want = *logsData(i, i, "a")[0]
		if !logsEqual(&got, &want) {
			t.Fatalf("entry %d: %+v", i, got)
		}
	}
	var l raft.Log
	must(t, wb.GetLog(5, &l))
	if l.Type != raft.LogConfiguration || string(l.Extensions) != "x" || l.Term != 2 {
		t.Fatalf("dir entry: %+v", l)
	}
	if v, _ := wa.GetUint64([]byte("CurrentTerm")); v != 9 {
		t.Fatalf("term %d", v)
	}
	if v, _ := wb.Get([]byte("LastVoteCand")); string(v) != "n1" {
		t.Fatalf("vote %q", v)
	}
	// Badger keeps its other keys and no Raft ones.
	err = db.View(func(txn *badger.Txn) error {
		if _, err := txn.Get([]byte("f/s0/applied")); err != nil {
			return err
		}
		it := txn.NewIterator(badger.IteratorOptions{Prefix: badgerPrefix})
		defer it.Close()
		if it.Rewind(); it.Valid() {
			return errors.New("raft keys left in badger")
		}
		return nil
	})
	must(t, err)
	if groups, err := MigrateBadger(db, w); err != nil || len(groups) != 0 {
		t.Fatalf("second run: %v, %v", groups, err)
	}
}

func TestMigrateBadgerRefusesStrangeKeys(t *testing.T) {
	db, _ := openTestDB(t, t.TempDir(), nil)
	must(t, db.Update(func(txn *badger.Txn) error { return txn.Set([]byte("r/s0/x/1"), []byte("?")) }))
	w := openTestWAL(t, WALConfig{Dir: t.TempDir()})
	if _, err := MigrateBadger(db, w); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("got %v", err)
	}
}
