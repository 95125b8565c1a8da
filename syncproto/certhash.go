package syncproto

import "time"

// CertHashPath is where an edge serves, over plain HTTP on its /v1 port,
// the hashes of the certificate on its UDP port (QUIC and WebTransport)
// as a CertHashList in JSON. Clients pin a self-signed certificate by
// them (a browser passes them as WebTransport's serverCertificateHashes).
const CertHashPath = "/.well-known/parley/cert-hashes"

// CertHashAlgorithm is the only algorithm the WebTransport spec defines
// for serverCertificateHashes, spelled as browsers compare it.
const CertHashAlgorithm = "sha-256"

// CertHashList is the JSON body served at CertHashPath.
type CertHashList struct {
	// Hashes are in the shape of WebTransportHash, the value in standard
	// base64 (the browser decodes it to bytes).
	Hashes []CertHash `json:"hashes"`
	// NotAfter is when the served certificate expires; fetch the list
	// again before then.
	NotAfter time.Time `json:"not_after"`
}

// CertHash is one entry of CertHashList.
type CertHash struct {
	Algorithm string `json:"algorithm"`
	Value     string `json:"value"`
}
