package core_test

import (
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/parley-chat/parley/core/raftstore"
)

// TestRegionUpgradeFromBadgerLogs: a region whose nodes kept their Raft
// logs in Badger (as before the WAL) starts with the WAL, moves the logs
// over, keeps every message and goes on taking sends.
func TestRegionUpgradeFromBadgerLogs(t *testing.T) {
	r, users, conv := newRegionWithGroup(t)
	r.sendConcurrently(conv, users, 0, 40)
	groups := r.nodes[0].node.Groups()
	for i := range r.nodes {
		r.stop(i)
	}
	for _, tn := range r.nodes {
		moveLogsToBadger(t, tn.cfg.DataDir, groups)
	}
	var wg sync.WaitGroup
	errs := make([]error, len(r.nodes))
	for i := range r.nodes {
		wg.Go(func() { errs[i] = r.start(i) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	r.waitReady()
	r.sendConcurrently(conv, users, 40, 60)
	for _, n := range r.live() {
		all := waitMessages(t, n, users[0], conv, 60, time.Now().Add(time.Minute))
		checkLog(t, n.NodeID(), conv, all, nil)
		if got := len(userMessages(all)); got != 60 {
			t.Fatalf("%s holds %d messages, want 60", n.NodeID(), got)
		}
	}
}

// moveLogsToBadger puts a stopped node's Raft logs and stable values back
// where the Badger Store kept them and deletes its WAL.
func moveLogsToBadger(t *testing.T, dataDir string, groups []string) {
	t.Helper()
	walDir := filepath.Join(dataDir, "raftwal")
	w, err := raftstore.OpenWAL(raftstore.WALConfig{Dir: walDir})
	if err != nil {
		t.Fatal(err)
	}
	db, err := raftstore.OpenDB(filepath.Join(dataDir, "badger"), nil)
	if err != nil {
		t.Fatal(err)
	}
	syncer := raftstore.NewSyncer(db)
	moved := 0
	for _, g := range groups {
		from, err := w.Store(g)
		if err != nil {
			t.Fatal(err)
		}
		to, err := raftstore.New(db, syncer, g)
		if err != nil {
			t.Fatal(err)
		}
		first, _ := from.FirstIndex()
		last, _ := from.LastIndex()
		for i := first; i <= last && first > 0; i++ {
			l := new(raft.Log)
			if err := from.GetLog(i, l); errors.Is(err, raft.ErrLogNotFound) {
				continue
			} else if err != nil {
				t.Fatal(err)
			}
			if err := to.StoreLog(l); err != nil {
				t.Fatal(err)
			}
			moved++
		}
		for _, k := range []string{"CurrentTerm", "LastVoteTerm", "LastVoteCand"} {
			if v, err := from.Get([]byte(k)); err == nil {
				if err := to.Set([]byte(k), v); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	if moved == 0 {
		t.Fatal("no log entries in the wal")
	}
	syncer.Close()
	if err := errors.Join(db.Close(), w.Close(), os.RemoveAll(walDir)); err != nil {
		t.Fatal(err)
	}
}
