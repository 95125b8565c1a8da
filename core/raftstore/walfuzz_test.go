package raftstore

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/raft"
)

// FuzzWALReplay replays a fuzzed segment: replay either fails with
// ErrCorrupt or rebuilds a state in which every entry's location lies in
// the segment, reads back as an entry or ErrCorrupt, and the segment's
// live bytes add up. (TestWALTornTail and friends replay real files.)
func FuzzWALReplay(f *testing.F) {
	dir := f.TempDir()
	w, err := OpenWAL(WALConfig{Dir: dir, SegmentSize: 64 << 10})
	if err != nil {
		f.Fatal(err)
	}
	s, _ := w.Store("g")
	_ = s.StoreLogs(logsData(1, 3, "a"))
	_ = s.DeleteRange(1, 1)
	_ = s.SetUint64([]byte("CurrentTerm"), 2)
	_ = s.StoreLogs(logsData(3, 3, "b"))
	_ = w.Close()
	seed, err := os.ReadFile(filepath.Join(dir, segName(1)))
	if err != nil {
		f.Fatal(err)
	}
	end := len(seed)
	for end > 0 && seed[end-1] == 0 {
		end--
	}
	f.Add(seed[segHeaderSize:end])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		data := append(make([]byte, segHeaderSize), b...)
		w := &WAL{groups: map[string]*walGroup{}}
		seg := &segment{num: 1, size: int64(len(data))}
		w.segs = []*segment{seg}
		var epoch uint32
		if _, _, err := w.replayRecords(seg, data, 1, &epoch); err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error not ErrCorrupt: %v", err)
			}
			return
		}
		var live int64
		for _, g := range w.groups {
			for i, e := range g.ents {
				if i > 0 && e.index <= g.ents[i-1].index {
					t.Fatalf("index not sorted: %+v", g.ents)
				}
				if int(e.loc.off)+int(e.loc.n) > len(data) {
					t.Fatalf("entry %d at %+v past the segment (%d bytes)", e.index, e.loc, len(data))
				}
				var l raft.Log
				if err := decodeLog(data[e.loc.off:e.loc.off+e.loc.n], &l); err != nil && !errors.Is(err, ErrCorrupt) {
					t.Fatalf("entry %d: %v", e.index, err)
				}
				live += int64(e.loc.n)
			}
			for _, v := range g.stable {
				live += int64(v.loc.n)
			}
		}
		if live != seg.live {
			t.Fatalf("live bytes %d, entries and values add up to %d", seg.live, live)
		}
	})
}

// FuzzWALPayloads decodes fuzzed record payloads of each type: an error
// is ErrCorrupt, and what decodes re-encodes to the same bytes.
func FuzzWALPayloads(f *testing.F) {
	e := newEntriesRecord("s1", 0)
	e.add(7, appendLog(nil, &raft.Log{Index: 7, Data: []byte("x")}))
	f.Add(byte(recEntries), e.rec[recHeaderSize:])
	f.Add(byte(recDelete), newDeleteRecord("s1", 3, 9)[recHeaderSize:])
	f.Add(byte(recStable), newStableRecord("s1", []byte("k"), []byte("v"))[recHeaderSize:])
	f.Fuzz(func(t *testing.T, typ byte, p []byte) {
		var re []byte
		var err error
		switch typ % 3 {
		case 0:
			var group string
			var ents []walEntry
			if group, ents, err = decodeEntries(p); err == nil {
				e := newEntriesRecord(group, 0)
				for _, en := range ents {
					e.add(en.index, p[en.off:en.off+en.len])
				}
				re = e.rec
			}
		case 1:
			var group string
			var lo, hi uint64
			if group, lo, hi, err = decodeDelete(p); err == nil {
				re = newDeleteRecord(group, lo, hi)
			}
		case 2:
			var group string
			var k, v []byte
			if group, k, v, err = decodeStable(p); err == nil {
				re = newStableRecord(group, k, v)
			}
		}
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error not ErrCorrupt: %v", err)
			}
			return
		}
		// Varints may be non-minimal in p; the re-encoding must decode
		// to the same and be no longer.
		if len(re)-recHeaderSize > len(p) {
			t.Fatalf("re-encoded %d bytes from %d", len(re)-recHeaderSize, len(p))
		}
	})
}
