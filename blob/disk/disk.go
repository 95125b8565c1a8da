// Package disk is a blob.Store in a local directory (data/blobs in
// `parley serve`): a key names a file under it.
//
// A Put writes to a temporary file in the directory's .tmp folder, fsyncs
// it, renames it to its key's path and fsyncs the folder that now holds
// it, so a blob is visible whole or not at all, and once Put returns it
// survives a crash. Keys never start a segment with '.', so no key names
// .tmp or anything in it.
package disk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/parley-chat/parley/blob"
)

// DefaultMaxSize is the largest blob a Store keeps when Config.MaxSize is 0.
const DefaultMaxSize = 5 << 30

// tempDir holds Puts in flight; staleAge is how old a file there is when
// New removes it as the leftover of a process that died mid-Put.
const (
	tempDir  = ".tmp"
	staleAge = 24 * time.Hour
)

// Config configures a Store. The zero value of each field but Dir means
// its default.
type Config struct {
	// Dir is the directory the blobs live in; New creates it.
	Dir string
	// MaxSize is the largest blob Put accepts, in bytes (DefaultMaxSize).
	MaxSize int64
	// Now is the clock New judges leftover temporary files by (time.Now).
	Now func() time.Time
}

// Validate reports the first bad field.
func (c Config) Validate() error {
	if c.Dir == "" {
		return errors.New("disk: Config.Dir is empty")
	}
	if c.MaxSize < 0 {
		return fmt.Errorf("disk: Config.MaxSize %d is negative", c.MaxSize)
	}
	return nil
}

// Store is a blob.Store in a directory. It is safe for concurrent use,
// also by several processes sharing the directory.
type Store struct {
	dir, tmp string
	max      int64
}

var _ blob.Store = (*Store)(nil)

