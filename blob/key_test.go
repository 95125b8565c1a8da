package blob_test

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/parley-chat/parley/blob"
)

func TestValidKey(t *testing.T) {
	for _, tc := range []struct {
		key string
		ok  bool
	}{
		{"a", true},
		{"ws1/2026/01HZX3.bin", true},
		{"A-b_c.d/e", true},
		{strings.Repeat("a", 128), true},
		{strings.Repeat("a/", 255) + "ab", true},
		{"", false},
		{"/a", false},
		{"a/", false},
		{"a//b", false},
		{".", false},
		{"..", false},
		{"a/../b", false},
		{"../a", false},
		{"a/./b", false},
		{".tmp/x", false},
		{"a/.hidden", false},
		{`a\b`, false},
		{"a b", false},
		{"a\x00b", false},
		{"é", false},
		{"a:b", false},
		{strings.Repeat("a", 129), false},
		{strings.Repeat("a/", 256) + "a", false},
	} {
		err := blob.ValidKey(tc.key)
		if (err == nil) != tc.ok {
			t.Errorf("ValidKey(%q) = %v, want ok=%v", tc.key, err, tc.ok)
		}
		if err != nil && !errors.Is(err, blob.ErrBadKey) {
			t.Errorf("ValidKey(%q) = %v, not ErrBadKey", tc.key, err)
		}
	}
}

// FuzzValidKey checks that every key ValidKey accepts is a clean, local,
// relative path that no store's own names (a leading '.') can collide
// with, on any file system.
func FuzzValidKey(f *testing.F) {
	for _, s := range []string{"a", "a/b.c", "../x", "a/../../b", "./a", "a\\..\\b", ".tmp/1", "a//b", "C:/x", "/etc/passwd"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		err := blob.ValidKey(key)
		if err != nil {
			if !errors.Is(err, blob.ErrBadKey) || blob.CodeOf(err) != blob.CodeBadKey {
				t.Fatalf("ValidKey(%q) = %v, not a bad_key error", key, err)
			}
			return
		}
		if !filepath.IsLocal(key) || filepath.IsAbs(key) {
			t.Fatalf("accepted non-local key %q", key)
		}
		if filepath.Clean(key) != filepath.FromSlash(key) {
			t.Fatalf("accepted unclean key %q (clean %q)", key, filepath.Clean(key))
		}
		if len(key) > blob.MaxKeyLen {
			t.Fatalf("accepted key of %d bytes", len(key))
		}
		for _, seg := range strings.Split(key, "/") {
			if seg == "" || seg[0] == '.' || strings.ContainsAny(seg, `\:`) {
				t.Fatalf("accepted key %q with segment %q", key, seg)
			}
		}
	})
}
