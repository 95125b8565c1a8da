package kvfsm

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"github.com/hashicorp/raft"

	"github.com/parley-chat/parley/syncproto/syncpb"
)

// bufferSink is a raft.SnapshotSink that keeps the snapshot in memory.
type bufferSink struct {
	bytes.Buffer
	closed, cancelled bool
}

func (s *bufferSink) ID() string    { return "test" }
func (s *bufferSink) Close() error  { s.closed = true; return nil }
func (s *bufferSink) Cancel() error { s.cancelled = true; return nil }

func takeSnapshot(t testing.TB, m *Machine) []byte {
	t.Helper()
	snap, err := m.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Release()
	sink := &bufferSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	if !sink.closed || sink.cancelled {
		t.Fatal("sink not closed")
	}
	return sink.Bytes()
}

func fill(t testing.TB, m *Machine, from, to uint64) {
	t.Helper()
	var logs []*raft.Log
	for i := from; i <= to; i++ {
		logs = append(logs, sendLog(t, i, fmt.Sprint(i%7), "x", bytes.Repeat([]byte{byte(i)}, int(i))))
	}
	m.ApplyBatch(logs)
}

func TestSnapshotRestoreRoundTrip(t *testing.T) {
	src := newTestMachine(t, openDB(t, "", 16<<20), "s3")
	fill(t, src, 1, 50)
	synced := 0
	src.sync = func() error { synced++; return nil }
	snap, err := src.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if synced != 1 {
		t.Fatalf("sync hook called %d times", synced)
	}
	want := dump(t, src)
	// Entries applied after Snapshot are not in it.
	fill(t, src, 51, 60)
	sink := &bufferSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	snap.Release()

	dstDB := openDB(t, "", 16<<20)
	dst := newTestMachine(t, dstDB, "s3")
	fill(t, dst, 1, 80) // state that Restore must discard
	other := newTestMachine(t, dstDB, "s30")
	fill(t, other, 1, 5)
	otherBefore := dump(t, other)
	if err := dst.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatal(err)
	}
	if got := dump(t, dst); !slices.Equal(got, want) {
		t.Fatalf("restored key space differs:\n got %v\nwant %v", got, want)
	}
	if got := applied(t, dst); got != 50 {
		t.Fatalf("applied after restore %d", got)
	}
	if !slices.Equal(dump(t, other), otherBefore) {
		t.Fatal("restore touched another group")
	}
	// Applying continues from the snapshot's index.
	fill(t, dst, 51, 60)
	fill(t, src, 51, 60)
	if !slices.Equal(dump(t, dst), dump(t, src)) {
		t.Fatal("replicas differ after continuing from the snapshot")
	}
}

func TestRestoreRejectsBadSnapshots(t *testing.T) {
	src := newTestMachine(t, openDB(t, "", 16<<20), "s3")
	fill(t, src, 1, 20)
	good := takeSnapshot(t, src)
	flip := func(i int) []byte {
		b := bytes.Clone(good)
		b[i] ^= 0x40
		return b
	}
	otherGroup := takeSnapshot(t, newTestMachine(t, openDB(t, "", 16<<20), "s4"))
	tests := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"bad magic", flip(0)},
		{"bad version", flip(8)},
		{"flipped value byte", flip(len(good) / 2)},
		{"flipped checksum", flip(len(good) - 1)},
		{"truncated", good[:len(good)-5]},
		{"trailing garbage", append(bytes.Clone(good), 0)},
		{"other group", otherGroup},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dst := newTestMachine(t, openDB(t, "", 16<<20), "s3")
			fill(t, dst, 1, 3)
			err := dst.Restore(io.NopCloser(bytes.NewReader(tc.data)))
			if !errors.Is(err, ErrBadSnapshot) {
				t.Fatalf("Restore: %v, want ErrBadSnapshot", err)
			}
			// A failure after the header leaves the marker; before it, the
			// old state is untouched. Either way AppliedIndex never claims
			// the bad snapshot's index.
			idx, err := dst.AppliedIndex()
			if err == nil && idx != 3 {
				t.Fatalf("AppliedIndex %d after failed restore", idx)
			}
			if err != nil && !errors.Is(err, ErrRestoreIncomplete) {
				t.Fatalf("AppliedIndex: %v", err)
			}
			// A good snapshot repairs it.
			if err := dst.Restore(io.NopCloser(bytes.NewReader(good))); err != nil {
				t.Fatal(err)
			}
			if got := applied(t, dst); got != 20 {
				t.Fatalf("applied %d after repair", got)
			}
		})
	}
}

