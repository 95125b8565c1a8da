package raftstore

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// A WAL segment file starts with a header:
//
//	magic    8 bytes "PLYWAL01"
//	number   u64 (must match the file name)
//	firstLSN u64 (the LSN of its first record)
//	crc      u32 Castagnoli CRC of the 24 bytes before it
//
// padded to segHeaderSize, then records back to back. A record is
//
//	crc      u32 Castagnoli CRC of everything after it (header rest + payload)
//	length   u32 payload length
//	lsn      u64 one more than the record before it
//	epoch    u32 the WAL's open count when written; never decreases
//	type     u8
//	payload  length bytes
//
// All integers are little-endian. The first record that fails any check
// ends the segment: what follows it was never made durable (see WAL).
const (
	segMagic      = "PLYWAL01"
	segHeaderSize = 32
	recHeaderSize = 4 + 4 + 8 + 4 + 1
)

// Record types.
const (
	recOpen    = 1 // no payload: the WAL was opened with this epoch
	recEntries = 2 // group, then (index uvarint, length uvarint, appendLog bytes)...
	recDelete  = 3 // group, min uvarint, max uvarint
	recStable  = 4 // group, key (uvarint length, bytes), value (uvarint length, bytes)
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

type segHeader struct {
	num, firstLSN uint64
}

func appendSegHeader(b []byte, h segHeader) []byte {
	start := len(b)
	b = append(b, segMagic...)
	b = binary.LittleEndian.AppendUint64(b, h.num)
	b = binary.LittleEndian.AppendUint64(b, h.firstLSN)
	b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(b[start:], castagnoli))
	return append(b, make([]byte, segHeaderSize-(len(b)-start))...)
}

func decodeSegHeader(b []byte) (segHeader, error) {
	if len(b) < segHeaderSize || string(b[:8]) != segMagic {
		return segHeader{}, fmt.Errorf("%w: segment header", ErrCorrupt)
	}
	if crc32.Checksum(b[:24], castagnoli) != binary.LittleEndian.Uint32(b[24:28]) {
		return segHeader{}, fmt.Errorf("%w: segment header checksum", ErrCorrupt)
	}
	return segHeader{num: binary.LittleEndian.Uint64(b[8:16]), firstLSN: binary.LittleEndian.Uint64(b[16:24])}, nil
}

// record is one decoded record; payload aliases the buffer it came from.
type record struct {
	lsn     uint64
	epoch   uint32
	typ     byte
	payload []byte
}

// newRecord returns a buffer with room for a record header, to append the
// payload to before sealRecord.
func newRecord(capacity int) []byte {
	return make([]byte, recHeaderSize, recHeaderSize+capacity)
}

// sealRecord fills in the header of b (made by newRecord, payload
// appended).
func sealRecord(b []byte, lsn uint64, epoch uint32, typ byte) {
	binary.LittleEndian.PutUint32(b[4:], uint32(len(b)-recHeaderSize))
	binary.LittleEndian.PutUint64(b[8:], lsn)
	binary.LittleEndian.PutUint32(b[16:], epoch)
	b[20] = typ
	binary.LittleEndian.PutUint32(b[0:], crc32.Checksum(b[4:], castagnoli))
}

// decodeRecord decodes the record at the start of b and returns its total
// size. ok is false when b does not start with a whole record whose
// checksum matches and whose payload fits in maxPayload.
func decodeRecord(b []byte, maxPayload int) (r record, size int, ok bool) {
	if len(b) < recHeaderSize {
		return record{}, 0, false
	}
	n := binary.LittleEndian.Uint32(b[4:])
	if uint64(n) > uint64(maxPayload) || uint64(n) > uint64(len(b)-recHeaderSize) {
		return record{}, 0, false
	}
	size = recHeaderSize + int(n)
	if crc32.Checksum(b[4:size], castagnoli) != binary.LittleEndian.Uint32(b) {
		return record{}, 0, false
	}
	return record{
		lsn:     binary.LittleEndian.Uint64(b[8:]),
		epoch:   binary.LittleEndian.Uint32(b[16:]),
		typ:     b[20],
		payload: b[recHeaderSize:size:size],
	}, size, true
}

func appendBytes(b, v []byte) []byte {
	return append(binary.AppendUvarint(b, uint64(len(v))), v...)
}

// walEntry is one log entry in an entries record: its index and where its
// appendLog encoding sits in the payload.
type walEntry struct {
	index    uint64
	off, len int
}

// decodeEntries decodes an entries payload. The entries' encodings are
// not decoded here; GetLog does that.
func decodeEntries(p []byte) (group string, ents []walEntry, err error) {
	d := decoder{b: p}
	group = d.group()
	for d.err == nil && len(d.b) > 0 {
		index := d.uvarint()
		v := d.bytes()
		if d.err == nil && len(v) == 0 {
			d.fail("empty entry")
		}
		if d.err != nil {
			break
		}
		ents = append(ents, walEntry{index: index, off: len(p) - len(d.b) - len(v), len: len(v)})
	}
	return group, ents, d.err
}

func decodeDelete(p []byte) (group string, lo, hi uint64, err error) {
	d := decoder{b: p}
	group = d.group()
	lo = d.uvarint()
	hi = d.uvarint()
	d.end("delete record")
	return group, lo, hi, d.err
}

func decodeStable(p []byte) (group string, key, val []byte, err error) {
	d := decoder{b: p}
	group = d.group()
	key = d.bytes()
	val = d.bytes()
	d.end("stable record")
	return group, key, val, d.err
}

// group reads a group name (uvarint length, bytes).
func (d *decoder) group() string {
	g := d.bytes()
	if d.err == nil && !ValidGroup(string(g)) {
		d.err = fmt.Errorf("%w: group %q", ErrCorrupt, g)
		d.b = nil
	}
	return string(g)
}

// end fails unless everything was read.
func (d *decoder) end(what string) {
	if d.err == nil && len(d.b) != 0 {
		d.fail(what + " length")
	}
}

// entriesRecord builds an entries record.
type entriesRecord struct {
	rec  []byte
	ents []walEntry
}

func newEntriesRecord(group string, capacity int) *entriesRecord {
	return &entriesRecord{rec: appendBytes(newRecord(capacity), []byte(group))}
}

// add appends entry index, encoded as enc (appendLog).
func (e *entriesRecord) add(index uint64, enc []byte) {
	e.rec = binary.AppendUvarint(e.rec, index)
	e.rec = binary.AppendUvarint(e.rec, uint64(len(enc)))
	e.ents = append(e.ents, walEntry{index: index, off: len(e.rec) - recHeaderSize, len: len(enc)})
	e.rec = append(e.rec, enc...)
}

// fits reports whether an entry of n encoded bytes fits in a payload of at
// most max bytes.
func (e *entriesRecord) fits(n, max int) bool {
	return len(e.rec)-recHeaderSize+2*binary.MaxVarintLen64+n <= max
}

func newStableRecord(group string, key, val []byte) []byte {
	rec := newRecord(len(group) + len(key) + len(val) + 3*binary.MaxVarintLen64)
	return appendBytes(appendBytes(appendBytes(rec, []byte(group)), key), val)
}

func newDeleteRecord(group string, lo, hi uint64) []byte {
	rec := appendBytes(newRecord(len(group)+3*binary.MaxVarintLen64), []byte(group))
	return binary.AppendUvarint(binary.AppendUvarint(rec, lo), hi)
}