// New opens (creating if needed) the store in cfg.Dir and removes
// temporary files that Puts of a crashed process left there a day or more
// ago.
func New(cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.MaxSize == 0 {
		cfg.MaxSize = DefaultMaxSize
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Store{dir: filepath.Clean(cfg.Dir), max: cfg.MaxSize}
	s.tmp = filepath.Join(s.dir, tempDir)
	if err := os.MkdirAll(s.tmp, 0o755); err != nil {
		return nil, fmt.Errorf("disk: %w", err)
	}
	entries, err := os.ReadDir(s.tmp)
	if err != nil {
		return nil, fmt.Errorf("disk: %w", err)
	}
	for _, e := range entries {
		if fi, err := e.Info(); err == nil && cfg.Now().Sub(fi.ModTime()) > staleAge {
			os.Remove(filepath.Join(s.tmp, e.Name()))
		}
	}
	return s, nil
}

func (s *Store) path(key string) string {
	return filepath.Join(s.dir, filepath.FromSlash(key))
}

// Put implements blob.Store. On disk a key cannot both hold a blob and be
// a folder of other keys ("a" and "a/b"): such a Put fails with
// blob.ErrInvalid.
func (s *Store) Put(ctx context.Context, key string, r io.Reader, size int64) (blob.Info, error) {
	if err := blob.ValidKey(key); err != nil {
		return blob.Info{}, err
	}
	st, err := blob.NewStream(ctx, r, size, s.max)
	if err != nil {
		return blob.Info{}, blob.NewError("put", key, "", err)
	}
	f, err := os.CreateTemp(s.tmp, "put-*")
	if err != nil {
		return blob.Info{}, blob.NewError("put", key, "", err)
	}
	committed := false
	defer func() {
		if !committed {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	// Hide the file's ReadFrom so that the copy writes in 256 KiB chunks
	// rather than ReadFrom's 32 KiB.
	if _, err := io.CopyBuffer(struct{ io.Writer }{f}, st, make([]byte, 256<<10)); err != nil {
		return blob.Info{}, blob.NewError("put", key, "", err)
	}
	if err := f.Sync(); err != nil {
		return blob.Info{}, blob.NewError("put", key, "", err)
	}
	fi, err := f.Stat()
	if err != nil {
		return blob.Info{}, blob.NewError("put", key, "", err)
	}
	if err := f.Close(); err != nil {
		return blob.Info{}, blob.NewError("put", key, "", err)
	}
	final := s.path(key)
	if err := s.mkdirs(filepath.Dir(final)); err != nil {
		return blob.Info{}, blob.NewError("put", key, conflict(err), err)
	}
	if err := os.Rename(f.Name(), final); err != nil {
		return blob.Info{}, blob.NewError("put", key, conflict(err), err)
	}
	committed = true
	if err := syncDir(filepath.Dir(final)); err != nil {
		return blob.Info{}, blob.NewError("put", key, "", err)
	}
	info := st.Info(key)
	info.ModTime = fi.ModTime()
	return info, nil
}

// mkdirs creates dir and the missing folders above it (up to s.dir), and
// fsyncs the parent of each one it created so the new entries are durable.
func (s *Store) mkdirs(dir string) error {
	if dir == s.dir {
		return nil
	}
	fi, err := os.Stat(dir)
	if err == nil {
		if !fi.IsDir() {
			return &os.PathError{Op: "mkdir", Path: dir, Err: syscall.ENOTDIR}
		}
		return nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	parent := filepath.Dir(dir)
	if err := s.mkdirs(parent); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	return syncDir(parent)
}

// conflict is the code for a Put whose key is a folder of other keys, or
// lies under a key that holds a blob; "" (the cause's code) otherwise.
func conflict(err error) blob.Code {
	if errors.Is(err, syscall.ENOTDIR) || errors.Is(err, syscall.EISDIR) || errors.Is(err, syscall.EEXIST) || errors.Is(err, syscall.ENOTEMPTY) {
		return blob.CodeInvalid
	}
	return ""
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// Open implements blob.Store. The Object's Body is also an io.ReadSeeker
// and io.ReaderAt over the range (an *io.SectionReader), for callers that
// serve it with http.ServeContent.
func (s *Store) Open(ctx context.Context, key string, rg blob.Range) (*blob.Object, error) {
	if err := blob.ValidKey(key); err != nil {
		return nil, err
	}
	f, err := os.Open(s.path(key))
	if err != nil {
		return nil, blob.NewError("open", key, missing(err), err)
	}
	fi, err := f.Stat()
	if err == nil && fi.IsDir() {
		err = blob.ErrNotFound
	}
	var off, n int64
	if err == nil {
		off, n, err = rg.Resolve(fi.Size())
	}
	if err != nil {
		f.Close()
		return nil, blob.NewError("open", key, "", err)
	}
	return &blob.Object{
		Info: blob.Info{Key: key, Size: fi.Size(), ModTime: fi.ModTime()},
		Off:  off,
		Len:  n,
		Body: section{io.NewSectionReader(f, off, n), f},
	}, nil
}

// section is an open range of a file: reads go to the SectionReader,
// Close to the file.
type section struct {
	*io.SectionReader
	f *os.File
}

func (s section) Close() error { return s.f.Close() }

// missing is the code for an error that means no blob is under the key.
func missing(err error) blob.Code {
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return blob.CodeNotFound
	}
	return ""
}

// Stat implements blob.Store.
func (s *Store) Stat(ctx context.Context, key string) (blob.Info, error) {
	if err := blob.ValidKey(key); err != nil {
		return blob.Info{}, err
	}
	fi, err := os.Stat(s.path(key))
	if err != nil {
		return blob.Info{}, blob.NewError("stat", key, missing(err), err)
	}
	if fi.IsDir() {
		return blob.Info{}, blob.NewError("stat", key, blob.CodeNotFound, nil)
	}
	return blob.Info{Key: key, Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

// Delete implements blob.Store. It leaves the key's folders in place, even
// when they become empty, so that it never races a Put into them.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := blob.ValidKey(key); err != nil {
		return err
	}
	p := s.path(key)
	fi, err := os.Lstat(p)
	if err != nil {
		if missing(err) == blob.CodeNotFound {
			return nil
		}
		return blob.NewError("delete", key, "", err)
	}
	if fi.IsDir() {
		return nil // a folder of other keys: no blob under this one
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return blob.NewError("delete", key, "", err)
	}
	if err := syncDir(filepath.Dir(p)); err != nil {
		return blob.NewError("delete", key, "", err)
	}
	return nil
}
