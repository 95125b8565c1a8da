package syncproto

import (
	"bytes"
	"errors"
	"io"
	"maps"
	"slices"
	"strings"
	"testing"
	"testing/iotest"

	"google.golang.org/protobuf/proto"

	"github.com/parley-chat/parley/syncproto/syncpb"
)

// fuzzMaxSize is the frame limit under fuzzing: small, so TOO_LARGE is
// reachable.
const fuzzMaxSize = 4096

// addGolden seeds f with the golden files whose names pass keep.
func addGolden(f *testing.F, keep func(name string) bool) {
	files := readGolden(f)
	for _, name := range slices.Sorted(maps.Keys(files)) {
		if keep(name) {
			f.Add(files[name])
		}
	}
}

func isCore(name string) bool { return strings.Contains(name, "core_") }

// checkDecodeError fails unless err is what a frame decoder may return
// for bad input: a MALFORMED or TOO_LARGE *Error.
func checkDecodeError(t *testing.T, err error) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) || (e.Code != syncpb.Code_CODE_MALFORMED && e.Code != syncpb.Code_CODE_TOO_LARGE) {
		t.Fatalf("decode error %v is not a MALFORMED or TOO_LARGE *Error", err)
	}
}

// reencode encodes f, decodes the result and checks both agree and that a
// second encoding gives the same bytes. It returns nil for a frame with
// nothing to encode, which AppendFrame must refuse.
func reencode(t *testing.T, f *syncpb.Frame) []byte {
	t.Helper()
	b, err := AppendFrame(nil, f)
	if proto.Size(f) == 0 {
		if !errors.Is(err, ErrMalformed) {
			t.Fatalf("AppendFrame of an empty frame: %v, want MALFORMED", err)
		}
		return nil
	}
	if err != nil {
		t.Fatalf("re-encode %v: %v", f, err)
	}
	f2, n, err := DecodeFrame(b, MaxFrameSize)
	if err != nil || n != len(b) {
		t.Fatalf("decode of re-encoded frame: n %d of %d, %v", n, len(b), err)
	}
	if !proto.Equal(f, f2) {
		t.Fatalf("round trip changed the frame:\n%v\n%v", f, f2)
	}
	b2, err := AppendFrame(nil, f2)
	if err != nil || !bytes.Equal(b, b2) {
		t.Fatalf("second encoding differs (%v):\n%x\n%x", err, b, b2)
	}
	return b
}

func FuzzDecodeFrame(f *testing.F) {
	addGolden(f, func(name string) bool { return !isCore(name) && name != "revocation" })
	f.Fuzz(func(t *testing.T, data []byte) {
		fr, n, err := DecodeFrame(data, fuzzMaxSize)
		// A stream of the same bytes reads the same frame, then ends.
		sr := NewFrameReader(bytes.NewReader(data), fuzzMaxSize)
		sf, serr := sr.ReadFrame()
		if err != nil {
			checkDecodeError(t, err)
			if fr != nil || n != 0 {
				t.Fatalf("error %v with frame %v and n %d", err, fr, n)
			}
			if len(data) == 0 {
				// An empty message is truncated; an empty stream just ends.
				if serr != io.EOF {
					t.Fatalf("empty stream: %v, want io.EOF", serr)
				}
				return
			}
			if serr == nil {
				// Bytes after a frame: a stream reads on into them.
				if _, serr = sr.ReadFrame(); serr == io.EOF {
					t.Fatalf("DecodeFrame failed (%v) but the stream read one frame and ended", err)
				}
				return
			}
			if serr == io.EOF {
				t.Fatalf("DecodeFrame failed (%v) but the stream ended cleanly", err)
			}
			return
		}
		if n != len(data) {
			t.Fatalf("n = %d, want %d", n, len(data))
		}
		if serr != nil || !proto.Equal(fr, sf) {
			t.Fatalf("stream read %v, %v; DecodeFrame read %v", sf, serr, fr)
		}
		if _, serr := sr.ReadFrame(); serr != io.EOF {
			t.Fatalf("stream after the frame: %v, want io.EOF", serr)
		}
		reencode(t, fr)
	})
}

