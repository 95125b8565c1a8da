package raftstore

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/parley-chat/parley/internal/poll"
)

// walState is everything a WAL holds, for comparing two of them.
type walState map[string]groupState

type groupState struct {
	ents   map[uint64]string // index -> Data
	stable map[string]string
}

func snapshotWAL(t *testing.T, w *WAL) walState {
	t.Helper()
	w.imu.RLock()
	names := make([]string, 0, len(w.groups))
	for name := range w.groups {
		names = append(names, name)
	}
	w.imu.RUnlock()
	st := walState{}
	for _, name := range names {
		s := mustStore(t, w, name)
		gs := groupState{ents: map[uint64]string{}, stable: map[string]string{}}
		w.imu.RLock()
		var idx []uint64
		for _, e := range w.groups[name].ents {
			idx = append(idx, e.index)
		}
		for k, v := range w.groups[name].stable {
			gs.stable[k] = string(v.val)
		}
		w.imu.RUnlock()
		for _, i := range idx {
			var l raft.Log
			if err := s.GetLog(i, &l); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			gs.ents[i] = string(l.Data)
		}
		if len(gs.ents) > 0 || len(gs.stable) > 0 {
			st[name] = gs
		}
	}
	return st
}

func sameState(t *testing.T, got, want walState) {
	t.Helper()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("state differs:\n got %v\nwant %v", got, want)
	}
}

func segFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.seg"))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(m)
	return m
}

func logsData(from, to uint64, data string) []*raft.Log {
	var out []*raft.Log
	for i := from; i <= to; i++ {
		out = append(out, &raft.Log{Index: i, Term: 1, Data: []byte(fmt.Sprintf("%s-%d", data, i))})
	}
	return out
}

