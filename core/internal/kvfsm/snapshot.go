package kvfsm

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"

	"github.com/dgraph-io/badger/v4"
	"github.com/hashicorp/raft"
)

// Snapshot format, version 1:
//
//	magic "parleykv" | version byte (1) | uvarint len | group name
//	records, keys strictly ascending:  0x01 | uvarint len | key | uvarint len | value
//	trailer: 0x00 | uint64 record count | uint32 CRC-32C of every byte before it
//
// Keys are relative to the group's prefix. Integers are big-endian.
const (
	snapshotMagic   = "parleykv"
	snapshotVersion = 1
	maxGroupLen     = 64
	// MaxSnapshotKey and MaxSnapshotValue bound one record; the decoder
	// rejects larger ones before allocating.
	MaxSnapshotKey   = 4 << 10
	MaxSnapshotValue = 64 << 20
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// snapshotWriter encodes a snapshot onto w.
type snapshotWriter struct {
	w     *bufio.Writer
	crc   hash.Hash32
	count uint64
	last  []byte
	buf   [binary.MaxVarintLen64]byte
}

func newSnapshotWriter(w io.Writer, group string) (*snapshotWriter, error) {
	sw := &snapshotWriter{w: bufio.NewWriterSize(w, 1<<16), crc: crc32.New(crcTable)}
	sw.write([]byte(snapshotMagic))
	sw.write([]byte{snapshotVersion})
	sw.uvarint(uint64(len(group)))
	sw.write([]byte(group))
	return sw, nil
}

func (sw *snapshotWriter) write(b []byte) {
	sw.crc.Write(b)
	sw.w.Write(b) // a write error sticks in the bufio.Writer and surfaces on Flush
}

func (sw *snapshotWriter) uvarint(v uint64) {
	n := binary.PutUvarint(sw.buf[:], v)
	sw.write(sw.buf[:n])
}

// record appends one key/value; keys must be given in ascending order.
func (sw *snapshotWriter) record(key, val []byte) error {
	if len(key) == 0 || len(key) > MaxSnapshotKey || len(val) > MaxSnapshotValue {
		return fmt.Errorf("kvfsm: snapshot record too large (key %d, value %d bytes)", len(key), len(val))
	}
	if sw.count > 0 && bytes.Compare(key, sw.last) <= 0 {
		return errors.New("kvfsm: snapshot keys out of order")
	}
	sw.last = append(sw.last[:0], key...)
	sw.write([]byte{1})
	sw.uvarint(uint64(len(key)))
	sw.write(key)
	sw.uvarint(uint64(len(val)))
	sw.write(val)
	sw.count++
	return nil
}

// finish writes the trailer and flushes.
func (sw *snapshotWriter) finish() error {
	var t [9]byte
	binary.BigEndian.PutUint64(t[1:], sw.count)
	sw.write(t[:])
	var c [4]byte
	binary.BigEndian.PutUint32(c[:], sw.crc.Sum32())
	sw.w.Write(c[:])
	return sw.w.Flush()
}

// snapshotReader decodes and verifies a snapshot.
type snapshotReader struct {
	r     *bufio.Reader
	crc   hash.Hash32
	count uint64
	last  []byte
	done  bool
}

func badSnapshot(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadSnapshot, fmt.Sprintf(format, args...))
}

// newSnapshotReader reads the header and returns the reader and the group
// name the snapshot was taken of.
func newSnapshotReader(r io.Reader) (*snapshotReader, string, error) {
	sr := &snapshotReader{r: bufio.NewReaderSize(r, 1<<16), crc: crc32.New(crcTable)}
	magic, err := sr.read(len(snapshotMagic) + 1)
	if err != nil {
		return nil, "", err
	}
	if string(magic[:len(snapshotMagic)]) != snapshotMagic {
		return nil, "", badSnapshot("bad magic")
	}
	if magic[len(snapshotMagic)] != snapshotVersion {
		return nil, "", badSnapshot("unsupported version %d", magic[len(snapshotMagic)])
	}
	n, err := sr.uvarint()
	if err != nil {
		return nil, "", err
	}
	if n > maxGroupLen {
		return nil, "", badSnapshot("group name of %d bytes", n)
	}
	group, err := sr.read(int(n))
	if err != nil {
		return nil, "", err
	}
	return sr, string(group), nil
}

