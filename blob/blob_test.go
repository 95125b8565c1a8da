package blob_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/parley-chat/parley/blob"
)

func TestErrorCodes(t *testing.T) {
	err := blob.NewError("open", "a/b", blob.CodeNotFound, fmt.Errorf("stat: gone"))
	if !errors.Is(err, blob.ErrNotFound) || errors.Is(err, blob.ErrTooLarge) {
		t.Errorf("errors.Is on %v is wrong", err)
	}
	if got, want := err.Error(), "blob: open a/b: not_found: stat: gone"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	wrapped := fmt.Errorf("edge: download: %w", err)
	if blob.CodeOf(wrapped) != blob.CodeNotFound {
		t.Errorf("CodeOf(%v) = %q", wrapped, blob.CodeOf(wrapped))
	}
	// A sentinel as the cause lends its code and leaves the message short.
	err = blob.NewError("put", "k", "", blob.ErrTooLarge)
	if got, want := err.Error(), "blob: put k: too_large"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	err = blob.NewError("put", "k", "", fmt.Errorf("part 3: %w", blob.ErrTooLarge))
	if got, want := err.Error(), "blob: put k: too_large: part 3: blob: too_large"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	err = blob.NewError("put", "k", "", fmt.Errorf("read: %w", context.Canceled))
	if blob.CodeOf(err) != blob.CodeCanceled || !errors.Is(err, context.Canceled) {
		t.Errorf("canceled put: %v has code %q", err, blob.CodeOf(err))
	}
	if blob.CodeOf(errors.New("disk on fire")) != blob.CodeInternal || blob.CodeOf(nil) != "" {
		t.Error("CodeOf of a plain error or nil is wrong")
	}
}

func TestRangeResolve(t *testing.T) {
	for _, tc := range []struct {
		rg       blob.Range
		size     int64
		off, n   int64
		badRange bool
	}{
		{blob.Whole, 10, 0, 10, false},
		{blob.Whole, 0, 0, 0, false},
		{blob.Range{Off: 3, Len: 4}, 10, 3, 4, false},
		{blob.Range{Off: 3, Len: 100}, 10, 3, 7, false},
		{blob.Range{Off: 9, Len: -1}, 10, 9, 1, false},
		{blob.Range{Off: 10, Len: -1}, 10, 10, 0, false},
		{blob.Range{Off: 2, Len: 0}, 10, 2, 0, false},
		{blob.Range{Off: 11, Len: 1}, 10, 0, 0, true},
		{blob.Range{Off: -1, Len: 1}, 10, 0, 0, true},
	} {
		off, n, err := tc.rg.Resolve(tc.size)
		if tc.badRange {
			if !errors.Is(err, blob.ErrBadRange) {
				t.Errorf("%+v.Resolve(%d) = %v, want ErrBadRange", tc.rg, tc.size, err)
			}
			continue
		}
		if err != nil || off != tc.off || n != tc.n {
			t.Errorf("%+v.Resolve(%d) = %d, %d, %v; want %d, %d", tc.rg, tc.size, off, n, err, tc.off, tc.n)
		}
	}
}

func TestStream(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789"), 1000)
	for _, tc := range []struct {
		name      string
		size, max int64
		want      error
	}{
		{"declared", int64(len(data)), 1 << 20, nil},
		{"unknown", -1, 1 << 20, nil},
		{"exactly max", -1, int64(len(data)), nil},
		{"past max", -1, int64(len(data)) - 1, blob.ErrTooLarge},
		{"longer than declared", int64(len(data)) - 1, 1 << 20, blob.ErrSizeMismatch},
		{"shorter than declared", int64(len(data)) + 1, 1 << 20, blob.ErrSizeMismatch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := blob.NewStream(context.Background(), bytes.NewReader(data), tc.size, tc.max)
			if err != nil {
				t.Fatal(err)
			}
			_, err = io.Copy(io.Discard, s)
			if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
				t.Fatalf("copy: %v, want %v", err, tc.want)
			}
			if tc.want != nil {
				return
			}
			info := s.Info("k")
			if info.Size != int64(len(data)) || info.SHA256 != sha256.Sum256(data) {
				t.Errorf("info = %d %x", info.Size, info.SHA256)
			}
		})
	}
	if _, err := blob.NewStream(context.Background(), nil, 11, 10); !errors.Is(err, blob.ErrTooLarge) {
		t.Errorf("declared past max: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s, _ := blob.NewStream(ctx, bytes.NewReader(data), -1, 1<<20)
	if _, err := s.Read(make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	cancel()
	if _, err := io.Copy(io.Discard, s); !errors.Is(err, context.Canceled) {
		t.Errorf("after cancel: %v", err)
	}
}
