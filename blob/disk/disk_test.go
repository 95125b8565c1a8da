package disk_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/parley-chat/parley/blob"
	"github.com/parley-chat/parley/blob/blobtest"
	"github.com/parley-chat/parley/blob/disk"
)

// newTestStore makes a store in a temporary directory and checks at
// cleanup that no temporary file is left in it.
func newTestStore(t testing.TB, o blobtest.Options) (*disk.Store, string) {
	t.Helper()
	dir := t.TempDir()
	s, err := disk.New(disk.Config{Dir: dir, MaxSize: o.MaxSize, Now: o.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		left, err := os.ReadDir(filepath.Join(dir, ".tmp"))
		if err != nil {
			t.Errorf("reading .tmp: %v", err)
		}
		for _, e := range left {
			t.Errorf("left behind: .tmp/%s", e.Name())
		}
	})
	return s, dir
}

func TestConformance(t *testing.T) {
	blobtest.Run(t, func(t *testing.T, o blobtest.Options) blob.Store {
		s, _ := newTestStore(t, o)
		return s
	})
}

func TestLayout(t *testing.T) {
	s, dir := newTestStore(t, blobtest.Options{})
	ctx := context.Background()
	if _, err := s.Put(ctx, "ws/1/abc", bytes.NewReader([]byte("hello")), 5); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "ws", "1", "abc"))
	if err != nil || string(b) != "hello" {
		t.Fatalf("file under its key's path: %q, %v", b, err)
	}
	// A key cannot both hold a blob and be a folder of other keys.
	_, err = s.Put(ctx, "ws/1/abc/def", bytes.NewReader([]byte("x")), 1)
	if !errors.Is(err, blob.ErrInvalid) {
		t.Errorf("Put under a blob: %v, want ErrInvalid", err)
	}
	_, err = s.Put(ctx, "ws/1", bytes.NewReader([]byte("x")), 1)
	if !errors.Is(err, blob.ErrInvalid) {
		t.Errorf("Put onto a folder: %v, want ErrInvalid", err)
	}
	if err := s.Delete(ctx, "ws/1"); err != nil {
		t.Errorf("Delete of a folder of keys: %v", err)
	}
	if _, err := s.Stat(ctx, "ws/1/abc"); err != nil {
		t.Errorf("Delete of the folder removed what is in it: %v", err)
	}
}

func TestBodySeeks(t *testing.T) {
	s, _ := newTestStore(t, blobtest.Options{})
	ctx := context.Background()
	if _, err := s.Put(ctx, "k", bytes.NewReader([]byte("0123456789")), -1); err != nil {
		t.Fatal(err)
	}
	o, err := s.Open(ctx, "k", blob.Range{Off: 2, Len: 6})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	rs, ok := o.Body.(io.ReadSeeker)
	if !ok {
		t.Fatalf("Body %T is not an io.ReadSeeker", o.Body)
	}
	if _, err := rs.Seek(3, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(rs); string(b) != "567" {
		t.Fatalf("after Seek read %q, want 567", b)
	}
}

func TestNewRemovesStaleTempFiles(t *testing.T) {
	dir := t.TempDir()
	if _, err := disk.New(disk.Config{Dir: dir}); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(dir, ".tmp")
	for _, name := range []string{"put-old", "put-new"} {
		if err := os.WriteFile(filepath.Join(tmp, name), []byte("partial"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	if err := os.Chtimes(filepath.Join(tmp, "put-old"), now, now.Add(-25*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := disk.New(disk.Config{Dir: dir, Now: func() time.Time { return now }}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(tmp, "put-old")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale temp file: %v, want removed", err)
	}
	if _, err := os.Stat(filepath.Join(tmp, "put-new")); err != nil {
		t.Errorf("recent temp file (a Put in flight elsewhere): %v, want kept", err)
	}
}

func TestConfigValidate(t *testing.T) {
	if _, err := disk.New(disk.Config{}); err == nil {
		t.Error("New with no Dir succeeded")
	}
	if _, err := disk.New(disk.Config{Dir: t.TempDir(), MaxSize: -1}); err == nil {
		t.Error("New with a negative MaxSize succeeded")
	}
}

func BenchmarkDisk(b *testing.B) {
	s, _ := newTestStore(b, blobtest.Options{})
	blobtest.Bench(b, s)
}