func FuzzFrameReader(f *testing.F) {
	var all []byte
	files := readGolden(f)
	for _, name := range slices.Sorted(maps.Keys(files)) {
		if !isCore(name) {
			all = append(all, files[name]...)
		}
	}
	f.Add(all)
	addGolden(f, func(name string) bool { return !isCore(name) && name != "revocation" })
	f.Fuzz(func(t *testing.T, data []byte) {
		read := func(r io.Reader) ([]*syncpb.Frame, error) {
			fr := NewFrameReader(r, fuzzMaxSize)
			var out []*syncpb.Frame
			for {
				f, err := fr.ReadFrame()
				if err != nil {
					if _, again := fr.ReadFrame(); again != err {
						t.Fatalf("error not sticky: %v then %v", err, again)
					}
					return out, err
				}
				out = append(out, f)
			}
		}
		frames, err := read(bytes.NewReader(data))
		if err != io.EOF {
			checkDecodeError(t, err)
		}
		// Reading byte by byte, or in odd pieces, changes nothing.
		for _, r := range []io.Reader{iotest.OneByteReader(bytes.NewReader(data)), iotest.HalfReader(bytes.NewReader(data))} {
			frames2, err2 := read(r)
			if len(frames2) != len(frames) || err2.Error() != err.Error() {
				t.Fatalf("reads differ: %d frames, %v vs %d frames, %v", len(frames), err, len(frames2), err2)
			}
			for i := range frames {
				if !proto.Equal(frames[i], frames2[i]) {
					t.Fatalf("frame %d differs: %v vs %v", i, frames[i], frames2[i])
				}
			}
		}
		// The frames, re-encoded as one stream, read back the same.
		var stream []byte
		var want []*syncpb.Frame
		for _, f := range frames {
			if b := reencode(t, f); b != nil {
				stream = append(stream, b...)
				want = append(want, f)
			}
		}
		got, err := read(bytes.NewReader(stream))
		if err != io.EOF || len(got) != len(want) {
			t.Fatalf("re-encoded stream: %d frames and %v, want %d and io.EOF", len(got), err, len(want))
		}
		for i := range want {
			if !proto.Equal(got[i], want[i]) {
				t.Fatalf("re-encoded frame %d: %v, want %v", i, got[i], want[i])
			}
		}
	})
}

// fuzzCoreMessage checks that a core RPC message that decodes re-encodes
// deterministically to bytes that decode to an equal message and encode to
// the same bytes again.
func fuzzCoreMessage[M any, P interface {
	*M
	proto.Message
}](t *testing.T, data []byte) {
	m := P(new(M))
	if err := proto.Unmarshal(data, m); err != nil {
		return
	}
	b, err := marshalOptions.Marshal(m)
	if err != nil {
		t.Fatalf("re-encode %v: %v", m, err)
	}
	m2 := P(new(M))
	if err := proto.Unmarshal(b, m2); err != nil {
		t.Fatalf("decode of re-encoded %x: %v", b, err)
	}
	if !proto.Equal(m, m2) {
		t.Fatalf("round trip changed the message:\n%v\n%v", m, m2)
	}
	b2, err := marshalOptions.Marshal(m2)
	if err != nil || !bytes.Equal(b, b2) {
		t.Fatalf("second encoding differs (%v):\n%x\n%x", err, b, b2)
	}
}

func FuzzCoreRequest(f *testing.F) {
	addGolden(f, func(name string) bool { return strings.Contains(name, "core_request") })
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzCoreMessage[syncpb.CoreRequest](t, data)
	})
}

func FuzzCoreResponse(f *testing.F) {
	addGolden(f, func(name string) bool { return strings.Contains(name, "core_response") })
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzCoreMessage[syncpb.CoreResponse](t, data)
	})
}

// FuzzRevocation decodes a message of RevocationSubject: a decoder error
// is MALFORMED or INVALID_ARGUMENT, and what decodes is valid, re-encodes
// deterministically, and decodes back equal.
func FuzzRevocation(f *testing.F) {
	addGolden(f, func(name string) bool { return name == "revocation" })
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := DecodeRevocation(data)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || (e.Code != syncpb.Code_CODE_MALFORMED && e.Code != syncpb.Code_CODE_INVALID_ARGUMENT) {
				t.Fatalf("decode error %v is not a MALFORMED or INVALID_ARGUMENT *Error", err)
			}
			return
		}
		if err := ValidateRevocation(r); err != nil {
			t.Fatalf("decoded an invalid revocation: %v", err)
		}
		b, err := EncodeRevocation(r)
		if err != nil {
			t.Fatalf("re-encode %v: %v", r, err)
		}
		r2, err := DecodeRevocation(b)
		if err != nil || !proto.Equal(r, r2) {
			t.Fatalf("round trip: %v, %v vs %v", err, r, r2)
		}
		if b2, err := EncodeRevocation(r2); err != nil || !bytes.Equal(b, b2) {
			t.Fatalf("second encoding differs (%v):\n%x\n%x", err, b, b2)
		}
	})
}
