package raftmux

import (
	"errors"
	"fmt"
	"io"
)

// The header a dialer writes before any Raft traffic:
//
//	magic    4 bytes "PRMX"
//	version  1 byte  (1)
//	glen     1 byte  1..32, then the group name: [a-z0-9_-]
//	flen     1 byte  0..255, then the dialer's advertise address
//
// There is no reply: the accepting side either hands the connection to the
// group's Layer or closes it.
const (
	headerVersion = 1
	// MaxGroupLen bounds group names.
	MaxGroupLen = 32
	// MaxAddrLen bounds the advertise address carried in the header.
	MaxAddrLen = 255
	// maxHeaderLen is the longest header.
	maxHeaderLen = 4 + 1 + 1 + MaxGroupLen + 1 + MaxAddrLen
)

var magic = [4]byte{'P', 'R', 'M', 'X'}

// ErrBadHeader is what the accepting side reports (in its debug log) for a
// connection whose header does not decode.
var ErrBadHeader = errors.New("raftmux: bad header")

type header struct {
	group string
	from  string // the dialer's advertise address
}

// ValidGroup reports whether name is a group name: [a-z0-9_-]{1,32}.
func ValidGroup(name string) bool {
	if len(name) == 0 || len(name) > MaxGroupLen {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// appendTo appends the encoding of h; h must be valid.
func (h header) appendTo(b []byte) []byte {
	b = append(b, magic[:]...)
	b = append(b, headerVersion, byte(len(h.group)))
	b = append(b, h.group...)
	b = append(b, byte(len(h.from)))
	return append(b, h.from...)
}

// readHeader reads exactly one header from r, never more.
func readHeader(r io.Reader) (header, error) {
	var buf [maxHeaderLen]byte
	b := buf[:6]
	if _, err := io.ReadFull(r, b); err != nil {
		return header{}, fmt.Errorf("%w: %w", ErrBadHeader, err)
	}
	if [4]byte(b[:4]) != magic {
		return header{}, fmt.Errorf("%w: magic %q", ErrBadHeader, b[:4])
	}
	if b[4] != headerVersion {
		return header{}, fmt.Errorf("%w: version %d", ErrBadHeader, b[4])
	}
	glen := int(b[5])
	if glen == 0 || glen > MaxGroupLen {
		return header{}, fmt.Errorf("%w: group length %d", ErrBadHeader, glen)
	}
	b = buf[:glen+1] // group and flen
	if _, err := io.ReadFull(r, b); err != nil {
		return header{}, fmt.Errorf("%w: %w", ErrBadHeader, err)
	}
	group := string(b[:glen])
	if !ValidGroup(group) {
		return header{}, fmt.Errorf("%w: group %q", ErrBadHeader, group)
	}
	b = buf[:b[glen]]
	if _, err := io.ReadFull(r, b); err != nil {
		return header{}, fmt.Errorf("%w: %w", ErrBadHeader, err)
	}
	return header{group: group, from: string(b)}, nil
}
