package crdt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
)

// Encoding of Devices, deterministic (one byte string per value) and
// compact:
//
//	version  1 byte (1)
//	count    uvarint
//	count x  { id: uvarint length + bytes; delivered: uvarint value, varint at;
//	           read: uvarint value, varint at }   in increasing id order
//
// Decode accepts exactly the strings Encode produces.

const encodingVersion = 1

// MaxDeviceID bounds a device id in an encoding.
const MaxDeviceID = 256

// ErrEncoding is wrapped by every Decode error.
var ErrEncoding = errors.New("crdt: bad encoding")

// AppendEncode appends the encoding of d to b.
func (d Devices) AppendEncode(b []byte) []byte {
	ids := make([]string, 0, len(d))
	for id := range d {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	b = append(b, encodingVersion)
	b = binary.AppendUvarint(b, uint64(len(ids)))
	for _, id := range ids {
		m := d[id]
		b = binary.AppendUvarint(b, uint64(len(id)))
		b = append(b, id...)
		b = appendRegister(b, m.Delivered)
		b = appendRegister(b, m.Read)
	}
	return b
}

// Encode returns the encoding of d.
func (d Devices) Encode() []byte { return d.AppendEncode(nil) }

func appendRegister(b []byte, r Register) []byte {
	b = binary.AppendUvarint(b, r.Value)
	return binary.AppendVarint(b, r.At)
}

// Decode parses an encoding made by Encode.
func Decode(b []byte) (Devices, error) {
	r := reader{b: b}
	if v := r.byte(); r.err == nil && v != encodingVersion {
		return nil, fmt.Errorf("%w: version %d", ErrEncoding, v)
	}
	n := r.uvarint()
	// Each entry takes at least 5 bytes: a bound before allocating.
	if r.err == nil && n > uint64(len(r.b))/5 {
		return nil, fmt.Errorf("%w: %d devices in %d bytes", ErrEncoding, n, len(r.b))
	}
	d := make(Devices, n)
	prev := ""
	for i := uint64(0); i < n && r.err == nil; i++ {
		l := r.uvarint()
		if r.err == nil && (l == 0 || l > MaxDeviceID) {
			return nil, fmt.Errorf("%w: device id length %d", ErrEncoding, l)
		}
		id := string(r.bytes(int(l)))
		m := Marks{Delivered: r.register(), Read: r.register()}
		if r.err != nil {
			break
		}
		if i > 0 && id <= prev {
			return nil, fmt.Errorf("%w: device ids out of order", ErrEncoding)
		}
		prev = id
		d[id] = m
	}
	if r.err != nil {
		return nil, r.err
	}
	if len(r.b) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrEncoding, len(r.b))
	}
	return d, nil
}

type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s", ErrEncoding, what)
	}
}

func (r *reader) byte() byte {
	if r.err != nil || len(r.b) == 0 {
		r.fail("short")
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *reader) bytes(n int) []byte {
	if r.err != nil || len(r.b) < n {
		r.fail("short")
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

// uvarint reads a minimally encoded uvarint (so each value has one form).
func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 || n != len(binary.AppendUvarint(nil, v)) {
		r.fail("bad varint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 || n != len(binary.AppendVarint(nil, v)) {
		r.fail("bad varint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) register() Register {
	return Register{Value: r.uvarint(), At: r.varint()}
}