func (sr *snapshotReader) read(n int) ([]byte, error) {
	var b []byte
	if n <= 1<<16 {
		b = make([]byte, n)
		if _, err := io.ReadFull(sr.r, b); err != nil {
			return nil, badSnapshot("truncated: %v", err)
		}
	} else {
		// Grow with what arrives, so a lying length costs no allocation.
		var buf bytes.Buffer
		if m, err := io.CopyN(&buf, sr.r, int64(n)); err != nil {
			return nil, badSnapshot("truncated after %d of %d bytes: %v", m, n, err)
		}
		b = buf.Bytes()
	}
	sr.crc.Write(b)
	return b, nil
}

func (sr *snapshotReader) uvarint() (uint64, error) {
	var buf [binary.MaxVarintLen64]byte
	for i := range buf {
		c, err := sr.r.ReadByte()
		if err != nil {
			return 0, badSnapshot("truncated varint: %v", err)
		}
		buf[i] = c
		if c < 0x80 {
			if c == 0 && i > 0 {
				return 0, badSnapshot("non-minimal varint")
			}
			v, n := binary.Uvarint(buf[:i+1])
			if n <= 0 {
				return 0, badSnapshot("bad varint")
			}
			sr.crc.Write(buf[:i+1])
			return v, nil
		}
	}
	return 0, badSnapshot("varint too long")
}

// next returns the next record, or ok=false after verifying the trailer.
// key and val are freshly allocated.
func (sr *snapshotReader) next() (key, val []byte, ok bool, err error) {
	if sr.done {
		return nil, nil, false, nil
	}
	tag, err := sr.read(1)
	if err != nil {
		return nil, nil, false, err
	}
	switch tag[0] {
	case 0:
		return nil, nil, false, sr.trailer()
	case 1:
	default:
		return nil, nil, false, badSnapshot("bad record tag %d", tag[0])
	}
	kn, err := sr.uvarint()
	if err != nil {
		return nil, nil, false, err
	}
	if kn == 0 || kn > MaxSnapshotKey {
		return nil, nil, false, badSnapshot("key of %d bytes", kn)
	}
	if key, err = sr.read(int(kn)); err != nil {
		return nil, nil, false, err
	}
	if sr.count > 0 && bytes.Compare(key, sr.last) <= 0 {
		return nil, nil, false, badSnapshot("keys out of order")
	}
	vn, err := sr.uvarint()
	if err != nil {
		return nil, nil, false, err
	}
	if vn > MaxSnapshotValue {
		return nil, nil, false, badSnapshot("value of %d bytes", vn)
	}
	if val, err = sr.read(int(vn)); err != nil {
		return nil, nil, false, err
	}
	sr.last = append(sr.last[:0], key...)
	sr.count++
	return key, val, true, nil
}

func (sr *snapshotReader) trailer() error {
	cnt, err := sr.read(8)
	if err != nil {
		return err
	}
	want := sr.crc.Sum32()
	var c [4]byte
	if _, err := io.ReadFull(sr.r, c[:]); err != nil {
		return badSnapshot("truncated checksum: %v", err)
	}
	if got := binary.BigEndian.Uint32(c[:]); got != want {
		return badSnapshot("checksum mismatch")
	}
	if n := binary.BigEndian.Uint64(cnt); n != sr.count {
		return badSnapshot("trailer counts %d records, read %d", n, sr.count)
	}
	if _, err := sr.r.ReadByte(); err != io.EOF {
		return badSnapshot("data after trailer")
	}
	sr.done = true
	return nil
}

