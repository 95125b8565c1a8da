package syncproto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/iotest"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/parley-chat/parley/syncproto/syncpb"
)

func testFrames() []*syncpb.Frame {
	return []*syncpb.Frame{
		frame(1, goldenHello()),
		frame(2, goldenSend()),
		frame(0, &syncpb.Deliver{Messages: []*syncpb.Message{goldenMessage(gTeam, 1, "a"), goldenMessage(gTeam, 2, "b")}}),
		frame(9, &syncpb.Ping{}), // a body with nothing in it
		{Id: 77},                 // no body at all
		frame(0, &syncpb.Pong{Nonce: 1}),
	}
}

// framed is the length-prefixed frame of payload.
func framed(payload []byte) []byte {
	return append(binary.AppendUvarint(nil, uint64(len(payload))), payload...)
}

func TestFrameRoundTrip(t *testing.T) {
	var stream bytes.Buffer
	for _, f := range testFrames() {
		b, err := AppendFrame([]byte("prefix"), f)
		if err != nil {
			t.Fatalf("AppendFrame(%v): %v", f, err)
		}
		if !bytes.HasPrefix(b, []byte("prefix")) {
			t.Fatalf("AppendFrame dropped dst: %q", b)
		}
		b = b[len("prefix"):]
		got, n, err := DecodeFrame(b, 0)
		if err != nil || n != len(b) || !proto.Equal(got, f) {
			t.Fatalf("DecodeFrame = %v, %d, %v; want %v, %d", got, n, err, f, len(b))
		}
		if err := WriteFrame(&stream, f); err != nil {
			t.Fatal(err)
		}
	}
	for name, r := range map[string]io.Reader{
		"whole":    bytes.NewReader(stream.Bytes()),
		"byte":     iotest.OneByteReader(bytes.NewReader(stream.Bytes())),
		"half":     iotest.HalfReader(bytes.NewReader(stream.Bytes())),
		"data+eof": iotest.DataErrReader(bytes.NewReader(stream.Bytes())),
	} {
		t.Run(name, func(t *testing.T) {
			fr := NewFrameReader(r, 0)
			for i, want := range testFrames() {
				got, err := fr.ReadFrame()
				if err != nil || !proto.Equal(got, want) {
					t.Fatalf("frame %d: %v, %v; want %v", i, got, err, want)
				}
			}
			if _, err := fr.ReadFrame(); err != io.EOF {
				t.Fatalf("after the last frame: %v, want io.EOF", err)
			}
		})
	}
}

type countingWriter struct {
	writes int
	bytes.Buffer
}

func (w *countingWriter) Write(p []byte) (int, error) {
	w.writes++
	return w.Buffer.Write(p)
}

func TestWriteFrameOneWrite(t *testing.T) {
	w := &countingWriter{}
	big := frame(3, &syncpb.SendRequest{ConvId: gTeam, ClientMsgId: "x", Body: make([]byte, 200<<10)})
	for i, f := range append(testFrames(), big) {
		before := w.Len()
		if err := WriteFrame(w, f); err != nil {
			t.Fatal(err)
		}
		if w.writes != i+1 {
			t.Fatalf("frame %d: %d Write calls in all, want %d", i, w.writes, i+1)
		}
		got, _, err := DecodeFrame(w.Bytes()[before:], MaxFrameSize)
		if err != nil || !proto.Equal(got, f) {
			t.Fatalf("frame %d: wrote something that decodes to %v, %v", i, got, err)
		}
	}
	werr := errors.New("stream reset")
	err := WriteFrame(iotestErrWriter{werr}, frame(1, &syncpb.Ping{Nonce: 1}))
	if !errors.Is(err, werr) {
		t.Fatalf("WriteFrame to a failing writer: %v, want %v wrapped", err, werr)
	}
}

type iotestErrWriter struct{ err error }

func (w iotestErrWriter) Write([]byte) (int, error) { return 0, w.err }