func TestWALReopen(t *testing.T) {
	dir := t.TempDir()
	w := openTestWAL(t, WALConfig{Dir: dir, SegmentSize: 64 << 10})
	a, b := mustStore(t, w, "a"), mustStore(t, w, "b")
	must(t, a.StoreLogs(logsData(1, 100, "a")))
	must(t, b.StoreLogs(logsData(1, 50, "b")))
	must(t, a.DeleteRange(1, 10))                // compact the head
	must(t, b.DeleteRange(40, 50))               // truncate a tail...
	must(t, b.StoreLogs(logsData(40, 45, "b2"))) // ...and rewrite it
	must(t, a.SetUint64([]byte("CurrentTerm"), 7))
	must(t, b.Set([]byte("LastVoteCand"), []byte("n2")))
	must(t, b.Set([]byte("LastVoteCand"), []byte("n3")))
	want := snapshotWAL(t, w)
	must(t, w.Close())

	w = openTestWAL(t, WALConfig{Dir: dir, SegmentSize: 64 << 10})
	sameState(t, snapshotWAL(t, w), want)
	a = mustStore(t, w, "a")
	if f, l := bounds(a); f != 11 || l != 100 {
		t.Fatalf("a bounds %d..%d", f, l)
	}
	if v, err := a.GetUint64([]byte("CurrentTerm")); err != nil || v != 7 {
		t.Fatalf("term %d, %v", v, err)
	}
	// It keeps writing where it left off, and says so after another reopen.
	must(t, a.StoreLogs(logsData(101, 120, "a")))
	want = snapshotWAL(t, w)
	must(t, w.Close())
	w = openTestWAL(t, WALConfig{Dir: dir, SegmentSize: 64 << 10})
	sameState(t, snapshotWAL(t, w), want)
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestWALSegmentsCollected: a group that compacts its log lets old
// segments go; an idle group's entries are copied forward so they do not
// pin old segments; all of it survives a reopen.
func TestWALSegmentsCollected(t *testing.T) {
	cfg, w := smallWAL(t)
	dir := cfg.Dir
	idle, busy := mustStore(t, w, "idle"), mustStore(t, w, "busy")
	must(t, idle.StoreLogs(logsData(1, 20, "idle")))
	must(t, idle.SetUint64([]byte("CurrentTerm"), 3))
	data := make([]byte, 1000)
	next := uint64(1)
	for round := 0; round < 40; round++ {
		var logs []*raft.Log
		for i := 0; i < 16; i++ {
			logs = append(logs, &raft.Log{Index: next, Term: 1, Data: data})
			next++
		}
		must(t, busy.StoreLogs(logs))
		if next > 100 { // keep the last 100 entries, as raft keeps TrailingLogs
			first, _ := busy.FirstIndex()
			must(t, busy.DeleteRange(first, next-101))
		}
	}
	// 640 KB written in 64 KiB segments: without collection there would be
	// ten or more.
	poll.NoError(t, 10*time.Second, "", func() error {
		if n := len(segFiles(t, dir)); n > 5 {
			return fmt.Errorf("%d segments", n)
		}
		return nil
	})
	if st := w.stats(); st.segments > 5 {
		t.Fatalf("stats: %+v", st)
	}
	want := snapshotWAL(t, w)
	if len(want["idle"].ents) != 20 || want["idle"].stable["CurrentTerm"] == "" {
		t.Fatalf("idle group lost state: %v", want["idle"])
	}
	must(t, w.Close())
	w = openTestWAL(t, cfg)
	sameState(t, snapshotWAL(t, w), want)
}

// smallWAL opens a WAL of 64 KiB segments in a fresh directory.
func smallWAL(t testing.TB) (WALConfig, *WAL) {
	t.Helper()
	cfg := WALConfig{Dir: t.TempDir(), SegmentSize: 64 << 10}
	return cfg, openTestWAL(t, cfg)
}

// walEnd returns the head segment's path and the offset of the next write.
func walEnd(w *WAL) (seg string, off int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return filepath.Join(w.cfg.Dir, segName(w.head.num)), w.off
}

// TestWALTornTail: after a crash the last segment can hold a torn record
// and, past it, records that reached the disk although the fdatasync that
// would have covered them never finished. Replay keeps everything before
// the torn record; the next run writes over it, and a replay after that
// must not pick up the stale records that follow.
func TestWALTornTail(t *testing.T) {
	cfg, w := smallWAL(t)
	s := mustStore(t, w, "g")
	must(t, s.StoreLogs(logsData(1, 5, "x")))
	want := snapshotWAL(t, w)
	path, torn := walEnd(w)
	must(t, s.StoreLogs(logsData(6, 6, "y"))) // B: to be torn
	must(t, s.StoreLogs(logsData(7, 7, "z"))) // C: stale after the crash
	must(t, w.Close())

	// Tear B: flip a byte in its payload.
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	must(t, err)
	b := make([]byte, 1)
	_, err = f.ReadAt(b, torn+recHeaderSize+3)
	must(t, err)
	b[0] ^= 0xff
	_, err = f.WriteAt(b, torn+recHeaderSize+3)
	must(t, err)
	must(t, f.Close())

	w = openTestWAL(t, cfg)
	sameState(t, snapshotWAL(t, w), want)
	s = mustStore(t, w, "g")
	// The open record took B's place; write records until one ends where
	// C starts, so C would continue the sequence if only the LSN were
	// checked.
	must(t, s.StoreLogs(logsData(6, 6, "Y")))
	want = snapshotWAL(t, w)
	must(t, w.Close())
	w = openTestWAL(t, cfg)
	sameState(t, snapshotWAL(t, w), want)
	if _, l := bounds(mustStore(t, w, "g")); l != 6 {
		t.Fatalf("last index %d: a stale record came back", l)
	}
}

// TestWALStaleRecordSameLSN builds the case the epoch exists for: after a
// crash, the next run's records end exactly where a stale record of the
// run before starts, with the LSN that follows.
func TestWALStaleRecordSameLSN(t *testing.T) {
	cfg, w := smallWAL(t)
	s := mustStore(t, w, "g")
	must(t, s.StoreLogs(logsData(1, 1, "a")))
	path, off := walEnd(w)
	must(t, s.StoreLogs(logsData(2, 2, "b"))) // B
	_, offC := walEnd(w)
	must(t, s.StoreLogs(logsData(3, 3, "c"))) // C
	w.mu.Lock()
	lsnB := w.nextLSN - 2
	w.mu.Unlock()
	must(t, w.Close())
	data, err := os.ReadFile(path)
	must(t, err)
	c, _, ok := decodeRecord(data[offC:], 1<<20)
	if !ok {
		t.Fatal("C does not decode")
	}
	// Crash with B torn. Run 2 writes its open record at B's offset with
	// B's LSN and crashes before writing more.
	corrupt(t, path, off+recHeaderSize)
	w = openTestWAL(t, cfg)
	must(t, w.Close())
	data, err = os.ReadFile(path)
	must(t, err)
	open, n, ok := decodeRecord(data[off:], 1<<20)
	if !ok || open.typ != recOpen || open.lsn != lsnB {
		t.Fatalf("want run 2's open record at B's offset: %+v %v", open, ok)
	}
	// A stale record of run 1 right after it, with the next LSN: only its
	// older epoch tells it is stale.
	stale := append(newRecord(len(c.payload)), c.payload...)
	sealRecord(stale, lsnB+1, c.epoch, c.typ)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	must(t, err)
	_, err = f.WriteAt(stale, off+int64(n))
	must(t, err)
	must(t, f.Close())

	w = openTestWAL(t, cfg)
	if _, l := bounds(mustStore(t, w, "g")); l != 1 {
		t.Fatalf("last index %d: the stale record of an older epoch came back", l)
	}
}

// corrupt flips the byte at off in path.
func corrupt(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	must(t, err)
	defer f.Close()
	b := make([]byte, 1)
	_, err = f.ReadAt(b, off)
	must(t, err)
	b[0] ^= 0xff
	_, err = f.WriteAt(b, off)
	must(t, err)
}

func TestWALCorruptMiddleSegment(t *testing.T) {
	cfg, w := smallWAL(t)
	dir := cfg.Dir
	s := mustStore(t, w, "g")
	data := make([]byte, 4000)
	for i := uint64(1); i <= 60; i++ {
		must(t, s.StoreLog(&raft.Log{Index: i, Data: data}))
	}
	must(t, w.Close())
	segs := segFiles(t, dir)
	if len(segs) < 3 {
		t.Fatalf("%d segments", len(segs))
	}

	t.Run("header", func(t *testing.T) {
		corrupt(t, segs[1], 20)
		_, err := OpenWAL(WALConfig{Dir: dir, SegmentSize: 64 << 10})
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("got %v", err)
		}
		corrupt(t, segs[1], 20)
	})
	t.Run("record", func(t *testing.T) {
		// A bad record in the middle of a full segment ends it early; the
		// next segment then does not continue its LSNs.
		corrupt(t, segs[0], segHeaderSize+100)
		_, err := OpenWAL(WALConfig{Dir: dir, SegmentSize: 64 << 10})
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("got %v", err)
		}
		corrupt(t, segs[0], segHeaderSize+100)
	})
	t.Run("missing", func(t *testing.T) {
		tmp := segs[1] + ".away"
		must(t, os.Rename(segs[1], tmp))
		_, err := OpenWAL(WALConfig{Dir: dir, SegmentSize: 64 << 10})
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("got %v", err)
		}
		must(t, os.Rename(tmp, segs[1]))
	})
	t.Run("intact", func(t *testing.T) {
		w := openTestWAL(t, cfg)
		if f, l := bounds(mustStore(t, w, "g")); f != 1 || l != 60 {
			t.Fatalf("bounds %d..%d", f, l)
		}
	})
}