// Snapshot syncs the DB (Config.Sync) and captures a consistent view of the
// group's keys; Persist streams it while later entries apply.
func (m *Machine) Snapshot() (raft.FSMSnapshot, error) {
	if err := m.Err(); err != nil {
		return nil, err
	}
	if m.sync != nil {
		if err := m.sync(); err != nil {
			return nil, fmt.Errorf("kvfsm: group %s: sync before snapshot: %w", m.group, err)
		}
	}
	return &snapshot{m: m, txn: m.db.NewTransaction(false)}, nil
}

type snapshot struct {
	m   *Machine
	txn *badger.Txn
}

// Persist writes the view to sink in the snapshot format.
func (s *snapshot) Persist(sink raft.SnapshotSink) error {
	if err := s.write(sink); err != nil {
		sink.Cancel()
		return fmt.Errorf("kvfsm: group %s: persist snapshot: %w", s.m.group, err)
	}
	return sink.Close()
}

func (s *snapshot) write(w io.Writer) error {
	sw, err := newSnapshotWriter(w, s.m.group)
	if err != nil {
		return err
	}
	v := &View{txn: s.txn, prefix: s.m.prefix}
	err = v.Scan(nil, nil, false, func(key, val []byte) (bool, error) {
		if string(key) == keyRestoring {
			return false, ErrRestoreIncomplete
		}
		return true, sw.record(key, val)
	})
	if err != nil {
		return err
	}
	return sw.finish()
}

// Release ends the view.
func (s *snapshot) Release() { s.txn.Discard() }

// Restore replaces every key of the group with the snapshot's. It first
// writes the restoring marker, then deletes the old keys, writes the new
// ones, verifies the trailer, and removes the marker last: a crash or a bad
// snapshot leaves the marker, so AppliedIndex reports ErrRestoreIncomplete
// until a later Restore succeeds. The old state is gone once it starts. A
// successful Restore also clears a sticky failure (see ErrFailed).
func (m *Machine) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	if err := m.restore(rc); err != nil {
		m.log.Error("restore failed", "err", err)
		return fmt.Errorf("kvfsm: group %s: restore: %w", m.group, err)
	}
	return nil
}

func (m *Machine) restore(r io.Reader) error {
	sr, group, err := newSnapshotReader(r)
	if err != nil {
		return err
	}
	if group != m.group {
		return badSnapshot("snapshot of group %q", group)
	}
	marker := m.key(keyRestoring)
	if err := m.db.Update(func(txn *badger.Txn) error { return txn.Set(marker, []byte{1}) }); err != nil {
		return fmt.Errorf("write marker: %w", err)
	}
	if err := m.clear(marker); err != nil {
		return err
	}
	wb := m.db.NewWriteBatch()
	defer wb.Cancel()
	var n uint64
	for {
		key, val, ok, err := sr.next()
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		if string(key) == keyRestoring {
			return badSnapshot("snapshot holds the restoring marker")
		}
		if err := wb.Set(m.key(string(key)), val); err != nil {
			return fmt.Errorf("write: %w", err)
		}
		n++
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("flush: %w", err)
	}
	if err := m.db.Update(func(txn *badger.Txn) error { return txn.Delete(marker) }); err != nil {
		return fmt.Errorf("remove marker: %w", err)
	}
	if m.sync != nil {
		if err := m.sync(); err != nil {
			return fmt.Errorf("sync: %w", err)
		}
	}
	m.mu.Lock()
	m.failed = nil // the state is whole again, at the snapshot's index
	m.mu.Unlock()
	m.log.Info("restored snapshot", "keys", n)
	return nil
}

// clear deletes every key of the group but keep. It deletes key by key:
// Badger's DropPrefix would block writes of every group sharing the DB.
func (m *Machine) clear(keep []byte) error {
	wb := m.db.NewWriteBatch()
	defer wb.Cancel()
	err := m.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.Prefix = m.prefix
		opts.PrefetchValues = false
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Seek(m.prefix); it.ValidForPrefix(m.prefix); it.Next() {
			k := it.Item().KeyCopy(nil)
			if bytes.Equal(k, keep) {
				continue
			}
			if err := wb.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("clear: %w", err)
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("clear: %w", err)
	}
	return nil
}
