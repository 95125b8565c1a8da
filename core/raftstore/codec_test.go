package raftstore

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

var codecCases = []raft.Log{
	{},
	{Index: 1, Term: 1, Type: raft.LogNoop},
	{Index: 42, Term: 7, Type: raft.LogCommand, Data: []byte("hello")},
	{Index: 1<<64 - 1, Term: 1<<64 - 1, Type: raft.LogConfiguration, Data: []byte{0}, Extensions: []byte("ext")},
	{Index: 3, Term: 2, Type: raft.LogBarrier, AppendedAt: time.Unix(1700000000, 123456789)},
	{Index: 4, Term: 2, Type: raft.LogType(200), Extensions: []byte{1, 2, 3}, AppendedAt: time.Unix(-5, 1)},
	{Index: 5, Term: 9, Data: make([]byte, 300), AppendedAt: time.Unix(0, 0)},
}

func TestLogRoundTrip(t *testing.T) {
	for _, want := range codecCases {
		b := appendLog(nil, &want)
		if len(b) > encodedLogSize(&want) {
			t.Errorf("index %d: encoded %d bytes, bound %d", want.Index, len(b), encodedLogSize(&want))
		}
		var got raft.Log
		if err := decodeLog(b, &got); err != nil {
			t.Fatalf("index %d: decode: %v", want.Index, err)
		}
		if !logsEqual(&got, &want) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, want)
		}
	}
}

func logsEqual(a, b *raft.Log) bool {
	return a.Index == b.Index && a.Term == b.Term && a.Type == b.Type &&
		string(a.Data) == string(b.Data) && string(a.Extensions) == string(b.Extensions) &&
		a.AppendedAt.Equal(b.AppendedAt) && a.AppendedAt.IsZero() == b.AppendedAt.IsZero()
}

func TestLogDecodeCorrupt(t *testing.T) {
	good := appendLog(nil, &raft.Log{Index: 9, Term: 3, Data: []byte("abc"), Extensions: []byte("x"), AppendedAt: time.Unix(5, 6)})
	tests := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"bad version", append([]byte{2}, good[1:]...)},
		{"unknown flag", func() []byte { b := append([]byte(nil), good...); b[4] |= 0x80; return b }()},
		{"trailing byte", append(append([]byte(nil), good...), 0)},
		{"data length past end", []byte{logVersion, 1, 1, 0, 0, 100, 'a'}},
		{"huge length", []byte{logVersion, 1, 1, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}},
		{"overlong varint", []byte{logVersion, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}},
		{"nanoseconds too big", []byte{logVersion, 1, 1, 0, flagAppended, 0, 0, 0, 0x80, 0x94, 0xeb, 0xdc, 0x03}},
	}
	for i := 0; i < len(good); i++ {
		tests = append(tests, struct {
			name string
			b    []byte
		}{"truncated", good[:i]})
	}
	for _, tt := range tests {
		var l raft.Log
		err := decodeLog(tt.b, &l)
		if !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s %x: err = %v, want ErrCorrupt", tt.name, tt.b, err)
		}
	}
}

// FuzzDecodeLog decodes, re-encodes, decodes again and compares.
func FuzzDecodeLog(f *testing.F) {
	for _, l := range codecCases {
		f.Add(appendLog(nil, &l))
	}
	f.Add([]byte{logVersion})
	f.Fuzz(func(t *testing.T, b []byte) {
		var l raft.Log
		if err := decodeLog(b, &l); err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error not ErrCorrupt: %v", err)
			}
			return
		}
		enc := appendLog(nil, &l)
		if len(enc) > encodedLogSize(&l) {
			t.Fatalf("encoded %d bytes, bound %d", len(enc), encodedLogSize(&l))
		}
		var l2 raft.Log
		if err := decodeLog(enc, &l2); err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if !logsEqual(&l, &l2) || !reflect.DeepEqual(appendLog(nil, &l2), enc) {
			t.Fatalf("round trip differs:\n%+v\n%+v", l, l2)
		}
	})
}
