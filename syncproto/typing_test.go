package syncproto

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/parley-chat/parley/syncproto/syncpb"
)

func TestTypingTTL(t *testing.T) {
	for _, tc := range []struct {
		ms   uint32
		want time.Duration
	}{
		{0, DefaultTypingTTL}, {1, time.Millisecond}, {3000, 3 * time.Second},
		{10000, MaxTypingTTL}, {10001, MaxTypingTTL}, {^uint32(0), MaxTypingTTL},
	} {
		if got := TypingTTL(tc.ms); got != tc.want {
			t.Errorf("TypingTTL(%d) = %v, want %v", tc.ms, got, tc.want)
		}
	}
}

func TestValidateTyping(t *testing.T) {
	if err := ValidateTyping(&syncpb.Typing{ConvId: "c_1"}); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []*syncpb.Typing{nil, {}, {ConvId: "C 1"}, {ConvId: strings.Repeat("c", MaxIDLen+1)}} {
		if err := ValidateTyping(bad); err == nil {
			t.Errorf("ValidateTyping(%v) = nil", bad)
		}
	}
}

func TestDatagramRoundTrip(t *testing.T) {
	in := &syncpb.Typing{ConvId: "c_team", UserId: "u_ana", Typing: true, TtlMs: 5000}
	b, err := AppendDatagram(nil, in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := DecodeDatagram(b)
	if err != nil || !proto.Equal(in, out) {
		t.Fatalf("DecodeDatagram = %v, %v; want %v", out, err, in)
	}
	// The same bytes are a frame on any transport.
	f, _, err := DecodeFrame(b, 0)
	if err != nil || !proto.Equal(f.GetTyping(), in) {
		t.Fatalf("DecodeFrame = %v, %v", f, err)
	}
	if _, err := AppendDatagram(nil, &syncpb.Typing{ConvId: strings.Repeat("c", 2000)}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("AppendDatagram of a huge typing: %v, want TOO_LARGE", err)
	}
}

func TestDecodeDatagramRejects(t *testing.T) {
	send, _ := AppendFrame(nil, &syncpb.Frame{Body: &syncpb.Frame_Ping{Ping: &syncpb.Ping{Nonce: 1}}})
	withID, _ := AppendFrame(nil, &syncpb.Frame{Id: 3, Body: &syncpb.Frame_Typing{Typing: &syncpb.Typing{ConvId: "c_1"}}})
	typing, _ := AppendDatagram(nil, &syncpb.Typing{ConvId: "c_1"})
	for name, b := range map[string][]byte{
		"empty":         nil,
		"not a frame":   []byte("hello"),
		"other body":    send,
		"request id":    withID,
		"trailing byte": append(bytes.Clone(typing), 0),
		"truncated":     typing[:len(typing)-1],
		"too large":     make([]byte, MaxDatagramSize+1),
		"huge length":   {0xff, 0xff, 0xff, 0x7f},
	} {
		if tt, err := DecodeDatagram(b); err == nil || tt != nil {
			t.Errorf("%s: DecodeDatagram = %v, %v; want an error", name, tt, err)
		} else if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTooLarge) {
			t.Errorf("%s: %v is not MALFORMED or TOO_LARGE", name, err)
		}
	}
}

// FuzzDecodeDatagram: anything either fails with MALFORMED or TOO_LARGE,
// or decodes to a Typing that re-encodes to a datagram decoding to the
// same Typing, with the same bytes twice.
func FuzzDecodeDatagram(f *testing.F) {
	for _, tt := range []*syncpb.Typing{
		{ConvId: "c_team", Typing: true},
		{ConvId: "c_team", UserId: "u_ana", Typing: false, TtlMs: 3000, DeviceId: "d_1", WorkspaceId: "w_1"},
	} {
		b, _ := AppendDatagram(nil, tt)
		f.Add(b)
	}
	f.Add([]byte{0x02, 0x08, 0x01})
	f.Fuzz(func(t *testing.T, data []byte) {
		tt, err := DecodeDatagram(data)
		if err != nil {
			checkDecodeError(t, err)
			if tt != nil {
				t.Fatalf("error %v with typing %v", err, tt)
			}
			return
		}
		b, err := AppendDatagram(nil, tt)
		if err != nil {
			t.Fatalf("re-encode %v: %v", tt, err)
		}
		tt2, err := DecodeDatagram(b)
		if err != nil || !proto.Equal(tt, tt2) {
			t.Fatalf("round trip: %v, %v; want %v", tt2, err, tt)
		}
		b2, _ := AppendDatagram(nil, tt2)
		if !bytes.Equal(b, b2) {
			t.Fatalf("second encoding differs:\n%x\n%x", b, b2)
		}
	})
}
