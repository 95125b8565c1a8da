package devcert

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"time"
)

// HashPath is where the edge serves HashHandler.
const HashPath = "/.well-known/parley/cert-hashes"

// HashAlgorithm is the only algorithm the WebTransport spec defines for
// serverCertificateHashes, spelled as browsers compare it.
const HashAlgorithm = "sha-256"

// HashList is HashHandler's JSON body.
type HashList struct {
	// Hashes are Manager.Hashes in the shape of WebTransportHash, the
	// value in standard base64 (the browser decodes it to bytes).
	Hashes []Hash `json:"hashes"`
	// NotAfter is when the served certificate expires; fetch the list
	// again before then.
	NotAfter time.Time `json:"not_after"`
}

// Hash is one entry of HashList.
type Hash struct {
	Algorithm string `json:"algorithm"`
	Value     string `json:"value"`
}

// HashHandler serves the HashList of Hashes to GET and HEAD, uncached and
// to any origin (CORS), and answers CORS preflights. See the package doc
// for a browser's use of it.
func (m *Manager) HashHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Access-Control-Allow-Origin", "*")
		switch r.Method {
		case http.MethodGet, http.MethodHead:
		case http.MethodOptions:
			h.Set("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS")
			h.Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
			return
		default:
			h.Set("Allow", "GET, HEAD, OPTIONS")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		hashes, notAfter := m.published()
		list := HashList{Hashes: make([]Hash, 0, len(hashes)), NotAfter: notAfter.UTC()}
		for _, sum := range hashes {
			list.Hashes = append(list.Hashes, Hash{Algorithm: HashAlgorithm, Value: base64.StdEncoding.EncodeToString(sum[:])})
		}
		body, err := json.Marshal(list)
		if err != nil { // cannot happen: strings and a time
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		}
		h.Set("Content-Type", "application/json")
		h.Set("Cache-Control", "no-store")
		h.Set("X-Content-Type-Options", "nosniff")
		if r.Method == http.MethodHead {
			return
		}
		_, _ = w.Write(append(body, '\n'))
	})
}
