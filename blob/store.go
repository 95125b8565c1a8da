package blob

import (
	"context"
	"io"
	"time"
)

// Store keeps blobs by key. Implementations are safe for concurrent use by
// many goroutines; concurrent Puts of different keys do not interfere, and
// of the same key the last to finish wins whole.
//
// Every error a Store returns is a *Error (match it with errors.Is against
// the Err sentinels, or read CodeOf), or wraps ctx's error when ctx ended.
type Store interface {
	// Put streams r into the blob named key, hashing it as it goes, and
	// returns the blob's size and SHA-256. It never holds the whole blob
	// in memory. size is the length the caller declared, or -1 when it is
	// unknown: a stream that is longer or shorter than a declared size
	// fails with ErrSizeMismatch, and one past the store's maximum with
	// ErrTooLarge (a declared size past it fails before reading). When
	// Put fails, for any reason (ctx ending, r failing, a limit), nothing
	// is left under key and no partial data is visible to Open or Stat;
	// an earlier blob under key stays as it was.
	Put(ctx context.Context, key string, r io.Reader, size int64) (Info, error)

	// Open returns the bytes of key in rg (Whole for all of them). The
	// caller reads and closes the Object. It fails with ErrNotFound when
	// key holds no blob and ErrBadRange when rg starts past the end.
	Open(ctx context.Context, key string, rg Range) (*Object, error)

	// Stat returns key's size and modification time (Info.SHA256 is
	// zero: Put returned it, and the caller records it). It fails with
	// ErrNotFound when key holds no blob.
	Stat(ctx context.Context, key string) (Info, error)

	// Delete removes key's blob. Deleting a key that holds none succeeds,
	// so a retried Delete is harmless.
	Delete(ctx context.Context, key string) error
}

// Presigner is implemented by stores that can hand a client a URL to GET
// a blob from the store itself, without the edge in the path (S3
// presigned GET). Callers find it by type assertion on a Store.
type Presigner interface {
	// PresignGet returns a URL that serves key's bytes (with HTTP Range
	// support) to anyone holding it for ttl from now, and is refused
	// after. It does not check that key exists. ttl must be
	// positive and at most the store's maximum (ErrInvalid otherwise).
	PresignGet(ctx context.Context, key string, ttl time.Duration) (string, error)
}

// Info describes a stored blob.
type Info struct {
	Key     string
	Size    int64
	SHA256  [32]byte  // set by Put; zero from Stat and Open
	ModTime time.Time // when the blob was written, by the store's clock; from Stat and Open, and from Put where the store reports it (disk)
}

// Object is an open blob: Body holds the bytes of the range [Off, Off+Len)
// of the blob that Info describes. Read and Close act on Body.
type Object struct {
	Info
	Off, Len int64
	Body     io.ReadCloser
}

func (o *Object) Read(p []byte) (int, error) { return o.Body.Read(p) }

// Close closes Body.
func (o *Object) Close() error { return o.Body.Close() }

// Range names the bytes [Off, Off+Len) of a blob; Len < 0 means to the end.
// A range that runs past the end is cut at the end, as HTTP ranges are.
type Range struct {
	Off, Len int64
}

// Whole is the range of every byte of a blob.
var Whole = Range{Off: 0, Len: -1}

// Resolve returns the offset and length rg covers in a blob of size
// bytes. It fails with ErrBadRange when rg.Off is negative or past size;
// a range that starts exactly at the end is empty.
func (rg Range) Resolve(size int64) (off, n int64, err error) {
	if rg.Off < 0 || rg.Off > size {
		return 0, 0, ErrBadRange
	}
	n = size - rg.Off
	if rg.Len >= 0 && rg.Len < n {
		n = rg.Len
	}
	return rg.Off, n, nil
}