func TestAppendFrameErrors(t *testing.T) {
	tests := []struct {
		name string
		f    *syncpb.Frame
		want *Error
	}{
		{"nil", nil, ErrMalformed},
		{"empty", &syncpb.Frame{}, ErrMalformed},
		{"too large", frame(1, &syncpb.SendRequest{Body: make([]byte, MaxFrameSize)}), ErrTooLarge},
		{"invalid utf-8", frame(1, &syncpb.Resync{Reason: "\xff"}), ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := []byte("keep")
			got, err := AppendFrame(dst, tt.f)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if string(got) != "keep" {
				t.Fatalf("dst changed to %q on error", got)
			}
			if err := WriteFrame(io.Discard, tt.f); !errors.Is(err, tt.want) {
				t.Fatalf("WriteFrame err = %v, want %v", err, tt.want)
			}
		})
	}
}

type decodeCase struct {
	name      string
	in        []byte
	maxSize   int
	want      *Error
	truncated bool // also io.ErrUnexpectedEOF
}

// decodeCases are bad inputs for both decoders.
var decodeCases = []decodeCase{
	{name: "zero length", in: []byte{0x00}, want: ErrMalformed},
	{name: "over default limit, no payload", in: binary.AppendUvarint(nil, DefaultMaxFrameSize+1), want: ErrTooLarge},
	{name: "over session limit", in: framed(make([]byte, 101)), maxSize: 100, want: ErrTooLarge},
	{name: "limit capped at MaxFrameSize", in: binary.AppendUvarint(nil, MaxFrameSize+1), maxSize: 1 << 30, want: ErrTooLarge},
	{name: "huge length", in: binary.AppendUvarint(nil, 1<<63), want: ErrTooLarge},
	{name: "truncated length", in: []byte{0x80}, want: ErrMalformed, truncated: true},
	{name: "truncated payload", in: framed([]byte{0x08, 0x01})[:2], want: ErrMalformed, truncated: true},
	{name: "truncated at the limit", in: binary.AppendUvarint(nil, DefaultMaxFrameSize), want: ErrMalformed, truncated: true},
	{name: "length of 11 bytes", in: append(bytes.Repeat([]byte{0x80}, 10), 0x01), want: ErrMalformed},
	{name: "length overflows", in: append(bytes.Repeat([]byte{0xff}, 9), 0x02), want: ErrMalformed},
	{name: "length not minimal", in: []byte{0x82, 0x00, 0x08, 0x01}, want: ErrMalformed},
	{name: "bad protobuf", in: framed([]byte{0x08}), want: ErrMalformed},
	{name: "bad wire type", in: framed([]byte{0x0f}), want: ErrMalformed},
	{name: "invalid utf-8", in: framed([]byte{0xd2, 0x01, 0x03, 0x0a, 0x01, 0xff}), want: ErrMalformed},
}

func TestDecodeFrameErrors(t *testing.T) {
	// Only a message can be empty or have bytes after its frame.
	cases := append(slices.Clone(decodeCases),
		decodeCase{name: "empty", in: nil, want: ErrMalformed, truncated: true},
		decodeCase{name: "trailing bytes", in: append(framed([]byte{0x08, 0x01}), 0x00), want: ErrMalformed},
	)
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			f, n, err := DecodeFrame(tt.in, tt.maxSize)
			checkFrameErr(t, err, tt.want, tt.truncated)
			if f != nil || n != 0 {
				t.Fatalf("got frame %v, n %d with the error", f, n)
			}
		})
	}
}

