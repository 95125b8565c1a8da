package devcert

import (
	"bytes"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"
	"testing/synctest"
	"time"
)

// TestOperatorReload loads the operator's files, keeps the old
// certificate through bad replacements, and takes a good one.
func TestOperatorReload(t *testing.T) {
	clock := newTestClock()
	dir := t.TempDir()
	a, b := newPair(t, clock.Now()), newPair(t, clock.Now())
	certFile, keyFile := writePair(t, dir, a, clock.Now())
	m := newTestManager(t, Config{CertFile: certFile, KeyFile: keyFile, Now: clock.Now})
	hashA := sha256.Sum256(a.Certificate[0])
	if hashOf(t, m) != hashA {
		t.Fatal("not serving the operator's certificate")
	}
	wantHashes(t, m, hashA) // a P-256 certificate of 13 days: pinnable

	certA, keyA := pemPair(t, a)
	certB, keyB := pemPair(t, b)
	bad := []struct {
		name       string
		cert, key  []byte
		removeCert bool
	}{
		{"garbage cert", []byte("hello"), keyA, false},
		{"empty key", certA, nil, false},
		{"truncated cert", certA[:len(certA)/2], keyA, false},
		{"mismatched pair", certB, keyA, false},
		{"missing cert file", nil, keyA, true},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			if tt.removeCert {
				if err := os.Remove(certFile); err != nil {
					t.Fatal(err)
				}
			} else {
				writeFile(t, certFile, tt.cert, clock.Now())
			}
			writeFile(t, keyFile, tt.key, clock.Now())
			if err := m.Reload(); err == nil {
				t.Fatal("Reload accepted bad files")
			}
			if hashOf(t, m) != hashA {
				t.Fatal("a failed reload replaced the certificate")
			}
		})
	}

	writeFile(t, certFile, certB, clock.Now())
	writeFile(t, keyFile, keyB, clock.Now())
	if err := m.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	hashB := sha256.Sum256(b.Certificate[0])
	if hashOf(t, m) != hashB {
		t.Fatal("Reload did not take the new certificate")
	}
	wantHashes(t, m, hashB) // operator mode publishes no previous hash
}

// TestOperatorWatch: Run notices changed files on its own, and a bad
// change keeps the previous certificate.
func TestOperatorWatch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		a, b, c := newPair(t, time.Now()), newPair(t, time.Now()), newPair(t, time.Now())
		mtime := time.Now()
		certFile, keyFile := writePair(t, dir, a, mtime)
		m := newTestManager(t, Config{CertFile: certFile, KeyFile: keyFile, CheckInterval: 10 * time.Second})
		stop := startRun(t, m)
		defer stop()
		synctest.Wait()

		step := func(what string, want [32]byte) {
			t.Helper()
			time.Sleep(10 * time.Second)
			synctest.Wait()
			if hashOf(t, m) != want {
				t.Fatalf("%s: serving the wrong certificate", what)
			}
		}
		step("unchanged", sha256.Sum256(a.Certificate[0]))

		mtime = mtime.Add(time.Minute)
		writePair(t, dir, b, mtime)
		step("after the files changed", sha256.Sum256(b.Certificate[0]))

		mtime = mtime.Add(time.Minute)
		writeFile(t, certFile, []byte("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n"), mtime)
		step("after a bad certificate file", sha256.Sum256(b.Certificate[0]))
		step("a tick later", sha256.Sum256(b.Certificate[0]))

		// A replacement renamed into place (another inode) with the same
		// mtime is still seen.
		certPEM, keyPEM := pemPair(t, c)
		for name, data := range map[string][]byte{certFile: certPEM, keyFile: keyPEM} {
			tmp := name + ".new"
			writeFile(t, tmp, data, mtime)
			if err := os.Rename(tmp, name); err != nil {
				t.Fatal(err)
			}
		}
		step("after a rename", sha256.Sum256(c.Certificate[0]))
	})
}

