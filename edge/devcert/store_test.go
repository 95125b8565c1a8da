package devcert

import (
	"bytes"
	"crypto/elliptic"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func keptMode(t *testing.T, dir string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(filepath.Join(dir, keptFile))
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

// TestKeptCertReused: a restart within the certificate's lifetime serves
// the same certificate, so pinned hashes keep working; one due for
// rotation is replaced and still published as the previous one.
func TestKeptCertReused(t *testing.T) {
	clock := newTestClock()
	dir := filepath.Join(t.TempDir(), "data", "edge")
	cfg := Config{Dir: dir, Now: clock.Now}

	first := hashOf(t, newTestManager(t, cfg))
	if mode := keptMode(t, dir); mode != 0o600 {
		t.Errorf("%s mode %v, want 0600", keptFile, mode)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("Dir: %v, %v; want mode 0700", fi.Mode(), err)
	}

	clock.Advance(3 * 24 * time.Hour)
	m := newTestManager(t, cfg)
	if hashOf(t, m) != first {
		t.Fatal("a restart within the lifetime made a new certificate")
	}
	wantHashes(t, m, first)

	clock.Advance(DefaultLifetime - DefaultLifetime/3) // past renewAt, before notAfter
	m = newTestManager(t, cfg)
	second := hashOf(t, m)
	if second == first {
		t.Fatal("a kept certificate due for rotation was reused")
	}
	wantHashes(t, m, second, first)
	if hashOf(t, newTestManager(t, cfg)) != second {
		t.Fatal("the replacement was not kept")
	}

	clock.Advance(MaxLifetime) // everything expired
	m = newTestManager(t, cfg)
	third := hashOf(t, m)
	if third == second {
		t.Fatal("an expired kept certificate was reused")
	}
	wantHashes(t, m, third)
	if mode := keptMode(t, dir); mode != 0o600 {
		t.Errorf("%s mode %v after replacement, want 0600", keptFile, mode)
	}
}

// TestKeptCertRotationKept: Run's rotations are written to Dir too.
func TestKeptCertRotationKept(t *testing.T) {
	clock := newTestClock()
	dir := t.TempDir()
	cfg := Config{Dir: dir, Now: clock.Now}
	m := newTestManager(t, cfg)
	clock.Advance(DefaultLifetime - DefaultLifetime/3)
	if err := m.Reload(); err != nil {
		t.Fatal(err)
	}
	if hashOf(t, newTestManager(t, cfg)) != hashOf(t, m) {
		t.Fatal("the rotated certificate was not kept")
	}
	if tmp, _ := filepath.Glob(filepath.Join(dir, ".devcert-*")); len(tmp) != 0 {
		t.Errorf("temporary files left: %v", tmp)
	}
}

func TestKeptCertReplaced(t *testing.T) {
	tests := []struct {
		name   string
		change func(t *testing.T, dir string, cfg *Config)
	}{
		{"hosts changed", func(t *testing.T, dir string, cfg *Config) { cfg.Hosts = []string{"chat.test"} }},
		{"lifetime shortened", func(t *testing.T, dir string, cfg *Config) { cfg.Lifetime = 2 * 24 * time.Hour }},
		{"garbage", func(t *testing.T, dir string, cfg *Config) {
			writeFile(t, filepath.Join(dir, keptFile), []byte("not PEM"), time.Now())
		}},
		{"truncated", func(t *testing.T, dir string, cfg *Config) {
			path := filepath.Join(dir, keptFile)
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			writeFile(t, path, data[:len(data)/2], time.Now())
		}},
		{"key of another certificate", func(t *testing.T, dir string, cfg *Config) {
			path := filepath.Join(dir, keptFile)
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			_, otherKey := pemPair(t, newPair(t, time.Now()))
			i := bytes.Index(data, []byte("-----BEGIN PRIVATE KEY-----"))
			if i < 0 {
				t.Fatalf("no key block in %s", data)
			}
			writeFile(t, path, append(data[:i:i], otherKey...), time.Now())
		}},
		{"not hash-pinnable", func(t *testing.T, dir string, cfg *Config) {
			long := selfSigned(t, mustKey(t, elliptic.P256()), cfg.Now().Add(-time.Hour), cfg.Now().Add(90*24*time.Hour))
			if err := keep(dir, long); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newTestClock()
			dir := t.TempDir()
			cfg := Config{Dir: dir, Now: clock.Now}
			first := hashOf(t, newTestManager(t, cfg))
			tt.change(t, dir, &cfg)
			m := newTestManager(t, cfg)
			second := hashOf(t, m)
			if second == first {
				t.Fatal("the kept certificate was reused")
			}
			if err := checkHashable(leafOf(t, m)); err != nil {
				t.Fatal(err)
			}
			if hashOf(t, newTestManager(t, cfg)) != second {
				t.Fatal("the replacement was not kept")
			}
		})
	}
}

// TestKeepFails: New reports a Dir it cannot write.
func TestKeepFails(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	writeFile(t, file, []byte("x"), time.Now())
	if _, err := New(Config{Dir: filepath.Join(file, "sub")}); err == nil {
		t.Fatal("New succeeded with a Dir under a regular file")
	}
}
