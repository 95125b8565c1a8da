package blob

import (
	"context"
	"crypto/sha256"
	"hash"
	"io"
)

// Stream is how a Store reads a Put's bytes: it hashes and counts them as
// they pass, stops when ctx ends, and turns a stream of the wrong length
// into an error rather than io.EOF. A store copies from a Stream to its
// medium and commits only after Read has returned io.EOF.
//
// A Stream checks ctx between reads; a reader blocked inside one Read is
// the reader's to unblock (an HTTP server closes a request body when the
// request ends).
type Stream struct {
	ctx   context.Context
	r     io.Reader
	size  int64 // declared, or -1
	limit int64 // the most bytes a valid stream has
	n     int64
	h     hash.Hash
	err   error // sticky
}

// NewStream wraps r for a Put of declared size (-1 if unknown) into a
// store that keeps at most max bytes per blob. It fails with ErrTooLarge
// when size is already past max.
func NewStream(ctx context.Context, r io.Reader, size, max int64) (*Stream, error) {
	if size > max {
		return nil, ErrTooLarge
	}
	limit := max
	if size >= 0 {
		limit = size
	}
	return &Stream{ctx: ctx, r: r, size: size, limit: limit, h: sha256.New()}, nil
}

// Read reads from the wrapped reader. It returns io.EOF only at the end
// of a stream of the right length; a stream that runs past the declared
// size fails with ErrSizeMismatch, past the maximum with ErrTooLarge, and
// one that ends early with ErrSizeMismatch. After ctx ends it returns
// ctx's error; a reader's own error is returned as it is.
func (s *Stream) Read(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	if err := s.ctx.Err(); err != nil {
		s.err = err
		return 0, err
	}
	// Allow one byte past the limit so that a stream that is too long is
	// seen, not silently cut.
	if room := s.limit + 1 - s.n; int64(len(p)) > room {
		p = p[:room]
	}
	n, err := s.r.Read(p)
	s.n += int64(n)
	if s.n > s.limit {
		s.err = ErrTooLarge
		if s.size >= 0 {
			s.err = ErrSizeMismatch
		}
		return 0, s.err
	}
	s.h.Write(p[:n])
	if err == io.EOF && s.size >= 0 && s.n != s.size {
		err = ErrSizeMismatch
	}
	if err != nil {
		s.err = err
	}
	return n, err
}

// Info returns the size and SHA-256 of what has been read so far: the
// whole blob once Read has returned io.EOF.
func (s *Stream) Info(key string) Info {
	info := Info{Key: key, Size: s.n}
	s.h.Sum(info.SHA256[:0])
	return info
}
