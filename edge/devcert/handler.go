package devcert

import (
	"encoding/base64"
	"encoding/json"
	"net/http"

	"github.com/parley-chat/parley/syncproto"
)

// HashHandler serves the syncproto.CertHashList of Hashes (the edge
// mounts it at syncproto.CertHashPath) to GET and HEAD, uncached and to
// any origin (CORS), and answers CORS preflights. See the package doc for
// a browser's use of it.
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
		list := syncproto.CertHashList{Hashes: make([]syncproto.CertHash, 0, len(hashes)), NotAfter: notAfter.UTC()}
		for _, sum := range hashes {
			list.Hashes = append(list.Hashes, syncproto.CertHash{Algorithm: syncproto.CertHashAlgorithm, Value: base64.StdEncoding.EncodeToString(sum[:])})
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
