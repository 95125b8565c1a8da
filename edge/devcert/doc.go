// Package devcert is the edge's TLS certificate source for QUIC, HTTP/3,
// WebTransport and TLS over TCP. A Manager serves its certificate through
// tls.Config.GetCertificate, so a new certificate applies to new handshakes
// without restarting any listener.
//
// # Two modes
//
// Dev mode (Config.CertFile and Config.KeyFile empty): the Manager makes a
// self-signed ECDSA P-256 certificate for Config.Hosts (default localhost,
// 127.0.0.1 and ::1) that browsers can accept by hash (below), and rotates
// it before it expires. With Config.Dir set, the certificate and its key
// are kept in Dir/devcert.pem (mode 0600, written atomically) and reused by
// the next New while they are not yet due for rotation, so a browser page
// that pinned the hash keeps working across a restart.
//
// Operator mode (both set): the Manager loads a PEM certificate chain and
// key, and loads them again when either file changes (polled every
// Config.CheckInterval) or when Reload is called (on SIGHUP, say). A load
// that fails is logged and the previous certificate stays in use.
//
// # Certificates accepted by hash
//
// A browser accepts a certificate without a WebPKI chain when the page
// passes its SHA-256 hash in serverCertificateHashes. The W3C WebTransport
// spec's "custom certificate requirements"
// (https://w3c.github.io/webtransport/#custom-certificate-requirements):
// the certificate MUST be an X.509v3 certificate, its subject public key
// one of the allowed algorithms, the current time within its validity
// period, and "the total length of the validity period MUST NOT exceed two
// weeks"; the allowed algorithms MUST include ECDSA with secp256r1 (P-256)
// and MUST NOT include RSA. The hash is SHA-256 over the certificate's DER
// (https://w3c.github.io/webtransport/#compute-a-certificate-hash).
//
// Chromium enforces this in net/quic/dedicated_web_transport_http3_client.cc
// (kCustomCertificateMaxValidityDays = 14, and
// ChromiumWebTransportFingerprintProofVerifier rejects RSA keys) with
// quiche's quic/core/crypto/web_transport_fingerprint_proof_verifier.cc:
// HasValidExpiry requires notBefore < notAfter and notAfter - notBefore <=
// 14 days + 1 s, IsWithinValidityPeriod requires notBefore < now <
// notAfter, and IsKeyTypeAllowedByPolicy allows P-256, P-384 and Ed25519.
// Firefox (netwerk/protocol/http/WebTransportCertificateVerifier.cpp)
// rejects a duration over 14 days and RSA keys.
//
// So a dev certificate's whole validity, notBefore to notAfter, is at most
// MaxLifetime (14 days; default Lifetime 13 days for a margin), with
// notBefore Backdate (1 h) before its creation so that a client whose
// clock is a little behind still finds it valid; the backdate counts
// against the 14 days. Its key is ECDSA P-256, the one algorithm every
// browser must accept. It is rotated RenewBefore (default a third of
// Lifetime) before notAfter.
//
// # Publishing the hashes
//
// Hashes names every certificate the Manager still vouches for: the one it
// serves first and, after a rotation, the previous one until it expires
// (connections made with it stay up, and a client can check its
// connection's certificate against the list). New handshakes always get
// the current certificate.
// Only certificates that meet the rule above are listed: an operator's
// WebPKI certificate (RSA, or longer than 14 days) gives an empty list, and
// browsers then verify it the usual way.
//
// HashHandler serves the list as JSON (a syncproto.CertHashList; the edge
// mounts it at syncproto.CertHashPath):
//
//	{"hashes":[{"algorithm":"sha-256","value":"<standard base64 of 32 bytes>"}],
//	 "not_after":"2026-01-02T15:04:05Z"}
//
// with Cache-Control: no-store and Access-Control-Allow-Origin: *, so a
// page on any origin can fetch it. A browser turns it into
// WebTransportOptions like this:
//
//	const res = await fetch("http://localhost:8080/.well-known/parley/cert-hashes", {cache: "no-store"});
//	const {hashes} = await res.json();
//	const wt = new WebTransport("https://localhost:4433/v1/wt", {
//	  serverCertificateHashes: hashes.map(h => ({
//	    algorithm: h.algorithm, // "sha-256", lower case as the browsers compare it
//	    value: Uint8Array.from(atob(h.value), c => c.charCodeAt(0)),
//	  })),
//	});
//
// (Uint8Array.fromBase64(h.value) does the same where it exists.) Leave
// allowPooling false, as the spec requires with serverCertificateHashes.
// If the connection fails, fetch the list again and retry once: it may
// have raced a rotation. Whoever can change the list can impersonate the
// server, so fetch it only from an origin the page already trusts: the
// edge's own HTTPS API, or http://localhost in development.
package devcert
