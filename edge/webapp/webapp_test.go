package webapp

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"
)

func newTestHandler(t *testing.T) *Handler {
	t.Helper()
	files := fstest.MapFS{
		"index.html":       {Data: []byte(`<script type="module" src="%ASSETS%/app/main.js"></script>`)},
		"app/main.js":      {Data: []byte("export const x = 1;\n")},
		"app/style.css":    {Data: []byte("body{}\n")},
		"app/vendor/x.mjs": {Data: []byte("export{};\n")},
		"app/README":       {Data: []byte("no extension, not served\n")},
		"sw.js":            {Data: []byte("self.addEventListener('push', () => {});\n")},
	}
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		w.Write([]byte(`{"error":{"code":"not_found"}}`))
	})
	h, err := New(Config{Files: files, Next: next, UDPPort: func() int { return 8443 }})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestHandler(t *testing.T) {
	h := newTestHandler(t)
	js := h.AssetBase() + "/app/main.js"
	tests := []struct {
		method, path string
		status       int
		ctype, cache string // "" for the API's answer
		body         string // a substring
	}{
		{"GET", "/", 200, "text/html; charset=utf-8", "no-cache", `src="` + js + `"`},
		{"HEAD", "/", 200, "text/html; charset=utf-8", "no-cache", ""},
		{"GET", "/index.html", 200, "text/html; charset=utf-8", "no-cache", js},
		{"GET", "/c/c_abc", 200, "text/html; charset=utf-8", "no-cache", js}, // an app route
		{"GET", "/login", 200, "text/html; charset=utf-8", "no-cache", js},
		{"GET", js, 200, "text/javascript; charset=utf-8", "public, max-age=31536000, immutable", "export const x"},
		{"GET", h.AssetBase() + "/app/style.css", 200, "text/css; charset=utf-8", "public, max-age=31536000, immutable", "body"},
		{"GET", h.AssetBase() + "/app/vendor/x.mjs", 200, "text/javascript; charset=utf-8", "public, max-age=31536000, immutable", ""},
		{"GET", "/config.json", 200, "application/json", "no-store", `"webtransport":"https://example.test:8443/v1/wt"`},
		// The service worker: a fixed URL, checked for updates.
		{"GET", "/sw.js", 200, "text/javascript; charset=utf-8", "no-cache", "addEventListener('push'"},
		{"GET", "/sw.js/x", 200, "text/html; charset=utf-8", "no-cache", js}, // an app route, not the worker
		// Not the app's: the API answers.
		{"GET", "/assets/0123456789abcdef/app/main.js", 404, "", "", "not_found"}, // another build
		{"GET", h.AssetBase() + "/index.html", 404, "", "", "not_found"},
		{"GET", h.AssetBase() + "/app/README", 404, "", "", "not_found"},
		{"GET", h.AssetBase() + "/app/nope.js", 404, "", "", "not_found"},
		{"GET", h.AssetBase() + "/../index.html", 404, "", "", "not_found"},
		{"GET", "/app/main.js", 404, "", "", "not_found"}, // only under its build id
		{"GET", "/favicon.ico", 404, "", "", "not_found"},
		{"GET", "/v1", 404, "", "", "not_found"},
		{"GET", "/v1/nope", 404, "", "", "not_found"},
		{"GET", "/v1/conversations/x/y/z", 404, "", "", "not_found"},
		{"GET", "/.well-known/parley/cert-hashes", 404, "", "", "not_found"},
		{"GET", "/metrics", 404, "", "", "not_found"},
		{"GET", "/healthz", 404, "", "", "not_found"},
		{"GET", "/debug/pprof/", 404, "", "", "not_found"},
		{"POST", "/", 404, "", "", "not_found"},
		{"POST", "/c/c_abc", 404, "", "", "not_found"},
	}
	for _, tc := range tests {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, tc.path, nil)
			r.Host = "example.test:8080"
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			res := w.Result()
			if res.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", res.StatusCode, tc.status)
			}
			ct := res.Header.Get("Content-Type")
			if tc.ctype == "" {
				tc.ctype = "application/json"
			}
			if ct != tc.ctype {
				t.Errorf("Content-Type %q, want %q", ct, tc.ctype)
			}
			if cc := res.Header.Get("Cache-Control"); tc.cache != "" && cc != tc.cache {
				t.Errorf("Cache-Control %q, want %q", cc, tc.cache)
			}
			if !strings.Contains(w.Body.String(), tc.body) {
				t.Errorf("body %q does not contain %q", w.Body.String(), tc.body)
			}
		})
	}
}

// The page's policy allows its own scripts and styles only, and
// connections to the edge's two ports.
func TestPolicy(t *testing.T) {
	h := newTestHandler(t)
	r := httptest.NewRequest("GET", "/", nil)
	r.Host = "127.0.0.1:8080"
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	csp := w.Result().Header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "script-src 'self';", "style-src 'self';", "frame-ancestors 'none'",
		"base-uri 'none'", "connect-src 'self' ws://127.0.0.1:8080 wss://127.0.0.1:8080 https://127.0.0.1:8443;"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	for _, bad := range []string{"unsafe-inline", "unsafe-eval", "*"} {
		if strings.Contains(csp, bad) {
			t.Errorf("CSP %q allows %q", csp, bad)
		}
	}
	// A Host that is not a plain host:port is not repeated in the header.
	r = httptest.NewRequest("GET", "/", nil)
	r.Host = "evil.test; script-src *"
	w = httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if csp := w.Result().Header.Get("Content-Security-Policy"); strings.Contains(csp, "evil") {
		t.Errorf("CSP %q repeats a bad Host", csp)
	}
}

// The build id changes with any asset's content.
func TestBuildID(t *testing.T) {
	a := fstest.MapFS{"index.html": {Data: []byte("%ASSETS%")}, "a.js": {Data: []byte("1")}}
	b := fstest.MapFS{"index.html": {Data: []byte("%ASSETS%")}, "a.js": {Data: []byte("2")}}
	next := http.NotFoundHandler()
	ha, err := New(Config{Files: a, Next: next})
	if err != nil {
		t.Fatal(err)
	}
	hb, err := New(Config{Files: b, Next: next})
	if err != nil {
		t.Fatal(err)
	}
	if ha.AssetBase() == hb.AssetBase() {
		t.Errorf("two builds share the id %s", ha.AssetBase())
	}
	if _, err := New(Config{Files: fstest.MapFS{}, Next: next}); err == nil {
		t.Error("New without an index.html succeeded")
	}
}

// The service worker has its own policy, and is the API's 404 when the
// app has none.
func TestServiceWorker(t *testing.T) {
	rec := httptest.NewRecorder()
	newTestHandler(t).ServeHTTP(rec, httptest.NewRequest("GET", "/sw.js", nil))
	if got := rec.Header().Get("Content-Security-Policy"); got != "default-src 'none'; connect-src 'self'" {
		t.Errorf("sw.js policy %q", got)
	}
	if got := rec.Header().Get("X-Content-Type-Options"); got != "nosniff" {
		t.Errorf("sw.js nosniff %q", got)
	}
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNotFound) })
	h, err := New(Config{Files: fstest.MapFS{"index.html": {Data: []byte("x")}}, Next: next})
	if err != nil {
		t.Fatal(err)
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/sw.js", nil))
	if rec.Code != http.StatusNotFound {
		t.Errorf("no sw.js: %d, want 404", rec.Code)
	}
}
