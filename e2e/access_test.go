package e2e_test

import (
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/parley-chat/parley/edge/auth"
	"github.com/parley-chat/parley/edge/httpapi"
	"github.com/parley-chat/parley/internal/poll"
	"github.com/parley-chat/parley/system"
)

// TestServeLoginThrottleCORSAndHeaders: the per-account log-in throttle,
// CORS and the security headers, configured as `parley serve` does,
// against the real core.
func TestServeLoginThrottleCORSAndHeaders(t *testing.T) {
	const app = "https://app.example.com"
	s := startTestSystem(t, "", func(c *system.Config) {
		c.Edge.HTTP.LoginThrottle = auth.ThrottleConfig{FreeFailures: 1, BaseDelay: time.Second, MaxDelay: 2 * time.Second}
		c.Edge.HTTP.CORS = httpapi.CORSConfig{AllowedOrigins: []string{app}}
	})
	s.User(t, "acme", "ana")
	login := func(password string) raw {
		return s.do(t, "POST", "/v1/sessions", "", mustJSON(t, map[string]string{"workspace": "acme", "username": "ana", "password": password}))
	}
	// One free failure, a second that imposes a second's wait, then the
	// account waits: the right password too is refused until it is over.
	for i := range 2 {
		if r := login("wrong password"); r.status != 401 {
			t.Fatalf("failure %d: %d %s", i+1, r.status, r.body)
		}
	}
	r := login(testPassword)
	if r.status != 429 || r.code(t) != "rate_limited" || r.header.Get("Retry-After") != "1" {
		t.Fatalf("during the wait: %d %v %s", r.status, r.header, r.body)
	}
	poll.Until(t, 30*time.Second, "the right password let in after the wait", func() bool {
		if r = login(testPassword); r.status != 200 && r.status != 429 {
			t.Fatalf("after the wait: %d %s", r.status, r.body)
		}
		return r.status == 200
	})

	req, err := http.NewRequestWithContext(t.Context(), "OPTIONS", s.base+"/v1/messages", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Origin", app)
	req.Header.Set("Access-Control-Request-Method", "POST")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 204 || resp.Header.Get("Access-Control-Allow-Origin") != app || resp.Header.Get("Access-Control-Allow-Methods") != "POST" {
		t.Fatalf("preflight: %d %v", resp.StatusCode, resp.Header)
	}
	for _, h := range []string{"Content-Security-Policy", "X-Content-Type-Options", "Referrer-Policy", "X-Frame-Options"} {
		if resp.Header.Get(h) == "" || r.header.Get(h) == "" {
			t.Errorf("%s missing: preflight %v, login %v", h, resp.Header, r.header)
		}
	}
}