func TestFrameReaderErrors(t *testing.T) {
	good := framed([]byte{0x08, 0x01})
	for _, tt := range decodeCases {
		t.Run(tt.name, func(t *testing.T) {
			fr := NewFrameReader(bytes.NewReader(append(good, tt.in...)), tt.maxSize)
			if f, err := fr.ReadFrame(); err != nil || f.Id != 1 {
				t.Fatalf("first frame: %v, %v", f, err)
			}
			f, err := fr.ReadFrame()
			checkFrameErr(t, err, tt.want, tt.truncated)
			if f != nil {
				t.Fatalf("got frame %v with the error", f)
			}
			if _, again := fr.ReadFrame(); again != err {
				t.Fatalf("second call: %v, want the same error %v", again, err)
			}
		})
	}
	t.Run("stream error", func(t *testing.T) {
		boom := errors.New("connection reset")
		r := io.MultiReader(bytes.NewReader(good[:2]), iotest.ErrReader(boom))
		_, err := NewFrameReader(r, 0).ReadFrame()
		if !errors.Is(err, boom) || errors.Is(err, ErrMalformed) {
			t.Fatalf("err = %v, want %v wrapped, not MALFORMED", err, boom)
		}
	})
}

func checkFrameErr(t *testing.T, err error, want *Error, truncated bool) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("err = %v, want %v", err, want)
	}
	var e *Error
	if !errors.As(err, &e) || e.Message == "" {
		t.Fatalf("err %v carries no *Error with a message", err)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) != truncated {
		t.Fatalf("err = %v: errors.Is(io.ErrUnexpectedEOF) = %v, want %v", err, !truncated, truncated)
	}
}

func TestFrameReaderDoesNotAlias(t *testing.T) {
	a := frame(1, &syncpb.SendRequest{ConvId: "c_a", ClientMsgId: "1", Body: []byte("aaaaaaaa")})
	b := frame(2, &syncpb.SendRequest{ConvId: "c_b", ClientMsgId: "2", Body: []byte("bbbbbbbb")})
	var stream []byte
	for _, f := range []*syncpb.Frame{a, b} {
		var err error
		if stream, err = AppendFrame(stream, f); err != nil {
			t.Fatal(err)
		}
	}
	fr := NewFrameReader(bytes.NewReader(stream), 0)
	first, err := fr.ReadFrame()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fr.ReadFrame(); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(first, a) {
		t.Fatalf("first frame changed after the second was read: %v", first)
	}
	one, _ := AppendFrame(nil, a)
	f, _, err := DecodeFrame(one, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := range one {
		one[i] = 0
	}
	if !proto.Equal(f, a) {
		t.Fatalf("DecodeFrame result aliases its input: %v", f)
	}
}

func TestFrameReaderLargeFrames(t *testing.T) {
	// Sizes around the kept buffer and the chunked path.
	var want []*syncpb.Frame
	var stream []byte
	for i, size := range []int{readBufferKeep - 100, readBufferKeep + 1, readChunk*3 + 7, 10, DefaultMaxFrameSize - 64} {
		f := frame(uint64(i+1), &syncpb.SendRequest{ConvId: gTeam, ClientMsgId: "x", Body: bytes.Repeat([]byte{byte('a' + i)}, size)})
		var err error
		if stream, err = AppendFrame(stream, f); err != nil {
			t.Fatal(err)
		}
		want = append(want, f)
	}
	fr := NewFrameReader(iotest.HalfReader(bytes.NewReader(stream)), 0)
	for i, w := range want {
		got, err := fr.ReadFrame()
		if err != nil || !proto.Equal(got, w) {
			t.Fatalf("frame %d: err %v, equal %v", i, err, proto.Equal(got, w))
		}
	}
	if _, err := fr.ReadFrame(); err != io.EOF {
		t.Fatalf("end: %v", err)
	}
}

// A length prefix alone must not make the reader allocate what it claims:
// memory follows the bytes that actually arrive.
func TestFrameReaderAllocatesWhatArrives(t *testing.T) {
	claim := append(binary.AppendUvarint(nil, MaxFrameSize), make([]byte, 1000)...)
	var before, after runtime.MemStats
	const runs = 20
	runtime.ReadMemStats(&before)
	for range runs {
		_, err := NewFrameReader(bytes.NewReader(claim), MaxFrameSize).ReadFrame()
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("err = %v, want truncated", err)
		}
	}
	runtime.ReadMemStats(&after)
	if per := (after.TotalAlloc - before.TotalAlloc) / runs; per > 4*readChunk {
		t.Fatalf("a truncated frame claiming %d bytes allocated %d bytes", MaxFrameSize, per)
	}
}