// TestOperatorMalformed: New refuses malformed PEM with an error, never a
// panic, and so does every truncation of a good pair.
func TestOperatorMalformed(t *testing.T) {
	now := newTestClock().Now()
	good := newPair(t, now)
	certPEM, keyPEM := pemPair(t, good)
	otherCert, _ := pemPair(t, newPair(t, now))
	der := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{0x30, 0x03, 0x02, 0x01}})
	tests := []struct {
		name      string
		cert, key []byte
	}{
		{"empty", nil, nil},
		{"text", []byte("certificate"), []byte("key")},
		{"key in the cert file", keyPEM, keyPEM},
		{"cert in the key file", certPEM, certPEM},
		{"bad DER", der, keyPEM},
		{"bad key DER", certPEM, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{0x30, 0x00}})},
		{"bad base64", []byte("-----BEGIN CERTIFICATE-----\n%%%%\n-----END CERTIFICATE-----\n"), keyPEM},
		{"mismatched", otherCert, keyPEM},
		{"binary", bytes.Repeat([]byte{0xff, 0x00, '-'}, 100), bytes.Repeat([]byte{0x00}, 10)},
	}
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			writeFile(t, certFile, tt.cert, now)
			writeFile(t, keyFile, tt.key, now)
			if _, err := New(Config{CertFile: certFile, KeyFile: keyFile}); err == nil {
				t.Fatal("New accepted malformed files")
			}
		})
	}
	if _, err := New(Config{CertFile: filepath.Join(dir, "missing.pem"), KeyFile: keyFile}); err == nil {
		t.Fatal("New accepted a missing file")
	}
	// Cut anywhere, a pair fails to parse, or (cut only in its last line
	// break) parses to the same certificate.
	for i := range len(certPEM) {
		if c, err := parsePair(certPEM[:i], keyPEM); err == nil && !bytes.Equal(c.Certificate[0], good.Certificate[0]) {
			t.Fatalf("a certificate cut at %d bytes parsed to another", i)
		}
	}
	for i := range len(keyPEM) {
		if c, err := parsePair(certPEM, keyPEM[:i]); err == nil && !bytes.Equal(c.Certificate[0], good.Certificate[0]) {
			t.Fatalf("a key cut at %d bytes parsed to another", i)
		}
	}
}

// TestOperatorWebPKICert: a certificate browsers would not take by hash is
// served but not published.
func TestOperatorWebPKICert(t *testing.T) {
	clock := newTestClock()
	dir := t.TempDir()
	long := selfSigned(t, mustKey(t, elliptic.P256()), clock.Now().Add(-time.Hour), clock.Now().Add(90*24*time.Hour))
	certFile, keyFile := writePair(t, dir, long, clock.Now())
	m := newTestManager(t, Config{CertFile: certFile, KeyFile: keyFile, Now: clock.Now})
	if hashOf(t, m) != sha256.Sum256(long.Certificate[0]) {
		t.Fatal("not serving the operator's certificate")
	}
	wantHashes(t, m)
}

// TestOperatorChain: an intermediate in CertFile is served after the leaf,
// and the hash is the leaf's.
func TestOperatorChain(t *testing.T) {
	clock := newTestClock()
	dir := t.TempDir()
	leaf, inter := newPair(t, clock.Now()), newPair(t, clock.Now())
	certPEM, keyPEM := pemPair(t, leaf)
	interPEM, _ := pemPair(t, inter)
	certFile, keyFile := filepath.Join(dir, "chain.pem"), filepath.Join(dir, "key.pem")
	writeFile(t, certFile, append(certPEM, interPEM...), clock.Now())
	writeFile(t, keyFile, keyPEM, clock.Now())
	m := newTestManager(t, Config{CertFile: certFile, KeyFile: keyFile, Now: clock.Now})
	c, _ := m.GetCertificate(nil)
	if len(c.Certificate) != 2 {
		t.Fatalf("serving %d certificates, want the chain of 2", len(c.Certificate))
	}
	wantHashes(t, m, sha256.Sum256(leaf.Certificate[0]))
}
