package httpapi

import (
	"context"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// doOrigin sends a request from a page of origin (none for ""), with
// extra headers, and returns the answer.
func (e *testEnv) doOrigin(method, path, origin, token string, header map[string]string) result {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, e.srv.URL+path, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return result{status: resp.StatusCode, header: resp.Header, body: b}
}

func preflight(method, headers string) map[string]string {
	return map[string]string{"Access-Control-Request-Method": method, "Access-Control-Request-Headers": headers}
}

func varies(r result, name string) bool {
	for _, v := range r.header.Values("Vary") {
		for _, f := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(f), name) {
				return true
			}
		}
	}
	return false
}

// noCredentials fails if r allows credentials, whatever the origin.
func noCredentials(t *testing.T, what string, r result) {
	t.Helper()
	if v := r.header.Values("Access-Control-Allow-Credentials"); len(v) > 0 {
		t.Errorf("%s: Access-Control-Allow-Credentials %q; credentials are never allowed", what, v)
	}
}

// TestCORSNoneByDefault: with no origin configured, a cross-origin page
// gets no CORS headers and its preflights are refused; the same requests
// without CORS work as before.
func TestCORSNoneByDefault(t *testing.T) {
	e := newTestEnv(t, nil)
	s := e.newUser("acme", "ana")
	r := e.doOrigin("GET", "/v1/me", "https://app.example.com", s.AccessToken, nil)
	e.want(r, 200, nil)
	if r.header.Get("Access-Control-Allow-Origin") != "" || varies(r, "Origin") {
		t.Fatalf("no origins configured, yet: %v", r.header)
	}
	r = e.doOrigin("OPTIONS", "/v1/me", "https://app.example.com", "", preflight("GET", "authorization"))
	if r.status != 403 || r.errCode(t) != "forbidden" || r.header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("preflight: %d %v %s", r.status, r.header, r.body)
	}
	// OPTIONS that is not a preflight is routed like any other method.
	if r := e.doOrigin("OPTIONS", "/v1/me", "", "", nil); r.status != 405 {
		t.Fatalf("plain OPTIONS: %d %s", r.status, r.body)
	}
}

// TestCORSAllowedOrigin: a listed origin gets its own origin back (never
// "*"), the headers a script needs to read, and preflights answered with
// the path's methods, the API's request headers and a max-age.
func TestCORSAllowedOrigin(t *testing.T) {
	const app = "https://app.example.com"
	e := newTestEnv(t, func(c *Config) {
		c.CORS = CORSConfig{AllowedOrigins: []string{"https://APP.example.com:443", "http://localhost:5173"}, MaxAge: 5 * time.Minute}
	})
	s := e.newUser("acme", "ana")
	r := e.doOrigin("GET", "/v1/me", app, s.AccessToken, nil)
	e.want(r, 200, nil)
	if r.header.Get("Access-Control-Allow-Origin") != app || !varies(r, "Origin") ||
		!strings.Contains(r.header.Get("Access-Control-Expose-Headers"), "Retry-After") {
		t.Fatalf("allowed origin: %v", r.header)
	}
	noCredentials(t, "request", r)
	// Errors carry the headers too, so the page can read them.
	r = e.doOrigin("GET", "/v1/me", "http://localhost:5173", "", nil)
	if r.status != 401 || r.header.Get("Access-Control-Allow-Origin") != "http://localhost:5173" {
		t.Fatalf("401 for an allowed origin: %d %v", r.status, r.header)
	}

	for _, tc := range []struct {
		path, method, methods string
	}{
		{"/v1/me", "GET", "GET"},
		{"/v1/conversations/c_1/members/u_1", "DELETE", "PATCH, DELETE"},
		{"/v1/messages", "POST", "POST"},
		{"/v1/workspace", "PATCH", "GET, PATCH"},
	} {
		r := e.doOrigin("OPTIONS", tc.path, app, "", preflight(tc.method, "authorization, content-type"))
		h := r.header
		if r.status != 204 || h.Get("Access-Control-Allow-Origin") != app || h.Get("Access-Control-Allow-Methods") != tc.methods ||
			h.Get("Access-Control-Allow-Headers") != "Authorization, Content-Type" || h.Get("Access-Control-Max-Age") != "300" ||
			!varies(r, "Origin") || !varies(r, "Access-Control-Request-Method") {
			t.Errorf("preflight %s %s: %d %v", tc.method, tc.path, r.status, h)
		}
		noCredentials(t, "preflight", r)
	}
	if r := e.doOrigin("OPTIONS", "/v1/nope", app, "", preflight("GET", "")); r.status != 404 || r.errCode(t) != "not_found" {
		t.Fatalf("preflight of an unknown path: %d %s", r.status, r.body)
	}
	// Only /v1 is cross-origin.
	if r := e.doOrigin("GET", "/healthz", app, "", nil); r.header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("healthz: %v", r.header)
	}
}

