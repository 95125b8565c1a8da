package devcert

import (
	"crypto/tls"
	"fmt"
	"os"
)

// fileStamp identifies the versions of CertFile and KeyFile last loaded
// or tried.
type fileStamp struct {
	cert, key os.FileInfo
}

// changed reports whether either file differs from s: another file (say,
// renamed into place), another size or another mtime. A missing file
// counts as a change only if it was there before.
func (s fileStamp) changed(now fileStamp) bool {
	return infoChanged(s.cert, now.cert) || infoChanged(s.key, now.key)
}

func infoChanged(a, b os.FileInfo) bool {
	if a == nil || b == nil {
		return (a == nil) != (b == nil)
	}
	return !os.SameFile(a, b) || a.Size() != b.Size() || !a.ModTime().Equal(b.ModTime())
}

func (m *Manager) statFiles() fileStamp {
	var s fileStamp
	s.cert, _ = os.Stat(m.cfg.CertFile)
	s.key, _ = os.Stat(m.cfg.KeyFile)
	return s
}

// reloadIfChanged loads the files if they changed since the last load or
// try. A failure is logged once per change of the files. m.mu must be held.
func (m *Manager) reloadIfChanged() {
	if !m.stamp.changed(m.statFiles()) {
		return
	}
	_ = m.load() // logged
}

// load reads CertFile and KeyFile and serves them if they parse and
// match. On failure the previous certificate (if any) stays and the error
// is logged. m.mu must be held, or m not yet shared.
func (m *Manager) load() error {
	// Stat before reading: a write after the stat shows as a change at
	// the next check.
	m.stamp = m.statFiles()
	cert, err := m.readFiles()
	if err != nil {
		if old := m.cur.Load(); old != nil {
			m.log.Error("certificate reload failed; still serving the previous certificate",
				"cert_file", m.cfg.CertFile, "key_file", m.cfg.KeyFile, "err", err, "not_after", old.cert.Leaf.NotAfter)
		}
		return err
	}
	s := newServed(cert)
	old := m.cur.Swap(s)
	leaf := cert.Leaf
	attrs := []any{"cert_file", m.cfg.CertFile, "subject", leaf.Subject.String(), "not_after", leaf.NotAfter, "hash", b64(s.hash), "pinnable", s.hashable}
	if old != nil && old.hash == s.hash {
		m.log.Debug("certificate files reloaded, unchanged", attrs...)
	} else {
		m.log.Info("loaded certificate", attrs...)
	}
	if now := m.cfg.Now(); !now.Before(leaf.NotAfter) || now.Before(leaf.NotBefore) {
		m.log.Warn("the certificate is not valid now; clients will refuse it", attrs...)
	}
	return nil
}

func (m *Manager) readFiles() (*tls.Certificate, error) {
	certPEM, err := os.ReadFile(m.cfg.CertFile)
	if err != nil {
		return nil, fmt.Errorf("devcert: %w", err)
	}
	keyPEM, err := os.ReadFile(m.cfg.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("devcert: %w", err)
	}
	cert, err := parsePair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("devcert: load %s and %s: %w", m.cfg.CertFile, m.cfg.KeyFile, err)
	}
	return cert, nil
}
