package syncproto

import (
	"encoding/binary"
	"fmt"
	"io"
	"sync"

	"google.golang.org/protobuf/proto"

	"github.com/parley-chat/parley/syncproto/syncpb"
)

// A frame is a uvarint length N followed by N bytes of a protobuf
// syncpb.Frame. The length is minimal (no padding bytes), 1 <= N, and N is
// at most the receiver's limit, which is checked before anything is
// allocated. Every client transport and stored file uses this framing; see
// README.md.
const (
	// DefaultMaxFrameSize is the limit on N when a session sets none.
	DefaultMaxFrameSize = 1 << 20
	// MaxFrameSize is the absolute limit on N: no session may raise its
	// limit above it, and AppendFrame refuses to encode a larger frame.
	MaxFrameSize = 16 << 20
)

var (
	marshalOptions = proto.MarshalOptions{Deterministic: true}
	// Sized by a Size call with marshalOptions just before.
	marshalSizedOptions = proto.MarshalOptions{Deterministic: true, UseCachedSize: true}
	// Unknown fields are dropped when a frame is decoded, so bytes a newer
	// peer added never travel further than the decoder.
	unmarshalOptions = proto.UnmarshalOptions{DiscardUnknown: true}
)

// AppendFrame appends f, length-prefixed, to dst. Encoding is
// deterministic: equal frames give equal bytes. It fails with MALFORMED for
// a frame that encodes to nothing (N == 0 is not a frame) or cannot be
// encoded (a string that is not UTF-8), and TOO_LARGE above MaxFrameSize;
// dst is returned unchanged then. Several goroutines may encode the same
// frame at once (a delivery fanned out to many sessions) as long as none
// modifies it.
func AppendFrame(dst []byte, f *syncpb.Frame) ([]byte, error) {
	n := marshalOptions.Size(f)
	switch {
	case n == 0:
		return dst, fmt.Errorf("encode frame: %w", Errorf(syncpb.Code_CODE_MALFORMED, "frame is empty"))
	case n > MaxFrameSize:
		return dst, fmt.Errorf("encode frame: %w", tooLarge(uint64(n), MaxFrameSize))
	}
	orig := dst
	dst = binary.AppendUvarint(dst, uint64(n))
	start := len(dst)
	out, err := marshalSizedOptions.MarshalAppend(dst, f)
	if err != nil {
		return orig, fmt.Errorf("encode frame: %w: %w", Errorf(syncpb.Code_CODE_MALFORMED, "frame cannot be encoded"), err)
	}
	if len(out)-start != n {
		// Only a frame changed by another goroutine during the call gets here.
		return orig, fmt.Errorf("encode frame: %w", Errorf(syncpb.Code_CODE_INTERNAL, "frame changed while being encoded"))
	}
	return out, nil
}

// writeBufferKeep is the largest buffer WriteFrame returns to its pool.
const writeBufferKeep = 64 << 10

var writeBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// WriteFrame writes f, length-prefixed, to w with a single Write call, so
// a writer that frames each Write (a WebSocket message, a datagram) gets
// exactly one frame. Errors are those of AppendFrame, or w's error wrapped.
// Concurrent writers to one w must serialise themselves.
func WriteFrame(w io.Writer, f *syncpb.Frame) error {
	bp := writeBuffers.Get().(*[]byte)
	b, err := AppendFrame((*bp)[:0], f)
	if err == nil {
		if _, werr := w.Write(b); werr != nil {
			err = fmt.Errorf("write frame: %w", werr)
		}
	}
	if cap(b) <= writeBufferKeep {
		*bp = b[:0]
		writeBuffers.Put(bp)
	}
	return err
}

