package edge

import "net/http"

// securityHeaders are set on every response of the edge's HTTP servers
// (the HTTP port, and HTTP/3 on the UDP port), before the handler runs:
// the /v1 API, health, the OpenAPI document, the certificate hashes and
// WebSocket upgrades alike. A handler may replace one for its own
// responses (the OpenAPI document is cacheable); none removes them.
//
// Every response is JSON (or an upgrade), never a page, so the policy is
// the strictest: no content may load (default-src 'none'), no page may
// frame it (frame-ancestors 'none', and X-Frame-Options for browsers
// without CSP), no content sniffing, no Referer sent on from it, no
// embedding by other sites outside CORS (Cross-Origin-Resource-Policy;
// CORS requests, which cross-origin pages of the API use, are not
// affected), and no caching, since answers carry tokens and private
// messages. Strict-Transport-Security is not sent: the HTTP port speaks
// plain HTTP, and HSTS for the host would make browsers refuse it; an
// operator who puts TLS in front of it sets HSTS there.
var securityHeaders = []struct{ name, value string }{
	{"Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"},
	{"X-Content-Type-Options", "nosniff"},
	{"X-Frame-Options", "DENY"},
	{"Referrer-Policy", "no-referrer"},
	{"Cross-Origin-Resource-Policy", "same-origin"},
	{"Cross-Origin-Opener-Policy", "same-origin"},
	{"Cache-Control", "no-store"},
}

// withSecurityHeaders sets securityHeaders on every response of next. It
// does not wrap the ResponseWriter, so hijacking (WebSocket) and
// http.ResponseController work as they do without it.
func withSecurityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		for _, sh := range securityHeaders {
			h.Set(sh.name, sh.value)
		}
		next.ServeHTTP(w, r)
	})
}