// A crash in the middle of a restore leaves the marker on disk; after a
// restart AppliedIndex reports it until a restore completes.
func TestInterruptedRestoreIsDetectedAfterReopen(t *testing.T) {
	dir := t.TempDir()
	db, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil).WithMemTableSize(8 << 20))
	if err != nil {
		t.Fatal(err)
	}
	m := newTestMachine(t, db, "s0")
	fill(t, m, 1, 10)
	snap := takeSnapshot(t, m)
	// Cut the stream in the middle of the records: the marker is written,
	// the old keys deleted, some new ones written.
	if err := m.Restore(io.NopCloser(bytes.NewReader(snap[:len(snap)/2]))); err == nil {
		t.Fatal("restore of half a snapshot succeeded")
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openDB(t, dir, 8<<20)
	m = newTestMachine(t, db, "s0")
	if _, err := m.AppliedIndex(); !errors.Is(err, ErrRestoreIncomplete) {
		t.Fatalf("AppliedIndex after interrupted restore: %v", err)
	}
	// Nothing applies over the half-restored state.
	if code(m.Apply(sendLog(t, 11, "a", "x", nil))) != syncpb.Code_CODE_UNAVAILABLE {
		t.Fatal("entry applied over an unfinished restore")
	}
	if err := m.Restore(io.NopCloser(bytes.NewReader(snap))); err != nil {
		t.Fatal(err)
	}
	if got := applied(t, m); got != 10 {
		t.Fatalf("applied %d", got)
	}
	if code(m.Apply(sendLog(t, 11, "a", "x", nil))) != syncpb.Code_CODE_OK || applied(t, m) != 11 {
		t.Fatal("apply after a good restore failed")
	}
}

func TestSnapshotWriterRejectsUnorderedKeys(t *testing.T) {
	sw, _ := newSnapshotWriter(io.Discard, "g")
	if err := sw.record([]byte("b"), nil); err != nil {
		t.Fatal(err)
	}
	if err := sw.record([]byte("a"), nil); err == nil {
		t.Fatal("out of order key accepted")
	}
	if err := sw.record(nil, nil); err == nil {
		t.Fatal("empty key accepted")
	}
}

// decodeAll decodes a whole snapshot.
func decodeAll(data []byte) (group string, keys, vals [][]byte, err error) {
	sr, group, err := newSnapshotReader(bytes.NewReader(data))
	if err != nil {
		return "", nil, nil, err
	}
	for {
		k, v, ok, err := sr.next()
		if err != nil {
			return "", nil, nil, err
		}
		if !ok {
			return group, keys, vals, nil
		}
		keys, vals = append(keys, k), append(vals, v)
	}
}

func encodeAll(group string, keys, vals [][]byte) ([]byte, error) {
	var buf bytes.Buffer
	sw, err := newSnapshotWriter(&buf, group)
	if err != nil {
		return nil, err
	}
	for i := range keys {
		if err := sw.record(keys[i], vals[i]); err != nil {
			return nil, err
		}
	}
	if err := sw.finish(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// FuzzSnapshotDecode: the decoder never panics, and whatever it accepts
// re-encodes to the same bytes (the format is canonical).
func FuzzSnapshotDecode(f *testing.F) {
	seed, _ := encodeAll("s0", [][]byte{[]byte("a"), []byte("applied"), []byte("b/\x00")}, [][]byte{nil, {0, 0, 0, 0, 0, 0, 0, 9}, []byte("v")})
	f.Add(seed)
	empty, _ := encodeAll("dir", nil, nil)
	f.Add(empty)
	f.Add([]byte("parleykv\x01\x02s0\x01\xff\xff\xff\xff\x0f"))
	f.Fuzz(func(t *testing.T, data []byte) {
		group, keys, vals, err := decodeAll(data)
		if err != nil {
			if !errors.Is(err, ErrBadSnapshot) {
				t.Fatalf("error not ErrBadSnapshot: %v", err)
			}
			return
		}
		again, err := encodeAll(group, keys, vals)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		if !bytes.Equal(again, data) {
			t.Fatalf("re-encoded snapshot differs")
		}
	})
}
