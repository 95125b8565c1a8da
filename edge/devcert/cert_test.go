package devcert

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"net"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestDevCertProperties checks the dev certificate against the browsers'
// rule: X.509v3, ECDSA P-256, at most 14 days notBefore to notAfter with
// the backdate inside, the configured names, self-signed.
func TestDevCertProperties(t *testing.T) {
	clock := newTestClock()
	clock.Advance(123456789 * time.Nanosecond) // a fraction of a second
	now := clock.Now()
	for _, lifetime := range []time.Duration{0, MaxLifetime, 2 * time.Hour} {
		t.Run(lifetime.String(), func(t *testing.T) {
			m := newTestManager(t, Config{Now: clock.Now, Lifetime: lifetime})
			leaf := leafOf(t, m)
			want := lifetime
			if want == 0 {
				want = DefaultLifetime
			}
			if leaf.Version != 3 {
				t.Errorf("Version = %d, want 3", leaf.Version)
			}
			pub, ok := leaf.PublicKey.(*ecdsa.PublicKey)
			if !ok || pub.Curve != elliptic.P256() {
				t.Errorf("public key %T, want ECDSA P-256", leaf.PublicKey)
			}
			if leaf.SignatureAlgorithm != x509.ECDSAWithSHA256 {
				t.Errorf("SignatureAlgorithm = %v", leaf.SignatureAlgorithm)
			}
			period := leaf.NotAfter.Sub(leaf.NotBefore)
			if period > MaxLifetime || period > want {
				t.Errorf("validity %v, want at most %v and %v", period, want, MaxLifetime)
			}
			if period < want-time.Second {
				t.Errorf("validity %v, want about %v", period, want)
			}
			if nb := now.Add(-Backdate); leaf.NotBefore.After(nb) || leaf.NotBefore.Before(nb.Add(-time.Second)) {
				t.Errorf("NotBefore %v, want %v (Backdate before now)", leaf.NotBefore, nb)
			}
			if !slices.Equal(leaf.DNSNames, []string{"localhost"}) {
				t.Errorf("DNSNames = %v", leaf.DNSNames)
			}
			if len(leaf.IPAddresses) != 2 || !leaf.IPAddresses[0].Equal(net.IPv4(127, 0, 0, 1)) || !leaf.IPAddresses[1].Equal(net.IPv6loopback) {
				t.Errorf("IPAddresses = %v", leaf.IPAddresses)
			}
			if leaf.IsCA || !leaf.BasicConstraintsValid {
				t.Errorf("IsCA %v BasicConstraintsValid %v, want a non-CA leaf", leaf.IsCA, leaf.BasicConstraintsValid)
			}
			if !slices.Equal(leaf.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}) {
				t.Errorf("ExtKeyUsage = %v", leaf.ExtKeyUsage)
			}
			// Self-signed: its own signature verifies with its own key, and
			// with itself as the only root it verifies for each name.
			if err := leaf.CheckSignature(leaf.SignatureAlgorithm, leaf.RawTBSCertificate, leaf.Signature); err != nil {
				t.Errorf("self signature: %v", err)
			}
			roots := x509.NewCertPool()
			roots.AddCert(leaf)
			for _, host := range DefaultHosts() {
				if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: host, CurrentTime: now}); err != nil {
					t.Errorf("Verify for %s: %v", host, err)
				}
			}
			if err := checkHashable(leaf); err != nil {
				t.Errorf("checkHashable: %v", err)
			}
			if err := chromiumVerify(m.Hashes(), clock.Now)([][]byte{leaf.Raw}, nil); err != nil {
				t.Errorf("Chromium's check: %v", err)
			}
		})
	}
}

func TestDevCertHosts(t *testing.T) {
	m := newTestManager(t, Config{Hosts: []string{"chat.test", "*.chat.test", "10.0.0.7", "fd00::7"}})
	leaf := leafOf(t, m)
	for _, h := range []string{"chat.test", "a.chat.test", "10.0.0.7", "fd00::7"} {
		if err := leaf.VerifyHostname(h); err != nil {
			t.Errorf("VerifyHostname(%s): %v", h, err)
		}
	}
	if err := leaf.VerifyHostname("localhost"); err == nil {
		t.Error("the certificate names localhost, which Hosts left out")
	}
	if leaf.Subject.CommonName != "chat.test" {
		t.Errorf("CommonName = %q", leaf.Subject.CommonName)
	}
}