// TestWALLastSegmentWithoutHeader: a crash right after a new segment was
// named, before its header was durable, leaves a zeroed last segment.
func TestWALLastSegmentWithoutHeader(t *testing.T) {
	cfg, w := smallWAL(t)
	dir := cfg.Dir
	s := mustStore(t, w, "g")
	must(t, s.StoreLogs(logsData(1, 10, "a")))
	want := snapshotWAL(t, w)
	must(t, w.Close())
	segs := segFiles(t, dir)
	must(t, os.WriteFile(filepath.Join(dir, segName(uint64(len(segs)+1))), make([]byte, 64<<10), 0o600))
	w = openTestWAL(t, cfg)
	sameState(t, snapshotWAL(t, w), want)
	must(t, s.StoreLogs(nil))
	s = mustStore(t, w, "g")
	must(t, s.StoreLogs(logsData(11, 11, "a")))
}

func TestWALTooLarge(t *testing.T) {
	s := mustStore(t, openTestWAL(t, WALConfig{Dir: t.TempDir(), SegmentSize: 64 << 10}), "g")
	err := s.StoreLog(&raft.Log{Index: 1, Data: make([]byte, 64<<10)})
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("got %v", err)
	}
	// A batch larger than a segment is split.
	var logs []*raft.Log
	for i := uint64(1); i <= 40; i++ {
		logs = append(logs, &raft.Log{Index: i, Data: make([]byte, 4000)})
	}
	must(t, s.StoreLogs(logs))
	if f, l := bounds(s); f != 1 || l != 40 {
		t.Fatalf("bounds %d..%d", f, l)
	}
}

