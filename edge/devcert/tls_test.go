package devcert

import (
	"crypto/sha256"
	"crypto/tls"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// serveTLS accepts TLS connections on 127.0.0.1:0 with cfg and completes
// each handshake, until cleanup.
func serveTLS(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				tc := tls.Server(c, cfg)
				if tc.Handshake() == nil {
					_, _ = tc.Write([]byte("ok"))
				}
			})
		}
	})
	return ln.Addr().String()
}

// dialPinned connects as a browser that passed hashes in
// serverCertificateHashes would, and returns the served certificate's hash.
func dialPinned(t *testing.T, addr string, hashes [][32]byte, now func() time.Time) ([32]byte, error) {
	t.Helper()
	d := &net.Dialer{Timeout: 10 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{
		ServerName:            "localhost",
		NextProtos:            []string{"parley/1"},
		MinVersion:            tls.VersionTLS13,
		InsecureSkipVerify:    true, // no WebPKI chain: verified by hash below
		VerifyPeerCertificate: chromiumVerify(hashes, now),
	})
	if err != nil {
		return [32]byte{}, err
	}
	defer c.Close()
	st := c.ConnectionState()
	if st.Version != tls.VersionTLS13 || st.NegotiatedProtocol != "parley/1" {
		t.Errorf("version %x, ALPN %q; want TLS 1.3 and parley/1", st.Version, st.NegotiatedProtocol)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 2)
	if _, err := c.Read(buf); err != nil || string(buf) != "ok" {
		t.Errorf("read after handshake: %q, %v", buf, err)
	}
	return sha256.Sum256(st.PeerCertificates[0].Raw), nil
}

// TestHandshakePinnedAcrossRotation does real TLS 1.3 handshakes over
// loopback with the certificate pinned by hash, before and after a
// rotation, on one listener that is never restarted.
func TestHandshakePinnedAcrossRotation(t *testing.T) {
	clock := newTestClock()
	m := newTestManager(t, Config{Now: clock.Now})
	addr := serveTLS(t, m.TLSConfig("parley/1"))

	before := m.Hashes()
	got, err := dialPinned(t, addr, before, clock.Now)
	if err != nil {
		t.Fatalf("handshake before rotation: %v", err)
	}
	if got != before[0] {
		t.Fatal("served certificate is not the published one")
	}

	clock.Advance(DefaultLifetime - DefaultLifetime/3)
	if err := m.Reload(); err != nil {
		t.Fatal(err)
	}
	after := m.Hashes()
	if len(after) != 2 || after[1] != before[0] {
		t.Fatalf("Hashes after rotation = %s, want [new, old]", fmtHashes(after))
	}
	got, err = dialPinned(t, addr, after, clock.Now)
	if err != nil {
		t.Fatalf("handshake after rotation: %v", err)
	}
	if got != after[0] {
		t.Fatal("the listener still serves the old certificate after rotation")
	}

	// A client still holding only the old hash is refused: new handshakes
	// get the new certificate.
	_, err = dialPinned(t, addr, before, clock.Now)
	if err == nil || !strings.Contains(err.Error(), "does not match any fingerprint") {
		t.Fatalf("handshake pinned to the old hash: %v, want a fingerprint mismatch", err)
	}
}

func TestTLSConfig(t *testing.T) {
	m := newTestManager(t, Config{})
	protos := []string{"h3", "parley/1"}
	cfg := m.TLSConfig(protos...)
	protos[0] = "changed"
	if cfg.MinVersion != tls.VersionTLS13 || cfg.GetCertificate == nil || len(cfg.Certificates) != 0 {
		t.Errorf("TLSConfig: MinVersion %x, GetCertificate set %v, %d static certificates", cfg.MinVersion, cfg.GetCertificate != nil, len(cfg.Certificates))
	}
	if cfg.NextProtos[0] != "h3" || cfg.NextProtos[1] != "parley/1" {
		t.Errorf("NextProtos = %v", cfg.NextProtos)
	}
	if cfg == m.TLSConfig() {
		t.Error("TLSConfig returned a shared config")
	}
}