// TestCheckHashable: only what browsers accept by hash is published.
func TestCheckHashable(t *testing.T) {
	now := newTestClock().Now()
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cert *x509.Certificate
		want string // "" for hashable, else part of the error
	}{
		{"P-256 14 days", selfSigned(t, mustKey(t, elliptic.P256()), now, now.Add(MaxLifetime)).Leaf, ""},
		{"P-384 1 day", selfSigned(t, mustKey(t, elliptic.P384()), now, now.Add(24*time.Hour)).Leaf, ""},
		{"P-256 14 days and 1 s", selfSigned(t, mustKey(t, elliptic.P256()), now, now.Add(MaxLifetime+time.Second)).Leaf, "more than"},
		{"P-256 90 days", selfSigned(t, mustKey(t, elliptic.P256()), now, now.Add(90*24*time.Hour)).Leaf, "more than"},
		{"P-521", selfSigned(t, mustKey(t, elliptic.P521()), now, now.Add(time.Hour)).Leaf, "want ECDSA"},
		{"RSA", selfSigned(t, rsaKey, now, now.Add(time.Hour)).Leaf, "want ECDSA"},
		{"Ed25519", selfSigned(t, edKey, now, now.Add(time.Hour)).Leaf, "want ECDSA"},
		{"notAfter before notBefore", selfSigned(t, mustKey(t, elliptic.P256()), now, now.Add(-time.Hour)).Leaf, "not before"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkHashable(tt.cert)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("checkHashable: %v, want nil", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("checkHashable: %v, want an error with %q", err, tt.want)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string // "" for valid, else part of the error
	}{
		{"zero value", Config{}, ""},
		{"dev with everything", Config{Dir: "/var/lib/parley", Hosts: []string{"localhost", "::1", "*.chat.test"}, Lifetime: 7 * 24 * time.Hour, RenewBefore: 2 * 24 * time.Hour, CheckInterval: time.Second}, ""},
		{"max lifetime", Config{Lifetime: MaxLifetime}, ""},
		{"operator", Config{CertFile: "c.pem", KeyFile: "k.pem"}, ""},
		{"cert without key", Config{CertFile: "c.pem"}, "both CertFile and KeyFile"},
		{"key without cert", Config{KeyFile: "k.pem"}, "both CertFile and KeyFile"},
		{"operator with Dir", Config{CertFile: "c.pem", KeyFile: "k.pem", Dir: "/tmp"}, "leave them unset"},
		{"operator with Hosts", Config{CertFile: "c.pem", KeyFile: "k.pem", Hosts: []string{"x"}}, "leave them unset"},
		{"operator with Lifetime", Config{CertFile: "c.pem", KeyFile: "k.pem", Lifetime: time.Hour}, "leave them unset"},
		{"lifetime over 14 days", Config{Lifetime: MaxLifetime + time.Second}, "Lifetime"},
		{"negative lifetime", Config{Lifetime: -time.Hour}, "Lifetime"},
		{"negative RenewBefore", Config{RenewBefore: -time.Hour}, "RenewBefore"},
		{"negative CheckInterval", Config{CheckInterval: -time.Second}, "CheckInterval"},
		{"RenewBefore eats the lifetime", Config{Lifetime: 24 * time.Hour, RenewBefore: 24 * time.Hour}, "must exceed Backdate"},
		{"RenewBefore over the default lifetime", Config{RenewBefore: DefaultLifetime}, "must exceed Backdate"},
		{"lifetime too short for Backdate", Config{Lifetime: time.Hour}, "must exceed Backdate"},
		{"empty host", Config{Hosts: []string{""}}, "empty host"},
		{"host with a port", Config{Hosts: []string{"localhost:8443"}}, "not an IP address or DNS name"},
		{"host with a space", Config{Hosts: []string{"my host"}}, "not an IP address or DNS name"},
		{"host with a scheme", Config{Hosts: []string{"https://x"}}, "not an IP address or DNS name"},
		{"host label starts with a hyphen", Config{Hosts: []string{"-x.test"}}, "not an IP address or DNS name"},
		{"IP with a zone", Config{Hosts: []string{"fe80::1%eth0"}}, "zone"},
		{"host too long", Config{Hosts: []string{strings.Repeat("a.", 127) + "com"}}, "longer than 253"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("Validate: %v, want nil", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("Validate: %v, want an error with %q", err, tt.want)
			case err != nil && !strings.HasPrefix(err.Error(), "devcert: "):
				t.Errorf("Validate: %q lacks the package prefix", err)
			}
			if tt.want != "" {
				if _, nerr := New(tt.cfg); nerr == nil {
					t.Error("New accepted a config that Validate refuses")
				}
			}
		})
	}
}