// TestCORSDisallowedOrigin: an origin not listed gets no CORS headers and
// its preflights are refused. Requests are still served (a same-origin
// page sends Origin too); the browser keeps a foreign page from reading
// the answer.
func TestCORSDisallowedOrigin(t *testing.T) {
	e := newTestEnv(t, func(c *Config) { c.CORS = CORSConfig{AllowedOrigins: []string{"https://app.example.com"}} })
	s := e.newUser("acme", "ana")
	for _, origin := range []string{"https://evil.example", "https://app.example.com.evil.example", "http://app.example.com", "null"} {
		r := e.doOrigin("GET", "/v1/me", origin, s.AccessToken, nil)
		if r.status != 200 || r.header.Get("Access-Control-Allow-Origin") != "" || !varies(r, "Origin") {
			t.Errorf("%s: %d %v", origin, r.status, r.header)
		}
		r = e.doOrigin("OPTIONS", "/v1/me", origin, "", preflight("GET", "authorization"))
		if r.status != 403 || r.errCode(t) != "forbidden" || r.header.Get("Access-Control-Allow-Origin") != "" ||
			r.header.Get("Access-Control-Allow-Methods") != "" {
			t.Errorf("preflight from %s: %d %v %s", origin, r.status, r.header, r.body)
		}
	}
}

// TestCORSAnyOriginWithoutCredentials: "*" answers "*", never the
// caller's origin echoed back, and never allows credentials.
func TestCORSAnyOriginWithoutCredentials(t *testing.T) {
	e := newTestEnv(t, func(c *Config) { c.CORS = CORSConfig{AllowedOrigins: []string{"*"}} })
	s := e.newUser("acme", "ana")
	r := e.doOrigin("GET", "/v1/me", "https://anyone.example", s.AccessToken, map[string]string{"Cookie": "session=1"})
	e.want(r, 200, nil)
	if r.header.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("Access-Control-Allow-Origin %q, want *", r.header.Get("Access-Control-Allow-Origin"))
	}
	noCredentials(t, "request", r)
	r = e.doOrigin("OPTIONS", "/v1/messages", "https://anyone.example", "", preflight("POST", "authorization, content-type"))
	if r.status != 204 || r.header.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("preflight: %d %v", r.status, r.header)
	}
	noCredentials(t, "preflight", r)
}

func TestCORSConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		origins []string
		ok      bool
	}{
		{nil, true},
		{[]string{"*"}, true},
		{[]string{"https://app.example.com", "http://127.0.0.1:8080", "https://[::1]:8443"}, true},
		{[]string{"*", "https://app.example.com"}, false},
		{[]string{"https://app.example.com/"}, false},
		{[]string{"https://app.example.com/path"}, false},
		{[]string{"app.example.com"}, false},
		{[]string{"null"}, false},
		{[]string{"ftp://app.example.com"}, false},
		{[]string{"https://*.example.com"}, false},
		{[]string{"https://user@app.example.com"}, false},
		{[]string{"https://app.example.com?x"}, false},
		{[]string{""}, false},
	} {
		err := CORSConfig{AllowedOrigins: tc.origins}.Validate()
		if (err == nil) != tc.ok {
			t.Errorf("%q: Validate() = %v, want ok=%v", tc.origins, err, tc.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "AllowedOrigins") {
			t.Errorf("%q: %v does not name the field", tc.origins, err)
		}
	}
	if err := (CORSConfig{MaxAge: -1}).Validate(); err == nil || !strings.Contains(err.Error(), "MaxAge") {
		t.Errorf("negative MaxAge: %v", err)
	}
	for _, rt := range routes {
		if !slices.Contains(corsMethods, rt.method) {
			t.Errorf("%s %s: preflights never name %s", rt.method, rt.pattern, rt.method)
		}
	}
}
