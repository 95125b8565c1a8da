package devcert

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// keptFile is the file in Config.Dir holding the dev certificate and key.
const keptFile = "devcert.pem"

// errNotKept means Dir holds no dev certificate yet.
var errNotKept = errors.New("devcert: no kept certificate")

// keep writes cert and its key to dir/devcert.pem, mode 0600, replacing
// the file atomically so a crash leaves the old pair or the new one.
func keep(dir string, cert *tls.Certificate) error {
	key, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		return fmt.Errorf("devcert: keep: marshal key: %w", err)
	}
	data := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]})
	data = append(data, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key})...)

	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("devcert: keep: %w", err)
	}
	f, err := os.CreateTemp(dir, ".devcert-*.tmp") // mode 0600
	if err != nil {
		return fmt.Errorf("devcert: keep: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after a successful rename, a no-op
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("devcert: keep: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("devcert: keep: write %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("devcert: keep: sync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("devcert: keep: close %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, keptFile)); err != nil {
		return fmt.Errorf("devcert: keep: %w", err)
	}
	return nil
}

// loadKept reads the pair that keep wrote. It returns errNotKept if there
// is none, and another error if the file is unreadable or malformed.
func loadKept(dir string) (*tls.Certificate, error) {
	path := filepath.Join(dir, keptFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errNotKept
	}
	if err != nil {
		return nil, fmt.Errorf("devcert: read kept certificate: %w", err)
	}
	cert, err := parsePair(data, data)
	if err != nil {
		return nil, fmt.Errorf("devcert: %s: %w", path, err)
	}
	return cert, nil
}

// parsePair parses a PEM certificate chain and key and checks that they
// match; malformed input is an error, never a panic.
func parsePair(certPEM, keyPEM []byte) (*tls.Certificate, error) {
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	if cert.Leaf == nil { // X509KeyPair sets it, unless GODEBUG x509keypairleaf=0
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, err
		}
	}
	return &cert, nil
}