func TestWALConfigValidate(t *testing.T) {
	for _, c := range []WALConfig{{}, {Dir: "x", SegmentSize: 1000}, {Dir: "x", SegmentSize: 2 << 30}} {
		if c.Validate() == nil {
			t.Errorf("%+v: no error", c)
		}
	}
	if _, err := (&WAL{}).Store("Bad Name"); !errors.Is(err, ErrBadGroup) {
		t.Fatalf("got %v", err)
	}
}

// TestWALGroupCommit: concurrent writers from many groups share
// fdatasyncs, and every write is there after a reopen.
func TestWALGroupCommit(t *testing.T) {
	dir := t.TempDir()
	cfg := WALConfig{Dir: dir, SegmentSize: 256 << 10}
	w := openTestWAL(t, cfg)
	const groups, per = 8, 200
	var wg sync.WaitGroup
	for g := 0; g < groups; g++ {
		s := mustStore(t, w, fmt.Sprintf("g%d", g))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := uint64(1); i <= per; i++ {
				if err := s.StoreLog(&raft.Log{Index: i, Data: make([]byte, 300)}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	st := w.stats()
	t.Logf("%d durability waits, %d fdatasyncs", st.waits, st.fsyncs)
	if st.fsyncs >= st.waits {
		t.Fatalf("no fdatasync was shared: %+v", st)
	}
	must(t, w.Close())
	w = openTestWAL(t, cfg)
	for g := 0; g < groups; g++ {
		if f, l := bounds(mustStore(t, w, fmt.Sprintf("g%d", g))); f != 1 || l != per {
			t.Fatalf("g%d bounds %d..%d", g, f, l)
		}
	}
}

// TestWALRandomCrash writes random raft-shaped operations, "crashes" at
// a random point by cutting the last segment at a random offset past the
// last durable write (zeroing the rest), and checks that replay returns
// exactly the acknowledged state.
func TestWALRandomCrash(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for round := 0; round < 20; round++ {
		cfg, w := smallWAL(t)
		stores := []*WALStore{mustStore(t, w, "a"), mustStore(t, w, "b")}
		next := []uint64{1, 1}
		ops := 20 + rng.IntN(200)
		for op := 0; op < ops; op++ {
			i := rng.IntN(2)
			s := stores[i]
			first, last := bounds(s)
			switch k := rng.IntN(10); {
			case k < 7 || last == 0:
				n := uint64(rng.IntN(8) + 1)
				must(t, s.StoreLogs(logsData(next[i], next[i]+n-1, fmt.Sprint(op))))
				next[i] += n
			case k < 8:
				from := first + rng.Uint64N(last-first+1)
				must(t, s.DeleteRange(from, last))
				next[i] = from
			case k < 9:
				must(t, s.DeleteRange(first, first+rng.Uint64N(last-first+1)))
			default:
				must(t, s.SetUint64([]byte("CurrentTerm"), uint64(op)))
			}
		}
		want := snapshotWAL(t, w)
		path, end := walEnd(w)
		// Unacknowledged writes (to a group of their own) that reach the
		// disk in part.
		extra := rng.IntN(5)
		for j := 0; j < extra; j++ {
			_, _ = w.appendRecord(newStableRecord("x", []byte("k"), []byte("v")), recStable, nil)
		}
		_, extraEnd := walEnd(w)
		must(t, w.Close())
		if extraEnd > end {
			cut := end + rng.Int64N(extraEnd-end)
			f, err := os.OpenFile(path, os.O_RDWR, 0)
			must(t, err)
			_, err = f.WriteAt(make([]byte, extraEnd-cut), cut)
			must(t, err)
			must(t, f.Close())
		}
		w = openTestWAL(t, cfg)
		got := snapshotWAL(t, w)
		// Whole unacknowledged records before the cut may survive, as
		// after a crash; everything acknowledged must be exactly there.
		delete(got, "x")
		sameState(t, got, want)
		must(t, w.Close())
	}
}

// TestWALAcksAfterFdatasync: a write returns only after an fdatasync that
// started after it; a failed fdatasync fails the write and every later
// one (what reached the disk is unknown).
func TestWALAcksAfterFdatasync(t *testing.T) {
	_, w := smallWAL(t)
	s := mustStore(t, w, "g")
	started := make(chan struct{}, 16)
	release := make(chan error)
	done := make(chan error, 1)
	w.mu.Lock()
	w.datasync = func(*os.File) error {
		select {
		case started <- struct{}{}:
		default:
		}
		return <-release
	}
	w.mu.Unlock()
	t.Cleanup(func() { close(release) }) // before Close's fdatasync
	waitStarted := func() {
		t.Helper()
		select {
		case <-started:
		case err := <-done:
			t.Fatalf("StoreLog returned without an fdatasync: %v", err)
		case <-time.After(10 * time.Second):
			t.Fatal("no fdatasync started")
		}
	}
	go func() { done <- s.StoreLog(&raft.Log{Index: 1, Data: []byte("x")}) }()
	waitStarted()
	select {
	case err := <-done:
		t.Fatalf("StoreLog returned before its fdatasync finished: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	release <- nil
	must(t, <-done)

	go func() { done <- s.StoreLog(&raft.Log{Index: 2, Data: []byte("y")}) }()
	waitStarted()
	release <- errors.New("EIO")
	if err := <-done; !errors.Is(err, ErrWALFailed) {
		t.Fatalf("got %v", err)
	}
	if err := s.StoreLog(&raft.Log{Index: 3}); !errors.Is(err, ErrWALFailed) {
		t.Fatalf("after a failed fdatasync: %v", err)
	}
}

// TestWALNewSegmentFailureNotFatal: when the next segment cannot be made
// (here a directory is in the way of the preallocated file; in life, a
// full disk), writes fail with an error and work again once it can.
func TestWALNewSegmentFailureNotFatal(t *testing.T) {
	cfg, w := smallWAL(t)
	s := mustStore(t, w, "g")
	block := filepath.Join(cfg.Dir, prepName, "x")
	// Let any preallocation already under way finish, then block the next.
	w.mu.Lock()
	if w.prepping {
		must(t, <-w.prepped)
		w.prepping = false
	}
	w.mu.Unlock()
	must(t, os.MkdirAll(block, 0o700))
	data := make([]byte, 4000)
	var err error
	next := uint64(1)
	for ; next < 100; next++ {
		if err = s.StoreLog(&raft.Log{Index: next, Data: data}); err != nil {
			break
		}
	}
	if err == nil || errors.Is(err, ErrWALFailed) {
		t.Fatalf("after %d entries of 4 KB in 64 KiB segments: %v", next-1, err)
	}
	must(t, os.RemoveAll(filepath.Join(cfg.Dir, prepName)))
	for i := next; i < next+20; i++ {
		must(t, s.StoreLog(&raft.Log{Index: i, Data: data}))
	}
	want := snapshotWAL(t, w)
	must(t, w.Close())
	sameState(t, snapshotWAL(t, openTestWAL(t, cfg)), want)
}

// TestWALMetrics: the WAL registers its fsync histograms and gauges of
// its segments and live bytes on WALConfig.Metrics.
func TestWALMetrics(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	w := openTestWAL(t, WALConfig{Dir: t.TempDir(), SegmentSize: 64 << 10, Metrics: reg})
	s := mustStore(t, w, "g")
	for i := uint64(0); i < 40; i++ { // several 64 KiB segments
		must(t, s.StoreLogs(logsData(i*10+1, i*10+10, strings.Repeat("x", 1000))))
	}
	w.imu.RLock()
	want := len(w.segs)
	w.imu.RUnlock()
	fams, err := reg.Gather()
	must(t, err)
	got := map[string]*dto.Metric{}
	for _, f := range fams {
		got[f.GetName()] = f.GetMetric()[0]
	}
	segs := got["parley_core_wal_segments"].GetGauge().GetValue()
	live := got["parley_core_wal_live_bytes"].GetGauge().GetValue()
	if int(segs) != want || want < 2 || live < 400*1000 || live > float64(want*64<<10) {
		t.Fatalf("gauges: %v segments (want %d, at least 2), %v live bytes (want the 400 entries' 400,000 and more, within the segments)", segs, want, live)
	}
	if n := got["parley_core_wal_fsync_seconds"].GetHistogram().GetSampleCount(); n == 0 {
		t.Fatal("no fsync observed")
	}
	if n := got["parley_core_wal_writes_per_fsync"].GetHistogram().GetSampleSum(); n < 40 {
		t.Fatalf("writes per fsync sum %v, want the 40 writes", n)
	}
}
