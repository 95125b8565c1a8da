package httpapi

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// DefaultCORSMaxAge is how long a browser may keep a preflight answer.
const DefaultCORSMaxAge = 10 * time.Minute

// CORSConfig lets web pages of other origins call /v1 from a browser.
//
// No origin is allowed by default: the web app is served by the edge, on
// its own origin, and needs no CORS. For an allowed origin, a preflight
// (OPTIONS with Access-Control-Request-Method) is answered 204 with the
// path's methods, the request headers the API reads (Authorization,
// Content-Type) and Access-Control-Max-Age; other requests get
// Access-Control-Allow-Origin and expose Retry-After and WWW-Authenticate.
// A preflight from any other origin is answered 403. Every /v1 response
// carries Vary: Origin once an origin is configured.
//
// Access-Control-Allow-Credentials is never sent, with "*" or without:
// the API authenticates with the Authorization header, which a page sets
// itself and which needs no credentials mode, and it sets no cookies. So
// allowing "*" lets any page call the API with a token it holds, never
// with the user's cookies or HTTP authentication.
type CORSConfig struct {
	// AllowedOrigins are origins (scheme://host[:port], http or https;
	// the default port may be left out) whose pages may call /v1, or the
	// single entry "*" for every origin.
	AllowedOrigins []string
	// MaxAge is how long a browser may cache a preflight answer (default
	// 10 minutes; browsers cap it, Chromium at 2 hours).
	MaxAge time.Duration
}

// Validate names the first bad origin.
func (c CORSConfig) Validate() error {
	if c.MaxAge < 0 {
		return fmt.Errorf("httpapi: CORS.MaxAge %v is negative", c.MaxAge)
	}
	for i, o := range c.AllowedOrigins {
		if o == "*" {
			if len(c.AllowedOrigins) > 1 {
				return fmt.Errorf("httpapi: CORS.AllowedOrigins: \"*\" allows every origin and cannot be listed with others")
			}
			continue
		}
		if _, err := canonicalOrigin(o); err != nil {
			return fmt.Errorf("httpapi: CORS.AllowedOrigins[%d] %q: %w", i, o, err)
		}
	}
	return nil
}

// canonicalOrigin checks an origin and returns it as a browser sends it:
// lower-case, without the scheme's default port.
func canonicalOrigin(o string) (string, error) {
	u, err := url.Parse(o)
	switch {
	case err != nil:
		return "", fmt.Errorf("not a URL")
	case u.Scheme != "http" && u.Scheme != "https":
		return "", fmt.Errorf("want an http or https origin, scheme://host[:port]")
	case u.Host == "" || u.Hostname() == "" || u.User != nil || u.Opaque != "":
		return "", fmt.Errorf("want scheme://host[:port]")
	case strings.Contains(u.Host, "*"):
		return "", fmt.Errorf("list each origin; wildcards are not supported (only \"*\" alone, for every origin)")
	case u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.ForceQuery || strings.HasSuffix(o, "#"):
		return "", fmt.Errorf("an origin has no path, query or fragment (not even a trailing /)")
	}
	host := strings.ToLower(u.Host)
	if p := u.Port(); (u.Scheme == "http" && p == "80") || (u.Scheme == "https" && p == "443") {
		host = strings.TrimSuffix(host, ":"+p)
	}
	return u.Scheme + "://" + host, nil
}

// cors is a validated CORSConfig.
type cors struct {
	any     bool
	origins map[string]bool
	maxAge  string // seconds
}

func newCORS(c CORSConfig) *cors {
	m := &cors{origins: map[string]bool{}}
	for _, o := range c.AllowedOrigins {
		if o == "*" {
			m.any = true
			continue
		}
		canon, _ := canonicalOrigin(o) // checked by Validate
		m.origins[canon] = true
	}
	age := c.MaxAge
	if age == 0 {
		age = DefaultCORSMaxAge
	}
	m.maxAge = strconv.FormatInt(int64(age/time.Second), 10)
	return m
}

// enabled reports whether any origin is allowed.
func (m *cors) enabled() bool { return m.any || len(m.origins) > 0 }

// allowed returns the Access-Control-Allow-Origin value for origin, or ""
// when it is not allowed.
func (m *cors) allowed(origin string) string {
	switch {
	case origin == "":
		return ""
	case m.any:
		return "*"
	case m.origins[strings.ToLower(origin)]:
		return origin
	}
	return ""
}

// corsMethods are the methods a preflight may be told a path allows.
var corsMethods = []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}

// corsHeaders are the request headers the API reads.
const corsHeaders = "Authorization, Content-Type"

// serveCORS adds the CORS headers of a /v1 request and answers it if it
// is a preflight; it reports whether it answered.
func (a *API) serveCORS(w http.ResponseWriter, r *http.Request) bool {
	if !strings.HasPrefix(r.URL.Path, "/v1/") {
		return false
	}
	h := w.Header()
	if a.cors.enabled() {
		h.Add("Vary", "Origin")
	}
	origin := r.Header.Get("Origin")
	allow := a.cors.allowed(origin)
	preflight := r.Method == http.MethodOptions && origin != "" && r.Header.Get("Access-Control-Request-Method") != ""
	if !preflight {
		if allow != "" {
			h.Set("Access-Control-Allow-Origin", allow)
			h.Set("Access-Control-Expose-Headers", "Retry-After, WWW-Authenticate")
		}
		return false
	}
	h.Add("Vary", "Access-Control-Request-Method")
	h.Add("Vary", "Access-Control-Request-Headers")
	if allow == "" {
		a.writeError(w, r, syncproto.Errorf(syncpb.Code_CODE_FORBIDDEN, "cross-origin requests from this origin are not allowed"))
		return true
	}
	var methods []string
	for _, m := range corsMethods {
		probe := &http.Request{Method: m, URL: r.URL, Host: r.Host, Header: http.Header{}}
		if _, pattern := a.mux.Handler(probe); pattern != "" {
			methods = append(methods, m)
		}
	}
	if len(methods) == 0 {
		a.writeError(w, r, syncproto.Errorf(syncpb.Code_CODE_NOT_FOUND, "no such endpoint"))
		return true
	}
	h.Set("Access-Control-Allow-Origin", allow)
	h.Set("Access-Control-Allow-Methods", strings.Join(methods, ", "))
	h.Set("Access-Control-Allow-Headers", corsHeaders)
	h.Set("Access-Control-Max-Age", a.cors.maxAge)
	w.WriteHeader(http.StatusNoContent)
	return true
}