// DecodeFrame decodes b, which must hold exactly one length-prefixed frame:
// a datagram or a WebSocket message. It returns the frame and the number of
// bytes it took, which on success is len(b). Errors, wrapped with context:
// TOO_LARGE when N exceeds maxSize (checked before anything is decoded);
// MALFORMED for a zero length, a bad length varint, bytes after the frame,
// or a payload that is not a valid Frame; a frame cut short is MALFORMED
// and also matches io.ErrUnexpectedEOF. maxSize <= 0 means
// DefaultMaxFrameSize, and it is capped at MaxFrameSize.
//
// The frame does not alias b. Its unknown fields are dropped; a body of a
// type this version does not know leaves Body nil (see Known).
func DecodeFrame(b []byte, maxSize int) (*syncpb.Frame, int, error) {
	maxSize = frameLimit(maxSize)
	var d lengthDecoder
	k := 0
	for done := false; !done; k++ {
		if k == len(b) {
			return nil, 0, fmt.Errorf("decode frame: %w", errTruncated())
		}
		var err error
		if done, err = d.add(b[k]); err != nil {
			return nil, 0, fmt.Errorf("decode frame: %w", err)
		}
	}
	n, err := checkLength(d.v, maxSize)
	if err != nil {
		return nil, 0, fmt.Errorf("decode frame: %w", err)
	}
	switch rest := len(b) - k; {
	case rest < n:
		return nil, 0, fmt.Errorf("decode frame: %w", errTruncated())
	case rest > n:
		return nil, 0, fmt.Errorf("decode frame: %w", Errorf(syncpb.Code_CODE_MALFORMED, "%d bytes after the frame", rest-n))
	}
	f, err := unmarshalFrame(b[k:])
	if err != nil {
		return nil, 0, fmt.Errorf("decode frame: %w", err)
	}
	return f, len(b), nil
}

// Known reports whether f carries a body this version understands. A frame
// from a newer peer whose body is a type added after this version decodes
// with Body nil; receivers must skip such frames (answering nothing, not
// even an error), so new frame types can be introduced without a version
// bump when ignoring them is safe.
func Known(f *syncpb.Frame) bool {
	return f != nil && f.Body != nil
}

func unmarshalFrame(b []byte) (*syncpb.Frame, error) {
	f := new(syncpb.Frame)
	if err := unmarshalOptions.Unmarshal(b, f); err != nil {
		return nil, fmt.Errorf("%w: %w", Errorf(syncpb.Code_CODE_MALFORMED, "frame is not a valid protobuf Frame"), err)
	}
	return f, nil
}

func frameLimit(maxSize int) int {
	switch {
	case maxSize <= 0:
		return DefaultMaxFrameSize
	case maxSize > MaxFrameSize:
		return MaxFrameSize
	}
	return maxSize
}

// checkLength checks a decoded frame length against maxSize.
func checkLength(v uint64, maxSize int) (int, error) {
	switch {
	case v == 0:
		return 0, Errorf(syncpb.Code_CODE_MALFORMED, "frame length is zero")
	case v > uint64(maxSize):
		return 0, tooLarge(v, maxSize)
	}
	return int(v), nil
}

func tooLarge(n uint64, maxSize int) *Error {
	return Errorf(syncpb.Code_CODE_TOO_LARGE, "frame of %d bytes exceeds the limit of %d bytes", n, maxSize)
}

// errTruncated is MALFORMED and io.ErrUnexpectedEOF.
func errTruncated() error {
	return fmt.Errorf("%w: %w", Errorf(syncpb.Code_CODE_MALFORMED, "frame is truncated"), io.ErrUnexpectedEOF)
}

// lengthDecoder decodes a frame length one byte at a time: a minimal
// uvarint of at most binary.MaxVarintLen64 bytes that fits in 64 bits.
type lengthDecoder struct {
	v uint64
	i int // bytes consumed
}

// add consumes c and reports whether the length is complete.
func (d *lengthDecoder) add(c byte) (bool, error) {
	if d.i == binary.MaxVarintLen64-1 && c > 1 {
		// The tenth byte may only carry bit 63: more overflows 64 bits,
		// and a continuation bit would make the varint longer than 10.
		return false, Errorf(syncpb.Code_CODE_MALFORMED, "frame length overflows")
	}
	d.v |= uint64(c&0x7f) << (7 * d.i)
	d.i++
	if c&0x80 != 0 {
		return false, nil
	}
	if c == 0 && d.i > 1 {
		return false, Errorf(syncpb.Code_CODE_MALFORMED, "frame length is not minimally encoded")
	}
	return true, nil
}
