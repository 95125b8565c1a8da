package devcert

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"
)

// testClock is a manual clock for tests outside a synctest bubble.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func newTestClock() *testClock {
	return &testClock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

func (c *testClock) Advance(d time.Duration) { c.Set(c.Now().Add(d)) }

func testLogger(t *testing.T) *slog.Logger {
	t.Helper()
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// newTestManager makes a Manager with cfg plus a test logger, closed at
// cleanup.
func newTestManager(t *testing.T, cfg Config) *Manager {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	m, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// leafOf is the certificate m serves now.
func leafOf(t *testing.T, m *Manager) *x509.Certificate {
	t.Helper()
	c, err := m.GetCertificate(&tls.ClientHelloInfo{})
	if err != nil {
		t.Fatalf("GetCertificate: %v", err)
	}
	return c.Leaf
}

func hashOf(t *testing.T, m *Manager) [32]byte {
	t.Helper()
	c, err := m.GetCertificate(&tls.ClientHelloInfo{})
	if err != nil {
		t.Fatalf("GetCertificate: %v", err)
	}
	return sha256.Sum256(c.Certificate[0])
}

func wantHashes(t *testing.T, m *Manager, want ...[32]byte) {
	t.Helper()
	if got := m.Hashes(); !slices.Equal(got, want) {
		t.Fatalf("Hashes() = %s, want %s", fmtHashes(got), fmtHashes(want))
	}
}

func fmtHashes(hs [][32]byte) []string {
	var out []string
	for _, h := range hs {
		out = append(out, b64(h)[:8])
	}
	return out
}

// pemPair encodes cert's leaf and key as PEM.
func pemPair(t *testing.T, cert *tls.Certificate) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key})
}

// newPair makes a hash-pinnable P-256 certificate valid from now.
func newPair(t *testing.T, now time.Time) *tls.Certificate {
	t.Helper()
	c, err := generate(now, DefaultLifetime, []string{"edge.example"})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// selfSigned makes a certificate with key over [notBefore, notAfter].
func selfSigned(t *testing.T, key crypto.Signer, notBefore, notAfter time.Time) *tls.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: notBefore, NotAfter: notAfter, DNSNames: []string{"edge.example"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

func mustKey(t *testing.T, c elliptic.Curve) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// writePair writes cert to dir/cert.pem and dir/key.pem, giving both the
// mtime at (file systems keep coarse mtimes; tests set distinct ones).
func writePair(t *testing.T, dir string, cert *tls.Certificate, at time.Time) (certFile, keyFile string) {
	t.Helper()
	certPEM, keyPEM := pemPair(t, cert)
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeFile(t, certFile, certPEM, at)
	writeFile(t, keyFile, keyPEM, at)
	return certFile, keyFile
}

func writeFile(t *testing.T, path string, data []byte, at time.Time) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, at, at); err != nil {
		t.Fatal(err)
	}
}

// chromiumVerify checks a server's certificate as Chromium does for
// serverCertificateHashes (quiche's WebTransportFingerprintProofVerifier
// with max_validity_days 14, RSA refused), at now().
func chromiumVerify(hashes [][32]byte, now func() time.Time) func([][]byte, [][]*x509.Certificate) error {
	return func(raw [][]byte, _ [][]*x509.Certificate) error {
		if len(raw) == 0 {
			return errors.New("no certificates provided")
		}
		if !slices.Contains(hashes, sha256.Sum256(raw[0])) {
			return errors.New("certificate does not match any fingerprint")
		}
		leaf, err := x509.ParseCertificate(raw[0])
		if err != nil {
			return err
		}
		if !leaf.NotBefore.Before(leaf.NotAfter) || leaf.NotAfter.Sub(leaf.NotBefore) > 14*24*time.Hour+time.Second {
			return errors.New("certificate expiry exceeds the configured limit of 14 days")
		}
		if t := now(); !t.After(leaf.NotBefore) || !t.Before(leaf.NotAfter) {
			return errors.New("certificate has expired or has validity listed in the future")
		}
		switch k := leaf.PublicKey.(type) {
		case *ecdsa.PublicKey:
			if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() {
				return errors.New("disallowed public key type")
			}
		case ed25519.PublicKey:
		default:
			return errors.New("disallowed public key type")
		}
		return nil
	}
}
