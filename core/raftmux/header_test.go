package raftmux

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestHeaderRoundTrip(t *testing.T) {
	for _, h := range []header{
		{group: "dir", from: "10.0.0.1:7000"},
		{group: "s15", from: ""},
		{group: strings.Repeat("a", MaxGroupLen), from: strings.Repeat("x", MaxAddrLen)},
		{group: "a_b-9", from: "[::1]:1"},
	} {
		b := h.appendTo(nil)
		// Trailing bytes are the peer's Raft traffic and must stay unread.
		r := bytes.NewReader(append(b, "raft"...))
		got, err := readHeader(r)
		if err != nil || got != h {
			t.Fatalf("readHeader(%q) = %+v, %v", b, got, err)
		}
		if r.Len() != 4 {
			t.Fatalf("readHeader consumed %d bytes past the header", 4-r.Len())
		}
	}
}

func TestHeaderBad(t *testing.T) {
	good := header{group: "s1", from: "a:1"}.appendTo(nil)
	set := func(i int, v byte) []byte {
		b := bytes.Clone(good)
		b[i] = v
		return b
	}
	tests := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"http", []byte("GET / HTTP/1.1\r\n\r\n")},
		{"magic", set(0, 'X')},
		{"version", set(4, 2)},
		{"zero group length", set(5, 0)},
		{"long group", set(5, MaxGroupLen+1)},
		{"upper-case group", set(6, 'S')},
		{"slash in group", set(7, '/')},
		{"from past end", set(8, 200)},
	}
	for i := 0; i < len(good); i++ {
		tests = append(tests, struct {
			name string
			b    []byte
		}{"truncated", good[:i]})
	}
	for _, tt := range tests {
		if _, err := readHeader(bytes.NewReader(tt.b)); !errors.Is(err, ErrBadHeader) {
			t.Errorf("%s %q: err = %v, want ErrBadHeader", tt.name, tt.b, err)
		}
	}
}

// FuzzHeader decodes, re-encodes and compares with the bytes consumed.
func FuzzHeader(f *testing.F) {
	f.Add(header{group: "dir", from: "127.0.0.1:7000"}.appendTo(nil))
	f.Add(header{group: "s0"}.appendTo(nil))
	f.Add([]byte("PRMX\x01\x02s1\x00tail"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bytes.NewReader(b)
		h, err := readHeader(r)
		if err != nil {
			if !errors.Is(err, ErrBadHeader) {
				t.Fatalf("error not ErrBadHeader: %v", err)
			}
			return
		}
		consumed := b[:len(b)-r.Len()]
		if enc := h.appendTo(nil); !bytes.Equal(enc, consumed) {
			t.Fatalf("re-encoded %q, consumed %q", enc, consumed)
		}
		if !ValidGroup(h.group) || len(h.from) > MaxAddrLen {
			t.Fatalf("decoded an invalid header %+v", h)
		}
	})
}
