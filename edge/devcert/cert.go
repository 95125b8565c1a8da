package devcert

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// generate makes a self-signed ECDSA P-256 certificate for hosts, valid
// from Backdate before now for lifetime in all (whole seconds, as X.509
// encodes them, so the encoded period never exceeds lifetime).
func generate(now time.Time, lifetime time.Duration, hosts []string) (*tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("devcert: generate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("devcert: serial number: %w", err)
	}
	notBefore := now.Add(-Backdate).UTC().Truncate(time.Second)
	notAfter := notBefore.Add(lifetime).Truncate(time.Second)
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"parley development"}, CommonName: hosts[0]},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, // and IsCA false: it signs nothing else
	}
	for _, h := range hosts {
		if ip, err := netip.ParseAddr(h); err == nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, net.IP(ip.AsSlice()))
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("devcert: create certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("devcert: parse new certificate: %w", err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// checkHashable returns why browsers would refuse leaf when pinned by hash
// (see the package doc), the current time aside, or nil.
func checkHashable(leaf *x509.Certificate) error {
	if leaf.Version != 3 {
		return fmt.Errorf("devcert: X.509 version %d, want 3", leaf.Version)
	}
	if !leaf.NotBefore.Before(leaf.NotAfter) {
		return errors.New("devcert: notBefore is not before notAfter")
	}
	if d := leaf.NotAfter.Sub(leaf.NotBefore); d > MaxLifetime {
		return fmt.Errorf("devcert: valid for %v, more than %v", d, MaxLifetime)
	}
	// P-256 is the one every browser must take; Chromium and Firefox both
	// take P-384 too.
	if pub, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok || (pub.Curve != elliptic.P256() && pub.Curve != elliptic.P384()) {
		return fmt.Errorf("devcert: %v key, want ECDSA P-256 or P-384", leaf.PublicKeyAlgorithm)
	}
	return nil
}

func isP256(leaf *x509.Certificate) bool {
	pub, ok := leaf.PublicKey.(*ecdsa.PublicKey)
	return ok && pub.Curve == elliptic.P256()
}

// checkHost accepts an IP address or a DNS name (LDH labels, an optional
// leading "*.").
func checkHost(h string) error {
	if h == "" {
		return errors.New("empty host")
	}
	if ip, err := netip.ParseAddr(h); err == nil {
		if ip.Zone() != "" {
			return fmt.Errorf("%q: an IP address with a zone cannot be in a certificate", h)
		}
		return nil
	}
	name := strings.TrimPrefix(h, "*.")
	if len(name) > 253 {
		return fmt.Errorf("%q: longer than 253 characters", h)
	}
	for label := range strings.SplitSeq(name, ".") {
		if len(label) == 0 || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("%q: not an IP address or DNS name", h)
		}
		for _, c := range []byte(label) {
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
				return fmt.Errorf("%q: not an IP address or DNS name", h)
			}
		}
	}
	return nil
}

// sameHosts reports whether leaf names exactly hosts (in any order).
func sameHosts(leaf *x509.Certificate, hosts []string) bool {
	var have, want []string
	for _, n := range leaf.DNSNames {
		have = append(have, strings.ToLower(n))
	}
	for _, ip := range leaf.IPAddresses {
		a, _ := netip.AddrFromSlice(ip)
		have = append(have, a.Unmap().String())
	}
	for _, h := range hosts {
		if ip, err := netip.ParseAddr(h); err == nil {
			want = append(want, ip.Unmap().String())
		} else {
			want = append(want, strings.ToLower(h))
		}
	}
	slices.Sort(have)
	slices.Sort(want)
	return slices.Equal(slices.Compact(have), slices.Compact(want))
}
