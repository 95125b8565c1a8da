package raftstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
)

// The encoding of a raft.Log (a WAL entry's payload):
//
//	version  byte = 1
//	index    uvarint (must match the index it is stored under)
//	term     uvarint
//	type     byte (raft.LogType)
//	flags    byte: bit 0 set when AppendedAt is present; other bits zero
//	data     uvarint length, bytes
//	ext      uvarint length, bytes
//	[sec     varint Unix seconds, nsec uvarint < 1e9]  when flags bit 0
//
// Nothing may follow. Zero-length Data and Extensions decode as nil.
const (
	logVersion    = 1
	flagAppended  = 1 << 0
	knownLogFlags = flagAppended
)

// ErrCorrupt is returned (wrapped) by GetLog for a stored value that does
// not decode, and by GetUint64 for a value that is not 8 bytes.
var ErrCorrupt = errors.New("raftstore: corrupt value")

// encodedLogSize is an upper bound of the encoding of l.
func encodedLogSize(l *raft.Log) int {
	return 1 + 3*binary.MaxVarintLen64 + 2 + len(l.Data) + binary.MaxVarintLen64 + len(l.Extensions) + 2*binary.MaxVarintLen64
}

// appendLog appends the encoding of l to b.
func appendLog(b []byte, l *raft.Log) []byte {
	b = append(b, logVersion)
	b = binary.AppendUvarint(b, l.Index)
	b = binary.AppendUvarint(b, l.Term)
	b = append(b, byte(l.Type))
	var flags byte
	if !l.AppendedAt.IsZero() {
		flags |= flagAppended
	}
	b = append(b, flags)
	b = binary.AppendUvarint(b, uint64(len(l.Data)))
	b = append(b, l.Data...)
	b = binary.AppendUvarint(b, uint64(len(l.Extensions)))
	b = append(b, l.Extensions...)
	if flags&flagAppended != 0 {
		b = binary.AppendVarint(b, l.AppendedAt.Unix())
		b = binary.AppendUvarint(b, uint64(l.AppendedAt.Nanosecond()))
	}
	return b
}

// decodeLog decodes b into l. Data and Extensions alias b.
func decodeLog(b []byte, l *raft.Log) error {
	d := decoder{b: b}
	if v := d.byte(); d.err == nil && v != logVersion {
		return fmt.Errorf("%w: log version %d", ErrCorrupt, v)
	}
	index := d.uvarint()
	term := d.uvarint()
	typ := d.byte()
	flags := d.byte()
	if d.err == nil && flags&^knownLogFlags != 0 {
		return fmt.Errorf("%w: log flags %#x", ErrCorrupt, flags)
	}
	data := d.bytes()
	ext := d.bytes()
	var at time.Time
	if flags&flagAppended != 0 {
		sec := d.varint()
		nsec := d.uvarint()
		if d.err == nil && nsec >= uint64(time.Second) {
			return fmt.Errorf("%w: log time nanoseconds %d", ErrCorrupt, nsec)
		}
		at = time.Unix(sec, int64(nsec))
	}
	if d.err != nil {
		return d.err
	}
	if len(d.b) != 0 {
		return fmt.Errorf("%w: %d bytes after log entry", ErrCorrupt, len(d.b))
	}
	*l = raft.Log{Index: index, Term: term, Type: raft.LogType(typ), Data: data, Extensions: ext, AppendedAt: at}
	return nil
}

// decoder reads from b; the first failure sticks in err.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: truncated or bad %s", ErrCorrupt, what)
	}
	d.b = nil
}

func (d *decoder) byte() byte {
	if len(d.b) == 0 {
		d.fail("byte")
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("uvarint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.fail("length")
		return nil
	}
	if n == 0 {
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}