func TestUnknownFieldsIgnored(t *testing.T) {
	want := frame(4, &syncpb.Typing{ConvId: gTeam, Typing: true})
	typing, err := proto.Marshal(want.GetTyping())
	if err != nil {
		t.Fatal(err)
	}
	typing = protowire.AppendTag(typing, 15, protowire.BytesType)
	typing = protowire.AppendString(typing, "new in typing")
	var p []byte
	p = protowire.AppendTag(p, 1, protowire.VarintType)
	p = protowire.AppendVarint(p, 4)
	p = protowire.AppendTag(p, 5000, protowire.VarintType) // unknown, before the body
	p = protowire.AppendVarint(p, 1)
	p = protowire.AppendTag(p, 22, protowire.BytesType)
	p = protowire.AppendBytes(p, typing)
	in := framed(p)

	got, _, err := DecodeFrame(in, 0)
	if err != nil || !Known(got) || !proto.Equal(got, want) {
		t.Fatalf("DecodeFrame = %v, %v; want %v", got, err, want)
	}
	if len(got.ProtoReflect().GetUnknown()) != 0 || len(got.GetTyping().ProtoReflect().GetUnknown()) != 0 {
		t.Fatal("unknown fields kept after decoding")
	}
	got, err = NewFrameReader(bytes.NewReader(in), 0).ReadFrame()
	if err != nil || !proto.Equal(got, want) {
		t.Fatalf("ReadFrame = %v, %v; want %v", got, err, want)
	}
}

func TestKnown(t *testing.T) {
	future := framed(protowire.AppendBytes(protowire.AppendTag([]byte{0x08, 0x05}, 300, protowire.BytesType), []byte("x")))
	f, _, err := DecodeFrame(future, 0)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		f    *syncpb.Frame
		want bool
	}{
		{"nil", nil, false},
		{"no body", &syncpb.Frame{Id: 1}, false},
		{"future body", f, false},
		{"ping", frame(1, &syncpb.Ping{}), true},
		{"empty send", frame(1, &syncpb.SendRequest{}), true},
	}
	for _, tt := range tests {
		if got := Known(tt.f); got != tt.want {
			t.Errorf("%s: Known = %v, want %v", tt.name, got, tt.want)
		}
	}
	if f.Id != 5 {
		t.Fatalf("future frame id = %d, want 5", f.Id)
	}
}

func TestFrameErrorMessages(t *testing.T) {
	_, _, err := DecodeFrame(binary.AppendUvarint(nil, 2000), 1000)
	if got := err.Error(); !strings.Contains(got, "decode frame") || !strings.Contains(got, "2000") || !strings.Contains(got, "1000") {
		t.Fatalf("message %q should name the operation, the size and the limit", got)
	}
	if e := AsError(err); e.Code != syncpb.Code_CODE_TOO_LARGE || strings.Contains(e.Message, "decode frame") {
		t.Fatalf("AsError = %+v; want TOO_LARGE with a user-safe message", e)
	}
}

// One frame encoded by many goroutines at once, as a fanout does.
func TestAppendFrameConcurrent(t *testing.T) {
	f := benchFrames()[1].f
	want, err := AppendFrame(nil, f)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			for range 50 {
				var buf bytes.Buffer
				if err := WriteFrame(&buf, f); err != nil {
					errs <- err
					return
				}
				if !bytes.Equal(buf.Bytes(), want) {
					errs <- errors.New("concurrent encoding differs")
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
