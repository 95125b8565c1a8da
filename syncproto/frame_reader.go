package syncproto

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/parley-chat/parley/syncproto/syncpb"
)

const (
	// readAhead is the buffer a FrameReader reads its stream through:
	// small, since every idle session holds one (larger payloads are
	// read past it, straight into the payload buffer).
	readAhead = 1 << 10
	// readBufferKeep is the largest payload buffer a FrameReader keeps
	// between frames; a larger frame gets a buffer of its own, so an idle
	// session does not pin the memory of its largest frame.
	readBufferKeep = 16 << 10
	// readChunk is the first step of a large frame's buffer, which then
	// doubles as bytes arrive: memory follows what the peer has sent, not
	// what its length prefix claims.
	readChunk = 64 << 10
)

// FrameReader reads length-prefixed frames from a byte stream (a QUIC or
// WebTransport stream, a file). It reads ahead through a small buffer, so
// nothing else may read the stream while it is in use. It is not safe for
// concurrent use.
type FrameReader struct {
	r       *bufio.Reader
	maxSize int
	buf     []byte
	err     error
}

// NewFrameReader returns a reader of frames from r whose payloads may be
// at most maxSize bytes (<= 0 means DefaultMaxFrameSize; capped at
// MaxFrameSize).
func NewFrameReader(r io.Reader, maxSize int) *FrameReader {
	return &FrameReader{r: bufio.NewReaderSize(r, readAhead), maxSize: frameLimit(maxSize)}
}

// ReadFrame returns the next frame. It returns io.EOF, unwrapped, when the
// stream ends cleanly between frames. Other errors, wrapped with context:
// TOO_LARGE when a length exceeds the limit (checked before the payload is
// read); MALFORMED for a bad length or payload; MALFORMED and
// io.ErrUnexpectedEOF when the stream ends inside a frame; or the stream's
// own error. Any error is final: the stream's framing can no longer be
// trusted, and later calls return the same error.
//
// The frame does not alias the reader's buffer. Its unknown fields are
// dropped; a body of a type this version does not know leaves Body nil
// (see Known).
func (fr *FrameReader) ReadFrame() (*syncpb.Frame, error) {
	if fr.err != nil {
		return nil, fr.err
	}
	f, err := fr.read()
	if err != nil {
		fr.err = err
		return nil, err
	}
	return f, nil
}

func (fr *FrameReader) read() (*syncpb.Frame, error) {
	var d lengthDecoder
	for done := false; !done; {
		c, err := fr.r.ReadByte()
		switch {
		case err == io.EOF && d.i == 0:
			return nil, io.EOF
		case err == io.EOF:
			return nil, fmt.Errorf("read frame: %w", errTruncated())
		case err != nil:
			return nil, fmt.Errorf("read frame: %w", err)
		}
		if done, err = d.add(c); err != nil {
			return nil, fmt.Errorf("read frame: %w", err)
		}
	}
	n, err := checkLength(d.v, fr.maxSize)
	if err != nil {
		return nil, fmt.Errorf("read frame: %w", err)
	}
	b, err := fr.payload(n)
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("read frame: %w", errTruncated())
		}
		return nil, fmt.Errorf("read frame: %w", err)
	}
	f, err := unmarshalFrame(b)
	if err != nil {
		return nil, fmt.Errorf("read frame: %w", err)
	}
	return f, nil
}

// payload reads the n bytes of a frame.
func (fr *FrameReader) payload(n int) ([]byte, error) {
	if n <= readBufferKeep {
		if cap(fr.buf) < n {
			fr.buf = make([]byte, max(n, 512))
		}
		b := fr.buf[:n]
		_, err := io.ReadFull(fr.r, b)
		return b, err
	}
	b := make([]byte, 0, readChunk)
	for len(b) < n {
		if len(b) == cap(b) {
			b = slices.Grow(b, min(n-len(b), cap(b)))
		}
		end := min(cap(b), n)
		k, err := io.ReadFull(fr.r, b[len(b):end])
		b = b[:len(b)+k]
		if err != nil {
			return nil, err
		}
	}
	return b, nil
}
